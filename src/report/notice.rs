//! 通报 (五(四) 考核问责): the units to be named in the monthly statistics and quarterly summary
//! for unjustified non-cooperation or overdue handling, each fact with its evidence (case, 工单编号,
//! what happened, the deadline and when), and the cases marked for transfer to the district
//! 三抓三促 office (五(四): 情节严重的，转报区“三抓三促”行动专项工作机制办公室).
//!
//! Named facts, each from one event in the period:
//! - 异议未采纳: the unit objected and the inspector insisted (`objection_upheld`) — the objection
//!   was judged without good reason (无正当理由不配合);
//! - 拒不配合: no answer by the response deadline (`unit_overdue`);
//! - 逾期答复: the first answer to a request came after its deadline;
//! - 书面督办: written supervision issued (`supervision_issued`);
//! - 办理超期: the handling deadline passed undone (`breach` of the handling clock);
//! - 逾期办结: completion reported after the handling deadline.
//!
//! "Serious" (情节严重) is not defined by the mechanism; the design is two rules, constants below:
//! a unit supervised at least [`TRANSFER_MIN_SUPERVISIONS`] times in the period (every case it was
//! supervised in is listed), or a case whose handling is overdue by at least
//! [`TRANSFER_MIN_OVERDUE_WORKING_DAYS`] working days (counted from the due date to the
//! completion, or to the end of the period while still open).

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::Serialize;

use super::{Loaded, event_unit};
use crate::calendar::Calendar;
use crate::workflow::{ClockKind, EventData, SupervisionGround};

/// 三抓三促 rule 1: written supervisions of one unit in the period.
pub const TRANSFER_MIN_SUPERVISIONS: usize = 2;
/// 三抓三促 rule 2: working days a case's handling is past its deadline.
pub const TRANSFER_MIN_OVERDUE_WORKING_DAYS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    ObjectionUpheld,
    Refusal,
    LateAnswer,
    Supervision,
    HandlingOverdue,
    LateCompletion,
}

impl NoticeKind {
    /// The Chinese name users see.
    pub fn label(self) -> &'static str {
        match self {
            NoticeKind::ObjectionUpheld => "异议未采纳",
            NoticeKind::Refusal => "拒不配合（超时未答复）",
            NoticeKind::LateAnswer => "逾期答复",
            NoticeKind::Supervision => "书面督办",
            NoticeKind::HandlingOverdue => "办理超期",
            NoticeKind::LateCompletion => "逾期办结",
        }
    }
}

/// One named fact, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub unit: String,
    pub case_no: String,
    pub ticket_no: String,
    pub kind: NoticeKind,
    /// Chinese description of what was late or refused.
    pub what: String,
    /// The deadline that was missed or the request's response deadline, when there is one.
    pub deadline: Option<Timestamp>,
    /// When it happened (the event's instant).
    pub at: Timestamp,
}

/// A case marked for transfer to the 三抓三促 office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub unit: String,
    pub case_no: String,
    pub ticket_no: String,
    /// Chinese; several reasons joined with "；".
    pub reason: String,
}

/// The notices (ordered by unit, then time) and transfers of the loaded cases in `[from, to)`.
pub(crate) fn compute(
    cases: &[Loaded],
    calendar: &Calendar,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> (Vec<Notice>, Vec<Transfer>) {
    let mut notices = Vec::new();
    let mut transfers: BTreeMap<(String, String), Transfer> = BTreeMap::new();
    let mut add_transfer = |unit: &str, l: &Loaded, reason: String| {
        transfers
            .entry((unit.to_string(), l.row.case_no.to_string()))
            .and_modify(|t| {
                if !t.reason.contains(&reason) {
                    t.reason.push('；');
                    t.reason.push_str(&reason);
                }
            })
            .or_insert_with(|| Transfer {
                unit: unit.to_string(),
                case_no: l.row.case_no.to_string(),
                ticket_no: l.row.ticket_no.to_string(),
                reason,
            });
    };
    for l in cases {
        let handling_due = l.case.clock(&ClockKind::Handling).map(|c| c.due);
        // unit → (response deadline of its request in force, answered yet)
        let mut requests: HashMap<String, (Option<Timestamp>, bool)> = HashMap::new();
        let mut breach_due: Option<Timestamp> = None;
        for e in &l.events {
            let unit = event_unit(e, &l.row.first_unit).to_string();
            let inside = e.at >= from && e.at < to;
            let request_due = requests.get(&unit).and_then(|r| r.0);
            let fact: Option<(NoticeKind, String, Option<Timestamp>)> = match &e.data {
                EventData::UnitRequested { due, .. } => {
                    requests.insert(unit.clone(), (Some(*due), false));
                    None
                }
                EventData::UnitAccepted { on_time, .. }
                | EventData::UnitObjected { on_time, .. } => {
                    let r = requests.entry(unit.clone()).or_insert((None, false));
                    let first = !r.1;
                    r.1 = true;
                    (first && !on_time).then(|| {
                        let how = if let EventData::UnitAccepted { .. } = e.data {
                            "接受协办"
                        } else {
                            "提出异议"
                        };
                        (
                            NoticeKind::LateAnswer,
                            format!("超过答复期限才答复协调请求（{how}）"),
                            request_due,
                        )
                    })
                }
                EventData::ObjectionUpheld {} => Some((
                    NoticeKind::ObjectionUpheld,
                    "对协调请求提出异议，经质检专员研判不予采纳（坚持请求协办）".to_string(),
                    request_due,
                )),
                EventData::UnitOverdue { due } => Some((
                    NoticeKind::Refusal,
                    "未在答复期限内答复协调请求，视为拒不配合".to_string(),
                    Some(*due),
                )),
                EventData::SupervisionIssued { number, ground } => {
                    let (why, due) = match ground {
                        SupervisionGround::Insisted => ("异议未采纳", request_due),
                        SupervisionGround::Overdue => ("超时未答复", request_due),
                        SupervisionGround::HandlingOverdue => ("办理超期", handling_due),
                    };
                    Some((
                        NoticeKind::Supervision,
                        format!("被区12345热线书面督办（第 {number} 号，事由：{why}）"),
                        due,
                    ))
                }
                EventData::Breach { clock, due, .. } => {
                    if clock.starts_with("handling") {
                        let due = Some(*due);
                        breach_due = breach_due.or(due);
                        Some((
                            NoticeKind::HandlingOverdue,
                            "联合处置超过办理时限仍未办结".to_string(),
                            due,
                        ))
                    } else {
                        None
                    }
                }
                EventData::Completed { on_time: false } => Some((
                    NoticeKind::LateCompletion,
                    "超过办理时限后才报告办结".to_string(),
                    handling_due,
                )),
                _ => None,
            };
            if let (true, Some((kind, what, deadline))) = (inside, fact) {
                notices.push(Notice {
                    unit,
                    case_no: l.row.case_no.to_string(),
                    ticket_no: l.row.ticket_no.to_string(),
                    kind,
                    what,
                    deadline,
                    at: e.at,
                });
            }
        }
        // Rule 2: overdue handling, measured to the completion or to the period's end.
        if let Some(due) = breach_due.filter(|d| *d < to) {
            let completed = l.case.completion.as_ref().map(|c| c.at);
            let end = completed.unwrap_or(to).min(to).min(now);
            let open_in_period = completed.is_none_or(|c| c >= from);
            let days = working_days_after(calendar, due, end);
            if open_in_period && days >= TRANSFER_MIN_OVERDUE_WORKING_DAYS {
                add_transfer(
                    &l.row.first_unit,
                    l,
                    format!(
                        "办理超期 {days} 个工作日（达到 {TRANSFER_MIN_OVERDUE_WORKING_DAYS} 个工作日）"
                    ),
                );
            }
        }
    }
    // Rule 1: units supervised often in the period.
    let mut by_unit: BTreeMap<&str, Vec<&Notice>> = BTreeMap::new();
    for n in notices.iter().filter(|n| n.kind == NoticeKind::Supervision) {
        by_unit.entry(&n.unit).or_default().push(n);
    }
    for (unit, list) in by_unit {
        if list.len() < TRANSFER_MIN_SUPERVISIONS {
            continue;
        }
        for n in list {
            if let Some(l) = cases.iter().find(|l| l.row.case_no == n.case_no) {
                add_transfer(
                    unit,
                    l,
                    format!(
                        "本期被书面督办 {} 次（达到 {TRANSFER_MIN_SUPERVISIONS} 次）",
                        by_unit_count(&notices, unit)
                    ),
                );
            }
        }
    }
    notices.sort_by(|a, b| (&a.unit, a.at, &a.case_no).cmp(&(&b.unit, b.at, &b.case_no)));
    (notices, transfers.into_values().collect())
}

fn by_unit_count(notices: &[Notice], unit: &str) -> usize {
    notices
        .iter()
        .filter(|n| n.kind == NoticeKind::Supervision && n.unit == unit)
        .count()
}

/// Working days after the local date of `due` up to and including the local date of the instant
/// just before `end` (so a period end at midnight counts the period's last day, not the next).
pub fn working_days_after(calendar: &Calendar, due: Timestamp, end: Timestamp) -> u32 {
    if end <= due {
        return 0;
    }
    let last = calendar.local_date(
        end.checked_sub(jiff::SignedDuration::from_millis(1))
            .unwrap_or(end),
    );
    let mut d = calendar.local_date(due);
    let mut n = 0;
    while d < last {
        let Ok(next) = d.tomorrow() else { break };
        d = next;
        if calendar.is_working_day(d) {
            n += 1;
        }
    }
    n
}
