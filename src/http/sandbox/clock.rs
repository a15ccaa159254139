//! The sandbox's clock panel: how far one request moves the service's clock forward (minutes,
//! hours, days, working days by the calendar, or to the next working period), and what the panel
//! shows of the clock. Only clocks built to be moved accept a move ([`crate::clock::Clock::advance_by`]).

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::{SandboxError, SandboxState};
use crate::calendar::Calendar;
use crate::clock::AdvanceError;

/// The longest single move of the clock panel: a year, in minutes. Farther is never needed to
/// watch a deadline and only risks leaving the calendar's loaded years.
const MAX_MOVE_MINUTES: i64 = 366 * 24 * 60;

/// At most this many working days in one move (about a year of them).
const MAX_MOVE_WORKING_DAYS: i64 = 250;

/// How far to move the clock from `now` for one panel request. `working_days` goes to the same
/// local time on the n-th working day after today (by the calendar, holidays and make-up days
/// included); `to_working` to the start of the next working period.
pub(super) fn move_by(
    calendar: &Calendar,
    now: Timestamp,
    unit: &str,
    amount: i64,
) -> Result<SignedDuration, SandboxError> {
    let minutes_per = match unit {
        "minutes" => Some(1),
        "hours" => Some(60),
        "days" => Some(24 * 60),
        _ => None,
    };
    if let Some(per) = minutes_per {
        let minutes = amount.saturating_mul(per);
        if amount <= 0 || minutes > MAX_MOVE_MINUTES {
            return Err(SandboxError::BadRequest(
                "拨动时长须在 1 分钟到 366 天之间".to_string(),
            ));
        }
        return Ok(SignedDuration::from_mins(minutes));
    }
    match unit {
        "working_days" => {
            if !(1..=MAX_MOVE_WORKING_DAYS).contains(&amount) {
                return Err(SandboxError::BadRequest(format!(
                    "工作日数须在 1 到 {MAX_MOVE_WORKING_DAYS} 之间"
                )));
            }
            let n = u32::try_from(amount).map_err(|_| AdvanceError::OutOfRange)?;
            let local = calendar.time_zone().to_datetime(now);
            let due = calendar.add_working_days(local.date(), n).due;
            let target = due
                .to_datetime(local.time())
                .to_zoned(calendar.time_zone().clone())
                .map_err(|_| AdvanceError::OutOfRange)?
                .timestamp();
            Ok(target.duration_since(now))
        }
        "to_working" => {
            let next = calendar.next_working_time(now);
            if next <= now {
                return Err(SandboxError::AlreadyWorking);
            }
            Ok(next.duration_since(now))
        }
        other => Err(SandboxError::BadRequest(format!("未知的时间单位：{other}"))),
    }
}

/// `{now, working, label, moved}` for the clock panel.
pub(super) fn status(state: &SandboxState) -> serde_json::Value {
    let now = state.clock.now();
    let calendar = &state.calendar;
    let working = calendar.is_working_time(now);
    let label = if working {
        "工作时间".to_string()
    } else {
        match calendar.holiday_on(calendar.local_date(now)) {
            Some(h) => format!("非工作时间（{}）", h.name),
            None => "非工作时间".to_string(),
        }
    };
    let moved = state.moved();
    let moved = if moved.is_zero() {
        "时钟与真实时间一致。".to_string()
    } else {
        format!(
            "已拨快 {}（重启服务也保持；删掉数据库才回到真实时间）。",
            duration_text(moved)
        )
    };
    json!({
        "now": calendar.display(now),
        "working": working,
        "label": label,
        "moved": moved,
    })
}

/// `2 天 3 小时 5 分钟`, whole minutes.
fn duration_text(d: SignedDuration) -> String {
    let minutes = d.as_mins().max(0);
    let (days, hours, mins) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let mut out = Vec::new();
    if days > 0 {
        out.push(format!("{days} 天"));
    }
    if hours > 0 {
        out.push(format!("{hours} 小时"));
    }
    if mins > 0 || out.is_empty() {
        out.push(format!("{mins} 分钟"));
    }
    out.join(" ")
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
        s.parse().expect("instant")
    }

    #[test]
    fn a_working_day_moves_to_the_same_time_on_the_next_working_day() {
        let cal = calendar();
        // Friday 2026-10-09 10:00 (a make-up working day follows on Saturday 10-10).
        let now = at("2026-10-09T10:00:00+08:00");
        let by = move_by(&cal, now, "working_days", 1).expect("move");
        assert_eq!(now + by, at("2026-10-10T10:00:00+08:00"));
        // Before the National Day holiday (10-01 to 10-07): from 09-30 the next is 10-08.
        let now = at("2026-09-30T16:20:00+08:00");
        let by = move_by(&cal, now, "working_days", 1).expect("move");
        assert_eq!(now + by, at("2026-10-08T16:20:00+08:00"));
        assert!(cal.is_working_time(now + by));
    }

    #[test]
    fn plain_moves_and_the_jump_to_working_time() {
        let cal = calendar();
        let saturday_night = at("2026-11-07T22:00:00+08:00");
        assert_eq!(
            move_by(&cal, saturday_night, "hours", 2).expect("move"),
            SignedDuration::from_hours(2)
        );
        let by = move_by(&cal, saturday_night, "to_working", 0).expect("move");
        assert_eq!(saturday_night + by, at("2026-11-09T08:30:00+08:00"));
        let monday = at("2026-11-09T09:00:00+08:00");
        assert!(matches!(
            move_by(&cal, monday, "to_working", 0),
            Err(SandboxError::AlreadyWorking)
        ));
        for (unit, amount) in [("hours", 0), ("minutes", -5), ("days", 367), ("weeks", 1)] {
            assert!(
                matches!(
                    move_by(&cal, monday, unit, amount),
                    Err(SandboxError::BadRequest(_))
                ),
                "{unit} {amount}"
            );
        }
        assert!(move_by(&cal, monday, "working_days", 251).is_err());
    }

    #[test]
    fn durations_read_in_days_hours_and_minutes() {
        assert_eq!(duration_text(SignedDuration::from_mins(0)), "0 分钟");
        assert_eq!(
            duration_text(SignedDuration::from_mins(61)),
            "1 小时 1 分钟"
        );
        assert_eq!(
            duration_text(SignedDuration::from_mins(1440 * 2 + 180)),
            "2 天 3 小时"
        );
    }
}
