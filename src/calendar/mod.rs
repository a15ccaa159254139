//! The working-day calendar behind every clock (docs/spec.md → Clocks): working days (Monday–Friday,
//! minus statutory holidays, plus make-up working days, loaded as data per year), working hours,
//! and deadlines with a Chinese explanation of how they were counted.
//!
//! Years are data, never code: the State Council publishes each year's schedule in the autumn, so
//! a deadline whose counting window reaches a year with no data is computed on weekdays only and
//! marked provisional, to be computed again once that year's file is loaded.
//!
//! Everything here is pure. Day counts use per-year prefix sums (no loop per day); minute counts
//! walk working periods (no loop per minute), finding each period's instants through the zone's
//! rules for that date, so nothing assumes a fixed UTC offset.

mod explain;
mod hours;
mod year;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::Serialize;

pub use explain::weekday_name;
pub(crate) use explain::{date_range, month_day};
pub use hours::{Period, WorkingHours};
pub use year::YearData;

/// Why holiday data or working hours could not be loaded; every message is Chinese and names the
/// file (or setting) and the problem, for the admin who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("无法读取节假日文件 {path}：{source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("无法读取节假日目录 {path}：{source}")]
    ReadDir {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin} 不是有效的 JSON（第 {line} 行第 {column} 列）：{message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin} 有误：{}", problems.join("；"))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
    #[error("{year} 年的节假日数据出现了两次：{first} 与 {second}")]
    DuplicateYear {
        year: i16,
        first: String,
        second: String,
    },
    #[error("工作时间设置有误：{0}")]
    Hours(String),
    #[error("未知的时区“{name}”（应为 IANA 名称，如 Asia/Shanghai）")]
    TimeZone { name: String },
}

/// A due date counted in working days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayDeadline {
    pub due: Date,
    /// The counting window reaches a year with no data: counted on weekdays only.
    pub provisional: bool,
    /// Chinese, for users: `截止 2026-10-10（周六，调休上班日），已跳过 10/1–10/7 国庆假期`.
    pub explanation: String,
}

/// A due instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deadline {
    pub due: Timestamp,
    /// The counting window reaches a year with no data: counted on weekdays only.
    pub provisional: bool,
    /// Chinese, for users.
    pub explanation: String,
}

/// A run of consecutive off days, named after the statutory holiday it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holiday {
    pub first: Date,
    pub last: Date,
    /// `元旦`, `春节`, `清明`, `劳动节`, `端午`, `中秋`, `国庆`, `国庆、中秋`, or `节假日`.
    pub name: &'static str,
}

impl Holiday {
    /// Calendar days in the run, weekend days included.
    pub fn days(&self) -> i32 {
        (self.last - self.first).get_days() + 1
    }
}

/// A loaded year: its data and `cum[i]`, the working days among days `0..=i` of the year.
#[derive(Debug, Clone)]
struct YearTable {
    data: YearData,
    cum: Vec<u32>,
}

/// Working days and hours for every loaded year; immutable once built (a few kilobytes a year).
#[derive(Debug, Clone)]
pub struct Calendar {
    years: BTreeMap<i16, YearTable>,
    /// Every off-day run of every loaded year, in date order (a run may cross a year end).
    holidays: Vec<Holiday>,
    hours: WorkingHours,
}

impl Calendar {
    /// Validates each year and refuses the same year twice.
    pub fn new(years: Vec<YearData>, hours: WorkingHours) -> Result<Calendar, CalendarError> {
        let mut tables = BTreeMap::new();
        for data in years {
            data.validate(&format!("{} 年节假日数据", data.year))?;
            let year = data.year;
            let data = data.normalized();
            let cum = prefix_counts(year, |d| {
                data.makeup_workdays.binary_search(&d).is_ok()
                    || (is_weekday(d) && data.off_days.binary_search(&d).is_err())
            });
            if tables.insert(year, YearTable { data, cum }).is_some() {
                return Err(CalendarError::DuplicateYear {
                    year,
                    first: format!("第一份 {year} 年数据"),
                    second: format!("第二份 {year} 年数据"),
                });
            }
        }
        let mut off: Vec<Date> = tables
            .values()
            .flat_map(|t| t.data.off_days.iter().copied())
            .collect();
        off.sort_unstable();
        Ok(Calendar {
            holidays: holiday_runs(&off),
            years: tables,
            hours,
        })
    }

    /// Every `*.json` file in `dir` (dot files skipped), one year each.
    pub fn load_dir(dir: &Path, hours: WorkingHours) -> Result<Calendar, CalendarError> {
        let read_dir_error = |source| CalendarError::ReadDir {
            path: dir.display().to_string(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_dir_error)? {
            let path = entry.map_err(read_dir_error)?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_file() && name.ends_with(".json") && !name.starts_with('.') {
                paths.push(path);
            }
        }
        paths.sort();
        let mut years: Vec<YearData> = Vec::new();
        let mut origins: BTreeMap<i16, String> = BTreeMap::new();
        for path in paths {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| CalendarError::Read {
                path: origin.clone(),
                source,
            })?;
            let data = YearData::parse_json(&text, &origin)?;
            if let Some(first) = origins.insert(data.year, origin.clone()) {
                return Err(CalendarError::DuplicateYear {
                    year: data.year,
                    first,
                    second: origin,
                });
            }
            years.push(data);
        }
        Calendar::new(years, hours)
    }

    /// Loaded years, ascending.
    pub fn years(&self) -> Vec<i16> {
        self.years.keys().copied().collect()
    }

    pub fn has_year(&self, year: i16) -> bool {
        self.years.contains_key(&year)
    }

    /// The loaded data of `year`, lists sorted.
    pub fn year_data(&self, year: i16) -> Option<&YearData> {
        self.years.get(&year).map(|t| &t.data)
    }

    pub fn time_zone(&self) -> &TimeZone {
        self.hours.time_zone()
    }

    pub fn hours(&self) -> &WorkingHours {
        &self.hours
    }

    /// Off-day runs of the loaded years, in date order.
    pub fn holidays(&self) -> &[Holiday] {
        &self.holidays
    }

    /// The off-day run containing `d`, if `d` is an off day of a loaded year.
    pub fn holiday_on(&self, d: Date) -> Option<&Holiday> {
        let i = self.holidays.partition_point(|h| h.last < d);
        self.holidays.get(i).filter(|h| h.first <= d)
    }

    /// `d` is a loaded make-up working day (调休上班).
    pub fn is_makeup_workday(&self, d: Date) -> bool {
        self.years
            .get(&d.year())
            .is_some_and(|t| t.data.makeup_workdays.binary_search(&d).is_ok())
    }

    /// A make-up working day, or Mon–Fri and not an off day. For a year with no data: Mon–Fri.
    pub fn is_working_day(&self, d: Date) -> bool {
        match self.years.get(&d.year()) {
            Some(t) => {
                let i = day_index(d);
                t.cum[i] > if i == 0 { 0 } else { t.cum[i - 1] }
            }
            None => is_weekday(d),
        }
    }

    /// Working days in `month` (1–12) of `year`; weekdays only when the year has no data.
    pub fn working_days_in_month(&self, year: i16, month: i8) -> u32 {
        let (Ok(first), cum) = (Date::new(year, month, 1), self.cum(year)) else {
            return 0;
        };
        let before = match day_index(first) {
            0 => 0,
            i => cum[i - 1],
        };
        cum[day_index(first.last_of_month())] - before
    }

    /// N working days after `start`; the start day itself is not counted (民法典 201).
    ///
    /// `n == 0` gives `start` itself. `provisional` when a counted day (`start` excluded, the due
    /// date included) falls in a year with no data: loading that year cannot move a result whose
    /// window does not reach it. A due date past 9999-12-31 saturates there, provisional.
    pub fn add_working_days(&self, start: Date, n: u32) -> DayDeadline {
        match self.nth_working_day_after(start, n) {
            Some(due) => {
                let missing = self.counted_missing_years(start, due);
                DayDeadline {
                    due,
                    provisional: !missing.is_empty(),
                    explanation: explain::days(self, start, due, None, &missing),
                }
            }
            None => DayDeadline {
                due: Date::MAX,
                provisional: true,
                explanation: explain::out_of_range(),
            },
        }
    }

    /// N working days after the local date of `start`; due at the end of the last working period
    /// of that day (18:00 by default).
    pub fn working_days_deadline(&self, start: Timestamp, n: u32) -> Deadline {
        let date = self.local_date(start);
        let Some(due_date) = self.nth_working_day_after(date, n) else {
            return saturated();
        };
        let last = self.hours.periods().last().map(|p| p.end_minute());
        let Some(due) = last.and_then(|m| self.hours.instant(due_date, m)) else {
            return saturated();
        };
        let missing = self.counted_missing_years(date, due_date);
        Deadline {
            due,
            provisional: !missing.is_empty(),
            explanation: explain::days(self, date, due_date, Some(due), &missing),
        }
    }

    /// `minutes` of working time after `start`, counted only inside working periods of working
    /// days; a start outside working time counts from the next period start.
    ///
    /// A count that ends exactly at a period end is due at that end (17:30 + 30 min = 18:00 the
    /// same day, not 08:30 the next), so `due` is inside working time or at a period end, and
    /// `working_minutes_between(start, due) == minutes`. `minutes == 0` gives
    /// [`Calendar::next_working_time`]. `provisional` when a date from the local date of `start`
    /// to the due date is in a year with no data.
    pub fn add_working_minutes(&self, start: Timestamp, minutes: u32) -> Deadline {
        let Some((from, due)) = self.advance(start, SignedDuration::from_mins(i64::from(minutes)))
        else {
            return saturated();
        };
        let missing = self.missing_years(self.local_date(start), self.local_date(due));
        Deadline {
            due,
            provisional: !missing.is_empty(),
            explanation: explain::minutes(self, start, from, due, minutes, &missing),
        }
    }

    /// Working minutes in `[a, b)` (0 when `b <= a`); whole minutes, rounded down.
    pub fn working_minutes_between(&self, a: Timestamp, b: Timestamp) -> i64 {
        if b <= a {
            return 0;
        }
        let mut total = SignedDuration::ZERO;
        let last = self.local_date(b);
        let mut d = self.local_date(a);
        while d <= last {
            for (s, e) in self.periods_on(d) {
                let (lo, hi) = (s.max(a), e.min(b));
                if hi > lo {
                    total += hi.duration_since(lo);
                }
            }
            let Ok(next) = d.tomorrow() else { break };
            d = next;
        }
        total.as_mins()
    }

    /// Inside a working period of a working day; a period's end instant is outside.
    pub fn is_working_time(&self, t: Timestamp) -> bool {
        self.periods_on(self.local_date(t))
            .any(|(s, e)| s <= t && t < e)
    }

    /// `t` itself when inside working time, else the start of the next working period.
    pub fn next_working_time(&self, t: Timestamp) -> Timestamp {
        self.advance(t, SignedDuration::ZERO)
            .map_or(Timestamp::MAX, |(_, due)| due)
    }

    /// Chinese `2026-10-10 18:00（周六）`-style display of an instant in the calendar's zone.
    pub fn display(&self, t: Timestamp) -> String {
        let dt = self.time_zone().to_datetime(t);
        format!(
            "{}（{}）",
            dt.strftime("%Y-%m-%d %H:%M"),
            explain::weekday_name(dt.weekday())
        )
    }

    /// The date of `t` in the calendar's zone.
    pub fn local_date(&self, t: Timestamp) -> Date {
        self.time_zone().to_datetime(t).date()
    }

    /// Loaded years have their table; others get the weekdays-only one, built on the spot.
    fn cum(&self, year: i16) -> Cow<'_, [u32]> {
        match self.years.get(&year) {
            Some(t) => Cow::Borrowed(&t.cum),
            None => Cow::Owned(prefix_counts(year, is_weekday)),
        }
    }

    /// Years from `from` to `to` (inclusive) with no data.
    fn missing_years(&self, from: Date, to: Date) -> Vec<i16> {
        if to < from {
            return Vec::new();
        }
        (from.year()..=to.year())
            .filter(|y| !self.has_year(*y))
            .collect()
    }

    /// Years with no data among the days counted from `start` (excluded) to `due` (included).
    fn counted_missing_years(&self, start: Date, due: Date) -> Vec<i16> {
        match start.tomorrow() {
            Ok(first) => self.missing_years(first, due),
            Err(_) => Vec::new(),
        }
    }

    /// Working days in `[from, to)`, from the per-year prefix sums.
    fn working_days_in(&self, from: Date, to: Date) -> u64 {
        if to <= from {
            return 0;
        }
        let mut total = 0;
        for year in from.year()..=to.year() {
            let cum = self.cum(year);
            let lo = if year == from.year() {
                day_index(from)
            } else {
                0
            };
            let hi = if year == to.year() {
                day_index(to)
            } else {
                cum.len()
            };
            if hi > lo {
                let before = if lo == 0 { 0 } else { cum[lo - 1] };
                total += u64::from(cum[hi - 1] - before);
            }
        }
        total
    }

    /// The date `n` working days after `start` (start excluded); `None` past 9999-12-31.
    fn nth_working_day_after(&self, start: Date, n: u32) -> Option<Date> {
        if n == 0 {
            return Some(start);
        }
        let mut year = start.year();
        let mut before = self.cum(year)[day_index(start)];
        let mut remaining = n;
        loop {
            let cum = self.cum(year);
            let available = cum.last().copied().unwrap_or(0) - before;
            if remaining <= available {
                let target = before + remaining;
                let index = cum.partition_point(|&c| c < target);
                let offset = i32::try_from(index).ok()?;
                return Date::new(year, 1, 1).ok()?.checked_add(offset.days()).ok();
            }
            remaining -= available;
            before = 0;
            year = year.checked_add(1).filter(|y| *y <= Date::MAX.year())?;
        }
    }

    /// Working periods of `d` as instants, in order; none on a non-working day.
    fn periods_on(&self, d: Date) -> impl Iterator<Item = (Timestamp, Timestamp)> + '_ {
        let working = self.is_working_day(d);
        self.hours
            .periods()
            .iter()
            .filter(move |_| working)
            .filter_map(move |p| {
                let s = self.hours.instant(d, p.start_minute())?;
                let e = self.hours.instant(d, p.end_minute())?;
                (s < e).then_some((s, e))
            })
    }

    /// Walks working periods from `start` until `amount` of working time has passed.
    /// Returns where counting began (the next working instant) and where it ended.
    fn advance(&self, start: Timestamp, amount: SignedDuration) -> Option<(Timestamp, Timestamp)> {
        let mut remaining = amount;
        let mut began: Option<Timestamp> = None;
        let mut d = self.local_date(start);
        loop {
            for (s, e) in self.periods_on(d) {
                if e <= start {
                    continue;
                }
                let from = s.max(start);
                let began = *began.get_or_insert(from);
                let available = e.duration_since(from);
                if remaining <= available {
                    return Some((began, from.checked_add(remaining).ok()?));
                }
                remaining -= available;
            }
            d = d.tomorrow().ok()?;
        }
    }
}

fn saturated() -> Deadline {
    Deadline {
        due: Timestamp::MAX,
        provisional: true,
        explanation: explain::out_of_range(),
    }
}

fn is_weekday(d: Date) -> bool {
    !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// Zero-based day of the year.
fn day_index(d: Date) -> usize {
    usize::try_from(d.day_of_year() - 1).expect("day_of_year is 1..=366")
}

/// `cum[i]`: how many of days `0..=i` of `year` satisfy `working`.
fn prefix_counts(year: i16, working: impl Fn(Date) -> bool) -> Vec<u32> {
    let Ok(first) = Date::new(year, 1, 1) else {
        return vec![0];
    };
    let mut count = 0;
    first
        .series(1.day())
        .take_while(|d| d.year() == year)
        .map(|d| {
            count += u32::from(working(d));
            count
        })
        .collect()
}

/// Groups sorted off days into runs of consecutive dates and names each run.
fn holiday_runs(off: &[Date]) -> Vec<Holiday> {
    let mut runs: Vec<Holiday> = Vec::new();
    for &d in off {
        match runs.last_mut() {
            Some(run) if run.last.tomorrow().ok() == Some(d) => run.last = d,
            _ => runs.push(Holiday {
                first: d,
                last: d,
                name: "",
            }),
        }
    }
    for run in &mut runs {
        run.name = holiday_name(run.first, run.last);
    }
    runs
}

/// Names a run of off days after the statutory holiday it holds, from its dates alone (the data
/// files carry no names). Under the 2024 rules 国庆 is 7 days, 8 when 中秋 is merged into it.
fn holiday_name(first: Date, last: Date) -> &'static str {
    let contains = |month: i8, day: i8| {
        let y = first.year();
        [y, last.year()]
            .iter()
            .any(|&y| Date::new(y, month, day).is_ok_and(|d| first <= d && d <= last))
    };
    let days = (last - first).get_days() + 1;
    let in_month = |month: i8| first.month() == month || last.month() == month;
    if contains(1, 1) {
        "元旦"
    } else if contains(10, 1) {
        if days >= 8 {
            "国庆、中秋"
        } else {
            "国庆"
        }
    } else if contains(5, 1) {
        "劳动节"
    } else if days >= 5 && first.month() <= 2 && last.month() <= 2 {
        "春节"
    } else if first.month() == 4 && first.day() <= 10 {
        "清明"
    } else if in_month(6) || (first.month() == 5 && first.day() >= 20) {
        "端午"
    } else if in_month(9) {
        "中秋"
    } else {
        "节假日"
    }
}

#[cfg(test)]
mod tests;
