//! The consistency rules a case satisfies after every transition. The property tests run every
//! random sequence through this checker; the engine may run it before committing a decision.

use std::collections::BTreeSet;

use super::case::{Case, DecisionKind, RequestStatus, State};
use super::clock::{ClockKind, ClockState, Phase, TimerState};

/// Every broken rule, in words; `Ok` when the case is consistent.
pub fn check_invariants(case: &Case) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut fail = |msg: String| problems.push(msg);

    if case.version as usize != case.previous_versions.len() + 1 {
        fail(format!(
            "version {} but {} previous versions",
            case.version,
            case.previous_versions.len()
        ));
    }
    check_requests(case, &mut fail);
    check_clocks(case, &mut fail);
    check_state(case, &mut fail);

    let numbers: Vec<u32> = case.supervisions.iter().map(|s| s.number).collect();
    let expected: Vec<u32> = (1..=u32::try_from(numbers.len()).unwrap_or(u32::MAX)).collect();
    if numbers != expected {
        fail(format!("supervision numbers {numbers:?} are not 1..n"));
    }
    if case.typical.is_some()
        && !matches!(
            case.state,
            State::Completed | State::Closed | State::Independent
        )
    {
        fail(format!("typical case in state {:?}", case.state));
    }
    if case.completion.is_some() && !matches!(case.state, State::Completed | State::Closed) {
        fail(format!("completion recorded in state {:?}", case.state));
    }
    let mut cards = BTreeSet::new();
    for card in &case.cards {
        if !cards.insert(&card.key) {
            fail(format!("card key {} used twice", card.key));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn check_requests(case: &Case, fail: &mut impl FnMut(String)) {
    let mut active_units = BTreeSet::new();
    for r in case.active_requests() {
        if !active_units.insert(&r.unit) {
            fail(format!("two requests in force for {}", r.unit));
        }
        if r.unit == case.first_unit {
            fail(format!("the first unit {} is asked to cooperate", r.unit));
        }
    }
    for r in &case.requests {
        let Some(clock) = case.clocks.iter().find(|c| c.id == r.clock_id) else {
            fail(format!(
                "request for {} has no clock {}",
                r.unit, r.clock_id
            ));
            continue;
        };
        let consistent = match r.status {
            RequestStatus::Pending => clock.is_running(),
            RequestStatus::Overdue => clock.is_breached() && r.overdue_since.is_some(),
            RequestStatus::Objected => !clock.is_open() && r.objection.is_some(),
            RequestStatus::Insisted { .. } => !clock.is_open() && r.objection.is_some(),
            RequestStatus::Accepted(_) | RequestStatus::Withdrawn { .. } => !clock.is_open(),
        };
        if !consistent {
            fail(format!(
                "request for {} is {:?} but its clock is {:?}",
                r.unit, r.status, clock.state
            ));
        }
    }
}

fn check_clocks(case: &Case, fail: &mut impl FnMut(String)) {
    let mut ids = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for clock in &case.clocks {
        if !ids.insert(&clock.id) {
            fail(format!("clock id {} used twice", clock.id));
        }
        for t in &clock.timers {
            if !keys.insert(&t.key) {
                fail(format!("timer key {} used twice", t.key));
            }
        }
        let pending = clock.pending_timers().count();
        match clock.state {
            ClockState::Running => {
                let due_pending = clock
                    .timers
                    .iter()
                    .any(|t| t.phase == Phase::Due && t.state == TimerState::Pending);
                if !due_pending {
                    fail(format!(
                        "running clock {} has no pending due timer",
                        clock.id
                    ));
                }
            }
            ClockState::Breached { .. } | ClockState::Stopped { .. } if pending > 0 => {
                fail(format!(
                    "clock {} is {:?} with {pending} pending timers",
                    clock.id, clock.state
                ));
            }
            _ => {}
        }
        if clock.is_open() && !open_clock_allowed(case.state, &clock.kind) {
            fail(format!(
                "clock {} still open in state {:?}",
                clock.id, case.state
            ));
        }
    }
}

/// Which duties can still be outstanding in each state.
fn open_clock_allowed(state: State, kind: &ClockKind) -> bool {
    match kind {
        ClockKind::ReviewStart => state == State::Submitted,
        ClockKind::Decision => matches!(state, State::Submitted | State::UnderReview),
        ClockKind::GreenCoordination => matches!(
            state,
            State::Submitted | State::UnderReview | State::Coordinating
        ),
        ClockKind::UnitResponse { .. } => state == State::Coordinating,
        ClockKind::Handling => state == State::JointHandling,
        ClockKind::SupervisedResponse { .. } => state == State::Coordinating,
        ClockKind::SupervisedHandling => state == State::JointHandling,
        ClockKind::CityAnswer => state == State::CityEscalated,
    }
}

fn check_state(case: &Case, fail: &mut impl FnMut(String)) {
    let active = case.active_requests().count();
    let all_accepted = case
        .active_requests()
        .all(|r| matches!(r.status, RequestStatus::Accepted(_)));
    let last = case.last_decision().map(|d| &d.kind);
    let handling = case.clock(&ClockKind::Handling);
    let ok = match case.state {
        // No clock runs before the leader's confirmation (open_clock_allowed has none for it).
        State::AwaitingLeader => {
            case.claim.is_none()
                && active == 0
                && matches!(last, None | Some(DecisionKind::Returned { .. }))
        }
        State::Submitted => {
            case.claim.is_none()
                && active == 0
                && case
                    .clock(&ClockKind::ReviewStart)
                    .is_some_and(|c| c.is_open())
        }
        State::UnderReview => case.claim.is_some() && active == 0,
        // A leader's return (退回联络员) records no inspector decision.
        State::Returned => {
            active == 0 && matches!(last, None | Some(DecisionKind::Returned { .. }))
        }
        State::Independent => active == 0 && matches!(last, Some(DecisionKind::Independent { .. })),
        State::CityEscalated => {
            active == 0
                && case.city_outcome.is_none()
                && matches!(last, Some(DecisionKind::City { .. }))
        }
        State::Coordinating => {
            case.claim.is_some()
                && active > 0
                && !all_accepted
                && matches!(last, Some(DecisionKind::Joint { .. }))
        }
        State::JointHandling => {
            active > 0
                && all_accepted
                && case.completion.is_none()
                && handling.is_some_and(|c| c.is_open())
        }
        State::Completed => {
            active > 0 && all_accepted && case.completion.is_some() && case.satisfaction.is_none()
        }
        State::Closed => {
            (case.satisfaction.is_some() && case.completion.is_some())
                || (case.city_outcome.is_some() && matches!(last, Some(DecisionKind::City { .. })))
        }
    };
    if !ok {
        fail(format!(
            "state {:?} does not match the case record",
            case.state
        ));
    }
    if case.state.is_terminal() {
        for clock in &case.clocks {
            if clock.is_open() {
                fail(format!("terminal case has open clock {}", clock.id));
            }
        }
    }
}
