//! Reports (五(四) 考核问责, 五(五) 案例总结; docs/spec.md → Reports): the statistics of a month, a
//! quarter or any date range, computed from the audit event log and never from stored counters;
//! the 通报 of units with unjustified non-cooperation or overdue handling, with evidence; the
//! cases marked for transfer to the 三抓三促 office; the 热线故事汇 draft of the typical cases;
//! and the exports (Markdown, JSON, CSV, xlsx) and the monthly DingTalk post.
//!
//! A report reads one consistent snapshot ([`ReadTx`]): the events of the period name the cases
//! it touches, and each touched case's whole history is folded so a figure that depends on an
//! earlier fact (was this answer the first one to its request?) is decided exactly.

pub mod csv;
pub mod markdown;
pub mod notice;
pub mod post;
pub mod stats;
pub mod trend;
pub mod typical;
pub mod xlsx;

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::calendar::Calendar;
use crate::engine::{EngineError, decode};
use crate::store::{CaseRow, EventRow, ReadTx, StoreError};
use crate::workflow::{Case, RequestStatus};

pub use notice::{Notice, NoticeKind, Transfer};
pub use post::{PostOutcome, monthly_due, post_monthly, run};
pub use stats::{Counts, Rate, Stats, Target};
pub use typical::Story;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("无法生成 xlsx 文件：{0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
}

/// The stretch of time a report covers, in local dates of the calendar's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Period {
    /// 月统计: `month` is 1–12.
    Month { year: i16, month: i8 },
    /// 季总结: `quarter` is 1–4.
    Quarter { year: i16, quarter: i8 },
    /// Any dates, both included.
    Range { first: Date, last: Date },
}

impl Period {
    /// `2026-11` (or `2026-1`).
    pub fn parse_month(s: &str) -> Option<Period> {
        let (y, m) = s.trim().split_once('-')?;
        let (year, month) = (y.parse::<i16>().ok()?, m.parse::<i8>().ok()?);
        Date::new(year, month, 1)
            .ok()
            .map(|_| Period::Month { year, month })
    }

    /// `2026-Q4` (also `2026Q4`, any case).
    pub fn parse_quarter(s: &str) -> Option<Period> {
        let upper = s.trim().to_ascii_uppercase();
        let (y, q) = upper.split_once('Q')?;
        let year = y.trim_end_matches('-').parse::<i16>().ok()?;
        let quarter = q.parse::<i8>().ok().filter(|q| (1..=4).contains(q))?;
        Date::new(year, 1, 1)
            .ok()
            .map(|_| Period::Quarter { year, quarter })
    }

    /// Dates `first..=last`; None when `last` is before `first`.
    pub fn range(first: Date, last: Date) -> Option<Period> {
        (first <= last).then_some(Period::Range { first, last })
    }

    /// The month before the one containing `date` (the month a report posted on `date` covers).
    pub fn month_before(date: Date) -> Period {
        let first = date.first_of_month();
        let prev = first.yesterday().unwrap_or(first);
        Period::Month {
            year: prev.year(),
            month: prev.month(),
        }
    }

    /// First and last local date, both included.
    pub fn dates(&self) -> (Date, Date) {
        match *self {
            Period::Month { year, month } => {
                let first = Date::new(year, month, 1).unwrap_or(Date::MIN);
                (first, first.last_of_month())
            }
            Period::Quarter { year, quarter } => {
                let first = Date::new(year, (quarter - 1) * 3 + 1, 1).unwrap_or(Date::MIN);
                let last = Date::new(year, quarter * 3, 1).map_or(Date::MAX, |d| d.last_of_month());
                (first, last)
            }
            Period::Range { first, last } => (first, last),
        }
    }

    /// `[from, to)`: local midnight of the first date to local midnight after the last.
    pub fn bounds(&self, tz: &TimeZone) -> (Timestamp, Timestamp) {
        let (first, last) = self.dates();
        let start = |d: Date| {
            d.to_zoned(tz.clone())
                .map_or(Timestamp::MAX, |z| z.timestamp())
        };
        let end = last.tomorrow().map_or(Timestamp::MAX, start);
        (start(first), end)
    }

    /// Stable key: `2026-11`, `2026-Q4`, `2026-11-01_2026-11-30`; names files and outbox keys.
    pub fn key(&self) -> String {
        match *self {
            Period::Month { year, month } => format!("{year}-{month:02}"),
            Period::Quarter { year, quarter } => format!("{year}-Q{quarter}"),
            Period::Range { first, last } => format!("{first}_{last}"),
        }
    }

    /// What users read: `2026年11月`, `2026年第四季度`, `2026-11-01至2026-11-30`.
    pub fn label(&self) -> String {
        match *self {
            Period::Month { year, month } => format!("{year}年{month}月"),
            Period::Quarter { year, quarter } => {
                let n = ["一", "二", "三", "四"]
                    .get(usize::try_from(quarter - 1).unwrap_or(0))
                    .copied()
                    .unwrap_or("");
                format!("{year}年第{n}季度")
            }
            Period::Range { first, last } => format!("{first}至{last}"),
        }
    }

    /// 月统计 / 季总结 / 统计.
    pub fn title(&self) -> &'static str {
        match self {
            Period::Month { .. } => "月统计",
            Period::Quarter { .. } => "季总结",
            Period::Range { .. } => "统计",
        }
    }
}

/// One case the period touched, as the cases sheet shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseLine {
    pub case_no: String,
    pub ticket_no: String,
    pub title: String,
    pub first_unit: String,
    pub green_channel: bool,
    /// Units that accepted (joined the case), in request order.
    pub cooperating_units: Vec<String>,
    /// The Chinese state label as of the report.
    pub state: String,
    /// First registration.
    pub submitted_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// From the completion: reported by the handling deadline.
    pub completed_on_time: Option<bool>,
    /// 满意 / 基本满意 / 不满意.
    pub satisfaction: Option<String>,
    pub supervisions: u32,
    pub typical: bool,
    /// Events of this case inside the period.
    pub events_in_period: u32,
}

/// Everything a report shows, for one period.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub period: Period,
    pub period_key: String,
    pub period_label: String,
    pub from: Timestamp,
    pub to: Timestamp,
    /// When it was computed; facts after it are not in it.
    pub generated_at: Timestamp,
    pub stats: Stats,
    pub notices: Vec<Notice>,
    pub transfers: Vec<Transfer>,
    /// Ordered by case number.
    pub cases: Vec<CaseLine>,
    pub stories: Vec<Story>,
}

/// A touched case: its row, document and whole history.
pub(crate) struct Loaded {
    pub row: CaseRow,
    pub case: Case,
    pub events: Vec<EventRow>,
}

/// Computes the report of `period` from the events in `r`'s snapshot, as of `now`.
pub fn build(
    r: &ReadTx<'_>,
    calendar: &Calendar,
    period: &Period,
    now: Timestamp,
) -> Result<Report, EngineError> {
    let (from, to) = period.bounds(calendar.time_zone());
    let window = r.events_between(from, to)?;
    let mut ids: BTreeSet<i64> = window.iter().filter_map(|e| e.case_id).collect();
    // Each touched case's history is read whole below; the window itself is no longer needed.
    drop(window);
    // Cases still in joint handling: an overdue one may have no event in the period (its
    // reminders stop at the breach) and must still be considered for 三抓三促.
    for row in r.cases_in_states(&["joint_handling"])? {
        ids.insert(row.id);
    }
    let mut loaded = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(mut row) = r.case(id)? else { continue };
        let case = decode(&row)?;
        // The decoded document is what is read from here on; the text would double the memory.
        row.data_json = String::new();
        let events = r.events_for_case(id)?;
        loaded.push(Loaded { row, case, events });
    }
    loaded.sort_by(|a, b| a.row.case_no.cmp(&b.row.case_no));
    let stats = stats::compute(&loaded, from, to);
    let (notices, transfers) = notice::compute(&loaded, calendar, from, to, now);
    let stories = typical::compute(&loaded, from, to);
    let cases = loaded
        .iter()
        .filter_map(|l| case_line(l, from, to))
        .collect();
    Ok(Report {
        period: *period,
        period_key: period.key(),
        period_label: period.label(),
        from,
        to,
        generated_at: now,
        stats,
        notices,
        transfers,
        cases,
        stories,
    })
}

fn case_line(l: &Loaded, from: Timestamp, to: Timestamp) -> Option<CaseLine> {
    let in_period = l
        .events
        .iter()
        .filter(|e| e.at >= from && e.at < to)
        .count();
    if in_period == 0 {
        return None;
    }
    let c = &l.case;
    let submitted_at = c
        .previous_versions
        .first()
        .map_or(c.received_at, |v| v.received_at);
    Some(CaseLine {
        case_no: c.case_no.to_string(),
        ticket_no: c.ticket_no.to_string(),
        title: c.application.title.clone(),
        first_unit: c.first_unit.to_string(),
        green_channel: c.green_channel,
        cooperating_units: c
            .requests
            .iter()
            .filter(|r| matches!(r.status, RequestStatus::Accepted(_)))
            .map(|r| r.unit.to_string())
            .collect(),
        state: c.state.label().to_string(),
        submitted_at,
        completed_at: c.completion.as_ref().map(|x| x.at),
        completed_on_time: c.completion.as_ref().map(|x| x.on_time),
        satisfaction: c.satisfaction.as_ref().map(|s| s.level.label().to_string()),
        supervisions: u32::try_from(c.supervisions.len()).unwrap_or(u32::MAX),
        typical: c.typical.is_some(),
        events_in_period: u32::try_from(in_period).unwrap_or(u32::MAX),
    })
}

/// The unit an event counts for: the unit it names, else the case's first unit.
pub(crate) fn event_unit<'a>(event: &'a EventRow, first_unit: &'a str) -> &'a str {
    event.unit.as_deref().unwrap_or(first_unit)
}

/// The local `YYYY-MM-DD HH:MM` of `t`, as every report shows instants.
pub(crate) fn local_at(calendar: &Calendar, t: Timestamp) -> String {
    calendar
        .time_zone()
        .to_datetime(t)
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_bound_in_local_time() {
        let tz = TimeZone::get("Asia/Shanghai").expect("tz");
        let m = Period::parse_month("2026-11").expect("month");
        assert_eq!(m.key(), "2026-11");
        assert_eq!(m.label(), "2026年11月");
        let (from, to) = m.bounds(&tz);
        assert_eq!(
            from,
            "2026-10-31T16:00:00Z".parse::<Timestamp>().expect("ts")
        );
        assert_eq!(to, "2026-11-30T16:00:00Z".parse::<Timestamp>().expect("ts"));
        let q = Period::parse_quarter("2026-q4").expect("quarter");
        assert_eq!(q.key(), "2026-Q4");
        assert_eq!(q.dates().1, jiff::civil::date(2026, 12, 31));
        assert_eq!(
            q.bounds(&tz).1,
            to + jiff::SignedDuration::from_hours(31 * 24)
        );
        assert_eq!(Period::parse_quarter("2026-Q5"), None);
        assert_eq!(Period::parse_month("2026-13"), None);
        assert_eq!(Period::parse_month("11月"), None);
        let d = jiff::civil::date(2026, 11, 2);
        assert_eq!(Period::range(d, d.yesterday().expect("date")), None);
        assert_eq!(
            Period::month_before(jiff::civil::date(2027, 1, 4)),
            Period::Month {
                year: 2026,
                month: 12
            }
        );
    }
}
