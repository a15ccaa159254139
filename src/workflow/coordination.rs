//! Coordination (四(三) 协作联动破难题): each cooperating unit accepts — contact, position, phone
//! and the help it gives — or objects; the inspector withdraws or insists on an objection; units
//! that object and are insisted on, or do not answer in time, get written supervision (书面督办)
//! from the hotline. When every remaining unit accepted, joint handling starts (五(二)).

use jiff::Timestamp;
use jiff::civil::{Date, Time};

use super::case::{
    Acceptance, Contact, Objection, RequestStatus, State, Supervision, SupervisionGround,
    UnitRequest,
};
use super::clock::ClockKind;
use super::draft::Draft;
use super::effect::{CoordinationUpdate, Due, Message};
use super::event_data::{EventData, WithdrawnFrom};
use super::input::HelpItem;
use super::people;
use super::reject::{RejectReason, Rejection};
use super::{Call, Decision, required_text, wrong_state};
use crate::calendar::{Calendar, Deadline};
use crate::domain::{PersonId, UnitName};
use crate::roster::{Person, Role};

/// 接受: the unit gives a contact and the help it offers, and joins the case (四(三)).
///
/// Allowed while the request is pending, objected, insisted on or overdue: a unit may always come
/// round, and after written supervision accepting is exactly what is asked of it.
pub(super) fn accept(
    call: Call,
    unit: &UnitName,
    contact_name: &str,
    position: &str,
    phone: &str,
    help: &[HelpItem],
) -> Result<Decision, Rejection> {
    let (person, request) = answering(call, unit)?;
    match request.status {
        RequestStatus::Pending
        | RequestStatus::Objected
        | RequestStatus::Insisted { .. }
        | RequestStatus::Overdue => {}
        RequestStatus::Accepted(_) => return Err(already_accepted(call, unit)),
        RequestStatus::Withdrawn { .. } => return Err(request_withdrawn(call, unit)),
    }
    let contact = check_contact(unit, contact_name, position, phone, help)?;
    let mut d = call.draft();
    let on_time = call.now <= request.due;
    let clock_id = request.clock_id.clone();
    if let Some(r) = d.case.request_mut(unit) {
        r.status = RequestStatus::Accepted(Acceptance {
            by: PersonId::of(person),
            at: call.now,
            contact: contact.clone(),
            on_time,
        });
    }
    d.stop_clock(&clock_id);
    stop_supervised(&mut d, unit);
    let help: Vec<String> = contact.help.iter().map(HelpItem::label).collect();
    d.event(Some(unit), EventData::UnitAccepted { on_time, help });
    // The inspector hears of each answer; the first unit gets every contact once, in 联系人已齐
    // when the last unit has accepted (SPEC.md → Coordination), not each contact twice.
    let to = people::inspectors_on_duty(d.roster(), &d.case);
    d.notify(to, Message::UnitAccepted { contact });
    settle(&mut d);
    Ok(d.finish())
}

/// 异议: the unit objects with a reason; the inspector decides (docs/spec.md → Coordination), and the
/// unit's leader is told (docs/spec.md → People).
pub(super) fn object(call: Call, unit: &UnitName, reason: &str) -> Result<Decision, Rejection> {
    let (person, request) = answering(call, unit)?;
    match request.status {
        RequestStatus::Pending | RequestStatus::Overdue => {}
        RequestStatus::Objected => {
            return Err(Rejection::new(
                RejectReason::AlreadyObjected,
                format!(
                    "{unit}已对工单 {} 提出异议，正等待质检专员处理，无需重复提交。",
                    call.case.ticket_no
                ),
            ));
        }
        RequestStatus::Insisted { .. } => {
            return Err(Rejection::new(
                RejectReason::ObjectionAlreadyDecided,
                format!(
                    "质检专员已研究{unit}的异议并决定继续请求协办，将由区12345热线书面督办。请按要求接受协办（发送“接受 {} 联系人：… 职务：… 电话：… 协助：…”）。",
                    call.case.ticket_no
                ),
            ));
        }
        RequestStatus::Accepted(_) => return Err(already_accepted(call, unit)),
        RequestStatus::Withdrawn { .. } => return Err(request_withdrawn(call, unit)),
    }
    let reason = required_text(
        reason,
        "异议理由",
        "异议 DH… 该事项不属于本单位职责，依据是…",
    )?;
    let mut d = call.draft();
    let on_time = call.now <= request.due;
    let clock_id = request.clock_id.clone();
    if let Some(r) = d.case.request_mut(unit) {
        r.status = RequestStatus::Objected;
        r.objection = Some(Objection {
            by: PersonId::of(person),
            at: call.now,
            reason: reason.clone(),
        });
    }
    // An objection is an answer: the response clock stops.
    d.stop_clock(&clock_id);
    d.event(
        Some(unit),
        EventData::UnitObjected {
            reason: reason.clone(),
            on_time,
        },
    );
    let mut to = people::inspectors_on_duty(d.roster(), &d.case);
    to.extend(people::unit_leaders(d.roster(), unit));
    d.notify(
        to,
        Message::ObjectionRaised {
            unit: unit.clone(),
            reason: reason.clone(),
        },
    );
    let first = people::first_unit_side(d.roster(), &d.case);
    d.notify(
        first,
        Message::CoordinationUpdate {
            unit: unit.clone(),
            update: CoordinationUpdate::Objected { reason },
        },
    );
    Ok(d.finish())
}

/// 撤回: the inspector drops an objecting, insisted-on or overdue unit from the case.
pub(super) fn withdraw(call: Call, unit: &UnitName) -> Result<Decision, Rejection> {
    let (person, request) = deciding_on(call, unit)?;
    let status_before = match request.status {
        RequestStatus::Objected => WithdrawnFrom::Objected,
        RequestStatus::Insisted { .. } => WithdrawnFrom::Insisted,
        RequestStatus::Overdue => WithdrawnFrom::Overdue,
        RequestStatus::Withdrawn { .. } => return Err(already_withdrawn(call, unit)),
        RequestStatus::Pending | RequestStatus::Accepted(_) => {
            return Err(nothing_to_decide(call, unit, request));
        }
    };
    let mut d = call.draft();
    let clock_id = request.clock_id.clone();
    if let Some(r) = d.case.request_mut(unit) {
        r.status = RequestStatus::Withdrawn {
            by: PersonId::of(person),
            at: call.now,
        };
    }
    d.stop_clock(&clock_id);
    stop_supervised(&mut d, unit);
    d.event(Some(unit), EventData::ObjectionWithdrawn { status_before });
    let mut to = people::unit_contacts(d.roster(), unit);
    to.extend(people::unit_leaders(d.roster(), unit));
    to.extend(people::first_unit_side(d.roster(), &d.case));
    d.notify(to, Message::RequestWithdrawn { unit: unit.clone() });
    settle(&mut d);
    Ok(d.finish())
}

/// 坚持: the inspector keeps the request; 四(三) "有异议的…由区12345热线进行书面督办". The
/// inspector's reason reaches the unit, the supervisor (in the drafted 书面督办) and the first unit.
pub(super) fn insist(call: Call, unit: &UnitName, reason: &str) -> Result<Decision, Rejection> {
    let (person, request) = deciding_on(call, unit)?;
    match request.status {
        RequestStatus::Objected => {}
        RequestStatus::Insisted { .. } => {
            return Err(Rejection::new(
                RejectReason::AlreadyInsisted,
                format!("您已决定对{unit}继续请求协办，已提请督办专员书面督办，无需重复操作。"),
            ));
        }
        RequestStatus::Withdrawn { .. } => return Err(already_withdrawn(call, unit)),
        RequestStatus::Pending | RequestStatus::Accepted(_) | RequestStatus::Overdue => {
            return Err(nothing_to_decide(call, unit, request));
        }
    }
    let objection = request
        .objection
        .as_ref()
        .map(|o| o.reason.clone())
        .unwrap_or_default();
    let reason = reason.trim().to_string();
    let mut d = call.draft();
    if let Some(r) = d.case.request_mut(unit) {
        r.status = RequestStatus::Insisted {
            by: PersonId::of(person),
            at: call.now,
        };
        r.insist_reason = Some(reason.clone()).filter(|x| !x.is_empty());
    }
    d.event(Some(unit), EventData::ObjectionUpheld {});
    let supervisors = people::with_role(d.roster(), Role::Supervisor);
    d.notify(
        supervisors,
        Message::SupervisionRequested {
            unit: unit.clone(),
            ground: SupervisionGround::Insisted,
        },
    );
    let mut to = people::unit_contacts(d.roster(), unit);
    to.extend(people::unit_leaders(d.roster(), unit));
    d.notify(
        to,
        Message::RequestInsisted {
            unit: unit.clone(),
            objection,
            reason: reason.clone(),
        },
    );
    let first = people::first_unit_side(d.roster(), &d.case);
    d.notify(
        first,
        Message::CoordinationUpdate {
            unit: unit.clone(),
            update: CoordinationUpdate::Insisted { reason },
        },
    );
    Ok(d.finish())
}

/// 督办: 四(三) written supervision to a unit that objected and was insisted on or did not answer
/// in time; docs/spec.md → People adds the first unit once it passed its handling deadline.
pub(super) fn supervise(call: Call, unit: &UnitName, content: &str) -> Result<Decision, Rejection> {
    let case = call.case;
    let person = call.who.person()?;
    people::require_role(person, Role::Supervisor)?;
    if !matches!(case.state, State::Coordinating | State::JointHandling) {
        return Err(wrong_state(
            case,
            "签发书面督办",
            "书面督办用于协调和联合处置阶段。",
        ));
    }
    let ground = match case.request(unit).map(|r| &r.status) {
        Some(RequestStatus::Insisted { .. }) => SupervisionGround::Insisted,
        Some(RequestStatus::Overdue) => SupervisionGround::Overdue,
        _ if *unit == case.first_unit
            && case
                .clock(&ClockKind::Handling)
                .is_some_and(|c| c.is_breached()) =>
        {
            SupervisionGround::HandlingOverdue
        }
        _ => {
            return Err(Rejection::new(
                RejectReason::NothingToSupervise,
                format!(
                    "“{unit}”在工单 {} 中没有经质检专员坚持的异议、超时未答复或办理超时的情况，无需书面督办。",
                    case.ticket_no
                ),
            ));
        }
    };
    let content = required_text(
        content,
        "督办内容",
        "督办 DH… 区住建局 请于今日内明确联系人并到岗履职",
    )?;
    let repeated = case
        .supervisions
        .iter()
        .rev()
        .find(|s| s.unit == *unit)
        .is_some_and(|s| s.content == content);
    if repeated {
        return Err(Rejection::new(
            RejectReason::DuplicateSupervision,
            format!("已向{unit}签发过内容相同的书面督办，无需重复签发。"),
        ));
    }
    let mut d = call.draft();
    let number = u32::try_from(case.supervisions.len()).map_or(u32::MAX, |n| n.saturating_add(1));
    d.case.supervisions.push(Supervision {
        number,
        unit: unit.clone(),
        content: content.clone(),
        ground,
        by: PersonId::of(person),
        at: call.now,
    });
    d.event(Some(unit), EventData::SupervisionIssued { number, ground });
    // Principle 6: an issued 督办 sets a new deadline, reminded and escalated like any other
    // clock: to answer (四(三) 书面督办; the same time to answer as the request had), or for a
    // first unit past its handling deadline to complete (五(四) 限期整改, which names no period:
    // the same time). A later 督办 to the same unit replaces the earlier one's clock.
    let kind = match ground {
        SupervisionGround::Insisted | SupervisionGround::Overdue => {
            stop_supervised(&mut d, unit);
            ClockKind::SupervisedResponse { unit: unit.clone() }
        }
        SupervisionGround::HandlingOverdue => {
            d.stop_clocks(|k| *k == ClockKind::SupervisedHandling);
            ClockKind::SupervisedHandling
        }
    };
    let due = kind
        .length(d.ctx.sla, d.case.green_channel, false)
        .map(|l| l.deadline(d.ctx.calendar, d.now))
        .map(|deadline| {
            let shown = Due::from(deadline.clone());
            d.start_clock(kind, deadline);
            shown
        });
    let mut to = people::unit_contacts(d.roster(), unit);
    to.extend(people::unit_leaders(d.roster(), unit));
    to.extend(people::inspectors_on_duty(d.roster(), &d.case));
    d.notify(
        to,
        Message::Supervision {
            number,
            unit: unit.clone(),
            content,
            ground,
            due: due.clone(),
        },
    );
    if *unit != d.case.first_unit {
        let first = people::first_unit_side(d.roster(), &d.case);
        d.notify(
            first,
            Message::CoordinationUpdate {
                unit: unit.clone(),
                update: CoordinationUpdate::Supervised { number, due },
            },
        );
    }
    Ok(d.finish())
}

/// Stops the answer clock a 书面督办 set for `unit`: it answered, was withdrawn, or a new 督办
/// replaces it.
fn stop_supervised(d: &mut Draft, unit: &UnitName) {
    d.stop_clocks(|k| matches!(k, ClockKind::SupervisedResponse { unit: u } if u == unit));
}

/// After an answer or a withdrawal: when every request still in play is accepted, joint handling
/// starts; when none is left, the inspector decides again.
fn settle(d: &mut Draft) {
    if d.case.state != State::Coordinating {
        return;
    }
    let active = d.case.active_requests().count();
    let all_accepted = d
        .case
        .active_requests()
        .all(|r| matches!(r.status, RequestStatus::Accepted(_)));
    if active == 0 {
        reopen_review(d);
    } else if all_accepted {
        start_joint_handling(d);
    }
}

/// 五(二): every remaining unit accepted; the first unit leads, gets all contacts in one message,
/// and the handling clock starts (the ticket's own deadline when given).
fn start_joint_handling(d: &mut Draft) {
    d.case.state = State::JointHandling;
    // 五(一) green channel: the coordination is complete.
    d.stop_clocks(|k| *k == ClockKind::GreenCoordination);
    let deadline = match d.case.application.deadline {
        Some(date) => ticket_deadline(d.ctx.calendar, date),
        None => d
            .ctx
            .calendar
            .working_days_deadline(d.now, d.ctx.sla.handling_working_days),
    };
    let handling_due = Due::from(deadline.clone());
    d.start_clock(ClockKind::Handling, deadline);
    let contacts: Vec<Contact> = d
        .case
        .accepted_units()
        .filter_map(|r| match &r.status {
            RequestStatus::Accepted(a) => Some(a.contact.clone()),
            _ => None,
        })
        .collect();
    let units: Vec<UnitName> = contacts.iter().map(|c| c.unit.clone()).collect();
    let first_side = people::first_unit_side(d.roster(), &d.case);
    d.notify(
        first_side,
        Message::ContactsReady {
            contacts,
            handling_due: handling_due.clone(),
        },
    );
    let first_unit_contact = people::first_unit_contact(d.roster(), &d.case);
    let cooperating: Vec<PersonId> = units
        .iter()
        .flat_map(|u| people::unit_contacts(d.roster(), u))
        .collect();
    d.notify(
        cooperating,
        Message::JointHandlingStarted {
            first_unit_contact,
            handling_due: handling_due.clone(),
        },
    );
    d.event(
        None,
        EventData::JointHandlingStarted {
            units,
            handling_due: handling_due.at,
        },
    );
}

/// Every requested unit was withdrawn: the joint decision no longer stands and 四(二) leaves the
/// handling method to the inspector, so the case goes back to review with a new decision clock.
fn reopen_review(d: &mut Draft) {
    d.case.state = State::UnderReview;
    // 四(二); on the green channel within its 1 working day (五(一)), as at registration.
    let days = if d.case.green_channel {
        d.ctx
            .sla
            .decision_working_days
            .min(d.ctx.sla.green_coordination_working_days)
    } else {
        d.ctx.sla.decision_working_days
    };
    let deadline = d.ctx.calendar.working_days_deadline(d.now, days);
    let decision_due = Due::from(deadline.clone());
    d.start_clock(ClockKind::Decision, deadline);
    let withdrawn: Vec<UnitName> = match d.case.last_decision().map(|r| &r.kind) {
        Some(super::case::DecisionKind::Joint { units }) => units.clone(),
        _ => Vec::new(),
    };
    let to = people::inspectors_on_duty(d.roster(), &d.case);
    d.notify(
        to,
        Message::DecisionReopened {
            withdrawn: withdrawn.clone(),
            decision_due,
        },
    );
    d.event(None, EventData::DecisionReopened { withdrawn });
}

/// The ticket's own 办理时限: due at the end of that date's last working period, as every
/// day-count deadline is (docs/spec.md → Clocks).
fn ticket_deadline(calendar: &Calendar, date: Date) -> Deadline {
    let end = calendar
        .hours()
        .periods()
        .last()
        .map_or(24 * 60, |p| p.end_minute());
    let (date, end) = if end >= 24 * 60 {
        (date.tomorrow().unwrap_or(date), end - 24 * 60)
    } else {
        (date, end)
    };
    let time = Time::new((end / 60) as i8, (end % 60) as i8, 0, 0).unwrap_or(Time::MAX);
    let due = date
        .to_datetime(time)
        .to_zoned(calendar.time_zone().clone())
        .map_or(Timestamp::MAX, |z| z.timestamp());
    Deadline {
        due,
        provisional: false,
        explanation: format!("截止 {}，为工单自带的办理时限", calendar.display(due)),
    }
}

/// The unit member answering a request for `unit`, and that request.
fn answering<'a>(
    call: Call<'a>,
    unit: &UnitName,
) -> Result<(&'a Person, &'a UnitRequest), Rejection> {
    let person = call.who.person()?;
    if !people::speaks_for(person, unit) {
        return Err(Rejection::new(
            RejectReason::NotUnitMember,
            format!(
                "只有{unit}的联络员或分管领导可以答复该协调请求；您在名单中属于“{}”（{}）。",
                person.unit,
                people::roles_label(person)
            ),
        ));
    }
    let request = call
        .case
        .request(unit)
        .ok_or_else(|| not_requested(call, unit))?;
    if call.case.state != State::Coordinating && !request.status.is_settled() {
        return Err(wrong_state(call.case, "答复协调请求", ""));
    }
    Ok((person, request))
}

/// The claiming inspector deciding on `unit`'s request while the case is in coordination.
fn deciding_on<'a>(
    call: Call<'a>,
    unit: &UnitName,
) -> Result<(&'a Person, &'a UnitRequest), Rejection> {
    let case = call.case;
    let person = call.who.person()?;
    people::require_role(person, Role::Inspector)?;
    if case.inspector().map(PersonId::as_str) != Some(person.id()) {
        let name = case
            .inspector()
            .and_then(|id| call.ctx.roster.person(id))
            .map(|p| p.name.clone())
            .unwrap_or_default();
        return Err(Rejection::new(
            RejectReason::NotClaimer,
            format!(
                "工单 {} 由质检专员{name}认领研判，撤回或坚持须由认领人决定。",
                case.ticket_no
            ),
        ));
    }
    let request = case
        .request(unit)
        .ok_or_else(|| not_requested(call, unit))?;
    if case.state != State::Coordinating && !request.status.is_settled() {
        return Err(wrong_state(case, "处理异议", ""));
    }
    Ok((person, request))
}

/// 四(三): a contact person's name, position and phone, and what the unit can help with.
fn check_contact(
    unit: &UnitName,
    name: &str,
    position: &str,
    phone: &str,
    help: &[HelpItem],
) -> Result<Contact, Rejection> {
    let mut problems = Vec::new();
    if name.trim().is_empty() {
        problems.push("联系人姓名");
    }
    if position.trim().is_empty() {
        problems.push("职务");
    }
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let phone_ok = phone
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '-' | ' ' | '+'))
        && (7..=13).contains(&digits);
    if !phone_ok {
        problems.push("有效的联系电话");
    }
    let help: Vec<HelpItem> = help
        .iter()
        .filter(|h| !matches!(h, HelpItem::Other(text) if text.trim().is_empty()))
        .cloned()
        .collect();
    if help.is_empty() {
        problems.push("可协助事项（现场核查、数据共享、政策解释或其他）");
    }
    if !problems.is_empty() {
        return Err(Rejection::new(
            RejectReason::IncompleteAcceptance,
            format!(
                "接受协办须提供{}。格式：接受 DH… 联系人：张三 职务：股长 电话：13800000000 协助：现场核查、政策解释",
                problems.join("、")
            ),
        ));
    }
    Ok(Contact {
        unit: unit.clone(),
        name: name.trim().to_string(),
        position: position.trim().to_string(),
        phone: phone.trim().to_string(),
        help,
    })
}

fn not_requested(call: Call, unit: &UnitName) -> Rejection {
    Rejection::new(
        RejectReason::UnitNotRequested,
        format!(
            "工单 {} 没有请{unit}协办。请核对工单编号和单位名称。",
            call.case.ticket_no
        ),
    )
}

fn already_accepted(call: Call, unit: &UnitName) -> Rejection {
    Rejection::new(
        RejectReason::AlreadyAccepted,
        format!(
            "{unit}已接受工单 {} 的协办，无需重复操作。如需更正联系人，请通过“进展”告知首接单位。",
            call.case.ticket_no
        ),
    )
}

fn request_withdrawn(call: Call, unit: &UnitName) -> Rejection {
    Rejection::new(
        RejectReason::RequestWithdrawn,
        format!(
            "质检专员已撤回对{unit}的协办请求（工单 {}），无需再答复。",
            call.case.ticket_no
        ),
    )
}

fn already_withdrawn(call: Call, unit: &UnitName) -> Rejection {
    Rejection::new(
        RejectReason::AlreadyWithdrawn,
        format!(
            "工单 {} 对{unit}的协办请求已撤回，无需重复操作。",
            call.case.ticket_no
        ),
    )
}

fn nothing_to_decide(call: Call, unit: &UnitName, request: &UnitRequest) -> Rejection {
    Rejection::new(
        RejectReason::NoObjectionToDecide,
        format!(
            "{unit}在工单 {} 中的状态为“{}”，没有待处理的异议。撤回适用于提出异议、督办中或超时未答复的单位；坚持只适用于提出异议的单位。",
            call.case.ticket_no,
            request.status.label()
        ),
    )
}
