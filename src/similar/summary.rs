//! What the inspector is shown of a similar past case: how it was decided, which units helped
//! and with what, how long it took and how the citizen rated it. Taken from the case document
//! when the new application is registered and kept with it, so the review card shows the same
//! list every time it is re-rendered.

use jiff::Timestamp;

use crate::calendar::Calendar;
use crate::domain::UnitName;
use crate::workflow::{Case, DecisionKind, RequestStatus, State};
pub use crate::workflow::{Handling, Helper, SimilarCase};

/// The summary of `case`.
pub fn summarize(case: &Case, calendar: &Calendar) -> SimilarCase {
    let handling = case.decisions.iter().rev().find_map(|d| match d.kind {
        DecisionKind::Joint { .. } => Some(Handling::Joint),
        DecisionKind::Independent { .. } => Some(Handling::Independent),
        DecisionKind::City { .. } => Some(Handling::City),
        DecisionKind::Returned { .. } => None,
    });
    let helpers = case
        .requests
        .iter()
        .filter_map(|r| match &r.status {
            RequestStatus::Accepted(a) => Some(Helper {
                unit: r.unit.clone(),
                help: a.contact.help.clone(),
            }),
            _ => None,
        })
        .collect();
    let first_receipt = case
        .previous_versions
        .first()
        .map_or(case.received_at, |v| v.received_at);
    let working_days = closed_at(case).map(|end| working_days(calendar, first_receipt, end));
    SimilarCase {
        case_no: case.case_no.clone(),
        ticket_no: case.ticket_no.clone(),
        title: case.application.title.clone(),
        state: case.state,
        handling,
        helpers,
        working_days,
        satisfaction: case.satisfaction.as_ref().map(|s| s.level),
        typical: case.typical.as_ref().map(|t| t.summary.clone()),
    }
}

/// When a finished case closed: the satisfaction or city outcome record, or the independent
/// handling decision. `None` while the case is open.
pub fn closed_at(case: &Case) -> Option<Timestamp> {
    match case.state {
        State::Closed => case
            .satisfaction
            .as_ref()
            .map(|s| s.at)
            .or(case.city_outcome.as_ref().map(|c| c.at)),
        State::Independent => case.decisions.last().map(|d| d.at),
        _ => None,
    }
}

/// Units that helped in `similar` cases but are neither the first unit nor asked for now, in
/// the order first met: a suggestion for the inspector, never applied by itself.
pub fn suggested_units(
    similar: &[SimilarCase],
    first_unit: &str,
    requested: &[UnitName],
) -> Vec<UnitName> {
    let mut out: Vec<UnitName> = Vec::new();
    for helper in similar.iter().flat_map(|s| &s.helpers) {
        let unit = &helper.unit;
        if unit != first_unit && !requested.iter().any(|r| r == unit) && !out.contains(unit) {
            out.push(unit.clone());
        }
    }
    out
}

/// Working days after the local date of `from` up to and including that of `to` (the start day
/// does not count, as in every deadline).
fn working_days(calendar: &Calendar, from: Timestamp, to: Timestamp) -> u32 {
    let (mut day, end) = (calendar.local_date(from), calendar.local_date(to));
    let mut n = 0;
    while day < end {
        let Ok(next) = day.tomorrow() else { break };
        day = next;
        if calendar.is_working_day(day) {
            n += 1;
        }
    }
    n
}
