//! Timer firings (SPEC.md → Clocks): reminders at half-time and shortly before each deadline, and
//! at the deadline the breach with its escalation ladder — the responsible person, then their
//! leader or the hotline head, then the supervisor. A unit that does not answer in time is treated
//! like a refusal (四(三) 拒不配合 → 书面督办). Firing a timer of a stopped clock, or one that already
//! fired or was cancelled, is a no-op: the scheduler may deliver a firing twice or late.

use serde_json::json;

use super::case::{Case, RequestStatus, SupervisionGround};
use super::clock::{Clock, ClockKind, ClockState, Phase, TimerState};
use super::draft::Draft;
use super::effect::{Due, Message};
use super::event::EventKind;
use super::people::{self, Who};
use super::reject::{RejectReason, Rejection};
use super::{Call, Decision};
use crate::roster::{Role, Roster};

pub(super) fn fire(call: Call, key: &str) -> Result<Decision, Rejection> {
    let case = call.case;
    if let Who::Person(_) = call.who {
        return Err(Rejection::new(
            RejectReason::PersonNotAllowed,
            "定时提醒由系统按期限自动触发，不能手动触发。",
        ));
    }
    let found = case.clocks.iter().enumerate().find_map(|(ci, c)| {
        c.timers
            .iter()
            .position(|t| t.key == key)
            .map(|ti| (ci, ti))
    });
    let Some((ci, ti)) = found else {
        return Err(Rejection::new(
            RejectReason::UnknownTimer,
            format!("案件 {} 没有设置定时器 {key}。", case.case_no),
        ));
    };
    let clock = &case.clocks[ci];
    let timer = &clock.timers[ti];
    if !clock.is_running() || timer.state != TimerState::Pending {
        return Ok(Decision::unchanged(case));
    }
    let phase = timer.phase;
    let mut d = call.draft();
    d.case.clocks[ci].timers[ti].state = TimerState::Fired { at: call.now };
    match phase {
        Phase::Half | Phase::Soon => remind(&mut d, ci, phase),
        Phase::Due => breach(&mut d, ci),
    }
    Ok(d.finish())
}

/// A reminder to whoever must act on the clock.
fn remind(d: &mut Draft, ci: usize, phase: Phase) {
    let clock = &mut d.case.clocks[ci];
    clock.reminders_sent += 1;
    let clock = clock.clone();
    let remaining = d.ctx.calendar.working_minutes_between(d.now, clock.due);
    let to = responsible(d.roster(), &d.case, &clock.kind);
    d.notify(
        to,
        Message::Reminder {
            clock: clock.kind.clone(),
            phase,
            due: Due::from(&clock),
            remaining_minutes: remaining,
            count: clock.reminders_sent,
        },
    );
    d.event(
        EventKind::ReminderSent,
        clock.kind.unit(),
        json!({ "clock": clock.id, "phase": phase, "count": clock.reminders_sent }),
    );
}

/// The deadline passed with the duty undone: record the breach, tell the responsible person,
/// escalate, and for a unit's response treat the silence as a refusal.
fn breach(d: &mut Draft, ci: usize) {
    let now = d.now;
    d.case.clocks[ci].state = ClockState::Breached { at: now };
    let clock = d.case.clocks[ci].clone();
    // Reminders after the breach would only confuse.
    d.cancel_pending_timers(&clock.id);
    let due = Due::from(&clock);
    let unit = clock.kind.unit().map(str::to_string);
    d.event(
        EventKind::Breach,
        unit.as_deref(),
        json!({ "clock": clock.id, "due": clock.due }),
    );
    let responsible = responsible(d.roster(), &d.case, &clock.kind);
    d.notify(
        responsible.clone(),
        Message::Breach {
            clock: clock.kind.clone(),
            due: due.clone(),
        },
    );
    let escalate_to = escalation(d.roster(), &d.case, &clock.kind);
    d.notify(
        escalate_to.clone(),
        Message::Escalation {
            clock: clock.kind.clone(),
            due: due.clone(),
            responsible,
        },
    );
    d.event(
        EventKind::Escalated,
        unit.as_deref(),
        json!({ "clock": clock.id, "to": escalate_to }),
    );
    match &clock.kind {
        ClockKind::UnitResponse { unit } => unit_overdue(d, &clock, unit),
        ClockKind::Handling => {
            // SPEC.md → People: the supervisor supervises units that time out.
            let first_unit = d.case.first_unit.clone();
            let supervisors = people::with_role(d.roster(), Role::Supervisor);
            d.notify(
                supervisors,
                Message::SupervisionRequested {
                    unit: first_unit,
                    ground: SupervisionGround::HandlingOverdue,
                },
            );
        }
        ClockKind::ReviewStart | ClockKind::Decision | ClockKind::GreenCoordination => {}
    }
}

/// SPEC.md → Coordination: "No answer by the response deadline is treated like a refusal" —
/// 四(三) 拒不配合的，由区12345热线进行书面督办; the inspector is told so they can withdraw the unit.
fn unit_overdue(d: &mut Draft, clock: &Clock, unit: &str) {
    let now = d.now;
    let Some(request) = d.case.request_mut(unit).filter(|r| r.clock_id == clock.id) else {
        return;
    };
    if request.status != RequestStatus::Pending {
        return;
    }
    request.status = RequestStatus::Overdue;
    request.overdue_since = Some(now);
    d.event(
        EventKind::UnitOverdue,
        Some(unit),
        json!({ "due": clock.due }),
    );
    let supervisors = people::with_role(d.roster(), Role::Supervisor);
    d.notify(
        supervisors,
        Message::SupervisionRequested {
            unit: unit.to_string(),
            ground: SupervisionGround::Overdue,
        },
    );
    let inspectors = people::inspectors_on_duty(d.roster(), &d.case);
    d.notify(
        inspectors,
        Message::Breach {
            clock: clock.kind.clone(),
            due: Due::from(clock),
        },
    );
}

/// Who must act on a clock.
fn responsible(roster: &Roster, case: &Case, kind: &ClockKind) -> Vec<String> {
    match kind {
        // 五(一), 四(二): the inspectors (the claimer once there is one).
        ClockKind::ReviewStart | ClockKind::Decision | ClockKind::GreenCoordination => {
            people::inspectors_on_duty(roster, case)
        }
        ClockKind::UnitResponse { unit } => people::unit_contacts(roster, unit),
        // 五(二): the first unit leads the handling.
        ClockKind::Handling => people::unit_contacts(roster, &case.first_unit),
    }
}

/// The next rung of the ladder: a unit's leader; the hotline head for the hotline's own clocks.
fn escalation(roster: &Roster, case: &Case, kind: &ClockKind) -> Vec<String> {
    match kind {
        ClockKind::ReviewStart | ClockKind::Decision | ClockKind::GreenCoordination => {
            people::with_role(roster, Role::HotlineHead)
        }
        ClockKind::UnitResponse { unit } => people::unit_leaders(roster, unit),
        ClockKind::Handling => people::unit_leaders(roster, &case.first_unit),
    }
}
