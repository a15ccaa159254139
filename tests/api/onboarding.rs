//! Integration tests: onboarding the liaisons in chat — the hotline head's `启动 名单` asks every
//! unit leader without a liaison to name one (a chooser of the unit's roster people), `名单 进度`
//! shows who is done and who waits, waiting leaders are reminded on working days until they
//! answer with `设置联络员 姓名`, and the head is told when the last unit has named one — and the
//! address book's leave events over the fake Stream gateway: a departed liaison is flagged, the
//! leader asked for a replacement, and an open case's next reminder goes to the leader.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tiaochu::engine::Engine;
use tiaochu::onboarding::{REMINDER_TIMER_KEY, next_reminder_at};
use tiaochu::roster::{Person, Role, Roster};
use tiaochu::settings::DingtalkMode;
use tiaochu::store::{Store, TimerState};

use crate::dingtalk_case::{APPLICATION, Case, INSPECTOR, RS, T, Via, ZJ, to};
use crate::fake_stream::event_frame;
use crate::support::{World, suggestions_not_for, world};

const ROSTER: &str = r#"
[[unit]]
name = "区12345热线"
kind = "hotline"

[[unit]]
name = "区住建局"
kind = "department"
aliases = ["住建局"]

[[unit]]
name = "区人社局"
kind = "department"

[[unit]]
name = "区教育局"
kind = "department"

[[unit]]
name = "西街街道"
kind = "street"

[[person]]
name = "热线主任"
unit = "区12345热线"
roles = ["hotline_head"]
staff_id = "head-1"

[[person]]
name = "孟质检"
unit = "区12345热线"
roles = ["inspector"]
staff_id = "insp-1"

[[person]]
name = "保国钰"
unit = "区住建局"
title = "副局长"
roles = ["leader"]
staff_id = "zj-leader"

[[person]]
name = "张三"
unit = "区住建局"
title = "股长"
staff_id = "zj-zhang"

[[person]]
name = "李 四"
unit = "区住建局"
title = "科员"

[[person]]
name = "任燕"
unit = "区人社局"
roles = ["leader"]
staff_id = "rs-leader"

[[person]]
name = "王联络"
unit = "区人社局"
roles = ["liaison"]
staff_id = "rs-liaison"

[[person]]
name = "教育领导"
unit = "区教育局"
roles = ["leader"]
staff_id = "jy-leader"

[[person]]
name = "周五"
unit = "区教育局"
title = "干事"
staff_id = "jy-zhou"
"#;

const HEAD: &str = "head-1";
const ZJ_LEADER: &str = "zj-leader";
const JY_LEADER: &str = "jy-leader";

/// One message as its recipient sees it: title and text, and the card's buttons.
#[derive(Debug, Clone)]
struct Seen {
    text: String,
    buttons: Vec<(String, String)>,
}

/// The service in-process with a small roster and the given dispatch mode; messages enter the
/// inbox as DingTalk (or the sandbox page) stores them.
struct Chat(World);

/// `c.engine`, `c.store`, `c.clock`: the world's.
impl std::ops::Deref for Chat {
    type Target = World;
    fn deref(&self) -> &World {
        &self.0
    }
}

impl Chat {
    fn new(mode: DingtalkMode, at: &str) -> Chat {
        Chat(
            world()
                .roster_toml(ROSTER)
                .mode(mode)
                .settings(|s| {
                    s.dingtalk.robot_code = "ding-robot".into();
                    s.dingtalk.card_template_id = String::new();
                })
                .start(at)
                .build(),
        )
    }

    fn now(&self) -> Timestamp {
        self.0.now()
    }

    /// `from` sends `text` 1:1; returns what everyone received because of it.
    async fn say(&mut self, from: &str, text: &str) -> BTreeMap<String, Vec<Seen>> {
        self.0.advance(SignedDuration::from_secs(30));
        self.0.say(from, text).await;
        self.received()
    }

    /// The messages queued since the last look, by recipient.
    fn received(&mut self) -> BTreeMap<String, Vec<Seen>> {
        let mut out: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
        for row in self.0.new_outbox() {
            let v: Value = serde_json::from_slice(&row.payload).expect("json");
            out.entry(row.target).or_default().push(seen_of(&v));
        }
        out
    }

    /// Runs the scheduler once at `at`.
    async fn fire_at(&mut self, at: Timestamp) -> BTreeMap<String, Vec<Seen>> {
        self.0.clock.set(at);
        self.0.fire_due().await;
        self.received()
    }

    fn reminder_due(&self) -> Option<Timestamp> {
        self.0
            .store
            .read_blocking(|r| r.timer_by_key(REMINDER_TIMER_KEY))
            .expect("timer")
            .filter(|t| t.state == TimerState::Pending)
            .map(|t| t.due_at)
    }
}

/// A sandbox row or a DingTalk batchSend body, read as what the recipient sees.
fn seen_of(v: &Value) -> Seen {
    if let Some(param) = v["msgParam"].as_str() {
        let p: Value = serde_json::from_str(param).expect("msgParam");
        let mut buttons = Vec::new();
        for n in 1..=5 {
            if let (Some(l), Some(u)) = (
                p[format!("actionTitle{n}")].as_str(),
                p[format!("actionURL{n}")].as_str(),
            ) {
                buttons.push((l.to_string(), u.to_string()));
            }
        }
        if let (Some(l), Some(u)) = (p["singleTitle"].as_str(), p["singleURL"].as_str()) {
            buttons.push((l.to_string(), u.to_string()));
        }
        return Seen {
            text: format!(
                "{}\n{}",
                p["title"].as_str().unwrap_or(""),
                p["text"].as_str().unwrap_or("")
            ),
            buttons,
        };
    }
    let buttons = v["card"]["buttons"]
        .as_array()
        .map(|bs| {
            bs.iter()
                .map(|b| {
                    (
                        b["label"].as_str().unwrap_or("").to_string(),
                        b["command"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Seen {
        text: format!(
            "{}\n{}",
            v["title"].as_str().unwrap_or(""),
            v["text"].as_str().unwrap_or("")
        ),
        buttons,
    }
}

fn text(got: &BTreeMap<String, Vec<Seen>>, to: &str) -> String {
    got.get(to)
        .unwrap_or_else(|| panic!("nothing for {to}: {got:#?}"))
        .iter()
        .map(|s| s.text.clone())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Every message suggests only commands its recipient may send (help's `is_for`).
fn suggestions_are_allowed(engine: &Engine, got: &BTreeMap<String, Vec<Seen>>) {
    let roster = engine.roster();
    for (to, messages) in got {
        let roles = roster
            .person(to)
            .map(|p| p.roles.clone())
            .unwrap_or_default();
        for m in messages {
            let buttons: Vec<String> = m.buttons.iter().map(|(_, c)| c.clone()).collect();
            let wrong = suggestions_not_for(&m.text, &buttons, &roles);
            assert!(
                wrong.is_empty(),
                "{to} is told to send {wrong:?}: {}",
                m.text
            );
        }
    }
}

#[tokio::test]
async fn the_head_starts_onboarding_leaders_choose_and_the_head_hears_when_all_are_done() {
    // Friday 10:00: the next reminder is Monday's first working hour.
    let mut c = Chat::new(DingtalkMode::Sandbox, "2026-11-06T10:00:00+08:00");

    // Only the hotline head (or an admin) starts it; progress is for the hotline and admins.
    let got = c.say("rs-liaison", "启动 名单").await;
    assert!(
        text(&got, "rs-liaison").contains("只有区12345热线负责人"),
        "{got:#?}"
    );
    let got = c.say("rs-liaison", "名单 进度").await;
    assert!(
        text(&got, "rs-liaison").contains("仅供区12345热线"),
        "{got:#?}"
    );
    let got = c.say("insp-1", "名单进度").await;
    assert!(text(&got, "insp-1").contains("尚未启动"), "{got:#?}");
    let got = c.say(HEAD, "帮助").await;
    let short = text(&got, HEAD);
    assert!(
        short.contains("启动 名单") || short.contains("启动名单"),
        "{short}"
    );
    let got = c.say(HEAD, "帮助 全部").await;
    let help = text(&got, HEAD);
    let mine = help.find("您常用的命令").expect("own commands");
    let others = help.find("其他命令").expect("other commands");
    let start = help.find("· 启动 名单：").expect("listed");
    assert!(mine < start && start < others, "{help}");

    let got = c.say(HEAD, "启动 名单").await;
    let answer = text(&got, HEAD);
    assert!(
        answer.contains("已请 2 个单位") && answer.contains("区住建局、区教育局"),
        "{answer}"
    );
    assert!(answer.contains("1 个单位已有联络员"), "{answer}");
    assert!(answer.contains("西街街道"), "no leader to ask: {answer}");
    assert!(
        !got.contains_key("rs-leader"),
        "区人社局 has a liaison: {got:#?}"
    );
    let ask = &got[ZJ_LEADER][0];
    assert!(ask.text.contains("请指定本单位联络员"), "{}", ask.text);
    assert!(
        ask.text.contains("张三") && ask.text.contains("李四"),
        "{}",
        ask.text
    );
    // The sandbox reaches everyone: a button per person of the unit, the leader not among them.
    let commands: Vec<&str> = ask.buttons.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(commands, ["设置联络员 张三", "设置联络员 李四"], "{ask:#?}");
    assert!(got.contains_key(JY_LEADER), "{got:#?}");
    suggestions_are_allowed(&c.engine, &got);

    // Asking again does not ask twice.
    let got = c.say(HEAD, "启动名单").await;
    assert!(text(&got, HEAD).contains("2 个单位此前已通知"), "{got:#?}");
    assert!(!got.contains_key(ZJ_LEADER), "{got:#?}");

    let got = c.say(HEAD, "名单 进度").await;
    let progress = text(&got, HEAD);
    assert!(
        progress.contains("已指定 0 个单位，等待 2 个单位"),
        "{progress}"
    );
    assert!(
        progress.contains("区住建局：分管领导 保国钰；已提醒 0 次"),
        "{progress}"
    );

    // The reminder waits for Monday's working hours, not the weekend.
    let due = c.reminder_due().expect("reminder armed");
    let engine = c.engine.clone();
    let calendar = engine.calendar();
    assert_eq!(calendar.local_date(due).to_string(), "2026-11-09");
    assert!(calendar.is_working_time(due), "{due}");
    let got = c.fire_at(due - SignedDuration::from_mins(1)).await;
    assert!(got.is_empty(), "nothing before it is due: {got:#?}");
    let got = c.fire_at(due).await;
    assert!(text(&got, ZJ_LEADER).contains("第 1 次提醒"), "{got:#?}");
    assert!(text(&got, JY_LEADER).contains("第 1 次提醒"), "{got:#?}");
    suggestions_are_allowed(&c.engine, &got);
    let next = c.reminder_due().expect("armed again");
    assert_eq!(calendar.local_date(next).to_string(), "2026-11-10");

    // 区住建局's leader taps 张三.
    let got = c.say(ZJ_LEADER, "设置联络员 张三").await;
    assert!(
        text(&got, "zj-zhang").contains("张三（区住建局）设为联络员"),
        "{got:#?}"
    );
    assert!(
        c.engine
            .roster()
            .person("zj-zhang")
            .is_some_and(|p| p.has_role(Role::Liaison))
    );
    let got = c.say(HEAD, "名单 进度").await;
    let progress = text(&got, HEAD);
    assert!(
        progress.contains("已指定 1 个单位，等待 1 个单位"),
        "{progress}"
    );
    assert!(progress.contains("区住建局：联络员 张三"), "{progress}");

    // Tuesday's reminder goes to the one still waiting.
    let got = c.fire_at(next).await;
    assert!(!got.contains_key(ZJ_LEADER), "{got:#?}");
    assert!(text(&got, JY_LEADER).contains("第 2 次提醒"), "{got:#?}");

    // A name that is nobody of the unit is refused; the last unit answers; the head is told.
    let got = c.say(JY_LEADER, "设置联络员 张三").await;
    assert!(
        text(&got, JY_LEADER).contains("名单中没有名为“张三”的人员"),
        "{got:#?}"
    );
    let got = c.say(JY_LEADER, "设置联络员 区教育局 周 五").await;
    assert!(
        text(&got, "jy-zhou").contains("周五（区教育局）设为联络员"),
        "{got:#?}"
    );
    assert!(
        text(&got, HEAD).contains("联络员已全部指定"),
        "the head hears the last one: {got:#?}"
    );
    assert_eq!(c.reminder_due(), None, "reminders stop");
    let got = c.say(HEAD, "名单 进度").await;
    assert!(
        text(&got, HEAD).contains("已指定 2 个单位，等待 0 个单位"),
        "{got:#?}"
    );
}

#[tokio::test]
async fn in_dingtalk_the_chooser_is_an_action_card_of_people_with_an_account() {
    let mut c = Chat::new(DingtalkMode::Http, "2026-11-06T10:00:00+08:00");
    let got = c.say(HEAD, "启动 名单").await;
    let ask = &got[ZJ_LEADER][0];
    // 李四 has no DingTalk account: listed, but not offered, since a liaison without one
    // receives nothing.
    assert!(ask.text.contains("李四（未绑定钉钉账号）"), "{}", ask.text);
    assert_eq!(ask.buttons.len(), 1, "{ask:#?}");
    let (label, url) = &ask.buttons[0];
    assert_eq!(label, "设为联络员：张三");
    assert!(
        url.starts_with("dtmd://dingtalkclient/sendMessage?content=")
            && url.contains("%E5%BC%A0%E4%B8%89"),
        "{url}"
    );
    assert!(ask.text.contains("设置联络员 @某人"), "{}", ask.text);
    suggestions_are_allowed(&c.engine, &got);

    let got = c.say(ZJ_LEADER, "设置联络员 李四").await;
    assert!(
        text(&got, ZJ_LEADER).contains("李四尚未绑定钉钉账号"),
        "{got:#?}"
    );
    // Only the unit's own leader names its liaison.
    let got = c.say(JY_LEADER, "设置联络员 区住建局 张三").await;
    assert!(
        text(&got, JY_LEADER).contains("只能调整本单位的名单"),
        "{got:#?}"
    );
    let got = c.say(ZJ_LEADER, "设置联络员 张三").await;
    assert!(text(&got, "zj-zhang").contains("设为联络员"), "{got:#?}");
}

#[test]
fn a_name_is_one_person_of_the_leaders_own_unit() {
    let roster = world().roster_toml(ROSTER).roster();
    let leader = roster.person(ZJ_LEADER).expect("leader").clone();
    let (unit, changes) = roster
        .plan_liaison_by_name(&leader, None, "李 四", true)
        .expect("the sandbox may choose anyone");
    assert_eq!(unit, "区住建局");
    assert_eq!(changes[0].after.name, "李四");
    assert!(changes[0].after.has_role(Role::Liaison));
    let liaison = roster.person("rs-liaison").expect("liaison").clone();
    let refused = roster
        .plan_liaison_by_name(&liaison, None, "王联络", true)
        .expect_err("a liaison names nobody");
    assert!(refused.contains("只有本单位分管领导"), "{refused}");
    let mut twins = roster.people().to_vec();
    twins.push(Person::new(
        "张三",
        "区住建局",
        "",
        vec![],
        "zj-zhang-2",
        "",
    ));
    let twins = Roster::from_parts(roster.units().to_vec(), twins);
    let refused = twins
        .plan_liaison_by_name(&leader, None, "张三", true)
        .expect_err("two of that name");
    assert!(refused.contains("多位名为“张三”"), "{refused}");
}

#[test]
fn the_reminder_is_the_next_working_days_first_hour() {
    let c = Chat::new(DingtalkMode::Sandbox, "2026-09-30T16:00:00+08:00");
    // 30 September, then the National Day holiday (1–7 October in the shipped 2026 data): the
    // next working day is 8 October.
    let due = next_reminder_at(&c.engine, c.now());
    let calendar = c.engine.calendar();
    assert_eq!(calendar.local_date(due).to_string(), "2026-10-08");
    assert!(calendar.is_working_time(due));
    assert!(!calendar.is_working_time(due - SignedDuration::from_mins(1)));
}

/// A leave event for 区住建局's liaison, pushed by the fake Stream gateway as DingTalk sends it,
/// while a coordination request to 区住建局 is open: the liaison is flagged and loses the role
/// (history by 通讯录), the leader is asked to name a replacement, and the request's next
/// reminder goes to the leader instead of the departed liaison.
#[tokio::test]
async fn a_leave_event_over_stream_reroutes_the_open_cases_next_reminder() {
    const ZJ_LEADER: &str = "u-zj-leader";
    let mut c = Case::start(true, Via::Stream).await;
    c.say(RS, APPLICATION).await;
    c.say(INSPECTOR, &format!("审核 {T}")).await;
    let d = c
        .say(
            INSPECTOR,
            &format!("联合 {T} 区住建局：核查项目审批及工程款拨付"),
        )
        .await;
    assert!(
        to(&d, ZJ).contains("核查项目审批"),
        "card to the liaison: {d:#?}"
    );

    let gateway = c.gateway.as_ref().expect("stream mode");
    gateway.send(
        0,
        event_frame("ev-frame-1", "user_leave_org", "ev-1", &[ZJ]),
    );
    let acks = gateway.acked("ev-frame-1", 1).await;
    let data = acks[0].data();
    assert_eq!(data["status"], "SUCCESS", "{:?}", acks[0]);
    // The same event delivered again is one inbox row.
    gateway.send(
        0,
        event_frame("ev-frame-2", "user_leave_org", "ev-1", &[ZJ]),
    );
    gateway.acked("ev-frame-2", 1).await;
    // Another organisation event is acknowledged and ignored.
    gateway.send(
        0,
        event_frame("ev-frame-3", "user_add_org", "ev-2", &["u-new"]),
    );
    gateway.acked("ev-frame-3", 1).await;
    let d = c.settle().await;
    let asked = to(&d, ZJ_LEADER);
    assert!(
        asked.contains("联络员已离职") && asked.contains("赵联络"),
        "the leader is asked for a replacement: {d:#?}"
    );
    assert!(to(&d, ZJ).is_empty(), "nothing to the departed: {d:#?}");

    let rows = c.app.inbox().await;
    let events: Vec<_> = rows.iter().filter(|r| r.source == "event").collect();
    assert_eq!(events.len(), 1, "one stored leave event: {rows:#?}");
    let history = c
        .app
        .store
        .read(|r| r.roster_changes())
        .await
        .expect("history");
    let last = history.last().expect("a change");
    assert_eq!(
        (
            last.action.as_str(),
            last.actor.as_str(),
            last.name.as_str()
        ),
        ("left_org", "通讯录", "赵联络")
    );
    let overrides = c
        .app
        .store
        .read(|r| r.roster_overrides())
        .await
        .expect("overrides");
    let flagged = overrides
        .iter()
        .find(|o| o.name == "赵联络")
        .expect("stored");
    assert!(flagged.departed_at.is_some() && flagged.roles_json == "[]");

    // The next reminder of 区住建局's answer: to the leader, not the departed liaison.
    let timers = c
        .app
        .store
        .read(|r| {
            let case = r.case_by_ticket(&crate::support::ticket_no(T))?;
            r.timers_for_case(case[0].id)
        })
        .await
        .expect("timers");
    let next = timers
        .iter()
        .filter(|t| t.state == TimerState::Pending && t.key.contains("区住建局"))
        .map(|t| t.due_at)
        .min()
        .expect("a pending reminder for 区住建局");
    c.app.clock.set(next);
    c.fake.set_now(next);
    c.app.clock_moved.send_modify(|n| *n += 1);
    let mut reminded = String::new();
    for _ in 0..100 {
        let d = c.settle().await;
        reminded.push_str(&to(&d, ZJ_LEADER));
        assert!(to(&d, ZJ).is_empty(), "nothing to the departed: {d:#?}");
        if reminded.contains(T) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        reminded.contains(T),
        "the reminder reached the leader: {reminded}"
    );
    c.app.shutdown.trigger();
}

/// A department change over Stream (`user_modify_org` says only who changed): the service looks
/// the watched member up in the address book. 区住建局's liaison now sits in 区教育局, so the
/// leader is asked for a replacement and the history says 调离; 区人社局's liaison, still in
/// 区人社局/办公室, changes nothing.
#[tokio::test]
async fn a_department_change_over_stream_moves_a_liaison_out_of_the_unit() {
    const ZJ_LEADER: &str = "u-zj-leader";
    let mut c = Case::start(false, Via::Stream).await;
    c.fake.add_department(10, "区教育局", 1);
    c.fake.add_department(20, "区人社局", 1);
    c.fake.add_department(21, "办公室", 20);
    c.fake.add_member(ZJ, "赵联络", "股长", &[10]);
    c.fake.add_member(RS, "王联络", "科员", &[21]);

    let gateway = c.gateway.as_ref().expect("stream mode");
    gateway.send(
        0,
        event_frame(
            "mod-frame-1",
            "user_modify_org",
            "mod-1",
            &[RS, ZJ, "u-stranger"],
        ),
    );
    assert_eq!(
        gateway.acked("mod-frame-1", 1).await[0].data()["status"],
        "SUCCESS"
    );
    let d = c.settle().await;
    let asked = to(&d, ZJ_LEADER);
    assert!(
        asked.contains("联络员已调离") && asked.contains("区教育局"),
        "the leader is asked for a replacement: {d:#?}"
    );
    assert!(to(&d, RS).is_empty(), "区人社局's liaison stays: {d:#?}");
    let roster_changes = c
        .app
        .store
        .read(|r| r.roster_changes())
        .await
        .expect("history");
    let moved: Vec<(&str, &str, &str)> = roster_changes
        .iter()
        .map(|h| (h.action.as_str(), h.actor.as_str(), h.name.as_str()))
        .collect();
    assert_eq!(moved, [("left_unit", "通讯录", "赵联络")]);
    let overrides = c
        .app
        .store
        .read(|r| r.roster_overrides())
        .await
        .expect("overrides");
    assert!(
        overrides
            .iter()
            .all(|o| o.name != "赵联络" || o.departed_at.is_none()),
        "moved, not departed: {overrides:#?}"
    );
    c.app.shutdown.trigger();
}

/// `tiaochu onboard` does what `启动 名单` does, from the server's shell: the leaders' messages
/// wait in the outbox for the running service, and `--status` prints `名单 进度`.
#[test]
fn the_onboard_command_starts_and_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let roster = dir.path().join("roster.toml");
    std::fs::write(&roster, ROSTER).expect("roster");
    let db = dir.path().join("cli.db");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[roster]\npath = {:?}\n[store]\npath = {:?}\n",
            roster.display().to_string(),
            db.display().to_string()
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8");
    let run = |args: &[&str]| {
        let mut all = vec!["--config", config];
        all.extend_from_slice(args);
        let out = crate::cli::tiaochu(&all);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let started = run(&["onboard"]);
    assert!(
        started.contains("已请 2 个单位的分管领导指定联络员"),
        "{started}"
    );
    assert!(
        started.contains("名单 进度"),
        "an admin may read the progress: {started}"
    );
    let store = Store::open(&db).expect("store");
    let queued = store
        .read_blocking(|r| r.list_outbox(None, 100))
        .expect("outbox");
    let to: Vec<&str> = queued.iter().map(|r| r.target.as_str()).collect();
    assert!(to.contains(&ZJ_LEADER) && to.contains(&JY_LEADER), "{to:?}");
    let pending = store
        .read_blocking(|r| r.timer_by_key(REMINDER_TIMER_KEY))
        .expect("timer");
    assert!(pending.is_some_and(|t| t.state == TimerState::Pending));
    drop(store);
    let status = run(&["onboard", "--status"]);
    assert!(
        status.contains("已指定 0 个单位，等待 2 个单位"),
        "{status}"
    );
    assert!(
        status.contains("等待中（2）"),
        "markdown is plain text: {status}"
    );
}
