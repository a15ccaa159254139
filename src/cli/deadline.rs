//! `tiaochu deadline`: computes one deadline with the configured calendar and working hours, so an
//! admin or a liaison can check by hand what the service will say (docs/spec.md → Clocks).

use anyhow::bail;
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde_json::json;

use crate::calendar::Calendar;
use crate::settings::Settings;

#[derive(clap::Args, Debug)]
pub struct DeadlineArgs {
    /// 开始日期（2026-09-30）或带时区的时间（2026-09-30T16:00:00+08:00）；不带时区的时间按 [hours] 时区理解
    #[arg(long)]
    pub start: String,
    /// 工作日数（受理当日不计）
    #[arg(
        long,
        conflicts_with = "working_hours",
        required_unless_present = "working_hours"
    )]
    pub working_days: Option<u32>,
    /// 工作小时数，可为小数（0.5 = 30 分钟）
    #[arg(long, allow_negative_numbers = true)]
    pub working_hours: Option<f64>,
    /// 输出 JSON：due、provisional、explanation
    #[arg(long)]
    pub json: bool,
}

/// What `--start` named: a date (day counts give a date) or an instant.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Start {
    Date(Date),
    Instant(Timestamp),
}

/// The computed deadline, in the shape it is printed.
struct Outcome {
    /// `2026-10-10` for a date start counted in days, else RFC 3339 in the calendar's zone.
    due: String,
    /// `2026-10-10（周六）` or `2026-10-10 18:00（周六）`.
    shown: String,
    provisional: bool,
    explanation: String,
}

/// Exit 0 with the deadline; an error (exit 2) on bad input or an unreadable calendar.
pub fn run(settings: &Settings, args: &DeadlineArgs) -> anyhow::Result<i32> {
    let calendar = settings.load_calendar()?;
    let start = parse_start(&args.start, calendar.time_zone())?;
    let outcome = match (args.working_days, args.working_hours) {
        (Some(days), None) => by_days(&calendar, start, days),
        (None, Some(hours)) => by_minutes(&calendar, start, hours_to_minutes(hours)?),
        _ => bail!("请给出 --working-days 或 --working-hours 之一"),
    };
    if args.json {
        let value = json!({
            "due": outcome.due,
            "provisional": outcome.provisional,
            "explanation": outcome.explanation,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let label = if outcome.provisional {
            "截止（暂定）"
        } else {
            "截止"
        };
        println!("{label}：{}", outcome.shown);
        println!("说明：{}", outcome.explanation);
    }
    Ok(0)
}

fn by_days(calendar: &Calendar, start: Start, days: u32) -> Outcome {
    match start {
        Start::Date(date) => {
            let d = calendar.add_working_days(date, days);
            Outcome {
                due: d.due.to_string(),
                shown: format!(
                    "{}（{}）",
                    d.due,
                    crate::calendar::weekday_name(d.due.weekday())
                ),
                provisional: d.provisional,
                explanation: d.explanation,
            }
        }
        Start::Instant(t) => instant_outcome(calendar, calendar.working_days_deadline(t, days)),
    }
}

fn by_minutes(calendar: &Calendar, start: Start, minutes: u32) -> Outcome {
    let t = match start {
        Start::Instant(t) => t,
        Start::Date(date) => local_instant(
            calendar.time_zone(),
            date.to_datetime(jiff::civil::Time::midnight()),
        ),
    };
    instant_outcome(calendar, calendar.add_working_minutes(t, minutes))
}

fn instant_outcome(calendar: &Calendar, d: crate::calendar::Deadline) -> Outcome {
    let zoned = d.due.to_zoned(calendar.time_zone().clone());
    Outcome {
        due: d.due.display_with_offset(zoned.offset()).to_string(),
        shown: calendar.display(d.due),
        provisional: d.provisional,
        explanation: d.explanation,
    }
}

/// A local time that does not exist (a DST gap) means the instant after the gap.
fn local_instant(tz: &TimeZone, dt: DateTime) -> Timestamp {
    tz.to_ambiguous_timestamp(dt)
        .compatible()
        .unwrap_or(Timestamp::MAX)
}

fn parse_start(text: &str, tz: &TimeZone) -> anyhow::Result<Start> {
    let text = text.trim();
    // jiff reads a date out of a longer datetime text too, so the form decides, not the parser.
    let has_time = text.contains(['T', 't', ' ']);
    if !has_time && let Ok(date) = text.parse::<Date>() {
        return Ok(Start::Date(date));
    }
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(Start::Instant(t));
    }
    if has_time && let Ok(dt) = text.parse::<DateTime>() {
        return Ok(Start::Instant(local_instant(tz, dt)));
    }
    bail!(
        "无法识别开始时间“{text}”：应为日期（如 2026-09-30）或带时区的时间（如 2026-09-30T16:00:00+08:00）"
    )
}

/// Whole working minutes in `hours`; fractions of a minute are refused rather than rounded.
fn hours_to_minutes(hours: f64) -> anyhow::Result<u32> {
    if !hours.is_finite() || hours < 0.0 {
        bail!("工作小时数必须是不小于 0 的数（收到 {hours}）");
    }
    let minutes = hours * 60.0;
    let whole = minutes.round();
    if (minutes - whole).abs() > 1e-6 {
        bail!("工作小时数须折合为整数分钟（如 0.5 = 30 分钟），{hours} 小时 = {minutes} 分钟");
    }
    if whole > f64::from(u32::MAX) {
        bail!("工作小时数过大（{hours}）");
    }
    Ok(whole as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").expect("zone")
    }

    #[test]
    fn start_forms() {
        let tz = shanghai();
        let date: Date = "2026-09-30".parse().expect("date");
        let t: Timestamp = "2026-09-30T08:00:00Z".parse().expect("ts");
        assert_eq!(
            parse_start(" 2026-09-30 ", &tz).expect("date"),
            Start::Date(date)
        );
        assert_eq!(
            parse_start("2026-09-30T16:00:00+08:00", &tz).expect("rfc3339"),
            Start::Instant(t)
        );
        assert_eq!(
            parse_start("2026-09-30 16:00", &tz).expect("local"),
            Start::Instant(t)
        );
        let err = parse_start("2026-13-01", &tz).expect_err("bad").to_string();
        assert!(err.contains("无法识别开始时间“2026-13-01”"), "{err}");
    }

    #[test]
    fn hours_become_whole_minutes() {
        assert_eq!(hours_to_minutes(0.5).expect("ok"), 30);
        assert_eq!(hours_to_minutes(1.0).expect("ok"), 60);
        assert_eq!(hours_to_minutes(0.1).expect("ok"), 6);
        assert!(
            hours_to_minutes(-1.0)
                .expect_err("negative")
                .to_string()
                .contains("不小于 0")
        );
        assert!(hours_to_minutes(f64::NAN).is_err());
        assert!(
            hours_to_minutes(0.01)
                .expect_err("fraction")
                .to_string()
                .contains("整数分钟")
        );
        assert!(
            hours_to_minutes(1e12)
                .expect_err("huge")
                .to_string()
                .contains("过大")
        );
    }
}
