//! Unit tests of the calendar: the shipped data, explanations, hour arithmetic, and properties
//! checked against naive per-day and per-minute counting.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use proptest::prelude::*;

use super::*;

const Y2025: &str = include_str!("../../config/calendar/cn-2025.json");
const Y2026: &str = include_str!("../../config/calendar/cn-2026.json");
const DEADLINES: &str = include_str!("../../tests/fixtures/calendar/deadlines.tsv");

fn cal() -> Calendar {
    let years = [("cn-2025.json", Y2025), ("cn-2026.json", Y2026)]
        .iter()
        .map(|(name, text)| YearData::parse_json(text, name).expect("shipped data is valid"))
        .collect();
    Calendar::new(years, WorkingHours::default()).expect("calendar")
}

fn date(s: &str) -> Date {
    s.parse().expect("date literal")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp literal")
}

#[test]
fn fixture_deadlines() {
    let cal = cal();
    let mut rows = 0;
    for line in DEADLINES
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let (start, n) = (date(cols[0]), cols[1].parse::<u32>().expect("n"));
        let d = cal.add_working_days(start, n);
        if cols[2].starts_with("unknown") {
            assert!(d.provisional, "{line}: {d:?}");
            assert!(
                d.explanation.contains("2027 年节假日安排尚未载入"),
                "{}",
                d.explanation
            );
        } else {
            assert_eq!(d.due, date(cols[2]), "{line}: {}", d.explanation);
            assert!(!d.provisional, "{line}");
            assert!(cal.is_working_day(d.due), "{line}");
        }
        rows += 1;
    }
    assert_eq!(rows, 10);
}

#[test]
fn working_days_per_month_match_the_fixture_comments() {
    let cal = cal();
    for line in DEADLINES
        .lines()
        .filter(|l| l.starts_with("# 2025:") || l.starts_with("# 2026:"))
    {
        let year: i16 = line[2..6].parse().expect("year");
        let (list, total) = line[8..].split_once(' ').expect("counts then total");
        let expected: Vec<u32> = list.split(',').map(|n| n.parse().expect("count")).collect();
        let actual: Vec<u32> = (1..=12)
            .map(|m| cal.working_days_in_month(year, m))
            .collect();
        assert_eq!(actual, expected, "{year}");
        assert_eq!(format!("({})", actual.iter().sum::<u32>()), total, "{year}");
    }
}

#[test]
fn holidays_are_named_from_their_dates() {
    let cal = cal();
    let named: Vec<String> = cal
        .holidays()
        .iter()
        .map(|h| format!("{} {} {}", h.first, h.days(), h.name))
        .collect();
    assert_eq!(
        named,
        [
            "2025-01-01 1 元旦",
            "2025-01-28 8 春节",
            "2025-04-04 3 清明",
            "2025-05-01 5 劳动节",
            "2025-05-31 3 端午",
            "2025-10-01 8 国庆、中秋",
            "2026-01-01 3 元旦",
            "2026-02-15 9 春节",
            "2026-04-04 3 清明",
            "2026-05-01 5 劳动节",
            "2026-06-19 3 端午",
            "2026-09-25 3 中秋",
            "2026-10-01 7 国庆",
        ]
    );
    assert_eq!(
        cal.holiday_on(date("2026-10-04")).map(|h| h.name),
        Some("国庆")
    );
    assert_eq!(cal.holiday_on(date("2026-10-08")), None);
}

#[test]
fn calendar_can_be_shared_between_tasks() {
    fn shareable<T: Clone + std::fmt::Debug + Send + Sync + 'static>() {}
    shareable::<Calendar>();
    shareable::<Deadline>();
}

#[test]
fn working_day_rules() {
    let cal = cal();
    assert!(cal.is_working_day(date("2026-10-10")), "make-up Saturday");
    assert!(cal.is_working_day(date("2025-01-26")), "make-up Sunday");
    assert!(!cal.is_working_day(date("2026-10-05")), "国庆 Monday");
    assert!(!cal.is_working_day(date("2026-11-28")), "plain Saturday");
    assert!(
        cal.is_working_day(date("2027-01-01")),
        "no 2027 data: weekdays"
    );
    assert!(!cal.is_working_day(date("2027-01-02")));
    assert_eq!(cal.years(), vec![2025, 2026]);
    assert!(cal.has_year(2026) && !cal.has_year(2027));
}

#[test]
fn day_explanations() {
    let cal = cal();
    let cases = [
        (
            "2026-09-30",
            3,
            "截止 2026-10-10（周六，调休上班日），已跳过 10/1–10/7 国庆假期",
        ),
        (
            "2025-09-30",
            3,
            "截止 2025-10-11（周六，调休上班日），已跳过 10/1–10/8 国庆、中秋假期",
        ),
        (
            "2025-01-24",
            3,
            "截止 2025-02-05（周三），已跳过 1/28–2/4 春节假期、周末 1/25；计入调休上班日 1/26（周日）",
        ),
        (
            "2025-12-31",
            3,
            "截止 2026-01-06（周二），已跳过 1/1–1/3 元旦假期；计入调休上班日 1/4（周日）",
        ),
        (
            "2026-11-27",
            1,
            "截止 2026-11-30（周一），已跳过周末 11/28–11/29",
        ),
        ("2026-11-23", 10, "截止 2026-12-07（周一），已跳过 2 个周末"),
        ("2026-11-24", 1, "截止 2026-11-25（周三）"),
        (
            "2026-12-31",
            1,
            "截止 2027-01-01（周五）（暂定：2027 年节假日安排尚未载入，按周一至周五计算；载入后将重新计算）",
        ),
    ];
    for (start, n, expected) in cases {
        assert_eq!(
            cal.add_working_days(date(start), n).explanation,
            expected,
            "{start} + {n}"
        );
    }
}

#[test]
fn provisional_only_when_a_counted_day_has_no_data() {
    let cal = cal();
    // The start day is never counted, so a start in an unloaded year does not make it provisional.
    let d = cal.add_working_days(date("2024-12-31"), 1);
    assert_eq!((d.due, d.provisional), (date("2025-01-02"), false));
    let d = cal.add_working_days(date("2024-12-27"), 1);
    assert_eq!((d.due, d.provisional), (date("2024-12-30"), true));
    assert!(
        d.explanation.contains("2024 年节假日安排尚未载入"),
        "{}",
        d.explanation
    );
    let d = cal.add_working_days(date("2026-12-30"), 600);
    assert!(
        d.explanation.contains("2027–2029 年") || d.explanation.contains("2027、2028、2029 年")
    );
    assert_eq!(
        cal.add_working_days(date("2026-06-01"), 0).due,
        date("2026-06-01")
    );
}

#[test]
fn huge_counts_saturate_instead_of_overflowing() {
    let cal = cal();
    let d = cal.add_working_days(date("2026-01-01"), u32::MAX);
    assert_eq!((d.due, d.provisional), (Date::MAX, true));
    assert!(d.explanation.contains("超出可计算的范围"));
    let d = cal.add_working_days(date("2026-01-01"), 1_000_000);
    assert_eq!(d.due, naive_add_days(&cal, date("2026-01-01"), 1_000_000));
    assert!(d.explanation.contains("期间共跳过"), "{}", d.explanation);
}

#[test]
fn working_days_deadline_is_due_at_end_of_day() {
    let cal = cal();
    let d = cal.working_days_deadline(ts("2026-09-30T16:00:00+08:00"), 3);
    assert_eq!(d.due, ts("2026-10-10T18:00:00+08:00"));
    assert_eq!(
        d.explanation,
        "截止 2026-10-10 18:00（周六，调休上班日），已跳过 10/1–10/7 国庆假期"
    );
    // The local date decides: 2026-09-30T23:30+08 is still 09-30 although it is 15:30 UTC.
    let d = cal.working_days_deadline(ts("2026-09-30T15:30:00Z"), 1);
    assert_eq!(d.due, ts("2026-10-08T18:00:00+08:00"));
    let d = cal.working_days_deadline(ts("2026-12-31T10:00:00+08:00"), 1);
    assert!(d.provisional && d.explanation.contains("暂定"), "{d:?}");
}

#[test]
fn hour_arithmetic() {
    let cal = cal();
    let cases = [
        // Across the 国庆 break.
        ("2026-09-30T17:30:00+08:00", 60, "2026-10-08T09:00:00+08:00"),
        // Saturday evening: counts from Monday 08:30.
        ("2026-11-28T20:00:00+08:00", 60, "2026-11-30T09:30:00+08:00"),
        // Before 08:30.
        ("2026-11-26T07:00:00+08:00", 30, "2026-11-26T09:00:00+08:00"),
        // In the lunch break.
        ("2026-11-26T12:30:00+08:00", 90, "2026-11-26T16:00:00+08:00"),
        // Friday evening into the make-up Saturday 10-10.
        (
            "2026-10-09T17:00:00+08:00",
            120,
            "2026-10-10T09:30:00+08:00",
        ),
        // Across lunch.
        ("2026-11-26T11:30:00+08:00", 60, "2026-11-26T15:00:00+08:00"),
        // Exactly reaching a period end stays at that end.
        ("2026-11-26T17:30:00+08:00", 30, "2026-11-26T18:00:00+08:00"),
        ("2026-11-26T11:30:00+08:00", 30, "2026-11-26T12:00:00+08:00"),
        // Seconds are kept.
        ("2026-11-26T11:59:30+08:00", 1, "2026-11-26T14:30:30+08:00"),
        // Zero minutes: the next working instant.
        ("2026-11-26T12:30:00+08:00", 0, "2026-11-26T14:30:00+08:00"),
        ("2026-11-26T09:00:00+08:00", 0, "2026-11-26T09:00:00+08:00"),
    ];
    for (start, minutes, due) in cases {
        let d = cal.add_working_minutes(ts(start), minutes);
        assert_eq!(d.due, ts(due), "{start} + {minutes} min: {}", d.explanation);
        assert!(!d.provisional);
        assert_eq!(
            cal.working_minutes_between(ts(start), d.due),
            i64::from(minutes),
            "{start}"
        );
    }
}

#[test]
fn hour_explanations() {
    let cal = cal();
    let cases = [
        (
            "2026-10-08T18:30:00+08:00",
            60,
            "截止 2026-10-09 09:30（周五），1 个工作小时（自 2026-10-09 08:30 起算），工作时间 08:30–12:00、14:30–18:00",
        ),
        (
            "2026-09-30T17:30:00+08:00",
            60,
            "截止 2026-10-08 09:00（周四），1 个工作小时，工作时间 08:30–12:00、14:30–18:00，已跳过 10/1–10/7 国庆假期",
        ),
        (
            "2026-11-28T20:00:00+08:00",
            90,
            "截止 2026-11-30 10:00（周一），1 小时 30 分钟工作时间（自 2026-11-30 08:30 起算），工作时间 08:30–12:00、14:30–18:00，已跳过周末 11/28–11/29",
        ),
        (
            "2026-10-09T17:00:00+08:00",
            120,
            "截止 2026-10-10 09:30（周六，调休上班日），2 个工作小时，工作时间 08:30–12:00、14:30–18:00",
        ),
        (
            "2026-12-31T17:50:00+08:00",
            30,
            "截止 2027-01-01 08:50（周五），30 分钟工作时间，工作时间 08:30–12:00、14:30–18:00（暂定：2027 年节假日安排尚未载入，按周一至周五计算；载入后将重新计算）",
        ),
    ];
    for (start, minutes, expected) in cases {
        assert_eq!(
            cal.add_working_minutes(ts(start), minutes).explanation,
            expected
        );
    }
}

#[test]
fn working_time_and_next_working_time() {
    let cal = cal();
    assert!(cal.is_working_time(ts("2026-11-26T08:30:00+08:00")));
    assert!(cal.is_working_time(ts("2026-11-26T11:59:59+08:00")));
    assert!(
        !cal.is_working_time(ts("2026-11-26T12:00:00+08:00")),
        "period end is outside"
    );
    assert!(
        !cal.is_working_time(ts("2026-10-05T10:00:00+08:00")),
        "holiday"
    );
    assert!(
        cal.is_working_time(ts("2026-10-10T10:00:00+08:00")),
        "make-up Saturday"
    );
    assert_eq!(
        cal.next_working_time(ts("2026-09-30T18:00:00+08:00")),
        ts("2026-10-08T08:30:00+08:00")
    );
    assert_eq!(
        cal.working_minutes_between(
            ts("2026-10-08T10:00:00+08:00"),
            ts("2026-10-08T09:00:00+08:00")
        ),
        0
    );
    assert_eq!(
        cal.working_minutes_between(
            ts("2026-11-26T00:00:00+08:00"),
            ts("2026-11-27T00:00:00+08:00")
        ),
        420
    );
    assert_eq!(
        cal.display(ts("2026-10-10T10:00:00Z")),
        "2026-10-10 18:00（周六）"
    );
}

#[test]
fn daylight_saving_days_have_their_real_length() {
    // A zone with DST and one all-day period; 2026-03-08 (Sunday) is made a working day so the
    // spring-forward day, 23 hours long in New York, is counted.
    let tz = TimeZone::get("America/New_York").expect("zone");
    let hours = WorkingHours::new(
        vec![WorkingHours::parse_period("00:00-24:00").expect("period")],
        tz,
    )
    .expect("hours");
    let year = YearData {
        year: 2026,
        source: "test".into(),
        off_days: vec![],
        makeup_workdays: vec![date("2026-03-08")],
    };
    let cal = Calendar::new(vec![year], hours).expect("calendar");
    let (a, b) = (
        ts("2026-03-08T00:00:00-05:00"),
        ts("2026-03-09T00:00:00-04:00"),
    );
    assert_eq!(cal.working_minutes_between(a, b), 23 * 60);
    assert_eq!(cal.add_working_minutes(a, 23 * 60).due, b);
    assert_eq!(
        cal.add_working_minutes(a, 23 * 60 + 1).due,
        ts("2026-03-09T00:01:00-04:00")
    );
}

#[test]
fn duplicate_year_and_unreadable_dir_are_errors() {
    let y = || YearData::parse_json(Y2026, "x").expect("valid");
    let err = Calendar::new(vec![y(), y()], WorkingHours::default()).expect_err("duplicate");
    assert!(
        err.to_string().contains("2026 年的节假日数据出现了两次"),
        "{err}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.json"), Y2026).expect("write");
    std::fs::write(dir.path().join("b.json"), Y2026).expect("write");
    let err = Calendar::load_dir(dir.path(), WorkingHours::default()).expect_err("duplicate");
    assert!(
        err.to_string().contains("a.json") && err.to_string().contains("b.json"),
        "{err}"
    );

    let err = Calendar::load_dir(&dir.path().join("missing"), WorkingHours::default())
        .expect_err("no dir");
    assert!(err.to_string().contains("无法读取节假日目录"), "{err}");
}

#[test]
fn load_dir_reads_json_files_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("cn-2026.json"), Y2026).expect("write");
    std::fs::write(dir.path().join("README.md"), "not data").expect("write");
    std::fs::write(dir.path().join(".cn-2025.json.tmp"), "partial").expect("write");
    let cal = Calendar::load_dir(dir.path(), WorkingHours::default()).expect("load");
    assert_eq!(cal.years(), vec![2026]);
}

/// The definition, one day at a time.
fn naive_add_days(cal: &Calendar, start: Date, n: u32) -> Date {
    let mut d = start;
    let mut left = n;
    while left > 0 {
        d = d.tomorrow().expect("in range");
        if cal.is_working_day(d) {
            left -= 1;
        }
    }
    d
}

fn any_date() -> impl Strategy<Value = Date> {
    // 2024-06-01 .. 2027-06: loaded years and unloaded ones on both sides.
    (0i32..1100).prop_map(|k| date("2024-06-01").checked_add(k.days()).expect("in range"))
}

fn any_instant() -> impl Strategy<Value = Timestamp> {
    (0i64..3 * 366 * 86_400)
        .prop_map(|s| ts("2024-12-01T00:00:00+08:00") + SignedDuration::from_secs(s))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn add_working_days_properties(start in any_date(), later in 0i32..40, n in 0u32..400) {
        let cal = cal();
        let d = cal.add_working_days(start, n);
        prop_assert_eq!(d.due, naive_add_days(&cal, start, n));
        if n > 0 {
            prop_assert!(cal.is_working_day(d.due));
        }
        prop_assert!(cal.add_working_days(start, n + 1).due > d.due, "strictly monotonic in n");
        let start2 = start.checked_add(later.days()).expect("in range");
        prop_assert!(cal.add_working_days(start2, n).due >= d.due, "non-decreasing in start");
        let first_counted = start.tomorrow().expect("in range");
        let unloaded = n > 0
            && (first_counted.year()..=d.due.year()).any(|y| !(2025..=2026).contains(&y));
        prop_assert_eq!(d.provisional, unloaded);
    }

    #[test]
    fn add_working_minutes_properties(start in any_instant(), minutes in 0u32..6000) {
        let cal = cal();
        let d = cal.add_working_minutes(start, minutes);
        prop_assert!(d.due >= start);
        let inside = cal.is_working_time(d.due);
        let at_period_end = minutes > 0 && cal.is_working_time(d.due - SignedDuration::from_nanos(1));
        prop_assert!(inside || at_period_end, "{} is neither working time nor a period end", d.due);
        prop_assert_eq!(cal.working_minutes_between(start, d.due), i64::from(minutes));
        let next = cal.next_working_time(start);
        prop_assert!(cal.is_working_time(next));
        prop_assert_eq!(next == start, cal.is_working_time(start));
        prop_assert_eq!(cal.working_minutes_between(start, next), 0);
    }

    #[test]
    fn working_minutes_between_counts_minutes(start in any_instant(), span in 0i64..3 * 1440) {
        let cal = cal();
        let start = start.round(jiff::Unit::Minute).expect("round");
        let end = start + SignedDuration::from_mins(span);
        let naive = (0..span)
            .filter(|m| cal.is_working_time(start + SignedDuration::from_mins(*m)))
            .count();
        prop_assert_eq!(cal.working_minutes_between(start, end), i64::try_from(naive).expect("small"));
    }
}
