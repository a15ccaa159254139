//! Submission and resubmission (四(一) 首接牵头提意向): the first unit's liaison sends the
//! application once its leader agreed; it is registered, the review clocks start (五(一) 即收即审;
//! 四(二) 3 working days; green channel 1 working day), and every inspector gets the review card.
//!
//! With `[workflow] require_leader_confirmation` on, the leader's consent is given in DingTalk
//! instead of pasted: a registered application waits in [`State::AwaitingLeader`] with no clock
//! running, and the review (clocks, cards, receipt) starts when the leader sends 同意.

use jiff::Timestamp;

use super::case::{CardKind, Case, PreviousVersion, State};
use super::clock::ClockKind;
use super::draft::Draft;
use super::effect::{Due, Message};
use super::event_data::{EventData, Registration};
use super::people::{self, Who};
use super::reject::{RejectReason, Rejection};
use super::{Application, Call, Ctx, Decision, required_text, wrong_state};
use crate::domain::{CaseNo, PersonId, TicketNo, UnitName};
use crate::roster::{Person, Role, Roster, UnitKind};

/// A new case from a complete application.
pub(super) fn submit(
    case_no: &CaseNo,
    application: &Application,
    who: Who,
    now: Timestamp,
    ctx: Ctx,
) -> Result<Decision, Rejection> {
    let person = who.person()?;
    let (ticket_no, first_unit) = check_application(application, ctx.roster)?;
    authorise_first_unit(person, &first_unit)?;
    let case = Case {
        case_no: case_no.clone(),
        ticket_no,
        first_unit,
        version: 1,
        application: application.clone(),
        submitted_by: PersonId::of(person),
        received_at: now,
        green_channel: application.urgent,
        state: State::Submitted,
        claim: None,
        decisions: Vec::new(),
        requests: Vec::new(),
        supervisions: Vec::new(),
        progress: Vec::new(),
        completion: None,
        satisfaction: None,
        city_outcome: None,
        typical: None,
        clocks: Vec::new(),
        cards: Vec::new(),
        previous_versions: Vec::new(),
        similar: Vec::new(),
    };
    let mut d = Draft::new(ctx, now, person.id().to_string(), case, None);
    if ctx.require_leader_confirmation {
        await_leader(&mut d)?;
    } else {
        register(&mut d, EventData::Submitted);
    }
    Ok(d.finish())
}

/// A submission for a ticket that already has this open case: the same application again is
/// answered "already registered" and changes nothing; after a return it is the resubmission;
/// anything else is refused.
pub(super) fn submit_again(call: Call, application: &Application) -> Result<Decision, Rejection> {
    let case = call.case;
    if case.state == State::Returned {
        return resubmit(call, application);
    }
    let person = call.who.person()?;
    let (ticket_no, first_unit) = check_application(application, call.ctx.roster)?;
    authorise_first_unit(person, &first_unit)?;
    check_same_ticket(case, &ticket_no)?;
    if application != &case.application {
        return Err(Rejection::new(
            RejectReason::TicketHasOpenCase,
            format!(
                "工单 {} 已有进行中的联合调处案件 {}（{}），不能重复发起。如需补充情况，请在案件中发送“进展”或联系质检专员。",
                case.ticket_no,
                case.case_no,
                case.state.label()
            ),
        ));
    }
    let mut d = call.draft();
    if case.state == State::AwaitingLeader {
        let waiting = awaiting_message(&d);
        d.notify([PersonId::of(person)], waiting);
    } else {
        // Not a second identical receipt: the sender learns it is already in hand.
        d.notify(
            [PersonId::of(person)],
            Message::AlreadyRegistered {
                state: case.state.label().to_string(),
            },
        );
    }
    Ok(d.finish())
}

/// The corrected application after a return: same ticket, same first unit, version + 1, and the
/// review starts over.
pub(super) fn resubmit(call: Call, application: &Application) -> Result<Decision, Rejection> {
    let case = call.case;
    let person = call.who.person()?;
    authorise_first_unit(person, &case.first_unit)?;
    if case.state != State::Returned {
        return Err(Rejection::new(
            RejectReason::NotReturned,
            format!(
                "工单 {} 的申请没有被退回（目前处于“{}”阶段），无需重新提交。",
                case.ticket_no,
                case.state.label()
            ),
        ));
    }
    let (ticket_no, first_unit) = check_application(application, call.ctx.roster)?;
    check_same_ticket(case, &ticket_no)?;
    if first_unit != case.first_unit {
        return Err(Rejection::new(
            RejectReason::FirstUnitChanged,
            format!(
                "重新提交的申请首接单位为“{first_unit}”，与原申请的“{}”不一致。补充申请须由原首接单位提交；如首接单位有误，请联系质检专员。",
                case.first_unit
            ),
        ));
    }
    let mut d = call.draft();
    let previous = PreviousVersion {
        version: case.version,
        application: case.application.clone(),
        submitted_by: case.submitted_by.clone(),
        received_at: case.received_at,
    };
    let c = &mut d.case;
    c.previous_versions.push(previous);
    c.version += 1;
    c.application = application.clone();
    c.submitted_by = PersonId::of(person);
    c.received_at = call.now;
    c.green_channel = application.urgent;
    c.claim = None;
    if call.ctx.require_leader_confirmation {
        await_leader(&mut d)?;
    } else {
        d.case.state = State::Submitted;
        register(&mut d, EventData::Resubmitted);
    }
    Ok(d.finish())
}

/// 同意: the first unit's leader confirms the waiting application (四(一) 经本单位分管领导同意).
/// The confirmation replaces the pasted statement in the record, and the review starts now: the
/// mechanism clocks run from this moment (四(一), 五(一)).
pub(super) fn leader_approve(call: Call) -> Result<Decision, Rejection> {
    let (person, title) = confirming_leader(call, "确认")?;
    let case = call.case;
    if case.state != State::AwaitingLeader {
        return Err(not_awaiting(case, "确认同意"));
    }
    let local = call
        .ctx
        .calendar
        .time_zone()
        .to_datetime(call.now)
        .strftime("%Y-%m-%d %H:%M")
        .to_string();
    let mut d = call.draft();
    let c = &mut d.case;
    c.application.leader_approval = format!("{title} {} 于 {local} 在钉钉中确认同意", person.name);
    c.application.leader_approved = true;
    c.received_at = call.now;
    c.state = State::Submitted;
    let kind: fn(Registration) -> EventData = if c.version > 1 {
        EventData::Resubmitted
    } else {
        EventData::Submitted
    };
    register(&mut d, kind);
    Ok(d.finish())
}

/// 退回联络员: the first unit's leader sends the waiting application back with a reason; the
/// liaison corrects it and submits again, which goes to the leader again.
pub(super) fn leader_return(call: Call, reason: &str) -> Result<Decision, Rejection> {
    let (person, _) = confirming_leader(call, "退回")?;
    let case = call.case;
    if case.state != State::AwaitingLeader {
        return Err(not_awaiting(case, "退回联络员"));
    }
    let reason = required_text(reason, "退回原因", "退回联络员 DH… 请补充与企业约谈的情况")?;
    let mut d = call.draft();
    d.case.state = State::Returned;
    let leader = people::person_ref(d.roster(), person.id());
    let to = people::first_unit_side(d.roster(), &d.case);
    d.notify(
        to,
        Message::LeaderReturned {
            leader,
            reason: reason.clone(),
        },
    );
    let data = EventData::LeaderReturned {
        version: d.case.version,
        reason: reason.clone(),
    };
    let first_unit = d.case.first_unit.clone();
    d.event(Some(&first_unit), data);
    Ok(d.finish())
}

/// Who may confirm or send back: a leader of the first unit, or an admin on its behalf. Returns
/// the person and the title the record gives them.
fn confirming_leader<'a>(
    call: Call<'a>,
    doing: &str,
) -> Result<(&'a Person, &'static str), Rejection> {
    let person = call.who.person()?;
    if person.unit == call.case.first_unit && person.has_role(Role::Leader) {
        return Ok((person, "分管领导"));
    }
    if person.has_role(Role::Admin) {
        return Ok((person, "管理员"));
    }
    Err(Rejection::new(
        RejectReason::NotUnitLeader,
        format!(
            "工单 {} 的申请须由首接单位“{}”的分管领导{doing}；您在名单中属于“{}”（{}）。",
            call.case.ticket_no,
            call.case.first_unit,
            person.unit,
            people::roles_label(person)
        ),
    ))
}

fn not_awaiting(case: &Case, doing: &str) -> Rejection {
    wrong_state(
        case,
        doing,
        "只有待分管领导确认的申请才能确认或退回联络员。发送“查询 工单编号”查看进度。",
    )
}

/// Registers the application as waiting for the first unit's leader: no clock starts (the
/// mechanism clocks start at the confirmation); the leaders are asked, the submitter is told.
fn await_leader(d: &mut Draft) -> Result<(), Rejection> {
    let leaders = people::unit_leaders(d.roster(), &d.case.first_unit);
    if leaders.is_empty() {
        return Err(Rejection::new(
            RejectReason::UnitUnreachable,
            format!(
                "“{}”在名单中没有分管领导，申请无法送领导确认，未登记。请联系区12345热线管理员补充分管领导。",
                d.case.first_unit
            ),
        ));
    }
    d.case.state = State::AwaitingLeader;
    let submitted_by = people::person_ref(d.roster(), &d.case.submitted_by);
    let version = d.case.version;
    d.notify(
        leaders,
        Message::LeaderConfirmationRequest {
            version,
            submitted_by,
        },
    );
    let waiting = awaiting_message(d);
    d.notify([d.case.submitted_by.clone()], waiting);
    let data = EventData::AwaitingLeader {
        version,
        ticket_no: d.case.ticket_no.clone(),
    };
    let first_unit = d.case.first_unit.clone();
    d.event(Some(&first_unit), data);
    Ok(())
}

/// The submitter's receipt while the leader has not confirmed.
fn awaiting_message(d: &Draft) -> Message {
    let roster = d.roster();
    Message::AwaitingLeader {
        version: d.case.version,
        leaders: people::unit_leaders(roster, &d.case.first_unit)
            .iter()
            .filter_map(|id| people::person_ref(roster, id))
            .collect(),
    }
}

/// Starts the review of the case's latest version: clocks, review card, receipt, event.
/// `kind` is [`EventData::Submitted`] or [`EventData::Resubmitted`].
fn register(d: &mut Draft, kind: fn(Registration) -> EventData) {
    let (now, sla, calendar) = (d.now, d.ctx.sla, d.ctx.calendar);
    let green = d.case.green_channel;
    let length = |kind: &ClockKind| {
        kind.length(sla, green, false)
            .map(|l| l.deadline(calendar, now))
    };
    // 五(一) 即收即审: an inspector starts the review within 1 working hour of receipt; on the
    // green channel within the hour, at any hour (即时研判).
    if let Some(deadline) = length(&ClockKind::ReviewStart) {
        d.start_clock(ClockKind::ReviewStart, deadline);
    }
    // 四(二): the handling method is decided within 3 working days of receipt; on the green
    // channel within the 1 working day the whole coordination has (五(一)).
    if let Some(deadline) = length(&ClockKind::Decision) {
        d.start_clock(ClockKind::Decision, deadline);
    }
    if d.case.green_channel {
        // 五(一) 绿色通道: the whole coordination is complete within 1 working day.
        d.start_clock(
            ClockKind::GreenCoordination,
            calendar.working_days_deadline(now, sla.green_coordination_working_days),
        );
    }
    let inspectors = people::with_role(d.roster(), Role::Inspector);
    let version = d.case.version;
    d.card(
        format!("{}/review/v{version}", d.case.case_no),
        CardKind::Review { version },
        inspectors,
    );
    if let Some(receipt) = receipt(&d.case) {
        d.notify([d.case.submitted_by.clone()], receipt);
    }
    let app = &d.case.application;
    let data = kind(Registration {
        version,
        ticket_no: d.case.ticket_no.clone(),
        green_channel: d.case.green_channel,
        category: app.category,
        requested_units: app.requested_units.clone(),
    });
    let first_unit = d.case.first_unit.clone();
    d.event(Some(&first_unit), data);
}

/// The receipt for the case's latest version (docs/spec.md → Submission); `None` only for a case
/// whose review clocks were never started, which registration rules out.
fn receipt(case: &Case) -> Option<Message> {
    let due = |kind: ClockKind| case.clock(&kind).map(Due::from);
    let app = &case.application;
    Some(Message::Receipt {
        version: case.version,
        first_unit: case.first_unit.clone(),
        requested_units: app.requested_units.clone(),
        unresolved_mentions: app.unresolved_mentions.clone(),
        city_level: app.city_level,
        category: app.category,
        review_due: due(ClockKind::ReviewStart)?,
        decision_due: due(ClockKind::Decision)?,
        coordination_due: if case.green_channel {
            due(ClockKind::GreenCoordination)
        } else {
            None
        },
    })
}

/// A registrable application: its first unit a member unit of the roster in force (the type
/// already guarantees it is complete). Returns (ticket_no, first_unit).
fn check_application(
    app: &Application,
    roster: &Roster,
) -> Result<(TicketNo, UnitName), Rejection> {
    let first_unit = app.first_unit.as_str();
    let member = roster
        .unit(first_unit)
        .is_some_and(|u| u.kind != UnitKind::Hotline);
    if !member {
        return Err(Rejection::new(
            RejectReason::FirstUnitNotMember,
            format!(
                "首接单位“{first_unit}”不是联合调处工作小组成员单位，未登记。请填写本单位在名单中的全称（如“区人社局”）。"
            ),
        ));
    }
    Ok((app.ticket_no.clone(), app.first_unit.clone()))
}

/// 四(一): the first unit's liaison (or its leader) sends the application; an admin may on its behalf.
fn authorise_first_unit(person: &Person, first_unit: &UnitName) -> Result<(), Rejection> {
    if people::speaks_for(person, first_unit) || person.has_role(Role::Admin) {
        return Ok(());
    }
    Err(Rejection::new(
        RejectReason::NotFirstUnit,
        format!(
            "该申请的首接单位是“{first_unit}”，只能由该单位的联络员或分管领导发送；您在名单中属于“{}”（{}）。",
            person.unit,
            people::roles_label(person)
        ),
    ))
}

fn check_same_ticket(case: &Case, ticket_no: &TicketNo) -> Result<(), Rejection> {
    if *ticket_no == case.ticket_no {
        return Ok(());
    }
    Err(Rejection::new(
        RejectReason::TicketMismatch,
        format!(
            "申请中的工单编号 {ticket_no} 与案件 {} 的工单编号 {} 不一致。请核对工单编号后重新发送。",
            case.case_no, case.ticket_no
        ),
    ))
}
