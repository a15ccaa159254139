//! The dashboard's two figures beyond the monthly report: the 12-month trend of applications and
//! completions, and each unit's mean time to answer a coordination request. Both are folded from
//! the same typed audit events as [`super::stats`], with the same definitions: 申请登记 is a
//! [`EventData::Submitted`] event (a resubmission is not a new application), 办结 a
//! [`EventData::Completed`] event, and an answer a unit's first `UnitAccepted` or `UnitObjected`
//! after its request.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use jiff::civil::Date;

use super::Period;
use crate::calendar::Calendar;
use crate::store::{EventRow, ReadTx, StoreError};
use crate::workflow::EventData;

/// Months in the trend, the last one included.
pub const TREND_MONTHS: i32 = 12;

/// One month of the trend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendMonth {
    pub year: i16,
    pub month: i8,
    /// First submissions (申请登记), counted as the statistics count them.
    pub submitted: u64,
    /// Completions reported (办结).
    pub completed: u64,
}

/// Per unit: answers to coordination requests in the period, and their mean time from request to
/// first answer in working minutes (四(三): a unit answers within one working day).
pub type ResponseTimes = BTreeMap<String, (u64, i64)>;

/// The [`TREND_MONTHS`] months ending with `year-month`, from the event log.
pub fn trend(
    r: &ReadTx<'_>,
    calendar: &Calendar,
    year: i16,
    month: i8,
) -> Result<Vec<TrendMonth>, StoreError> {
    let last = Date::new(year, month, 1).map_err(|e| StoreError::BadData(e.to_string()))?;
    let first = last
        .checked_sub(jiff::Span::new().months(TREND_MONTHS - 1))
        .map_err(|e| StoreError::BadData(e.to_string()))?;
    let from = Period::Month {
        year: first.year(),
        month: first.month(),
    }
    .bounds(calendar.time_zone())
    .0;
    let to = Period::Month { year, month }.bounds(calendar.time_zone()).1;
    let events = r.events_between(from, to)?;
    Ok(trend_of(&events, calendar, first))
}

/// Folds `events` into the [`TREND_MONTHS`] months starting with the month of `first`; events
/// outside them are not counted.
fn trend_of(events: &[EventRow], calendar: &Calendar, first: Date) -> Vec<TrendMonth> {
    let mut months: Vec<TrendMonth> = (0..TREND_MONTHS)
        .filter_map(|i| first.checked_add(jiff::Span::new().months(i)).ok())
        .map(|d| TrendMonth {
            year: d.year(),
            month: d.month(),
            submitted: 0,
            completed: 0,
        })
        .collect();
    for e in events {
        let d = calendar.local_date(e.at);
        let Some(m) = months
            .iter_mut()
            .find(|m| m.year == d.year() && m.month == d.month())
        else {
            continue;
        };
        match e.data {
            EventData::Submitted(_) => m.submitted += 1,
            EventData::Completed { .. } => m.completed += 1,
            _ => {}
        }
    }
    months
}

/// [`ResponseTimes`] of the answers given in `period`.
pub fn response_times(
    r: &ReadTx<'_>,
    calendar: &Calendar,
    period: &Period,
) -> Result<ResponseTimes, StoreError> {
    let (from, to) = period.bounds(calendar.time_zone());
    let mut cases: Vec<i64> = r
        .events_between(from, to)?
        .iter()
        .filter(|e| is_answer(&e.data))
        .filter_map(|e| e.case_id)
        .collect();
    cases.sort_unstable();
    cases.dedup();
    let mut histories = Vec::with_capacity(cases.len());
    for id in cases {
        histories.push(r.events_for_case(id)?);
    }
    Ok(response_times_of(&histories, calendar, from, to))
}

fn is_answer(data: &EventData) -> bool {
    matches!(
        data,
        EventData::UnitAccepted { .. } | EventData::UnitObjected { .. }
    )
}

/// Folds each case's whole history (oldest first), counting the first answers in `[from, to)`.
fn response_times_of(
    histories: &[Vec<EventRow>],
    calendar: &Calendar,
    from: Timestamp,
    to: Timestamp,
) -> ResponseTimes {
    let mut sums = ResponseTimes::new();
    for history in histories {
        // The open request of each unit: when it was made, until its first answer.
        let mut open: HashMap<&str, Timestamp> = HashMap::new();
        for e in history {
            let Some(unit) = e.unit.as_deref() else {
                continue;
            };
            if let EventData::UnitRequested { .. } = e.data {
                open.insert(unit, e.at);
            } else if is_answer(&e.data)
                && let Some(asked) = open.remove(unit)
                && e.at >= from
                && e.at < to
            {
                let entry = sums.entry(unit.to_string()).or_default();
                entry.0 += 1;
                entry.1 += calendar.working_minutes_between(asked, e.at);
            }
        }
    }
    sums.into_iter()
        .map(|(unit, (n, total))| (unit, (n, total / i64::try_from(n.max(1)).unwrap_or(1))))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::calendar::WorkingHours;

    fn calendar() -> Calendar {
        Calendar::load_dir(Path::new("config/calendar"), WorkingHours::default()).expect("calendar")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    use crate::domain::{TicketNo, UnitName};

    fn row(case_id: i64, at_: &str, unit: Option<&str>, data: EventData) -> EventRow {
        EventRow {
            id: 0,
            case_id: Some(case_id),
            actor: "system".to_string(),
            at: at(at_),
            unit: unit.map(UnitName::unchecked),
            data,
        }
    }

    fn submitted(case_id: i64, at_: &str) -> EventRow {
        let registration = crate::workflow::Registration {
            version: 1,
            ticket_no: TicketNo::parse("DH2026110300017").expect("ticket"),
            green_channel: false,
            category: crate::parse::Category::PolicyUnclear,
            requested_units: vec![UnitName::unchecked("区住建局")],
        };
        row(
            case_id,
            at_,
            Some("区人社局"),
            EventData::Submitted(registration),
        )
    }

    fn requested(case_id: i64, at_: &str, unit: &str) -> EventRow {
        let data = EventData::UnitRequested {
            direction: "核实".to_string(),
            due: at(at_),
        };
        row(case_id, at_, Some(unit), data)
    }

    fn accepted(case_id: i64, at_: &str, unit: &str) -> EventRow {
        let data = EventData::UnitAccepted {
            on_time: true,
            help: Vec::new(),
        };
        row(case_id, at_, Some(unit), data)
    }

    #[test]
    fn the_trend_counts_first_submissions_and_completions_by_local_month() {
        let cal = calendar();
        let first = jiff::civil::date(2025, 12, 1);
        let events = [
            // 2026-11-01 07:00 in Ganzhou: November, although still October in UTC.
            submitted(1, "2026-10-31T23:00:00Z"),
            submitted(2, "2026-11-03T02:00:00Z"),
            row(
                2,
                "2026-11-04T02:00:00Z",
                Some("区人社局"),
                EventData::Resubmitted(crate::workflow::Registration {
                    version: 2,
                    ticket_no: TicketNo::parse("DH2026110300017").expect("ticket"),
                    green_channel: false,
                    category: crate::parse::Category::PolicyUnclear,
                    requested_units: Vec::new(),
                }),
            ),
            row(
                1,
                "2026-11-20T02:00:00Z",
                Some("区人社局"),
                EventData::Completed { on_time: false },
            ),
            // Before the first month: not counted.
            submitted(3, "2025-11-30T02:00:00Z"),
        ];
        let months = trend_of(&events, &cal, first);
        assert_eq!(months.len(), 12);
        assert_eq!((months[0].year, months[0].month), (2025, 12));
        let nov = months.last().expect("november");
        assert_eq!(
            (nov.year, nov.month, nov.submitted, nov.completed),
            (2026, 11, 2, 1)
        );
        let others: u64 = months[..11].iter().map(|m| m.submitted + m.completed).sum();
        assert_eq!(others, 0);
    }

    #[test]
    fn response_times_count_first_answers_in_the_period_in_working_minutes() {
        let cal = calendar();
        let (from, to) = (at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z"));
        // Tuesday 2026-11-03 09:00 → 11:00 local: 120 working minutes.
        let one = vec![
            requested(1, "2026-11-03T01:00:00Z", "区住建局"),
            accepted(1, "2026-11-03T03:00:00Z", "区住建局"),
            // A later answer to the same request is not a new one.
            accepted(1, "2026-11-03T05:00:00Z", "区住建局"),
            // Answered in October: not counted. Asked again in November after a withdrawal:
            // a new request (60 working minutes).
            requested(1, "2026-10-30T01:00:00Z", "区城市管理局"),
            accepted(1, "2026-10-30T02:00:00Z", "区城市管理局"),
            requested(1, "2026-11-04T01:00:00Z", "区城市管理局"),
            accepted(1, "2026-11-04T02:00:00Z", "区城市管理局"),
        ];
        // 9:00 → 9:30 local: 30 minutes; the mean of 120 and 30 is 75.
        let two = vec![
            requested(2, "2026-11-05T01:00:00Z", "区住建局"),
            row(
                2,
                "2026-11-05T01:30:00Z",
                Some("区住建局"),
                EventData::UnitObjected {
                    reason: "不属于本局职责".to_string(),
                    on_time: true,
                },
            ),
        ];
        let times = response_times_of(&[one, two], &cal, from, to);
        assert_eq!(times.get("区住建局"), Some(&(2, 75)));
        assert_eq!(times.get("区城市管理局"), Some(&(1, 60)));
        assert_eq!(times.len(), 2);
    }
}
