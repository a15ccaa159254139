//! The conversation harness: a service without HTTP (a [`World`]: store, engine, inbox
//! processor, scheduler step) in one of three delivery modes, driven by people who write to the robot, tap card
//! buttons and wait for the test clock to move. Every outbox row a step writes is read back in
//! the shape the mode sends it (sandbox rows; DingTalk markdown and ActionCard messages; card
//! platform creates and updates) and kept, per person, as what that person reads.
//!
//! Inbound messages enter where every transport converges: the inbox, with the payload and
//! source the transport stores (`sandbox`, `robot` for signed HTTP callbacks, `stream`); card
//! taps go through [`InboxProcessor::card_callback`], the function the HTTP card route and the
//! Stream handler call once a callback is verified. The transports' own checks (signatures,
//! replay, the card route's secret segment) have their own tests.
//!
//! The principles of issue 14 are checked on every step, and a [`Chat`] whose conversation broke
//! one fails the test when it is dropped:
//! 1. whoever sends a command or taps a button gets a message (a card changing somewhere above
//!    is not an answer) in the same processing step;
//! 2. no message or card suggests a command its recipient may not send;
//! 4. a card is updated only when something on it changed, and nobody gets two messages about
//!    one step.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tiaochu::card_callback::CardReply;
use tiaochu::settings::DingtalkMode;
use tiaochu::store::OutboxState;

pub use crate::support::{CG, RS, ZJ};
use crate::support::{World, world};

pub const INSPECTOR: &str = "local:区12345热线:孟艳秋";
pub const INSPECTOR_B: &str = "local:区12345热线:李德艳";

/// How the service reaches people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// DingTalk with a card template: interactive cards, taps over Stream.
    CardTemplate,
    /// DingTalk without a card template: ActionCard messages whose buttons send text commands;
    /// people's messages arrive as signed HTTP callbacks.
    ActionCard,
    /// The local sandbox page.
    Sandbox,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::CardTemplate, Mode::ActionCard, Mode::Sandbox];

    pub fn label(self) -> &'static str {
        match self {
            Mode::CardTemplate => "互动卡片模式",
            Mode::ActionCard => "ActionCard 模式（未配置卡片模板）",
            Mode::Sandbox => "沙盒",
        }
    }
}

/// One thing a person did or read.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// They typed this to the robot.
    Said(String),
    /// They tapped a card button, with what they filled in.
    Tapped {
        card: String,
        label: String,
        inputs: Vec<(String, String)>,
    },
    /// A message (markdown; an ActionCard message carries its buttons' labels).
    Message {
        title: String,
        text: String,
        buttons: Vec<String>,
    },
    /// An interactive card: a new one at the bottom of the chat, or an earlier one changing.
    Card {
        title: String,
        text: String,
        status: String,
        buttons: Vec<String>,
        new: bool,
    },
    /// What the card platform showed on the tapped card to the tapper alone.
    CardError(String),
}

/// One line of the whole conversation: who, when, what.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Timestamp,
    pub person: String,
    pub seen: Seen,
}

/// A card as a person last saw it.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    person: String,
    /// The card's identity for this person: the outTrackId, or the sandbox card key.
    id: String,
    title: String,
    text: String,
    status: String,
    /// (action id, label, command)
    buttons: Vec<(String, String, String)>,
}

/// A service in one mode, with its people and what each of them has read. `chat.store`,
/// `chat.processor`, `chat.roster`: the [`World`]'s.
pub struct Chat {
    pub mode: Mode,
    w: World,
    /// The world's clock, kept here as the time of the lines.
    pub now: Timestamp,
    /// Every card each person was shown, in the order last shown.
    cards: Vec<Shown>,
    /// The tapper's copy as the callback's answer showed it, during a tap's step.
    answered: Option<Shown>,
    /// ActionCard messages with buttons (ActionCard mode), oldest first.
    action_cards: Vec<Shown>,
    /// Card-platform instance ids → their owner (card-template mode).
    tracks: BTreeMap<String, String>,
    /// The conversation of the sandbox-era tests, all people together, as markdown.
    pub transcript: Vec<String>,
    /// Everyone's conversation, in order.
    pub lines: Vec<Line>,
    /// Broken principles; the test fails with them when the chat is dropped.
    pub violations: Vec<String>,
}

impl Drop for Chat {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_principles();
        }
    }
}

impl std::ops::Deref for Chat {
    type Target = World;
    fn deref(&self) -> &World {
        &self.w
    }
}

impl Chat {
    /// The service's engine, for tests that look behind the conversation.
    pub fn engine(&self) -> &tiaochu::engine::Engine {
        &self.w.engine
    }

    /// The sandbox, as the earlier tests use it.
    pub fn new() -> Chat {
        Chat::in_mode(Mode::Sandbox)
    }

    /// The shipped roster plus one liaison for each of the three units the scenarios use
    /// ([`crate::support::WorldBuilder::the_liaisons`]); in the DingTalk modes everyone gets a staff id (nobody
    /// could be reached without one).
    pub fn in_mode(mode: Mode) -> Chat {
        let builder = world().the_liaisons().settings(|s| match mode {
            Mode::Sandbox => s.dingtalk.mode = DingtalkMode::Sandbox,
            Mode::ActionCard => {
                s.dingtalk.mode = DingtalkMode::Http;
                s.dingtalk.robot_code = "dingrobot".into();
                s.dingtalk.card_template_id = String::new();
            }
            Mode::CardTemplate => {
                s.dingtalk.mode = DingtalkMode::Stream;
                s.dingtalk.robot_code = "dingrobot".into();
                s.dingtalk.card_template_id = "tpl-tiaochu.schema".into();
            }
        });
        let w = if mode == Mode::Sandbox {
            builder
        } else {
            builder.reachable()
        }
        .build();
        Chat {
            mode,
            now: w.now(),
            w,
            cards: Vec::new(),
            action_cards: Vec::new(),
            answered: None,
            tracks: BTreeMap::new(),
            transcript: Vec::new(),
            lines: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// Fails with every broken principle so far.
    pub fn assert_principles(&self) {
        assert!(
            self.violations.is_empty(),
            "the conversation ({}) broke its principles:\n{}",
            self.mode.label(),
            self.violations.join("\n")
        );
    }

    /// A roster id from an id or a (unique) name.
    pub fn id(&self, who: &str) -> String {
        if let Some(p) = self.roster.person(who) {
            return p.id().to_string();
        }
        // Someone outside the roster is named by their DingTalk id.
        self.roster
            .person_by_name(who)
            .map_or_else(|| who.to_string(), |p| p.id().to_string())
    }

    /// "姓名（单位）" for a roster id.
    pub fn name(&self, id: &str) -> String {
        self.roster
            .person(id)
            .map(|p| format!("{}（{}）", p.name, p.unit))
            .unwrap_or_else(|| id.to_string())
    }

    /// "王联络（区人社局 科员 · 联络员）" for a transcript heading.
    pub fn describe(&self, id: &str) -> String {
        self.roster
            .person(id)
            .map(|p| {
                let roles: Vec<&str> = p.roles.iter().map(|r| r.label()).collect();
                format!("{}（{} · {}）", p.name, p.title, roles.join("、"))
            })
            .unwrap_or_else(|| id.to_string())
    }

    /// "区人社局-王联络": a transcript's file name.
    pub fn file_name(&self, id: &str) -> String {
        self.roster
            .person(id)
            .map(|p| format!("{}-{}", p.unit, p.name))
            .unwrap_or_else(|| id.replace(['/', ':'], "_"))
    }

    /// Everyone who read or did something, in order of first appearance.
    pub fn people(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for l in &self.lines {
            if !out.contains(&l.person) {
                out.push(l.person.clone());
            }
        }
        out
    }

    fn step_time(&mut self) {
        self.now = self
            .now
            .checked_add(SignedDuration::from_mins(5))
            .expect("time");
        self.clock.set(self.now);
    }

    fn staff_id(&self, id: &str) -> String {
        self.roster
            .person(id)
            .map(|p| p.staff_id.clone())
            .unwrap_or_default()
    }

    /// `from` (an id or a name) sends `text` to the robot in a 1:1 chat; returns what everyone
    /// received, by person id, each as "title\ntext[\n[按钮：…]]".
    pub async fn say(&mut self, from: &str, text: &str) -> BTreeMap<String, Vec<String>> {
        let from = self.id(from);
        self.step_time();
        self.lines.push(Line {
            at: self.now,
            person: from.clone(),
            seen: Seen::Said(text.trim().to_string()),
        });
        self.inbound(&from, text, "1", &[]).await;
        self.after_action(&from, text.trim())
    }

    /// `from` writes `text` in a group, `@`-mentioning `at` (roster ids or names): the robot
    /// answers in the group (through the session webhook in DingTalk).
    pub async fn say_in_group(
        &mut self,
        from: &str,
        text: &str,
        at: &[&str],
    ) -> BTreeMap<String, Vec<String>> {
        let from = self.id(from);
        let at: Vec<(String, String)> = at
            .iter()
            .map(|w| {
                let id = self.id(w);
                (self.staff_id(&id), id)
            })
            .collect();
        self.step_time();
        self.lines.push(Line {
            at: self.now,
            person: from.clone(),
            seen: Seen::Said(format!("（在工作群中）{}", text.trim())),
        });
        let staff: Vec<&str> = at.iter().map(|(s, _)| s.as_str()).collect();
        self.inbound(&from, text, "2", &staff).await;
        self.after_action(&from, text.trim())
    }

    async fn inbound(&mut self, from: &str, text: &str, conversation: &str, at: &[&str]) {
        let staff_id = match self.mode {
            Mode::Sandbox => from.to_string(),
            _ => self.staff_id(from),
        };
        let mut at_users: Vec<Value> = at
            .iter()
            .map(|id| json!({"dingtalkId": format!("$:{id}"), "staffId": id}))
            .collect();
        if conversation == "2" {
            // The robot itself is always among the mentioned in a group.
            at_users.push(json!({"dingtalkId": "$:robot"}));
        }
        let nick = self
            .roster
            .person(from)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let mut message = self
            .w
            .message(from, text)
            .with("conversationType", conversation)
            .with("conversationId", format!("cid-{conversation}"))
            .with("senderStaffId", staff_id)
            .with("senderNick", nick)
            .with("robotCode", "dingrobot")
            .with("atUsers", at_users);
        if self.mode != Mode::Sandbox {
            message = message
                .with(
                    "sessionWebhook",
                    "https://oapi.dingtalk.com/robot/sendBySession?session=s1",
                )
                .with(
                    "sessionWebhookExpiredTime",
                    self.now.as_millisecond() + 5_400_000,
                );
        }
        self.w.deliver(&message).await;
        self.transcript.push(format!(
            "\n### {} → 机器人\n\n```\n{}\n```",
            self.name(from),
            text.trim()
        ));
        assert_eq!(self.w.process().await, 1, "the message was processed once");
    }

    /// `who` taps the button `label` on the newest card they hold that has it. In card-template
    /// mode the tap is a card callback carrying `inputs`; without a template the button sends
    /// its text command, which for a button whose command needs writing is `typed` (what the
    /// person completes it to, in the input box or the chat).
    pub async fn tap(
        &mut self,
        who: &str,
        label: &str,
        inputs: Value,
        typed: &str,
    ) -> BTreeMap<String, Vec<String>> {
        let who = self.id(who);
        let card = self
            .cards
            .iter()
            .rev()
            .find(|c| c.person == who && c.buttons.iter().any(|b| b.1 == label))
            .cloned();
        if self.mode != Mode::CardTemplate {
            // Without a template the button is a command: the same as typing it.
            let card = card.or_else(|| {
                self.action_cards
                    .iter()
                    .rev()
                    .find(|c| c.person == who && c.buttons.iter().any(|b| b.1 == label))
                    .cloned()
            });
            let Some(card) = card else {
                // An ActionCard message cannot change after sending, so the buttons of a step
                // that became possible later (联合调处 after 开始审核) are not there: the
                // person types the command the answer suggested.
                assert_eq!(
                    self.mode,
                    Mode::ActionCard,
                    "{} has no “{label}”",
                    self.name(&who)
                );
                return self.say(&who, typed).await;
            };
            let button = card.buttons.iter().find(|b| b.1 == label).expect("button");
            let filled = typed.split_whitespace().count() > 2;
            assert!(
                typed.starts_with(button.2.split_whitespace().next().unwrap_or_default())
                    && (filled || typed == button.2),
                "“{label}” sends `{}`, not `{typed}`",
                button.2
            );
            self.step_time();
            self.lines.push(Line {
                at: self.now,
                person: who.clone(),
                seen: Seen::Tapped {
                    card: card.title.clone(),
                    label: label.to_string(),
                    inputs: if filled {
                        vec![("发送".into(), typed.to_string())]
                    } else {
                        Vec::new()
                    },
                },
            });
            self.inbound(&who, typed, "1", &[]).await;
            return self.after_action(&who, typed);
        }
        let Some(card) = card else {
            panic!(
                "{} holds no card with the button “{label}”: {:#?}",
                self.name(&who),
                self.cards
                    .iter()
                    .filter(|c| c.person == who)
                    .collect::<Vec<_>>()
            );
        };
        let button = card
            .buttons
            .iter()
            .find(|b| b.1 == label)
            .expect("button")
            .clone();
        let mut params = inputs.as_object().cloned().unwrap_or_default();
        params.insert("action".into(), json!(button.0));
        let listed: Vec<(String, String)> = inputs
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_string)))
                    .collect()
            })
            .unwrap_or_default();
        self.step_time();
        self.lines.push(Line {
            at: self.now,
            person: who.clone(),
            seen: Seen::Tapped {
                card: card.title.clone(),
                label: label.to_string(),
                inputs: listed,
            },
        });
        self.transcript
            .push(format!("\n### {} 点按「{label}」\n", self.name(&who)));
        let content = json!({"cardPrivateData": {"actionIds": [button.0], "params": params}});
        let body = json!({
            "outTrackId": card.id, "corpId": "dingcorp", "userId": self.staff_id(&who),
            "userIdType": 1, "type": "actionCallback", "content": content.to_string(),
        })
        .to_string();
        let reply = self
            .processor
            .card_callback(&body, self.now)
            .await
            .expect("card callback");
        let CardReply::Answer { content, error } = reply else {
            panic!("the tap on {} was refused: {reply:?}", card.id);
        };
        // The answer is applied to the tapper's copy at once.
        let shown = Shown {
            person: who.clone(),
            id: card.id.clone(),
            title: content.title.clone(),
            text: content.markdown.clone(),
            status: content.status.clone(),
            buttons: content
                .buttons
                .iter()
                .map(|b| (b.id.clone(), b.label.clone(), b.command.clone()))
                .collect(),
        };
        self.show_card(shown.clone(), false);
        self.answered = Some(shown);
        if let Some(error) = error {
            self.lines.push(Line {
                at: self.now,
                person: who.clone(),
                seen: Seen::CardError(error),
            });
        }
        let got = self.after_action(&who, &format!("点按「{label}」"));
        self.answered = None;
        got
    }

    /// The test clock moves to `to`, firing every timer on the way at its own time, as the
    /// running scheduler would.
    pub async fn wait_until(&mut self, to: &str) -> BTreeMap<String, Vec<String>> {
        let to: Timestamp = to.parse().expect("time");
        let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
        loop {
            let next = self.store.read(|r| r.next_due()).await.expect("next timer");
            match next {
                Some(at) if at <= to => {
                    self.now = self.now.max(at);
                    self.clock.set(self.now);
                    self.w.fire_due().await;
                    for (k, v) in self.received() {
                        got.entry(k).or_default().extend(v);
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(to);
        self.clock.set(self.now);
        got
    }

    /// The checks after one person's action, and what everyone received.
    fn after_action(&mut self, from: &str, what: &str) -> BTreeMap<String, Vec<String>> {
        let before = self.lines.len();
        let got = self.received();
        // Principle 1: whoever acts gets an answer — a message or a new card, in the same step.
        let answered = self.lines[before..].iter().any(|l| {
            l.person == from
                && matches!(l.seen, Seen::Message { .. } | Seen::Card { new: true, .. })
        });
        if !answered {
            let who = self.name(from);
            self.violations.push(format!(
                "[{}] {who} got no answer to `{what}`",
                self.mode.label()
            ));
        }
        got
    }

    fn show_card(&mut self, shown: Shown, from_outbox: bool) {
        let previous = self
            .cards
            .iter()
            .position(|c| c.person == shown.person && c.id == shown.id);
        let new = previous.is_none();
        if let Some(i) = previous {
            let old = self.cards.remove(i);
            if old == shown && (!from_outbox || self.answered.as_ref() == Some(&shown)) {
                // A refused tap's answer shows the card as it was, and the tapper's copy the
                // answer already showed comes again through the API: nothing anyone sees.
                self.cards.push(shown);
                return;
            }
            if from_outbox && old == shown {
                // Principle 4: "已更新" only when something visible changed.
                self.violations.push(format!(
                    "[{}] {}'s card “{}” was updated without any change",
                    self.mode.label(),
                    self.name(&shown.person),
                    shown.title
                ));
            }
        }
        self.lines.push(Line {
            at: self.now,
            person: shown.person.clone(),
            seen: Seen::Card {
                title: shown.title.clone(),
                text: shown.text.clone(),
                status: shown.status.clone(),
                buttons: shown.buttons.iter().map(|b| b.1.clone()).collect(),
                new,
            },
        });
        self.cards.push(shown);
    }

    /// The live cards `who` holds: the latest copy of each card that still has buttons.
    pub fn live_cards(&self, who: &str) -> Vec<String> {
        let who = self.id(who);
        self.cards
            .iter()
            .filter(|c| c.person == who && !c.buttons.is_empty())
            .map(|c| c.title.clone())
            .collect()
    }

    /// Forgets what everyone did and read so far: a scenario's set-up, driven through the
    /// service like the rest, is not part of its transcripts. Cards stay as people hold them,
    /// and the principles were checked on every step of the set-up.
    pub fn forget_so_far(&mut self) {
        self.lines.clear();
        self.transcript.clear();
    }

    /// The body and status of the card titled with `title` that `who` holds, as last shown.
    pub fn card_text(&self, who: &str, title: &str) -> String {
        let who = self.id(who);
        self.cards
            .iter()
            .rev()
            .find(|c| c.person == who && c.title.contains(title))
            .map(|c| format!("{}\n{}", c.text, c.status))
            .unwrap_or_else(|| panic!("{} holds no card “{title}”", self.name(&who)))
    }

    /// Outbox rows written since the last read, decoded as the mode sends them, grouped by
    /// recipient.
    pub fn received(&mut self) -> BTreeMap<String, Vec<String>> {
        let rows = self.w.new_outbox();
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut messages: BTreeMap<String, usize> = BTreeMap::new();
        for row in rows {
            let v: Value = serde_json::from_slice(&row.payload).expect("payload is JSON");
            if row.state == OutboxState::Dead {
                self.violations.push(format!(
                    "[{}] a message to {} was dead-lettered: {:?}",
                    self.mode.label(),
                    row.target,
                    row.last_error
                ));
                continue;
            }
            let Some((to, seen, commands)) = self.decode(&row.channel, &row.target, &v) else {
                continue;
            };
            let roles = self
                .roster
                .person(&to)
                .map(|p| p.roles.clone())
                .unwrap_or_default();
            let (text, title, labels) = match &seen {
                Seen::Message {
                    title,
                    text,
                    buttons,
                } => (text.clone(), title.clone(), buttons.clone()),
                Seen::Card {
                    title,
                    text,
                    status,
                    buttons,
                    ..
                } => (
                    format!("{text}\n\n{status}"),
                    title.clone(),
                    buttons.clone(),
                ),
                _ => unreachable!("decode gives messages and cards"),
            };
            // Principle 2: instructions only to people who can follow them.
            let wrong = crate::support::suggestions_not_for(&text, &commands, &roles);
            let who = self.name(&to);
            for w in wrong {
                self.violations.push(format!(
                    "[{}] {who} ({roles:?}) is told `{w}` in “{title}”",
                    self.mode.label()
                ));
            }
            if matches!(seen, Seen::Message { .. } | Seen::Card { new: true, .. }) {
                *messages.entry(to.clone()).or_default() += 1;
            }
            let mut shown = format!("{title}\n{text}");
            if !labels.is_empty() {
                shown.push_str(&format!("\n[按钮：{}]", labels.join(" | ")));
            }
            self.transcript
                .push(format!("\n**机器人 → {who}**\n\n{}", quote(&shown)));
            out.entry(to.clone()).or_default().push(shown);
            match seen {
                Seen::Card {
                    title,
                    text,
                    status,
                    ..
                } => {
                    let id = card_id(&row.channel, &row.target, &v);
                    let buttons = card_buttons(&row.channel, &v);
                    self.show_card(
                        Shown {
                            person: to,
                            id,
                            title,
                            text,
                            status,
                            buttons,
                        },
                        true,
                    );
                }
                seen => {
                    if !commands.is_empty() {
                        let Seen::Message {
                            title,
                            text,
                            buttons,
                        } = &seen
                        else {
                            unreachable!("only messages are left");
                        };
                        self.action_cards.push(Shown {
                            person: to.clone(),
                            id: format!("actioncard-{}", row.id),
                            title: title.clone(),
                            text: text.clone(),
                            status: String::new(),
                            buttons: buttons
                                .iter()
                                .zip(&commands)
                                .map(|(l, c)| (String::new(), l.clone(), c.clone()))
                                .collect(),
                        });
                    }
                    self.lines.push(Line {
                        at: self.now,
                        person: to,
                        seen,
                    })
                }
            }
        }
        // Principle 4: one message per person per event.
        for (to, n) in messages {
            if n > 1 {
                let who = self.name(&to);
                self.violations.push(format!(
                    "[{}] {who} got {n} messages about one event",
                    self.mode.label()
                ));
            }
        }
        out
    }

    /// (recipient id, what they see, the commands its buttons send) for one outbox row.
    fn decode(
        &mut self,
        channel: &str,
        target: &str,
        v: &Value,
    ) -> Option<(String, Seen, Vec<String>)> {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        match channel {
            "sandbox" => {
                let to = target.to_string();
                if v["card"].is_null() {
                    return Some((
                        to,
                        Seen::Message {
                            title: s(&v["title"]),
                            text: s(&v["text"]),
                            buttons: Vec::new(),
                        },
                        Vec::new(),
                    ));
                }
                let c = &v["card"];
                let buttons = card_buttons(channel, v);
                let new = !self
                    .cards
                    .iter()
                    .any(|k| k.person == to && k.id == s(&c["key"]));
                let commands = buttons.iter().map(|b| b.2.clone()).collect();
                Some((
                    to,
                    Seen::Card {
                        title: s(&c["title"]),
                        text: s(&c["markdown"]),
                        status: s(&c["status"]),
                        buttons: buttons.into_iter().map(|b| b.1).collect(),
                        new,
                    },
                    commands,
                ))
            }
            "robot_batch" => {
                let ids = v["userIds"].as_array().expect("userIds");
                assert_eq!(ids.len(), 1, "one recipient per row");
                let to = self.by_staff_id(ids[0].as_str().unwrap_or_default());
                let param: Value =
                    serde_json::from_str(v["msgParam"].as_str().expect("msgParam")).expect("JSON");
                let key = s(&v["msgKey"]);
                let mut buttons = Vec::new();
                let mut commands = Vec::new();
                if key == "sampleActionCard" {
                    buttons.push(s(&param["singleTitle"]));
                    commands.push(dtmd_command(&s(&param["singleURL"])));
                } else if key.starts_with("sampleActionCard") {
                    for n in 1..=5 {
                        if let Some(label) = param[format!("actionTitle{n}")].as_str() {
                            buttons.push(label.to_string());
                            commands.push(dtmd_command(&s(&param[format!("actionURL{n}")])));
                        }
                    }
                } else {
                    assert_eq!(key, "sampleMarkdown", "{v}");
                }
                Some((
                    to,
                    Seen::Message {
                        title: s(&param["title"]),
                        text: s(&param["text"]),
                        buttons,
                    },
                    commands,
                ))
            }
            "session_reply" => {
                // A group reply goes to the sender of this step (the last one who spoke).
                let to = self
                    .lines
                    .iter()
                    .rev()
                    .find(|l| matches!(l.seen, Seen::Said(_) | Seen::Tapped { .. }))
                    .map(|l| l.person.clone())
                    .expect("a sender");
                Some((
                    to,
                    Seen::Message {
                        title: s(&v["markdown"]["title"]),
                        text: s(&v["markdown"]["text"]),
                        buttons: Vec::new(),
                    },
                    Vec::new(),
                ))
            }
            "card_create" | "card_update" => {
                let track = s(&v["outTrackId"]);
                let to = if channel == "card_create" {
                    let space = s(&v["openSpaceId"]);
                    let staff = space
                        .strip_prefix("dtv1.card//IM_ROBOT.")
                        .expect("a 1:1 card");
                    let to = self.by_staff_id(staff);
                    self.tracks.insert(track.clone(), to.clone());
                    to
                } else {
                    self.tracks
                        .get(&track)
                        .expect("an update of a card sent")
                        .clone()
                };
                let p = &v["cardData"]["cardParamMap"];
                let buttons = card_buttons(channel, v);
                let commands = buttons.iter().map(|b| b.2.clone()).collect();
                Some((
                    to,
                    Seen::Card {
                        title: s(&p["title"]),
                        text: s(&p["markdown"]),
                        status: s(&p["status"]),
                        buttons: buttons.into_iter().map(|b| b.1).collect(),
                        new: channel == "card_create",
                    },
                    commands,
                ))
            }
            "group_webhook" => None,
            other => panic!("unexpected channel {other}"),
        }
    }

    fn by_staff_id(&self, staff: &str) -> String {
        self.roster
            .people()
            .iter()
            .find(|p| p.staff_id == staff)
            .map(|p| p.id().to_string())
            .unwrap_or_else(|| panic!("nobody has staff id {staff}"))
    }
}

/// The id a card has for its holder.
fn card_id(channel: &str, target: &str, v: &Value) -> String {
    match channel {
        "sandbox" => v["card"]["key"].as_str().unwrap_or_default().to_string(),
        _ => v["outTrackId"]
            .as_str()
            .map_or_else(|| target.to_string(), str::to_string),
    }
}

/// (action id, label, command) of a card's buttons.
fn card_buttons(channel: &str, v: &Value) -> Vec<(String, String, String)> {
    let list: Value = match channel {
        "sandbox" => v["card"]["buttons"].clone(),
        _ => serde_json::from_str(
            v["cardData"]["cardParamMap"]["buttons"]
                .as_str()
                .unwrap_or("[]"),
        )
        .expect("buttons JSON"),
    };
    list.as_array()
        .map(|b| {
            b.iter()
                .map(|b| {
                    let s = |k: &str| b[k].as_str().unwrap_or_default().to_string();
                    (s("id"), s("label"), s("command"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The text a `dtmd://dingtalkclient/sendMessage?content=…` button sends.
fn dtmd_command(url: &str) -> String {
    let content = url
        .split_once("content=")
        .map(|(_, c)| c)
        .unwrap_or_default();
    percent_encoding::percent_decode_str(content)
        .decode_utf8()
        .expect("UTF-8")
        .to_string()
}

pub fn quote(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                ">".to_string()
            } else {
                format!("> {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
