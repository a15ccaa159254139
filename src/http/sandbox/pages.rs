//! What the sandbox shows: the roster to choose from (`templates/sandbox/pick.html`), one
//! person's chat page (`chat.html`) and the chat itself (`chat_log.html`, sent as JSON and
//! redrawn when it changes). The templates escape every value; this module decides what goes in
//! them: who is listed where, which shortcuts a person's roles call for, and how a chat entry
//! reads.

use askama::Template;
use jiff::Timestamp;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::SandboxError;
use super::log::{Body, Item, SandboxCard};
use super::markdown::{self, Block, Inline, Span};
use crate::calendar::Calendar;
use crate::messages::help::is_for;
use crate::parse::command::{Verb, syntax};
use crate::roster::{Person, Role, Roster, UnitKind};

/// `GET /sandbox`: the roster grouped by unit, with a search box.
#[derive(Template)]
#[template(path = "sandbox/pick.html")]
pub(super) struct PickPage<'a> {
    groups: Vec<Group<'a>>,
    /// Why the page is shown again: an id was asked for that is not in the roster.
    error: Option<String>,
}

struct Group<'a> {
    unit: String,
    people: Vec<PersonRow<'a>>,
}

struct PersonRow<'a> {
    person: &'a Person,
    /// The person's page address.
    href: String,
    /// What the search box matches: name, unit, title and role names.
    search: String,
    /// Their roles, hotline roles first.
    roles: Vec<Role>,
}

impl<'a> PickPage<'a> {
    /// `unknown` is an id that was asked for but is not in the roster.
    pub(super) fn new(roster: &'a Roster, unknown: Option<&str>) -> PickPage<'a> {
        let groups = roster_groups(roster)
            .into_iter()
            .map(|(unit, people)| Group {
                unit,
                people: people.into_iter().map(PersonRow::new).collect(),
            })
            .collect();
        PickPage {
            groups,
            error: unknown.map(|id| SandboxError::UnknownPerson(id.to_string()).to_string()),
        }
    }
}

impl PersonRow<'_> {
    fn new(person: &Person) -> PersonRow<'_> {
        let labels: Vec<&str> = person.roles.iter().map(|r| r.label()).collect();
        let mut roles = person.roles.clone();
        roles.sort_by_key(|r| role_rank(*r));
        PersonRow {
            person,
            href: format!(
                "/sandbox?as={}",
                utf8_percent_encode(person.id(), NON_ALPHANUMERIC)
            ),
            search: format!(
                "{} {} {} {}",
                person.name,
                person.unit,
                person.title,
                labels.join(" ")
            ),
            roles,
        }
    }
}

/// `GET /sandbox?as=<id>`: one person's chat with the robot; the messages arrive by polling.
#[derive(Template)]
#[template(path = "sandbox/chat.html")]
pub(super) struct ChatPage<'a> {
    person: &'a Person,
    /// Their role names, joined.
    roles: String,
    /// Commands their roles call for besides 模板 and 帮助: the onboarding commands for the
    /// hotline head and admins (`启动 名单`, `名单 进度`).
    commands: Vec<&'static str>,
    /// For a unit leader, the unit's people to choose a liaison from: the page sends
    /// `设置联络员 姓名` (the sandbox has no DingTalk `@` to pick someone with).
    liaison_choices: Vec<LiaisonChoice<'a>>,
}

struct LiaisonChoice<'a> {
    name: &'a str,
    is_liaison: bool,
}

impl<'a> ChatPage<'a> {
    pub(super) fn new(person: &'a Person, roster: &'a Roster) -> ChatPage<'a> {
        let labels: Vec<&str> = person.roles.iter().map(|r| r.label()).collect();
        let commands = [Verb::StartOnboarding, Verb::OnboardingProgress]
            .into_iter()
            .filter(|verb| is_for(*verb, &person.roles))
            .map(|verb| syntax(verb).word)
            .collect();
        let liaison_choices = if person.has_role(Role::Leader) {
            roster
                .people_in_unit(&person.unit)
                .filter(|p| !p.departed && !p.has_role(Role::Leader))
                .map(|p| LiaisonChoice {
                    name: &p.name,
                    is_liaison: p.has_role(Role::Liaison),
                })
                .collect()
        } else {
            Vec::new()
        };
        ChatPage {
            person,
            roles: labels.join("、"),
            commands,
            liaison_choices,
        }
    }
}

/// One person's chat, oldest first (the `html` of `GET /sandbox/chat`).
#[derive(Template)]
#[template(path = "sandbox/chat_log.html")]
pub(super) struct ChatLog {
    entries: Vec<ChatEntry>,
}

struct ChatEntry {
    /// `11-02 09:05`: when it was said or first sent.
    when: String,
    body: Entry,
}

enum Entry {
    /// The person's own message, as they wrote it.
    Said(String),
    /// A message from the robot.
    Told(Vec<Block>),
    Card {
        title: String,
        blocks: Vec<Block>,
        status: String,
        buttons: Vec<Button>,
        /// When the content shown last changed, if after it was first sent.
        updated: Option<String>,
    },
}

struct Button {
    label: String,
    command: String,
    /// `1` when the command goes to the input box to be completed, `0` when it is sent at once.
    fill: u8,
}

impl ChatLog {
    pub(super) fn new(items: &[Item], calendar: &Calendar) -> ChatLog {
        let mut order: Vec<&Item> = items.iter().collect();
        order.sort_by_key(|i| (i.at, i.rank));
        let entries = order
            .into_iter()
            .map(|item| ChatEntry {
                when: short_time(item.at, calendar),
                body: match &item.body {
                    Body::Said(text) => Entry::Said(text.clone()),
                    Body::Told(text) => Entry::Told(markdown::blocks(text)),
                    Body::Card { card, updated } => card_entry(card, *updated, calendar),
                },
            })
            .collect();
        ChatLog { entries }
    }
}

fn card_entry(card: &SandboxCard, updated: Option<Timestamp>, calendar: &Calendar) -> Entry {
    Entry::Card {
        title: card.title.clone(),
        blocks: markdown::blocks(&card.markdown),
        status: card.status.clone(),
        buttons: card
            .buttons
            .iter()
            .map(|b| Button {
                label: b.label.clone(),
                command: b.command.clone(),
                fill: u8::from(needs_arguments(&b.command)),
            })
            .collect(),
        updated: updated.map(|t| short_time(t, calendar)),
    }
}

/// Whether a button's command has parts the person must write (`接受 DH… 联系人：姓名 …`):
/// anything after the command word and the ticket number. Such a command goes to the input box;
/// a bare `审核 DH…` is sent at once.
fn needs_arguments(command: &str) -> bool {
    command.split_whitespace().count() > 2
}

/// `11-02 09:05` in the calendar's zone.
fn short_time(t: Timestamp, calendar: &Calendar) -> String {
    calendar
        .time_zone()
        .to_datetime(t)
        .strftime("%m-%d %H:%M")
        .to_string()
}

/// Hotline roles first: they drive every case; then liaisons, who submit and answer; leaders.
fn role_rank(role: Role) -> u8 {
    match role {
        Role::Inspector => 0,
        Role::Supervisor => 1,
        Role::HotlineHead => 2,
        Role::CitySupervisor => 3,
        Role::Liaison => 4,
        Role::Leader => 5,
        Role::GroupLeader => 6,
        Role::Admin => 7,
    }
}

fn person_rank(person: &Person) -> u8 {
    person
        .roles
        .iter()
        .map(|r| role_rank(*r))
        .min()
        .unwrap_or(u8::MAX)
}

/// The roster grouped by unit: hotline units first, then units with a liaison (they can submit
/// and answer at once), then the rest in roster order; within a unit, people by their most
/// active role. Units without people are left out.
fn roster_groups(roster: &Roster) -> Vec<(String, Vec<&Person>)> {
    let mut units: Vec<String> = roster.units().iter().map(|u| u.name.clone()).collect();
    for p in roster.people() {
        if !units.contains(&p.unit) {
            units.push(p.unit.clone());
        }
    }
    let mut groups: Vec<(u8, usize, String, Vec<&Person>)> = units
        .into_iter()
        .enumerate()
        .filter_map(|(order, unit)| {
            let mut people: Vec<&Person> = roster.people_in_unit(&unit).collect();
            if people.is_empty() {
                return None;
            }
            people.sort_by_key(|p| person_rank(p));
            let hotline = roster
                .unit(&unit)
                .is_some_and(|u| u.kind == UnitKind::Hotline)
                || people
                    .iter()
                    .any(|p| person_rank(p) < role_rank(Role::Liaison));
            let rank = if hotline {
                0
            } else if people.iter().any(|p| p.has_role(Role::Liaison)) {
                1
            } else {
                2
            };
            Some((rank, order, unit, people))
        })
        .collect();
    groups.sort_by_key(|(rank, order, _, _)| (*rank, *order));
    groups
        .into_iter()
        .map(|(_, _, unit, people)| (unit, people))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::calendar::WorkingHours;
    use crate::http::sandbox::log::SandboxButton;

    fn calendar() -> Calendar {
        Calendar::load_dir(Path::new("config/calendar"), WorkingHours::default()).expect("calendar")
    }

    #[test]
    fn commands_with_parts_to_write_go_to_the_input_box() {
        assert!(!needs_arguments("审核 DH2026110300017"));
        assert!(needs_arguments(
            "接受 DH2026110300017 联系人：姓名 职务：职务 电话：手机号 协助：现场核查、政策解释"
        ));
        assert!(needs_arguments(
            "联合 DH2026110300017 区住建局：协同方向及重点"
        ));
        assert!(needs_arguments("异议 DH2026110300017 异议理由"));
    }

    #[test]
    fn a_card_escapes_its_buttons_and_marks_which_need_writing() {
        let card = SandboxCard {
            key: "case:1:review".into(),
            title: "联合调处申请 <DH1>".into(),
            markdown: "- x".into(),
            status: "孟艳秋 开始审核".into(),
            buttons: vec![
                SandboxButton {
                    label: "开始审核".into(),
                    command: "审核 DH1".into(),
                },
                SandboxButton {
                    label: "接受\"协办\"".into(),
                    command: "接受 DH1 联系人：姓名".into(),
                },
            ],
        };
        let item = Item {
            at: Timestamp::from_millisecond(1_000).expect("ms"),
            rank: (1, 1),
            body: Body::Card {
                card,
                updated: None,
            },
        };
        let html = ChatLog::new(&[item], &calendar()).render().expect("render");
        assert!(html.contains("联合调处申请 &#60;DH1&#62;"), "{html}");
        assert!(
            html.contains(r#"data-cmd="审核 DH1" data-fill="0">开始审核</button>"#),
            "{html}"
        );
        assert!(
            html.contains(
                r#"data-cmd="接受 DH1 联系人：姓名" data-fill="1">接受&#34;协办&#34;</button>"#
            ),
            "{html}"
        );
    }

    #[test]
    fn the_roster_lists_hotline_staff_first_then_units_with_liaisons() {
        let shipped = Roster::load(Path::new("config/roster.toml")).expect("roster");
        let mut people = shipped.people().to_vec();
        people.push(Person::new(
            "赵联络",
            "区住建局",
            "股长",
            vec![Role::Liaison],
            "zj-liaison",
            "",
        ));
        let roster = Roster::from_parts(shipped.units().to_vec(), people);
        let groups = roster_groups(&roster);
        assert_eq!(groups[0].0, "区12345热线");
        assert_eq!(groups[0].1[0].name, "孟艳秋", "inspectors before the head");
        let zj = groups
            .iter()
            .position(|(u, _)| u == "区住建局")
            .expect("区住建局 listed");
        assert!(
            groups[1..zj].iter().all(|(u, _)| u.contains("热线")),
            "only hotline units before the unit with a liaison: {:?}",
            groups.iter().map(|(u, _)| u).collect::<Vec<_>>()
        );
        assert_eq!(
            groups[zj].1[0].name, "赵联络",
            "the liaison before the leader"
        );
        let listed: usize = groups.iter().map(|(_, p)| p.len()).sum();
        assert_eq!(listed, roster.people().len(), "everyone is listed once");
    }

    #[test]
    fn pages_escape_names_and_encode_ids_in_links() {
        let roster = Roster::from_parts(
            Vec::new(),
            vec![Person::new(
                "<b>某</b>",
                "区\"测试\"局",
                "科员",
                vec![Role::Liaison],
                "",
                "",
            )],
        );
        let html = PickPage::new(&roster, Some("<x>"))
            .render()
            .expect("render");
        assert!(!html.contains("<b>某"), "{html}");
        assert!(html.contains("&#60;b&#62;某&#60;/b&#62;"));
        assert!(html.contains("名单中没有此人（&#60;x&#62;）"));
        assert!(
            html.contains(r#"href="/sandbox?as=local%3A%E5%8C%BA%22"#),
            "the id is percent-encoded: {html}"
        );
        let chat = ChatPage::new(&roster.people()[0], &roster)
            .render()
            .expect("render");
        assert!(chat.contains(r#"data-as="local:区&#34;测试&#34;局:&#60;b&#62;某&#60;/b&#62;""#));
        assert!(!chat.contains("<script>"), "no inline script");
    }

    #[test]
    fn leaders_choose_a_liaison_and_the_head_has_the_onboarding_shortcuts() {
        let unit = "区\"测试\"局";
        let roster = Roster::from_parts(
            vec![],
            vec![
                Person::new("领导", unit, "", vec![Role::Leader], "", ""),
                Person::new("<b>某</b>", unit, "", vec![], "", ""),
                Person::new("联络", unit, "", vec![Role::Liaison], "", ""),
                Person::new("主任", "区12345热线", "", vec![Role::HotlineHead], "", ""),
            ],
        );
        let leader = ChatPage::new(&roster.people()[0], &roster)
            .render()
            .expect("render");
        assert!(leader.contains(r#"id="liaison-chooser""#), "{leader}");
        assert!(
            leader.contains(
                r#"<option value="&#60;b&#62;某&#60;/b&#62;">&#60;b&#62;某&#60;/b&#62;</option>"#
            ),
            "names are escaped: {leader}"
        );
        assert!(leader.contains("联络（现联络员）"), "{leader}");
        assert!(
            !leader.contains(r#"<option value="领导""#),
            "not the leader themself"
        );
        assert!(!leader.contains("启动 名单"), "{leader}");
        let head = ChatPage::new(&roster.people()[3], &roster)
            .render()
            .expect("render");
        assert!(head.contains(r#"data-send="启动 名单""#), "{head}");
        assert!(head.contains(r#"data-send="名单 进度""#), "{head}");
        assert!(!head.contains("liaison-chooser"), "{head}");
    }

    #[test]
    fn the_chat_shows_what_people_wrote_as_text_and_cards_in_place() {
        let at = |ms: i64| Timestamp::from_millisecond(ms).expect("ms");
        let said = Item {
            at: at(1_700_000_050_000),
            rank: (0, 2),
            body: Body::Said("<b>粗</b>\n  第二行 & \"引号\" 'x'".into()),
        };
        let told = Item {
            at: at(1_700_000_000_000),
            rank: (1, 1),
            body: Body::Told("#### 已登记\n查看：`查询 DH1`".into()),
        };
        let card = Item {
            at: at(1_700_000_100_000),
            rank: (1, 3),
            body: Body::Card {
                card: SandboxCard {
                    key: "c".into(),
                    title: "卡片".into(),
                    markdown: String::new(),
                    status: "已审核\n第二行".into(),
                    buttons: Vec::new(),
                },
                updated: Some(at(1_700_000_200_000)),
            },
        };
        let html = ChatLog::new(&[said, told, card], &calendar())
            .render()
            .expect("render");
        assert_eq!(
            html,
            concat!(
                r#"<div class="msg bot"><div class="meta">联合调处助手 · 11-15 06:13</div><div class="bubble md"><div class="h">已登记</div><div class="t">查看：<code class="cmd" data-cmd="查询 DH1">查询 DH1</code></div></div></div>"#,
                "<div class=\"msg me\"><div class=\"meta\">我 · 11-15 06:14</div><div class=\"bubble\">&#60;b&#62;粗&#60;/b&#62;\n  第二行 &#38; &#34;引号&#34; &#39;x&#39;</div></div>",
                r#"<div class="msg bot"><div class="meta">联合调处助手 · 11-15 06:15 · 卡片 · 已更新 11-15 06:16</div><div class="card"><div class="card-title">卡片</div><div class="card-body md"></div><div class="card-status">已审核"#,
                "\n第二行</div><div class=\"card-buttons\"></div></div></div>",
            )
        );
        let empty = ChatLog::new(&[], &calendar()).render().expect("render");
        assert!(
            empty.starts_with(r#"<p class="empty">还没有消息"#),
            "{empty}"
        );
    }
}
