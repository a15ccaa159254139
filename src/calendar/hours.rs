//! Working hours: the working periods of a working day in local time, and the time zone they are
//! in. Hour clocks (docs/spec.md → Clocks, "start review within 1 working hour") only run inside them.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use super::CalendarError;

/// Minutes in a civil day; a period may end at `24:00`, which is this value.
const DAY_MINUTES: u16 = 24 * 60;

/// One working period, as minutes after local midnight: `start < end <= 1440`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    start: u16,
    end: u16,
}

impl Period {
    /// Minutes after local midnight when the period starts.
    pub fn start_minute(self) -> u16 {
        self.start
    }
    /// Minutes after local midnight when the period ends (exclusive; at most 1440 = `24:00`).
    pub fn end_minute(self) -> u16 {
        self.end
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{}", hhmm(self.start), hhmm(self.end))
    }
}

fn hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// Working periods of a working day in local time, plus the time zone.
///
/// Invariants: at least one period; periods are in order, do not overlap and each is non-empty.
/// Instants are found through the zone's rules for each date, so a zone with daylight saving time
/// gets the real length of each period on each date.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkingHours {
    periods: Vec<Period>,
    tz: TimeZone,
}

impl Default for WorkingHours {
    /// 08:30–12:00 and 14:30–18:00 in Asia/Shanghai, as `config/default.toml`.
    fn default() -> Self {
        WorkingHours {
            periods: vec![
                Period {
                    start: 8 * 60 + 30,
                    end: 12 * 60,
                },
                Period {
                    start: 14 * 60 + 30,
                    end: 18 * 60,
                },
            ],
            tz: TimeZone::get("Asia/Shanghai")
                .expect("Asia/Shanghai is in jiff's bundled time zone database"),
        }
    }
}

impl WorkingHours {
    /// From the text of `[hours]`: periods like `"08:30-12:00"` (also `–`, `~` or `～` between
    /// the times, `24:00` as an end) and an IANA zone name.
    pub fn from_text(periods: &[String], time_zone: &str) -> Result<WorkingHours, CalendarError> {
        let tz = TimeZone::get(time_zone.trim()).map_err(|_| CalendarError::TimeZone {
            name: time_zone.to_string(),
        })?;
        let periods = periods
            .iter()
            .enumerate()
            .map(|(i, text)| parse_period(text).map_err(|problem| hours_error(i, text, problem)))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(periods, tz)
    }

    /// Checks the invariants (non-empty, in order, no overlap).
    pub fn new(periods: Vec<Period>, tz: TimeZone) -> Result<WorkingHours, CalendarError> {
        if periods.is_empty() {
            return Err(CalendarError::Hours("至少需要一个工作时段".into()));
        }
        for pair in periods.windows(2) {
            if pair[1].start < pair[0].end {
                return Err(CalendarError::Hours(format!(
                    "工作时段 {} 与 {} 重叠或未按时间先后排列",
                    pair[0], pair[1]
                )));
            }
        }
        Ok(WorkingHours { periods, tz })
    }

    /// A period from `"HH:MM-HH:MM"`.
    pub fn parse_period(text: &str) -> Result<Period, CalendarError> {
        parse_period(text).map_err(|problem| hours_error(0, text, problem))
    }

    pub fn periods(&self) -> &[Period] {
        &self.periods
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// `08:30–12:00、14:30–18:00`, as users see it.
    pub fn describe(&self) -> String {
        self.periods
            .iter()
            .map(Period::to_string)
            .collect::<Vec<_>>()
            .join("、")
    }

    /// The instant of `minute` after local midnight of `date`; `None` past jiff's range.
    /// A local time that does not exist (a DST gap) maps to the instant after the gap.
    pub(crate) fn instant(&self, date: Date, minute: u16) -> Option<Timestamp> {
        let (date, minute) = if minute >= DAY_MINUTES {
            (date.tomorrow().ok()?, minute - DAY_MINUTES)
        } else {
            (date, minute)
        };
        let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
        self.tz
            .to_ambiguous_timestamp(date.to_datetime(time))
            .compatible()
            .ok()
    }
}

fn hours_error(index: usize, text: &str, problem: String) -> CalendarError {
    CalendarError::Hours(format!("第 {} 个工作时段“{text}”{problem}", index + 1))
}

fn parse_period(text: &str) -> Result<Period, String> {
    let text = text.trim();
    let (a, b) = text
        .split_once(['-', '–', '~', '～'])
        .ok_or_else(|| "格式应为 HH:MM-HH:MM".to_string())?;
    let start = parse_minute(a).ok_or_else(|| format!("的开始时间“{}”无效", a.trim()))?;
    let end = parse_minute(b).ok_or_else(|| format!("的结束时间“{}”无效", b.trim()))?;
    if start >= DAY_MINUTES {
        return Err("的开始时间不能是 24:00".into());
    }
    if end <= start {
        return Err("的结束时间必须晚于开始时间".into());
    }
    Ok(Period { start, end })
}

fn parse_minute(text: &str) -> Option<u16> {
    let text = text.trim().replace('：', ":");
    let (h, m) = text.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    let total = h * 60 + m;
    (m < 60 && total <= DAY_MINUTES).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_text(periods: &[&str], tz: &str) -> Result<WorkingHours, CalendarError> {
        let periods: Vec<String> = periods.iter().map(|s| s.to_string()).collect();
        WorkingHours::from_text(&periods, tz)
    }

    #[test]
    fn default_matches_shipped_settings() {
        assert_eq!(
            from_text(&["08:30-12:00", "14:30-18:00"], "Asia/Shanghai").expect("valid"),
            WorkingHours::default()
        );
        assert_eq!(
            WorkingHours::default().describe(),
            "08:30–12:00、14:30–18:00"
        );
    }

    #[test]
    fn tolerant_separators_and_midnight_end() {
        let h = from_text(&[" 8:00 – 12:00 ", "13：00～24:00"], "UTC").expect("valid");
        assert_eq!(h.describe(), "08:00–12:00、13:00–24:00");
        let d = Date::constant(2026, 3, 1);
        let end = h.instant(d, h.periods()[1].end_minute()).expect("in range");
        assert_eq!(end.to_string(), "2026-03-02T00:00:00Z");
    }

    #[test]
    fn invalid_hours_are_reported_in_chinese() {
        let cases: [(&[&str], &str, &str); 6] = [
            (&[], "Asia/Shanghai", "至少需要一个工作时段"),
            (
                &["12:00-08:30"],
                "Asia/Shanghai",
                "结束时间必须晚于开始时间",
            ),
            (&["08:30"], "Asia/Shanghai", "格式应为"),
            (&["08:61-12:00"], "Asia/Shanghai", "开始时间“08:61”无效"),
            (&["08:30-12:00", "11:00-18:00"], "Asia/Shanghai", "重叠"),
            (&["08:30-12:00"], "Mars/Olympus", "未知的时区"),
        ];
        for (periods, tz, expected) in cases {
            let err = from_text(periods, tz).expect_err("invalid");
            assert!(err.to_string().contains(expected), "{periods:?}: {err}");
        }
    }

    #[test]
    fn dst_gap_start_moves_after_the_gap() {
        // New York springs forward at 02:00 on 2026-03-08: a 02:30 start does not exist locally.
        let tz = TimeZone::get("America/New_York").expect("zone");
        let h = WorkingHours::new(
            vec![WorkingHours::parse_period("02:30-04:00").expect("ok")],
            tz,
        )
        .expect("valid");
        let d = Date::constant(2026, 3, 8);
        let s = h
            .instant(d, h.periods()[0].start_minute())
            .expect("in range");
        let e = h.instant(d, h.periods()[0].end_minute()).expect("in range");
        assert_eq!(s.to_string(), "2026-03-08T07:30:00Z");
        assert_eq!(e.duration_since(s).as_mins(), 30);
    }
}
