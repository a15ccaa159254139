//! Joint handling and its result: progress notes between the first unit and the cooperating units
//! (五(二) 联合处置), the first unit's completion report (五(三) 结果反馈), the hotline's
//! satisfaction record, and typical-case marking (五(五) 案例总结).

use super::case::{Completion, ProgressNote, SatisfactionRecord, State, TypicalCase};
use super::clock::ClockKind;
use super::effect::{ClosedHow, Message};
use super::event_data::{ClosedBy, EventData};
use super::input::SatisfactionLevel;
use super::people;
use super::reject::{RejectReason, Rejection};
use super::review::on_time;
use super::{Call, Decision, required_text, wrong_state};
use crate::domain::{PersonId, UnitName};
use crate::roster::Role;

/// 进展: 五(二) the first unit keeps the cooperating units informed, and they report back.
pub(super) fn progress(call: Call, text: &str) -> Result<Decision, Rejection> {
    let case = call.case;
    let person = call.who.person()?;
    let from_first_unit = people::speaks_for(person, &case.first_unit);
    let from_cooperating = people::speaks_for(person, &person.unit)
        && case.accepted_units().any(|r| r.unit == person.unit);
    if !(from_first_unit || from_cooperating) {
        return Err(Rejection::new(
            RejectReason::NotParticipant,
            format!(
                "只有首接单位“{}”和已接受协办单位的联络员或分管领导可以发送工单 {} 的进展。",
                case.first_unit, case.ticket_no
            ),
        ));
    }
    if case.state != State::JointHandling {
        return Err(wrong_state(
            case,
            "发送进展",
            "进展在全部配合单位接受协办后的联合处置阶段发送。",
        ));
    }
    let text = required_text(
        text,
        "进展内容",
        "进展 DH… 今日已会同区住建局现场核查，企业承诺本周内付清",
    )?;
    let mut d = call.draft();
    d.case.progress.push(ProgressNote {
        by: PersonId::of(person),
        unit: UnitName::of_person(person),
        at: call.now,
        text: text.clone(),
    });
    let to: Vec<PersonId> = if from_first_unit {
        let units: Vec<UnitName> = d.case.accepted_units().map(|r| r.unit.clone()).collect();
        units
            .iter()
            .flat_map(|u| people::unit_contacts(d.roster(), u))
            .collect()
    } else {
        people::first_unit_side(d.roster(), &d.case)
    };
    let to_units: Vec<UnitName> = if from_first_unit {
        d.case.accepted_units().map(|r| r.unit.clone()).collect()
    } else {
        vec![d.case.first_unit.clone()]
    };
    if let Some(by) = people::person_ref(d.roster(), person.id()) {
        d.notify(
            to,
            Message::Progress {
                from_unit: UnitName::of_person(person),
                by,
                text: text.clone(),
            },
        );
    }
    d.notify(
        vec![PersonId::of(person)],
        Message::ProgressShared { to_units },
    );
    d.event(
        Some(&UnitName::of_person(person)),
        EventData::Progress { text },
    );
    Ok(d.finish())
}

/// 办结: 五(三) the first unit reports the handling process, the measures and the citizen's feedback.
pub(super) fn complete(
    call: Call,
    process: &str,
    measures: &str,
    feedback: &str,
) -> Result<Decision, Rejection> {
    let case = call.case;
    let person = call.who.person()?;
    if !people::speaks_for(person, &case.first_unit) {
        return Err(Rejection::new(
            RejectReason::NotFirstUnit,
            format!(
                "办结由首接单位“{}”的联络员或分管领导报告（首接单位牵头，五(二)）。",
                case.first_unit
            ),
        ));
    }
    match case.state {
        State::JointHandling => {}
        State::Completed => {
            return Err(Rejection::new(
                RejectReason::AlreadyCompleted,
                format!(
                    "工单 {} 已报告办结，正等待热线登记满意度，无需重复报告。",
                    case.ticket_no
                ),
            ));
        }
        _ => return Err(wrong_state(case, "报告办结", "办结在联合处置阶段报告。")),
    }
    let fields = [
        ("处理过程", process),
        ("解决措施", measures),
        ("群众反馈", feedback),
    ];
    let missing: Vec<&str> = fields
        .iter()
        .filter(|(_, v)| v.trim().is_empty())
        .map(|(k, _)| *k)
        .collect();
    if !missing.is_empty() {
        return Err(Rejection::new(
            RejectReason::IncompleteCompletion,
            format!(
                "办结报告缺少{}。格式：办结 {} 过程：… 措施：… 群众反馈：…",
                missing.join("、"),
                case.ticket_no
            ),
        ));
    }
    let mut d = call.draft();
    let on_time = on_time(&d, &ClockKind::Handling);
    let completion = Completion {
        by: PersonId::of(person),
        at: call.now,
        process: process.trim().to_string(),
        measures: measures.trim().to_string(),
        citizen_feedback: feedback.trim().to_string(),
        on_time,
    };
    d.case.completion = Some(completion.clone());
    d.case.state = State::Completed;
    // 五(二): done within the handling time, or late; either way the clock stops.
    d.stop_clocks(|k| matches!(k, ClockKind::Handling | ClockKind::SupervisedHandling));
    let mut to = people::inspectors_on_duty(d.roster(), &d.case);
    let units: Vec<UnitName> = d.case.accepted_units().map(|r| r.unit.clone()).collect();
    to.extend(
        units
            .iter()
            .flat_map(|u| people::unit_contacts(d.roster(), u)),
    );
    d.notify(
        to,
        Message::Completed {
            process: completion.process,
            measures: completion.measures,
            citizen_feedback: completion.citizen_feedback,
            on_time,
        },
    );
    d.notify(
        vec![PersonId::of(person)],
        Message::CompletionRecorded { on_time },
    );
    let first_unit = d.case.first_unit.clone();
    d.event(Some(&first_unit), EventData::Completed { on_time });
    Ok(d.finish())
}

/// 满意度: the hotline records the citizen's satisfaction; the case closes and everyone involved is told.
pub(super) fn satisfaction(call: Call, level: SatisfactionLevel) -> Result<Decision, Rejection> {
    let case = call.case;
    let person = call.who.person()?;
    if !people::is_hotline_staff(person) {
        return Err(Rejection::new(
            RejectReason::NotHotlineStaff,
            format!(
                "满意度由区12345热线（质检专员、督办专员或热线负责人）登记，您在名单中的角色是{}。",
                people::roles_label(person)
            ),
        ));
    }
    if case.state != State::Completed {
        return Err(wrong_state(
            case,
            "登记满意度",
            "满意度在首接单位报告办结后登记。",
        ));
    }
    let mut d = call.draft();
    d.case.satisfaction = Some(SatisfactionRecord {
        level,
        by: PersonId::of(person),
        at: call.now,
    });
    d.case.state = State::Closed;
    d.stop_all_clocks();
    let mut to = people::first_unit_side(d.roster(), &d.case);
    to.extend(people::unit_leaders(d.roster(), &d.case.first_unit));
    let units: Vec<UnitName> = d.case.accepted_units().map(|r| r.unit.clone()).collect();
    to.extend(
        units
            .iter()
            .flat_map(|u| people::unit_contacts(d.roster(), u)),
    );
    to.extend(people::inspectors_on_duty(d.roster(), &d.case));
    d.notify(
        to,
        Message::Closed {
            how: ClosedHow::Satisfaction { level },
        },
    );
    d.event(None, EventData::Satisfaction { level });
    d.event(
        None,
        EventData::Closed {
            how: ClosedBy::Satisfaction,
        },
    );
    Ok(d.finish())
}

/// 典型: 五(五) an inspector marks a finished case as typical, with a summary for 热线故事汇.
/// Allowed on completed, closed and independent cases; changes no state. A new summary replaces
/// the old one.
pub(super) fn mark_typical(call: Call, summary: &str) -> Result<Decision, Rejection> {
    let case = call.case;
    let person = call.who.person()?;
    people::require_role(person, Role::Inspector)?;
    if !matches!(
        case.state,
        State::Completed | State::Closed | State::Independent
    ) {
        return Err(Rejection::new(
            RejectReason::NotTypicalYet,
            format!(
                "工单 {} 目前处于“{}”阶段，办结或结案后才能标记为典型案例。",
                case.ticket_no,
                case.state.label()
            ),
        ));
    }
    let summary = required_text(
        summary,
        "典型案例总结",
        "典型 DH… 多部门联合现场核查，三日内化解欠薪纠纷",
    )?;
    if case.typical.as_ref().is_some_and(|t| t.summary == summary) {
        return Err(Rejection::new(
            RejectReason::AlreadyTypical,
            format!(
                "工单 {} 已以相同总结标记为典型案例，无需重复操作。",
                case.ticket_no
            ),
        ));
    }
    let mut d = call.draft();
    let revised = d.case.typical.is_some();
    d.case.typical = Some(TypicalCase {
        summary,
        by: PersonId::of(person),
        at: call.now,
    });
    d.event(None, EventData::TypicalMarked { revised });
    Ok(d.finish())
}
