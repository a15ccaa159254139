//! Timer firings (docs/spec.md → Clocks): reminders at half-time and shortly before each deadline, and
//! at the deadline the breach with its escalation ladder — the responsible person, then their
//! leader or the hotline head, then (for a unit) the supervisor with a drafted 书面督办. A unit that
//! does not answer in time is treated like a refusal (四(三) 拒不配合 → 书面督办). Firing a timer of
//! a stopped clock, or one that already fired or was cancelled, is a no-op: the scheduler may
//! deliver a firing twice or late.
//!
//! Only in working hours (docs/spec.md → Clocks), green-channel cases excepted (五(一)): a firing
//! outside them moves its timer to the next working time and says nothing yet. Several firings
//! of one clock due at once (after downtime) collapse into the latest phase — a breach makes the
//! reminders before it moot — and the skipped phases are recorded on its event. A firing more
//! than [`CATCH_UP_AFTER_MINUTES`] late is a catch-up: each person gets ONE message for the case,
//! naming how late it is, instead of one per firing.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::case::{Case, RequestStatus, SupervisionGround};
use super::clock::{CaseClock, ClockKind, ClockState, Phase, TimerState};
use super::draft::Draft;
use super::effect::{CoordinationUpdate, Due, Message};
use super::event_data::EventData;
use super::people::{self, Who};
use super::reject::{RejectReason, Rejection};
use super::{Call, Decision};
use crate::domain::{PersonId, UnitName};
use crate::roster::{Role, Roster};

/// A firing this many minutes past its time (working minutes; wall-clock minutes for the green
/// channel, whose timers run at any hour) came due while nobody fired it: the service was down.
/// The scheduler wakes at each due time and checks at least every minute, so a punctual firing
/// is never this late.
pub const CATCH_UP_AFTER_MINUTES: i64 = 10;

pub(super) fn fire(call: Call, key: &str) -> Result<Decision, Rejection> {
    fire_all(call, &[key.to_string()], true)
}

/// Fires every pending timer of the case among `keys` that belongs to a running clock. A late
/// batch is a catch-up only when `downtime_possible` (not after a sandbox clock move).
pub(super) fn fire_all(
    call: Call,
    keys: &[String],
    downtime_possible: bool,
) -> Result<Decision, Rejection> {
    let case = call.case;
    if let Who::Person(_) = call.who {
        return Err(Rejection::new(
            RejectReason::PersonNotAllowed,
            "定时提醒由系统按期限自动触发，不能手动触发。",
        ));
    }
    // Clock index → indices of its due timers, in clock order.
    let mut due: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut known = false;
    for key in keys {
        let found = case.clocks.iter().enumerate().find_map(|(ci, c)| {
            c.timers
                .iter()
                .position(|t| &t.key == key)
                .map(|ti| (ci, ti))
        });
        let Some((ci, ti)) = found else { continue };
        known = true;
        let clock = &case.clocks[ci];
        if clock.is_running() && clock.timers[ti].state == TimerState::Pending {
            due.entry(ci).or_default().push(ti);
        }
    }
    if !known {
        return Err(Rejection::new(
            RejectReason::UnknownTimer,
            format!("案件 {} 没有设置定时器 {}。", case.case_no, keys.join("、")),
        ));
    }
    if due.is_empty() {
        return Ok(Decision::unchanged(case));
    }
    let mut d = call.draft();
    let (now, calendar) = (d.now, d.ctx.calendar);
    if !d.case.green_channel && !calendar.is_working_time(now) {
        // docs/spec.md → Clocks: reminders only in working hours; the green channel at any hour.
        let at = calendar.next_working_time(now);
        for (ci, tis) in &due {
            for ti in tis {
                d.set_timer_at(*ci, *ti, at);
            }
        }
        return Ok(d.finish());
    }
    let late = |at: Timestamp| -> i64 {
        if d.case.green_channel {
            now.duration_since(at).as_mins()
        } else {
            calendar.working_minutes_between(at, now)
        }
    };
    let earliest = due
        .iter()
        .flat_map(|(ci, tis)| tis.iter().map(|ti| case.clocks[*ci].timers[*ti].due_at))
        .min()
        .unwrap_or(now);
    let catch_up = downtime_possible
        && due
            .iter()
            .flat_map(|(ci, tis)| tis.iter().map(|ti| case.clocks[*ci].timers[*ti].due_at))
            .any(|at| late(at) > CATCH_UP_AFTER_MINUTES);
    let late_minutes = now.duration_since(earliest).as_mins().max(0);
    let mut sends = Sends::default();
    for (ci, tis) in due {
        let clock = &mut d.case.clocks[ci];
        for &ti in &tis {
            clock.timers[ti].state = TimerState::Fired { at: now };
        }
        let top = tis
            .iter()
            .map(|&ti| clock.timers[ti].phase)
            .max_by_key(|p| phase_rank(*p))
            .unwrap_or(Phase::Due);
        let extra = CatchUp {
            late_minutes: catch_up.then_some(late_minutes),
            skipped: tis
                .iter()
                .map(|&ti| clock.timers[ti].phase)
                .filter(|p| *p != top)
                .collect(),
        };
        match top {
            Phase::Start | Phase::Half | Phase::Soon => remind(&mut d, &mut sends, ci, top, extra),
            Phase::Due => breach(&mut d, &mut sends, ci, extra),
        }
    }
    if catch_up {
        for (to, items) in sends.by_person() {
            d.notify(
                [to],
                Message::CatchUp {
                    scheduled: earliest,
                    late_minutes,
                    items,
                },
            );
        }
    } else {
        for (to, message) in sends.0 {
            d.notify(to, message);
        }
    }
    Ok(d.finish())
}

/// Phases in the order they fire.
fn phase_rank(p: Phase) -> u8 {
    match p {
        Phase::Start => 0,
        Phase::Half => 1,
        Phase::Soon => 2,
        Phase::Due => 3,
    }
}

/// The messages one firing produces, in order, before they are sent one by one or folded into
/// one catch-up message per person.
#[derive(Default)]
struct Sends(Vec<(Vec<PersonId>, Message)>);

impl Sends {
    fn push(&mut self, to: Vec<PersonId>, message: Message) {
        self.0.push((to, message));
    }

    /// Each person's messages, people in order of first mention, each message once.
    fn by_person(self) -> Vec<(PersonId, Vec<Message>)> {
        let mut out: Vec<(PersonId, Vec<Message>)> = Vec::new();
        for (to, message) in self.0 {
            for id in to {
                match out.iter_mut().find(|(p, _)| *p == id) {
                    Some((_, items)) if items.contains(&message) => {}
                    Some((_, items)) => items.push(message.clone()),
                    None => out.push((id, vec![message.clone()])),
                }
            }
        }
        out
    }
}

/// `base` with the catch-up details added.
/// What a late batch adds to its reminder and breach events.
struct CatchUp {
    /// Set only when the batch is a catch-up after downtime.
    late_minutes: Option<i64>,
    /// Earlier phases of the clock that fired in the same batch without a message.
    skipped: Vec<Phase>,
}

/// A reminder to whoever must act on the clock.
fn remind(d: &mut Draft, sends: &mut Sends, ci: usize, phase: Phase, extra: CatchUp) {
    let clock = &mut d.case.clocks[ci];
    clock.reminders_sent += 1;
    let clock = clock.clone();
    // The green channel runs at any hour (五(一)): its time left is wall-clock time, so a night
    // reminder never shows "0 minutes" next to a deadline the next morning.
    let remaining = if d.case.green_channel {
        clock.due.duration_since(d.now).as_mins()
    } else {
        d.ctx.calendar.working_minutes_between(d.now, clock.due)
    };
    let to = responsible(d.roster(), &d.case, &clock.kind);
    sends.push(
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
        clock.kind.unit(),
        EventData::ReminderSent {
            clock: clock.id.clone(),
            phase,
            count: clock.reminders_sent,
            late_minutes: extra.late_minutes,
            skipped_in_catch_up: extra.skipped,
        },
    );
}

/// The deadline passed with the duty undone: record the breach and climb the ladder — the
/// responsible person again, then their unit's leader (the hotline head for the hotline's own
/// clocks), then for a unit the supervisor, with the written supervision drafted; a unit's
/// silence is also treated as a refusal.
fn breach(d: &mut Draft, sends: &mut Sends, ci: usize, extra: CatchUp) {
    let now = d.now;
    d.case.clocks[ci].state = ClockState::Breached { at: now };
    let clock = d.case.clocks[ci].clone();
    // Reminders after the breach would only confuse.
    d.cancel_pending_timers(&clock.id);
    let due = Due::from(&clock);
    let unit = clock.kind.unit().cloned();
    d.event(
        unit.as_ref(),
        EventData::Breach {
            clock: clock.id.clone(),
            due: clock.due,
            late_minutes: extra.late_minutes,
            skipped_in_catch_up: extra.skipped,
        },
    );
    let responsible = responsible(d.roster(), &d.case, &clock.kind);
    sends.push(
        responsible.clone(),
        Message::Breach {
            clock: clock.kind.clone(),
            due: due.clone(),
        },
    );
    let escalate_to = escalation(d.roster(), &d.case, &clock.kind);
    sends.push(
        escalate_to.clone(),
        Message::Escalation {
            clock: clock.kind.clone(),
            due: due.clone(),
            responsible,
        },
    );
    d.event(
        unit.as_ref(),
        EventData::Escalated {
            clock: clock.id.clone(),
            to: escalate_to,
        },
    );
    match &clock.kind {
        ClockKind::UnitResponse { unit } => unit_overdue(d, sends, &clock, unit),
        // A supervised unit missed the 督办's deadline too: the inspector (who may withdraw it)
        // and the supervisor (who may supervise again) are told.
        ClockKind::SupervisedResponse { .. } | ClockKind::SupervisedHandling => {
            let mut to = people::inspectors_on_duty(d.roster(), &d.case);
            to.extend(people::with_role(d.roster(), Role::Supervisor));
            sends.push(
                to,
                Message::Breach {
                    clock: clock.kind.clone(),
                    due: due.clone(),
                },
            );
            // Principle 6: the first unit hears what is happening to its request.
            if let ClockKind::SupervisedResponse { unit } = &clock.kind {
                let first = people::first_unit_side(d.roster(), &d.case);
                sends.push(
                    first,
                    Message::CoordinationUpdate {
                        unit: unit.clone(),
                        update: CoordinationUpdate::SupervisedOverdue { due },
                    },
                );
            }
        }
        ClockKind::Handling => {
            // docs/spec.md → People: the supervisor supervises units that time out.
            let first_unit = d.case.first_unit.clone();
            let supervisors = people::with_role(d.roster(), Role::Supervisor);
            sends.push(
                supervisors,
                Message::SupervisionRequested {
                    unit: first_unit,
                    ground: SupervisionGround::HandlingOverdue,
                },
            );
        }
        // 书面督办 is addressed to units (四(三)); the hotline's own clocks stop at its head.
        ClockKind::ReviewStart
        | ClockKind::Decision
        | ClockKind::GreenCoordination
        | ClockKind::CityAnswer => {}
    }
}

/// docs/spec.md → Coordination: "No answer by the response deadline is treated like a refusal" —
/// 四(三) 拒不配合的，由区12345热线进行书面督办; the inspector is told so they can withdraw the unit.
fn unit_overdue(d: &mut Draft, sends: &mut Sends, clock: &CaseClock, unit: &UnitName) {
    let now = d.now;
    let Some(request) = d.case.request_mut(unit).filter(|r| r.clock_id == clock.id) else {
        return;
    };
    if request.status != RequestStatus::Pending {
        return;
    }
    request.status = RequestStatus::Overdue;
    request.overdue_since = Some(now);
    d.event(Some(unit), EventData::UnitOverdue { due: clock.due });
    let supervisors = people::with_role(d.roster(), Role::Supervisor);
    sends.push(
        supervisors,
        Message::SupervisionRequested {
            unit: unit.clone(),
            ground: SupervisionGround::Overdue,
        },
    );
    let inspectors = people::inspectors_on_duty(d.roster(), &d.case);
    sends.push(
        inspectors,
        Message::Breach {
            clock: clock.kind.clone(),
            due: Due::from(clock),
        },
    );
    // Principle 6: the first unit hears what is happening to its request.
    let first = people::first_unit_side(d.roster(), &d.case);
    sends.push(
        first,
        Message::CoordinationUpdate {
            unit: unit.clone(),
            update: CoordinationUpdate::Overdue,
        },
    );
}

/// Who must act on a clock.
fn responsible(roster: &Roster, case: &Case, kind: &ClockKind) -> Vec<PersonId> {
    match kind {
        // 五(一), 四(二): the inspectors (the claimer once there is one).
        ClockKind::ReviewStart | ClockKind::Decision | ClockKind::GreenCoordination => {
            people::inspectors_on_duty(roster, case)
        }
        ClockKind::UnitResponse { unit } | ClockKind::SupervisedResponse { unit } => {
            people::unit_contacts(roster, unit)
        }
        // 五(二): the first unit leads the handling.
        ClockKind::Handling | ClockKind::SupervisedHandling => {
            people::unit_contacts(roster, &case.first_unit)
        }
        // 四(一): the city 12345 answers; the inspector records its outcome.
        ClockKind::CityAnswer => {
            let mut to = people::with_role(roster, Role::CitySupervisor);
            to.extend(people::inspectors_on_duty(roster, case));
            to
        }
    }
}

/// The next rung of the ladder: a unit's leader; the hotline head for the hotline's own clocks.
fn escalation(roster: &Roster, case: &Case, kind: &ClockKind) -> Vec<PersonId> {
    match kind {
        ClockKind::ReviewStart | ClockKind::Decision | ClockKind::GreenCoordination => {
            people::with_role(roster, Role::HotlineHead)
        }
        ClockKind::UnitResponse { unit } => people::unit_leaders(roster, unit),
        // Already supervised: the unit's leader again; the hotline head reads every breach in
        // the scheduler's digest (one message a pass, principle 4), and the supervisor and the
        // inspector are told to act on it (五(四) 考核问责).
        ClockKind::SupervisedResponse { unit } => people::unit_leaders(roster, unit),
        ClockKind::Handling | ClockKind::SupervisedHandling => {
            people::unit_leaders(roster, &case.first_unit)
        }
        ClockKind::CityAnswer => people::with_role(roster, Role::HotlineHead),
    }
}

/// Counts every running clock's deadline again from its start and configured length on the
/// current calendar (holiday data was loaded, docs/spec.md → Clocks: "loading the year's data
/// recomputes it"). A deadline whose due, provisional flag or explanation changed is recorded
/// and its pending timers move; only when the due instant itself moved is whoever must act on
/// the clock told. Nothing else changes, so recomputing twice is a no-op.
pub(super) fn recompute(call: Call) -> Decision {
    let mut d = call.draft();
    let (calendar, sla) = (d.ctx.calendar, d.ctx.sla);
    let green = d.case.green_channel;
    let ticket_deadline = d.case.application.deadline.is_some();
    for ci in 0..d.case.clocks.len() {
        let clock = &d.case.clocks[ci];
        if !clock.is_running() {
            continue;
        }
        let Some(length) = clock.kind.length(sla, green, ticket_deadline) else {
            continue;
        };
        let deadline = length.deadline(calendar, clock.started);
        if deadline.due == clock.due
            && deadline.provisional == clock.provisional
            && deadline.explanation == clock.explanation
        {
            continue;
        }
        let previous = clock.due;
        let moved =
            d.case.clocks[ci].reschedule(deadline, sla.remind_before_due_minutes, green, calendar);
        for (key, at) in moved {
            if let Some(ti) = d.case.clocks[ci].timers.iter().position(|t| t.key == key) {
                d.set_timer_at(ci, ti, at);
            }
        }
        let clock = d.case.clocks[ci].clone();
        let changed = clock.due != previous;
        d.event(
            clock.kind.unit(),
            EventData::DeadlineRecomputed {
                clock: clock.id.clone(),
                previous,
                due: clock.due,
                provisional: clock.provisional,
                changed,
            },
        );
        if changed {
            let to = responsible(d.roster(), &d.case, &clock.kind);
            d.notify(
                to,
                Message::DeadlineChanged {
                    clock: clock.kind.clone(),
                    previous,
                    due: Due::from(&clock),
                },
            );
        }
    }
    d.finish()
}
