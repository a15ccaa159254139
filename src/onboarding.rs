//! Onboarding the liaisons (SPEC.md → People; 二、组织领导: every member unit names a liaison):
//! `启动 名单` (or `tiaochu onboard`) asks every unit leader whose unit has no liaison to name
//! one, with the unit's roster people to choose from; the leaders are reminded on each working
//! day until their unit has one, and the hotline head is told when the last unit answered.
//! `名单 进度` shows the units done and waiting. The address book's departures land here too: a
//! liaison who left the organisation (or moved to another unit) puts their unit back on the
//! waiting list, a leader who left is reported to the hotline head.
//!
//! State is one row per asked unit (`onboarding_units`) plus ONE system timer
//! ([`REMINDER_TIMER_KEY`]) that the scheduler fires like every other clock; each step runs in
//! the caller's transaction, so a reminder and its bookkeeping commit together.

use jiff::{Timestamp, ToSpan};

use crate::engine::{Engine, EngineError, enqueue};
use crate::messages::card::{CardButton, CardContent};
use crate::messages::escape::md_text;
use crate::messages::help::is_for;
use crate::messages::notify::Rendered;
use crate::parse::command::Verb;
use crate::roster::{Person, PersonChange, Role, Roster, UnitKind};
use crate::settings::DingtalkMode;
use crate::store::{NewTimer, Tx};

/// The one timer that reminds every waiting unit; set again after each firing while any waits.
pub const REMINDER_TIMER_KEY: &str = "system/onboarding/remind";

/// Who the roster history names for a change the address book reported.
pub const ADDRESS_BOOK_ACTOR: &str = "通讯录";

/// The history action of a person who left the organisation.
pub const LEFT_ORG: &str = "left_org";

/// What 启动 名单 did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Started {
    /// Units whose leaders were asked now.
    pub asked: Vec<String>,
    /// Units asked before and still waiting (not asked twice).
    pub waiting: Vec<String>,
    /// Units that already have a liaison.
    pub done: usize,
    /// Units without liaison and without a leader to ask.
    pub no_leader: Vec<String>,
}

impl Started {
    /// The answer the starter reads; `roles` are theirs, so only commands they may send are
    /// suggested.
    pub fn describe(&self, roles: &[Role]) -> String {
        let mut out = format!(
            "已请 {} 个单位的分管领导指定联络员{}。",
            self.asked.len(),
            list_suffix(&self.asked)
        );
        if !self.waiting.is_empty() {
            out.push_str(&format!(
                "\n{} 个单位此前已通知、仍在等待，不重复发送。",
                self.waiting.len()
            ));
        }
        out.push_str(&format!("\n{} 个单位已有联络员。", self.done));
        if !self.no_leader.is_empty() {
            out.push_str(&format!(
                "\n{} 个单位没有分管领导、无法通知：{}。请管理员在名单中补充分管领导。",
                self.no_leader.len(),
                self.no_leader.join("、")
            ));
        }
        if !self.asked.is_empty() || !self.waiting.is_empty() {
            out.push_str("\n\n尚未指定的单位，每个工作日上班时提醒一次，直至指定；全部指定后通知热线负责人。");
        }
        if is_for(Verb::OnboardingProgress, roles) {
            out.push_str("\n发送“名单 进度”查看各单位进度。");
        }
        out
    }
}

fn list_suffix(units: &[String]) -> String {
    if units.is_empty() {
        String::new()
    } else {
        format!("：{}", units.join("、"))
    }
}

/// The member units the mechanism asks: every unit but the hotline's own.
fn member_units(roster: &Roster) -> impl Iterator<Item = &str> {
    roster
        .units()
        .iter()
        .filter(|u| u.kind != UnitKind::Hotline)
        .map(|u| u.name.as_str())
}

fn has_liaison(roster: &Roster, unit: &str) -> bool {
    roster
        .people_in_unit_with_role(unit, Role::Liaison)
        .any(|p| !p.departed)
}

fn leaders<'r>(roster: &'r Roster, unit: &str) -> Vec<&'r Person> {
    roster
        .people_in_unit_with_role(unit, Role::Leader)
        .filter(|p| !p.departed)
        .collect()
}

/// 启动 名单 by `actor` (a roster id, or the CLI's name): every member unit without a liaison
/// that is not already waiting is asked now; the daily reminder is armed. `key` makes the
/// outbound rows of this start unique (the inbox row, the CLI run).
pub fn start_in_tx(
    engine: &Engine,
    tx: &Tx<'_>,
    actor: &str,
    key: &str,
    now: Timestamp,
) -> Result<Started, EngineError> {
    let roster = engine.roster();
    let mut started = Started::default();
    for unit in member_units(&roster) {
        if has_liaison(&roster, unit) {
            started.done += 1;
            continue;
        }
        if tx
            .onboarding_unit(unit)?
            .is_some_and(|r| r.done_at.is_none())
        {
            started.waiting.push(unit.to_string());
            continue;
        }
        if leaders(&roster, unit).is_empty() {
            started.no_leader.push(unit.to_string());
            continue;
        }
        tx.ask_onboarding(unit, actor, now)?;
        ask_leaders(
            engine,
            tx,
            &roster,
            unit,
            &Ask::Start,
            &format!("{key}/{unit}"),
            now,
        )?;
        started.asked.push(unit.to_string());
    }
    if !started.asked.is_empty() || !started.waiting.is_empty() {
        arm_reminder(engine, tx, now)?;
    }
    Ok(started)
}

/// Why a leader is asked.
enum Ask<'a> {
    Start,
    Reminder {
        count: i64,
    },
    /// The unit's liaison `name` left (`what`: 已离职, 已调离本单位…).
    Departed {
        name: &'a str,
        what: String,
    },
}

/// The chooser a unit's leaders get: the unit's roster people as buttons that send
/// `设置联络员 姓名` (in DingTalk only people with a DingTalk account, since a liaison without one
/// receives nothing), and the `@` form for anyone else.
fn chooser(engine: &Engine, roster: &Roster, unit: &str, ask: &Ask<'_>) -> CardContent {
    let sandbox = engine.dispatch().mode() == DingtalkMode::Sandbox;
    let (title, opening) = match ask {
        Ask::Start => (
            "请指定本单位联络员".to_string(),
            format!(
                "区12345热线正在确认疑难工单联合调处工作名单。{}尚无联络员，请您指定一位：此后本单位的协办请求、办理提醒都发给联络员。",
                md_text(unit)
            ),
        ),
        Ask::Reminder { count } => (
            "提醒：请指定本单位联络员".to_string(),
            format!(
                "{}仍没有联络员（第 {count} 次提醒）。请您指定一位，此后本单位的协办请求、办理提醒都发给联络员。",
                md_text(unit)
            ),
        ),
        Ask::Departed { name, what } => (
            if what.starts_with("已离职") {
                "联络员已离职，请指定接替人员".to_string()
            } else {
                "联络员已调离，请指定接替人员".to_string()
            },
            format!(
                "钉钉通讯录显示，{}的联络员{}{}，本单位现无联络员；在您指定接替人员之前，本单位的协办请求和提醒发给您。",
                md_text(unit),
                md_text(name),
                md_text(what)
            ),
        ),
    };
    let people: Vec<&Person> = roster
        .people_in_unit(unit)
        .filter(|p| !p.departed && !p.has_role(Role::Leader))
        .collect();
    let mut lines = vec![opening, String::new()];
    let mut buttons = Vec::new();
    if people.is_empty() {
        lines.push("本单位名单中暂无其他人员。".to_string());
    } else {
        lines.push("本单位名单中的人员：".to_string());
        for p in &people {
            let selectable = sandbox || p.reachable();
            let note = match (p.title.is_empty(), selectable) {
                (_, false) => "（未绑定钉钉账号）".to_string(),
                (true, true) => String::new(),
                (false, true) => format!("（{}）", md_text(&p.title)),
            };
            lines.push(format!("- {}{note}", md_text(&p.name)));
            if selectable {
                buttons.push(CardButton {
                    id: "set_liaison".into(),
                    label: format!("设为联络员：{}", p.name),
                    command: format!("设置联络员 {}", p.name),
                });
            }
        }
    }
    lines.push(String::new());
    if sandbox {
        lines.push(
            "点下方按钮选择，或发送“设置联络员 姓名”（姓名须是本单位名单中的人员）。".to_string(),
        );
    } else {
        lines.push(format!(
            "点下方按钮选择（最多显示 {} 位），或发送“设置联络员 @某人”（输入 @ 后从列表选择；新同事也可以这样设置）。",
            crate::dingtalk::payload::MAX_ACTION_CARD_BUTTONS
        ));
    }
    CardContent {
        title,
        markdown: lines.join("\n"),
        status: String::new(),
        buttons,
        input_defaults: Default::default(),
    }
}

/// Sends `ask` to each leader of `unit`; `key` makes the rows unique.
fn ask_leaders(
    engine: &Engine,
    tx: &Tx<'_>,
    roster: &Roster,
    unit: &str,
    ask: &Ask<'_>,
    key: &str,
    now: Timestamp,
) -> Result<usize, EngineError> {
    let content = chooser(engine, roster, unit, ask);
    let leaders = leaders(roster, unit);
    for (i, leader) in leaders.iter().enumerate() {
        let card_key = format!("onboarding/{unit}");
        let out = engine.dispatch().choice(&card_key, leader, &content);
        enqueue(tx, &format!("onboarding:{key}/{i}"), &out, now)?;
    }
    Ok(leaders.len())
}

/// The next reminder: the start of the next working day's working time after `now`.
pub fn next_reminder_at(engine: &Engine, now: Timestamp) -> Timestamp {
    let calendar = engine.calendar();
    let tomorrow = calendar.local_date(now).checked_add(1.day()).ok();
    let midnight = tomorrow
        .and_then(|d| d.to_zoned(calendar.time_zone().clone()).ok())
        .map_or(Timestamp::MAX, |z| z.timestamp());
    calendar.next_working_time(midnight)
}

fn arm_reminder(engine: &Engine, tx: &Tx<'_>, now: Timestamp) -> Result<(), EngineError> {
    tx.set_timer(&NewTimer {
        key: REMINDER_TIMER_KEY,
        case_id: None,
        kind: r#"{"system":"onboarding"}"#,
        due_at: next_reminder_at(engine, now),
        payload_json: "{}",
    })?;
    Ok(())
}

/// The reminder timer fired: each waiting unit that still has no liaison has its leaders
/// reminded; one that got a liaison meanwhile (a roster file change) is marked done. The timer
/// is set for the next working day while any unit waits; otherwise the heads are told.
pub fn remind_in_tx(engine: &Engine, tx: &Tx<'_>, now: Timestamp) -> Result<(), EngineError> {
    let roster = engine.roster();
    let mut waiting = 0;
    let mut finished = false;
    for row in tx.onboarding_units()? {
        if row.done_at.is_some() {
            continue;
        }
        if has_liaison(&roster, &row.unit) {
            finished |= tx.finish_onboarding(&row.unit, now)?;
            continue;
        }
        waiting += 1;
        let ask = Ask::Reminder {
            count: row.reminders + 1,
        };
        let key = format!("remind/{}/{}", now.as_millisecond(), row.unit);
        if ask_leaders(engine, tx, &roster, &row.unit, &ask, &key, now)? > 0 {
            tx.note_onboarding_reminder(&row.unit, now)?;
        }
    }
    if waiting > 0 {
        arm_reminder(engine, tx, now)?;
    } else if finished {
        tell_all_done(engine, tx, &roster, now)?;
    }
    Ok(())
}

/// After a roster change of `unit` (in the same transaction): a waiting unit that now has a
/// liaison is done; when it was the last, the hotline heads are told and the reminder stops.
pub fn after_roster_change_in_tx(
    engine: &Engine,
    tx: &Tx<'_>,
    unit: &str,
    now: Timestamp,
) -> Result<(), EngineError> {
    let roster = engine.roster();
    if !has_liaison(&roster, unit) || !tx.finish_onboarding(unit, now)? {
        return Ok(());
    }
    let still_waiting = tx.onboarding_units()?.iter().any(|r| r.done_at.is_none());
    if !still_waiting {
        tx.cancel_timer(REMINDER_TIMER_KEY)?;
        tell_all_done(engine, tx, &roster, now)?;
    }
    Ok(())
}

fn tell_all_done(
    engine: &Engine,
    tx: &Tx<'_>,
    roster: &Roster,
    now: Timestamp,
) -> Result<(), EngineError> {
    let done = tx.onboarding_units()?.len();
    for (i, head) in roster.people_with_role(Role::HotlineHead).enumerate() {
        let text = format!(
            "通知过的 {done} 个单位都已指定联络员，每日提醒已停止。{}",
            if is_for(Verb::OnboardingProgress, &head.roles) {
                "发送“名单 进度”查看各单位联络员。"
            } else {
                ""
            }
        );
        let rendered = Rendered {
            title: "联络员已全部指定".into(),
            markdown: text,
        };
        let out = engine.dispatch().message(head, &rendered);
        enqueue(
            tx,
            &format!("onboarding:done/{}/{i}", now.as_millisecond()),
            &out,
            now,
        )?;
    }
    Ok(())
}

/// 名单 进度 as `roles` read it: waiting units first (with their leaders and reminders), then
/// the units done with their liaisons.
pub fn progress_in_tx(
    engine: &Engine,
    tx: &Tx<'_>,
    roles: &[Role],
) -> Result<Rendered, EngineError> {
    let roster = engine.roster();
    let rows = tx.onboarding_units()?;
    let title = "联络员指定进度".to_string();
    if rows.is_empty() {
        let start = if is_for(Verb::StartOnboarding, roles) {
            "发送“启动 名单”"
        } else {
            "由热线负责人或管理员启动"
        };
        let without: Vec<&str> = member_units(&roster)
            .filter(|u| !has_liaison(&roster, u))
            .collect();
        return Ok(Rendered {
            title,
            markdown: format!(
                "尚未启动联络员指定（{start}后，尚无联络员的单位的分管领导会收到通知）。\n\n目前 {} 个单位没有联络员{}。",
                without.len(),
                md_text(&list_suffix(
                    &without.iter().map(|s| s.to_string()).collect::<Vec<_>>()
                ))
            ),
        });
    }
    let (done, waiting): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.done_at.is_some());
    let mut lines = vec![format!(
        "已指定 {} 个单位，等待 {} 个单位。",
        done.len(),
        waiting.len()
    )];
    if !waiting.is_empty() {
        lines.push(String::new());
        lines.push(format!("**等待中（{}）**", waiting.len()));
        for r in &waiting {
            let names: Vec<String> = leaders(&roster, &r.unit)
                .iter()
                .map(|p| p.name.clone())
                .collect();
            let who = if names.is_empty() {
                "无分管领导，无法通知".to_string()
            } else {
                format!("分管领导 {}", names.join("、"))
            };
            lines.push(format!(
                "- {}：{}；已提醒 {} 次",
                md_text(&r.unit),
                md_text(&who),
                r.reminders
            ));
        }
    }
    if !done.is_empty() {
        lines.push(String::new());
        lines.push(format!("**已指定（{}）**", done.len()));
        for r in &done {
            let names: Vec<String> = roster
                .people_in_unit_with_role(&r.unit, Role::Liaison)
                .filter(|p| !p.departed)
                .map(|p| p.name.clone())
                .collect();
            lines.push(format!(
                "- {}：联络员 {}",
                md_text(&r.unit),
                md_text(&names.join("、"))
            ));
        }
    }
    Ok(Rendered {
        title,
        markdown: lines.join("\n"),
    })
}

/// Why someone stopped speaking for their unit, as the address book reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gone {
    /// `user_leave_org`: they left the organisation.
    LeftOrg,
    /// `user_modify_org`: they now sit in departments of none of their unit's names; `now` says
    /// where (department chains joined, `区教育局/办公室`).
    Moved { now: String },
}

impl Gone {
    fn action(&self) -> &'static str {
        match self {
            Gone::LeftOrg => LEFT_ORG,
            Gone::Moved { .. } => LEFT_UNIT,
        }
    }

    /// `已离职` / `已调离本单位（现在：…）`.
    fn what(&self) -> String {
        match self {
            Gone::LeftOrg => "已离职".to_string(),
            Gone::Moved { now } => format!("已调离本单位（现在：{now}）"),
        }
    }
}

/// The history action of a liaison or leader who moved to another unit.
pub const LEFT_UNIT: &str = "left_unit";

/// A member left the organisation (`user_leave_org`): see [`person_gone_in_tx`].
pub fn person_left_in_tx(
    engine: &Engine,
    tx: &Tx<'_>,
    staff_id: &str,
    key: &str,
    now: Timestamp,
) -> Result<bool, EngineError> {
    person_gone_in_tx(engine, tx, staff_id, &Gone::LeftOrg, key, now)
}

/// A member's departments changed (`user_modify_org`); `departments` are where they sit now. A
/// liaison or leader none of whose departments belongs to their unit moved away: see
/// [`person_gone_in_tx`]. False when they still sit in their unit (or are nobody of ours).
pub fn person_moved_in_tx(
    engine: &Engine,
    tx: &Tx<'_>,
    staff_id: &str,
    departments: &[Vec<String>],
    key: &str,
    now: Timestamp,
) -> Result<bool, EngineError> {
    let roster = engine.roster();
    let Some(person) = roster.person(staff_id).filter(|p| !p.departed) else {
        return Ok(false);
    };
    if !(person.has_role(Role::Liaison) || person.has_role(Role::Leader)) {
        return Ok(false);
    }
    let member = crate::roster_sync::Candidate {
        staff_id: staff_id.to_string(),
        name: person.name.clone(),
        title: person.title.clone(),
        departments: departments.to_vec(),
    };
    if crate::roster_sync::candidate_units(&member, &roster).contains(&person.unit.as_str()) {
        return Ok(false);
    }
    let gone = Gone::Moved {
        now: member.departments_text(),
    };
    person_gone_in_tx(engine, tx, staff_id, &gone, key, now)
}

/// A liaison or leader who no longer speaks for their unit: they lose their roles (flagged as
/// departed when they left the organisation; history by [`ADDRESS_BOOK_ACTOR`]), the unit's
/// open cases follow the new contacts ([`Engine::change_roster_in_tx`]), and someone is asked
/// to name a replacement: the unit's leaders for a liaison (their unit waits again, with daily
/// reminders), the hotline heads and admins for a leader. False when nobody in the roster has
/// the account (or they were flagged already).
pub fn person_gone_in_tx(
    engine: &Engine,
    tx: &Tx<'_>,
    staff_id: &str,
    gone: &Gone,
    key: &str,
    now: Timestamp,
) -> Result<bool, EngineError> {
    let roster = engine.roster();
    let Some(person) = roster
        .person(staff_id)
        .filter(|p| !p.departed && p.reachable())
        .cloned()
    else {
        return Ok(false);
    };
    let unit = person.unit.clone();
    let change = PersonChange {
        action: gone.action(),
        before: Some(person.clone()),
        after: Person::new(
            &person.name,
            &person.unit,
            &person.title,
            Vec::new(),
            &person.staff_id,
            &person.phone,
        )
        .with_departed(*gone == Gone::LeftOrg),
    };
    let after = engine.change_roster_in_tx(tx, &unit, &[change], ADDRESS_BOOK_ACTOR, now)?;
    let was_liaison = person.has_role(Role::Liaison);
    let was_leader = person.has_role(Role::Leader);
    let unit_leaders = leaders(&after, &unit);
    if was_liaison && !has_liaison(&after, &unit) && !unit_leaders.is_empty() {
        tx.ask_onboarding(&unit, ADDRESS_BOOK_ACTOR, now)?;
        let ask = Ask::Departed {
            name: &person.name,
            what: gone.what(),
        };
        ask_leaders(
            engine,
            tx,
            &after,
            &unit,
            &ask,
            &format!("{key}/leaders"),
            now,
        )?;
        arm_reminder(engine, tx, now)?;
    }
    if was_leader || (was_liaison && unit_leaders.is_empty()) {
        let role = if was_leader {
            "分管领导"
        } else {
            "联络员"
        };
        let remaining: Vec<String> = after
            .people_in_unit(&unit)
            .filter(|p| p.has_role(Role::Liaison) || p.has_role(Role::Leader))
            .map(|p| format!("{}（{}）", p.name, role_names(p)))
            .collect();
        let text = format!(
            "钉钉通讯录显示，{unit}的{role}{}{}，名单中已取消其角色。\n{unit}现有联系人：{}。\n请与该单位确定接任的{}，由管理员在钉钉中更换或设置；在此之前，该单位的协办请求和提醒发给现有联系人{}。",
            person.name,
            gone.what(),
            if remaining.is_empty() {
                "无".to_string()
            } else {
                remaining.join("、")
            },
            if was_leader {
                "分管领导"
            } else {
                "分管领导和联络员"
            },
            if remaining.is_empty() {
                "（现无人可收，请尽快补充）"
            } else {
                ""
            }
        );
        let rendered = Rendered {
            title: format!(
                "{unit}{role}{}",
                if *gone == Gone::LeftOrg {
                    "已离职"
                } else {
                    "已调离"
                }
            ),
            markdown: crate::messages::escape::md_block(&text),
        };
        let mut told = Vec::new();
        let heads = after.people_with_role(Role::HotlineHead);
        let admins = after.people_with_role(Role::Admin);
        for (i, p) in heads.chain(admins).enumerate() {
            if told.contains(&p.id()) {
                continue;
            }
            told.push(p.id());
            let out = engine.dispatch().message(p, &rendered);
            enqueue(tx, &format!("onboarding:{key}/heads/{i}"), &out, now)?;
        }
    }
    Ok(true)
}

fn role_names(p: &Person) -> String {
    p.roles
        .iter()
        .map(|r| r.label())
        .collect::<Vec<_>>()
        .join("、")
}
