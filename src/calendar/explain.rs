//! The Chinese explanation attached to every deadline, so a liaison can check it by hand:
//! `截止 2026-10-10（周六，调休上班日），已跳过 10/1–10/7 国庆假期` (docs/spec.md → Clocks).

use jiff::civil::{Date, Weekday};
use jiff::{Timestamp, ToSpan};

use super::Calendar;

/// Windows longer than this are summarised by a count instead of listing every holiday.
const LONG_WINDOW_DAYS: i32 = 400;
/// At most this many holiday runs or make-up days are named; the rest are counted.
const MAX_LISTED: usize = 4;

/// `周一` … `周日`.
pub fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "周一",
        Weekday::Tuesday => "周二",
        Weekday::Wednesday => "周三",
        Weekday::Thursday => "周四",
        Weekday::Friday => "周五",
        Weekday::Saturday => "周六",
        Weekday::Sunday => "周日",
    }
}

/// `10/1`, or `2025/12/31` when the year differs from `reference`.
pub(crate) fn month_day(d: Date, reference: i16) -> String {
    if d.year() == reference {
        format!("{}/{}", d.month(), d.day())
    } else {
        format!("{}/{}/{}", d.year(), d.month(), d.day())
    }
}

/// `10/1–10/7`, or `1/1` for a single day.
pub(crate) fn date_range(first: Date, last: Date, reference: i16) -> String {
    if first == last {
        month_day(first, reference)
    } else {
        format!(
            "{}–{}",
            month_day(first, reference),
            month_day(last, reference)
        )
    }
}

/// Day-count deadline: the due date (with its instant when given), what was skipped between the
/// start (not counted) and the due date, and the provisional note.
pub(super) fn days(
    cal: &Calendar,
    start: Date,
    due: Date,
    at: Option<Timestamp>,
    missing: &[i16],
) -> String {
    let head = match at {
        Some(t) => cal
            .time_zone()
            .to_datetime(t)
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        None => due.to_string(),
    };
    let mut text = format!("截止 {head}（{}）", day_label(cal, due));
    if let Ok(first_counted) = start.tomorrow() {
        text += &skipped(cal, first_counted, due);
    }
    text += &provisional_note(missing);
    text
}

/// Working-time deadline: the due instant, the amount, the working hours, where counting began
/// when the start was outside working time, what was skipped, and the provisional note.
pub(super) fn minutes(
    cal: &Calendar,
    start: Timestamp,
    began: Timestamp,
    due: Timestamp,
    minutes: u32,
    missing: &[i16],
) -> String {
    let tz = cal.time_zone();
    let due_date = cal.local_date(due);
    let mut text = format!(
        "截止 {}（{}），{}",
        tz.to_datetime(due).strftime("%Y-%m-%d %H:%M"),
        day_label(cal, due_date),
        amount(minutes)
    );
    if began != start {
        text += &format!(
            "（自 {} 起算）",
            tz.to_datetime(began).strftime("%Y-%m-%d %H:%M")
        );
    }
    text += &format!("，工作时间 {}", cal.hours().describe());
    text += &skipped(cal, cal.local_date(start), due_date);
    text += &provisional_note(missing);
    text
}

pub(super) fn out_of_range() -> String {
    "截止时间超出可计算的范围（9999 年以后），请检查期限设置".to_string()
}

/// `（暂定：2027 年节假日安排尚未载入，按周一至周五计算；载入后将重新计算）`, or nothing.
pub(crate) fn provisional_note(missing: &[i16]) -> String {
    let years = match missing {
        [] => return String::new(),
        [a, .., b] if missing.len() > 3 => format!("{a}–{b} 年"),
        _ => {
            let list: Vec<String> = missing.iter().map(i16::to_string).collect();
            format!("{} 年", list.join("、"))
        }
    };
    format!("（暂定：{years}节假日安排尚未载入，按周一至周五计算；载入后将重新计算）")
}

/// `周六，调休上班日` or `周三`.
fn day_label(cal: &Calendar, d: Date) -> String {
    let name = weekday_name(d.weekday());
    if cal.is_makeup_workday(d) {
        format!("{name}，调休上班日")
    } else {
        name.to_string()
    }
}

/// `1 个工作小时`, `30 分钟工作时间`, `1 小时 30 分钟工作时间`.
fn amount(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (h, 0) => format!("{h} 个工作小时"),
        (0, m) => format!("{m} 分钟工作时间"),
        (h, m) => format!("{h} 小时 {m} 分钟工作时间"),
    }
}

/// What the days in `[from, to)` contributed: `，已跳过 10/1–10/7 国庆假期、周末 11/28–11/29`
/// for non-working days, then `；计入调休上班日 9/20（周日）` for make-up days counted.
fn skipped(cal: &Calendar, from: Date, to: Date) -> String {
    let span = (to - from).get_days();
    if span <= 0 {
        return String::new();
    }
    if span > LONG_WINDOW_DAYS {
        let off = u64::try_from(span)
            .unwrap_or(0)
            .saturating_sub(cal.working_days_in(from, to));
        return if off == 0 {
            String::new()
        } else {
            format!("，期间共跳过 {off} 个非工作日")
        };
    }
    let reference = to.year();
    // (first date of the holiday run, name, first skipped, last skipped)
    let mut holidays: Vec<(Date, &'static str, Date, Date)> = Vec::new();
    let mut weekends: Vec<(Date, Date)> = Vec::new();
    let mut makeups: Vec<Date> = Vec::new();
    for d in from.series(1.day()).take_while(|d| *d < to) {
        if cal.is_working_day(d) {
            if cal.is_makeup_workday(d) {
                makeups.push(d);
            }
            continue;
        }
        match cal.holiday_on(d) {
            Some(h) => match holidays.last_mut() {
                Some(run) if run.0 == h.first => run.3 = d,
                _ => holidays.push((h.first, h.name, d, d)),
            },
            None => match weekends.last_mut() {
                Some(run) if run.1.tomorrow().ok() == Some(d) => run.1 = d,
                _ => weekends.push((d, d)),
            },
        }
    }

    let shown = if holidays.len() > MAX_LISTED {
        MAX_LISTED - 1
    } else {
        holidays.len()
    };
    let mut parts: Vec<String> = holidays[..shown]
        .iter()
        .map(|(_, name, a, b)| format!("{} {name}假期", date_range(*a, *b, reference)))
        .collect();
    if let Some(last) = parts.last_mut().filter(|_| holidays.len() > shown) {
        last.push_str(&format!(" 等 {} 段节假日", holidays.len()));
    }
    match weekends.as_slice() {
        [] => {}
        [(a, b)] => parts.push(format!("周末 {}", date_range(*a, *b, reference))),
        many => parts.push(format!("{} 个周末", many.len())),
    }
    let mut text = String::new();
    if !parts.is_empty() {
        let list = parts.join("、");
        // A space between Chinese and a number, none between Chinese words.
        let gap = if list.starts_with(|c: char| c.is_ascii_digit()) {
            " "
        } else {
            ""
        };
        text += &format!("，已跳过{gap}{list}");
    }
    if !makeups.is_empty() {
        let listed: Vec<String> = makeups
            .iter()
            .take(MAX_LISTED)
            .map(|d| {
                format!(
                    "{}（{}）",
                    month_day(*d, reference),
                    weekday_name(d.weekday())
                )
            })
            .collect();
        let more = if makeups.len() > MAX_LISTED {
            format!(" 等 {} 天", makeups.len())
        } else {
            String::new()
        };
        text += &format!("；计入调休上班日 {}{more}", listed.join("、"));
    }
    text
}
