//! The 查询 reply (docs/spec.md → Text commands): where the case stands, what happened when and by whom
//! (times in the calendar's zone, Asia/Shanghai, as `11-02 09:00`), and every clock with its
//! deadline, explanation, reminders sent and state. Events come from the audit log, so the
//! timeline is the record the monthly statistics count (五(四)).
//!
//! The reply is plain text, one fact a line (the dashboard shows it as it is): what people wrote
//! is kept on its line ([`plain_line`]); whoever sends it as markdown escapes it as a whole
//! ([`crate::messages::escape::md_block`]).

use jiff::Timestamp;

use super::escape::plain_line;
use super::notify::{due_text, green_mark, mask_phones, person_name, short_time};
use crate::calendar::Calendar;
use crate::domain::UnitName;
use crate::roster::Roster;
use crate::workflow::{Case, ClockState, Due, Event, EventKind};

/// One line of the timeline: an audit event as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub kind: EventKind,
    pub at: Timestamp,
    /// Roster id, or [`crate::workflow::SYSTEM_ACTOR`].
    pub actor: String,
    /// The unit the fact is about, when there is one.
    pub unit: Option<UnitName>,
}

impl TimelineEntry {
    /// A stored audit row as a timeline entry.
    pub fn from_row(row: &crate::store::EventRow) -> TimelineEntry {
        TimelineEntry {
            kind: row.kind(),
            at: row.at,
            actor: row.actor.clone(),
            unit: row.unit.clone(),
        }
    }
}

impl From<&Event> for TimelineEntry {
    fn from(e: &Event) -> TimelineEntry {
        TimelineEntry {
            kind: e.kind(),
            at: e.at,
            actor: e.actor.clone(),
            unit: e.unit.clone(),
        }
    }
}

/// The 查询 reply for `case`, with `events` oldest first.
pub fn render_query(
    case: &Case,
    events: &[TimelineEntry],
    roster: &Roster,
    calendar: &Calendar,
) -> String {
    let mut out = format!(
        "{}工单 {} · 案件 {}\n状态：{}\n工单标题：{}\n首接单位：{}\n",
        green_mark(case),
        case.ticket_no,
        case.case_no,
        case.state.label(),
        plain_line(&mask_phones(&case.application.title)),
        plain_line(&case.first_unit)
    );
    let requests: Vec<String> = case
        .active_requests()
        .map(|r| format!("{}（{}）", plain_line(&r.unit), r.status.label()))
        .collect();
    if !requests.is_empty() {
        out.push_str(&format!("配合单位：{}\n", requests.join("、")));
    }
    out.push_str("\n办理经过：\n");
    if events.is_empty() {
        out.push_str("· （暂无记录）\n");
    }
    for e in events {
        let unit = match &e.unit {
            Some(u) => format!("（{}）", plain_line(u)),
            None => String::new(),
        };
        // A consequence of someone's act (the last acceptance starts the joint handling) names
        // no actor: nobody did it as such.
        let by = if matches!(
            e.kind,
            EventKind::JointHandlingStarted | EventKind::DecisionReopened
        ) {
            String::new()
        } else {
            format!(" — {}", plain_line(&person_name(roster, &e.actor)))
        };
        out.push_str(&format!(
            "· {} {}{unit}{by}\n",
            short_time(e.at, calendar),
            event_label(e.kind),
        ));
    }
    out.push_str("\n期限：\n");
    if case.clocks.is_empty() {
        out.push_str("· （无）\n");
    }
    for clock in &case.clocks {
        let state = match clock.state {
            ClockState::Running => "进行中".to_string(),
            ClockState::Breached { at } => format!("已超期（{} 记录）", short_time(at, calendar)),
            ClockState::Stopped { at, on_time } => format!(
                "已完成（{}，{}）",
                short_time(at, calendar),
                if on_time { "按期" } else { "超期" }
            ),
        };
        // A clock nobody was reminded on says nothing about reminders: "已提醒 0 次" reads as
        // a failure to remind.
        let reminded = match clock.reminders_sent {
            0 => String::new(),
            n => format!("；已提醒 {n} 次"),
        };
        out.push_str(&format!(
            "· {}：{state}；{}{reminded}\n",
            clock.kind.label(),
            due_text(&Due::from(clock), calendar),
        ));
    }
    out.trim_end().to_string()
}

/// The Chinese name of an audit event.
pub fn event_label(kind: EventKind) -> &'static str {
    match kind {
        EventKind::AwaitingLeader => "提交申请，待分管领导确认",
        EventKind::LeaderReturned => "分管领导退回联络员",
        EventKind::Submitted => "提交申请",
        EventKind::Resubmitted => "补充后重新提交",
        EventKind::Claimed => "开始审核",
        EventKind::DecidedJoint => "决定联合调处",
        EventKind::DecidedIndependent => "建议独立办理",
        EventKind::Returned => "退回补充",
        EventKind::DecidedCity => "提请市级协调",
        EventKind::UnitRequested => "请求协办",
        EventKind::UnitAccepted => "接受协办",
        EventKind::UnitObjected => "提出异议",
        EventKind::ObjectionWithdrawn => "撤回协办请求",
        EventKind::ObjectionUpheld => "坚持协办请求",
        EventKind::SupervisionIssued => "书面督办",
        EventKind::UnitOverdue => "超期未答复",
        EventKind::DecisionReopened => "重新研判",
        EventKind::JointHandlingStarted => "联合处置开始",
        EventKind::ReminderSent => "发送提醒",
        EventKind::Breach => "超过期限",
        EventKind::Escalated => "超期上报",
        EventKind::DeadlineRecomputed => "重新计算期限",
        EventKind::Progress => "同步进展",
        EventKind::Completed => "反馈办理结果",
        EventKind::Satisfaction => "记录满意度",
        EventKind::TypicalMarked => "标记典型案例",
        EventKind::CityOutcome => "记录市级协调结果",
        EventKind::Closed => "结案",
        EventKind::ContactsChanged => "单位联络人变更",
    }
}
