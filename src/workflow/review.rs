//! Review (四(二) 质检研判定方向): an inspector claims the application and, within 3 working days,
//! decides joint mediation, independent handling, a return for more, or city escalation (四(一));
//! the hotline records the city's outcome.

use std::collections::BTreeSet;

use super::case::{
    CardKind, CityOutcome, Claim, DecisionKind, DecisionRecord, RequestStatus, State, UnitRequest,
};
use super::clock::ClockKind;
use super::draft::Draft;
use super::effect::{ClosedHow, Due, Message};
use super::event_data::{ClosedBy, EventData};
use super::input::CoordinationAsk;
use super::people;
use super::reject::{RejectReason, Rejection};
use super::{Call, Decision, required_text, wrong_state};
use crate::domain::{PersonId, UnitName};
use crate::roster::{Person, Role, UnitKind};

/// 审核: the first inspector to claim takes the review; 五(一) 即收即审 is met.
pub(super) fn claim(call: Call) -> Result<Decision, Rejection> {
    let case = call.case;
    let person = call.who.person()?;
    people::require_role(person, Role::Inspector)?;
    match (&case.state, &case.claim) {
        (State::Submitted, _) => {}
        (State::AwaitingLeader, _) => {
            return Err(wrong_state(
                case,
                "认领审核",
                "申请尚待首接单位分管领导确认，确认后会推送审核卡片。",
            ));
        }
        (State::Returned, _) => {
            return Err(wrong_state(
                case,
                "认领审核",
                "申请已退回，待首接单位补充后重新提交，届时会再次推送审核卡片。",
            ));
        }
        (_, Some(claim)) if claim.by == person.id() => {
            return Err(Rejection::new(
                RejectReason::AlreadyClaimed,
                format!("您已认领工单 {} 的审核，无需重复操作。", case.ticket_no),
            ));
        }
        (_, claim) => {
            let name = claim
                .as_ref()
                .map(|c| person_name(call, &c.by))
                .unwrap_or_default();
            return Err(Rejection::new(
                RejectReason::ClaimedByOther,
                format!(
                    "工单 {} 已由质检专员{name}认领审核，无需重复认领。",
                    case.ticket_no
                ),
            ));
        }
    }
    let mut d = call.draft();
    let on_time = on_time(&d, &ClockKind::ReviewStart);
    d.case.claim = Some(Claim {
        by: PersonId::of(person),
        at: call.now,
    });
    d.case.state = State::UnderReview;
    // 五(一): the review has started, so the "start within 1 working hour" clock stops.
    d.stop_clocks(|k| *k == ClockKind::ReviewStart);
    let inspector = people::person_ref(d.roster(), person.id());
    if let Some(inspector) = inspector {
        let to = people::first_unit_side(d.roster(), &d.case);
        d.notify(to, Message::Claimed { inspector });
    }
    d.event(
        None,
        EventData::Claimed {
            version: case.version,
            on_time,
        },
    );
    Ok(d.finish())
}

/// 联合: 四(二) names each cooperating unit's direction and focus; 四(三) each is asked and answers.
pub(super) fn decide_joint(call: Call, asks: &[CoordinationAsk]) -> Result<Decision, Rejection> {
    let person = deciding_inspector(call)?;
    let asks = check_units(call, asks)?;
    let mut d = call.draft();
    let units: Vec<UnitName> = asks.iter().map(|a| a.unit.clone()).collect();
    decided(
        &mut d,
        person,
        DecisionKind::Joint {
            units: units.clone(),
        },
        |version, on_time| EventData::DecidedJoint {
            version,
            units,
            on_time,
        },
    );
    d.case.state = State::Coordinating;
    for ask in &asks {
        request_unit(&mut d, person, ask);
    }
    let to = people::first_unit_side(d.roster(), &d.case);
    d.notify(to, Message::DecidedJoint { units: asks });
    Ok(d.finish())
}

/// 独立: 四(二) "无需其他单位配合" — the first unit and its leader get the path and basis; the case closes.
pub(super) fn decide_independent(call: Call, path_and_basis: &str) -> Result<Decision, Rejection> {
    let person = deciding_inspector(call)?;
    let path_and_basis = required_text(
        path_and_basis,
        "解决路径及政策依据",
        "独立 DH… 依据《…》第…条，由首接单位…",
    )?;
    let mut d = call.draft();
    let kind = DecisionKind::Independent {
        path_and_basis: path_and_basis.clone(),
    };
    decided(&mut d, person, kind, |version, on_time| {
        EventData::DecidedIndependent { version, on_time }
    });
    d.case.state = State::Independent;
    d.stop_all_clocks();
    let mut to = people::first_unit_side(d.roster(), &d.case);
    to.extend(people::unit_leaders(d.roster(), &d.case.first_unit));
    d.notify(to, Message::DecidedIndependent { path_and_basis });
    d.event(
        None,
        EventData::Closed {
            how: ClosedBy::Independent,
        },
    );
    Ok(d.finish())
}

/// 退回: the application lacks something; the first unit resubmits a corrected version.
pub(super) fn return_for_more(call: Call, reason: &str) -> Result<Decision, Rejection> {
    let person = deciding_inspector(call)?;
    let reason = required_text(
        reason,
        "退回原因",
        "退回 DH… 已采取措施不具体，请补充与企业对接的情况",
    )?;
    let mut d = call.draft();
    let kind = DecisionKind::Returned {
        reason: reason.clone(),
    };
    decided(&mut d, person, kind, |version, on_time| {
        EventData::Returned {
            version,
            reason: reason.clone(),
            on_time,
        }
    });
    d.case.state = State::Returned;
    // Every review clock belongs to this version; the resubmission starts new ones.
    d.stop_all_clocks();
    let to = people::first_unit_side(d.roster(), &d.case);
    d.notify(to, Message::Returned { reason });
    Ok(d.finish())
}

/// 市级: 四(一) city-level or cross-county units are needed; the city 12345 coordinates them.
pub(super) fn escalate_city(call: Call, note: &str) -> Result<Decision, Rejection> {
    let person = deciding_inspector(call)?;
    let note = required_text(
        note,
        "提请市级协调的说明",
        "市级 DH… 需市自然资源局协调土地权属",
    )?;
    let mut d = call.draft();
    decided(
        &mut d,
        person,
        DecisionKind::City { note: note.clone() },
        |version, on_time| EventData::DecidedCity { version, on_time },
    );
    d.case.state = State::CityEscalated;
    // The city coordinates from here: the district's own clocks stop, and the city's outcome
    // becomes a tracked stage (四(一); principle 7) with its own clock and reminders.
    d.stop_all_clocks();
    let due = ClockKind::CityAnswer
        .length(d.ctx.sla, d.case.green_channel, false)
        .map(|l| l.deadline(d.ctx.calendar, d.now));
    let due = due.map(|deadline| {
        let shown = Due::from(deadline.clone());
        d.start_clock(ClockKind::CityAnswer, deadline);
        shown
    });
    let app = &d.case.application;
    let escalation = Message::CityEscalation {
        note: note.clone(),
        first_unit: d.case.first_unit.clone(),
        title: app.title.clone(),
        coordination: app.coordination.clone(),
        due: due.clone(),
    };
    let city = people::with_role(d.roster(), Role::CitySupervisor);
    d.notify(city, escalation);
    let to = people::first_unit_side(d.roster(), &d.case);
    d.notify(to, Message::DecidedCity { note, due });
    Ok(d.finish())
}

/// The city's outcome, recorded by the hotline (docs/spec.md → Review); the case closes.
pub(super) fn record_city_outcome(call: Call, outcome: &str) -> Result<Decision, Rejection> {
    let case = call.case;
    let person = call.who.person()?;
    if !(people::is_hotline_staff(person) || person.has_role(Role::CitySupervisor)) {
        return Err(Rejection::new(
            RejectReason::NotHotlineStaff,
            format!(
                "市级协调结果由区12345热线或市热线督办登记，您在名单中的角色是{}。",
                people::roles_label(person)
            ),
        ));
    }
    if case.state != State::CityEscalated {
        return Err(wrong_state(
            case,
            "登记市级协调结果",
            "只有已提请市级协调的案件才需登记市级结果。",
        ));
    }
    let outcome = required_text(
        outcome,
        "市级协调结果",
        "市级结果 DH… 市自然资源局已完成确权，诉求已解决",
    )?;
    let mut d = call.draft();
    d.case.city_outcome = Some(CityOutcome {
        outcome: outcome.clone(),
        by: PersonId::of(person),
        at: call.now,
    });
    d.case.state = State::Closed;
    d.stop_all_clocks();
    let mut to = people::first_unit_side(d.roster(), &d.case);
    to.extend(people::unit_leaders(d.roster(), &d.case.first_unit));
    to.extend(people::inspectors_on_duty(d.roster(), &d.case));
    // Principle 7: the city supervisor who coordinated hears how it ended.
    to.extend(people::with_role(d.roster(), Role::CitySupervisor));
    d.notify(
        to,
        Message::Closed {
            how: ClosedHow::City {
                outcome: outcome.clone(),
            },
        },
    );
    d.event(None, EventData::CityOutcome { outcome });
    d.event(
        None,
        EventData::Closed {
            how: ClosedBy::City,
        },
    );
    Ok(d.finish())
}

/// The inspector allowed to decide: an inspector, on a case under review, who claimed it.
fn deciding_inspector<'a>(call: Call<'a>) -> Result<&'a Person, Rejection> {
    let case = call.case;
    let person = call.who.person()?;
    people::require_role(person, Role::Inspector)?;
    match case.state {
        State::UnderReview => {}
        State::AwaitingLeader => {
            return Err(wrong_state(
                case,
                "作出研判",
                "申请尚待首接单位分管领导确认，确认并认领审核后再作出研判。",
            ));
        }
        State::Submitted => {
            return Err(Rejection::new(
                RejectReason::NotClaimedYet,
                format!(
                    "工单 {0} 尚未认领审核。请先发送“审核 {0}”认领，再作出研判。",
                    case.ticket_no
                ),
            ));
        }
        _ => {
            return Err(Rejection::new(
                RejectReason::AlreadyDecided,
                format!(
                    "工单 {} 已作出研判（目前处于“{}”阶段），不能重复研判。",
                    case.ticket_no,
                    case.state.label()
                ),
            ));
        }
    }
    match &case.claim {
        Some(claim) if claim.by == person.id() => Ok(person),
        claim => {
            let name = claim
                .as_ref()
                .map(|c| person_name(call, &c.by))
                .unwrap_or_default();
            Err(Rejection::new(
                RejectReason::NotClaimer,
                format!(
                    "工单 {} 由质检专员{name}认领审核，研判须由认领人作出。如需转交，请与{name}联系。",
                    case.ticket_no
                ),
            ))
        }
    }
}

/// Records a decision: the decision clock stops (四(二) met); `event` makes its audit event from
/// the version decided and whether the decision clock was met.
fn decided(
    d: &mut Draft,
    person: &Person,
    kind: DecisionKind,
    event: impl FnOnce(u32, bool) -> EventData,
) {
    let on_time = on_time(d, &ClockKind::Decision);
    d.stop_clocks(|k| *k == ClockKind::Decision);
    let version = d.case.version;
    d.case.decisions.push(DecisionRecord {
        version,
        by: PersonId::of(person),
        at: d.now,
        kind,
    });
    d.event(None, event(version, on_time));
}

/// The cooperating units of a joint decision, checked: member units other than the first unit,
/// each once, each with a direction, each reachable through the roster.
fn check_units(call: Call, asks: &[CoordinationAsk]) -> Result<Vec<CoordinationAsk>, Rejection> {
    let case = call.case;
    let roster = call.ctx.roster;
    if asks.is_empty() {
        return Err(Rejection::new(
            RejectReason::NoUnits,
            format!(
                "联合调处须至少指定一个配合单位及其协同方向，例如：联合 {} 区住建局：核实项目资金拨付情况",
                case.ticket_no
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for ask in asks {
        let unit = ask.unit.trim();
        let Some(found) = roster.unit(unit) else {
            return Err(Rejection::new(
                RejectReason::UnknownUnit,
                format!(
                    "“{unit}”不在成员单位名单中。请使用名单中的单位全称（如“区住建局”）；市级或跨区县单位请改用“市级”提请市级协调。"
                ),
            ));
        };
        if found.kind == UnitKind::Hotline {
            return Err(Rejection::new(
                RejectReason::NotCooperatingUnit,
                format!("“{unit}”是热线平台，不是配合单位，不能作为协办单位。"),
            ));
        }
        if unit == case.first_unit {
            return Err(Rejection::new(
                RejectReason::FirstUnitAsCooperator,
                format!("“{unit}”是本案首接单位（牵头方），不能同时作为配合单位。"),
            ));
        }
        if !seen.insert(unit.to_string()) {
            return Err(Rejection::new(
                RejectReason::DuplicateUnit,
                format!("“{unit}”重复出现，请每个配合单位只写一次，把协同方向合并写在一处。"),
            ));
        }
        let direction = ask.direction.trim();
        if direction.is_empty() {
            return Err(Rejection::new(
                RejectReason::MissingDirection,
                format!("请写明“{unit}”的协同方向及重点，例如：{unit}：核实现场情况并提供相关数据"),
            ));
        }
        if people::unit_contacts(roster, unit).is_empty() {
            return Err(Rejection::new(
                RejectReason::UnitUnreachable,
                format!(
                    "“{unit}”在名单中没有联络员或分管领导，无法发送协调通知。请管理员先补充该单位人员。"
                ),
            ));
        }
        out.push(CoordinationAsk {
            unit: UnitName::of(found),
            direction: direction.to_string(),
        });
    }
    Ok(out)
}

/// 四(三): asks one unit to cooperate — its response clock, its card to the liaisons, a notice to
/// its leader (二、组织领导: leaders organise the cooperation their unit is asked for).
fn request_unit(d: &mut Draft, person: &Person, ask: &CoordinationAsk) {
    let (now, sla, calendar) = (d.now, d.ctx.sla, d.ctx.calendar);
    let deadline = if d.case.green_channel {
        // 五(一) green channel: answers within working hours, so coordination fits in 1 working day.
        calendar.add_working_minutes(
            now,
            sla.green_unit_response_working_hours.saturating_mul(60),
        )
    } else {
        calendar.working_days_deadline(now, sla.unit_response_working_days)
    };
    let due = Due::from(deadline.clone());
    let clock_id = d.start_clock(
        ClockKind::UnitResponse {
            unit: ask.unit.clone(),
        },
        deadline,
    );
    let earlier = d
        .case
        .requests
        .iter()
        .filter(|r| r.unit == ask.unit)
        .count();
    let card_key = match earlier {
        0 => format!("{}/coordination/{}", d.case.case_no, ask.unit),
        n => format!("{}/coordination/{}#{}", d.case.case_no, ask.unit, n + 1),
    };
    let contacts = people::unit_contacts(d.roster(), &ask.unit);
    d.card(
        card_key.clone(),
        CardKind::Coordination {
            unit: ask.unit.clone(),
        },
        contacts.clone(),
    );
    let leaders: Vec<PersonId> = people::unit_leaders(d.roster(), &ask.unit)
        .into_iter()
        .filter(|id| !contacts.contains(id))
        .collect();
    let first_unit_contact = people::first_unit_contact(d.roster(), &d.case);
    d.notify(
        leaders,
        Message::CoordinationRequest {
            unit: ask.unit.clone(),
            direction: ask.direction.clone(),
            due: due.clone(),
            first_unit_contact,
        },
    );
    d.case.requests.push(UnitRequest {
        unit: ask.unit.clone(),
        direction: ask.direction.clone(),
        requested_at: now,
        requested_by: PersonId::of(person),
        due: due.at,
        clock_id,
        card_key,
        status: RequestStatus::Pending,
        objection: None,
        overdue_since: None,
        insist_reason: None,
    });
    d.event(
        Some(&ask.unit),
        EventData::UnitRequested {
            direction: ask.direction.clone(),
            due: due.at,
        },
    );
}

/// Whether the latest clock of `kind` is met now by its deadline (true when there is none).
pub(super) fn on_time(d: &Draft, kind: &ClockKind) -> bool {
    d.case.clock(kind).is_none_or(|c| c.met_on_time(d.now))
}

fn person_name(call: Call, id: &str) -> String {
    call.ctx
        .roster
        .person(id)
        .map(|p| p.name.clone())
        .unwrap_or_else(|| id.to_string())
}
