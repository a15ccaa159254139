//! Integration tests: the working-day calendar through its public API with the shipped fixtures
//! (`tests/fixtures/calendar/`), and the `deadline` and `calendar` commands through the built
//! binary and through their `run` functions.

use std::path::{Path, PathBuf};
use std::process::Output;

use jiff::Timestamp;
use jiff::civil::Date;
use tiaochu::calendar::{Calendar, YearData};
use tiaochu::cli::calendar_cmd::{self, CalendarCommand};
use tiaochu::settings::Settings;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/calendar")
}

fn calendar() -> Calendar {
    crate::support::calendar_in(&fixtures())
}

fn date(s: &str) -> Date {
    s.parse().expect("date literal")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp literal")
}

fn deadlines_tsv() -> String {
    std::fs::read_to_string(fixtures().join("deadlines.tsv")).expect("deadlines.tsv")
}

#[test]
fn every_fixture_deadline() {
    let cal = calendar();
    let tsv = deadlines_tsv();
    let rows: Vec<Vec<&str>> = tsv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 10);
    for row in rows {
        let n: u32 = row[1].parse().expect("n");
        let d = cal.add_working_days(date(row[0]), n);
        if row[2].starts_with("unknown") {
            assert!(d.provisional, "{row:?}: {d:?}");
            assert!(
                d.explanation
                    .contains("暂定：2027 年节假日安排尚未载入，按周一至周五计算"),
                "{}",
                d.explanation
            );
        } else {
            assert_eq!(d.due, date(row[2]), "{row:?}: {}", d.explanation);
            assert!(!d.provisional, "{row:?}");
            assert!(
                d.explanation.starts_with(&format!("截止 {}（", row[2])),
                "{}",
                d.explanation
            );
        }
    }
}

#[test]
fn working_days_per_month_match_fixture_comments() {
    let cal = calendar();
    let tsv = deadlines_tsv();
    let mut years = 0;
    for line in tsv.lines() {
        let Some(rest) = line
            .strip_prefix("# 2025: ")
            .or_else(|| line.strip_prefix("# 2026: "))
        else {
            continue;
        };
        let year: i16 = line[2..6].parse().expect("year");
        let (counts, total) = rest.split_once(' ').expect("counts (total)");
        let expected: Vec<u32> = counts
            .split(',')
            .map(|c| c.parse().expect("count"))
            .collect();
        let actual: Vec<u32> = (1..=12)
            .map(|m| cal.working_days_in_month(year, m))
            .collect();
        assert_eq!(actual, expected, "{year}");
        assert_eq!(total, format!("({})", actual.iter().sum::<u32>()));
        years += 1;
    }
    assert_eq!(years, 2);
}

#[test]
fn spec_explanation_and_day_deadline_instant() {
    let cal = calendar();
    let d = cal.add_working_days(date("2026-09-30"), 3);
    assert_eq!(
        d.explanation,
        "截止 2026-10-10（周六，调休上班日），已跳过 10/1–10/7 国庆假期"
    );
    let d = cal.working_days_deadline(ts("2026-09-30T16:00:00+08:00"), 3);
    assert_eq!(d.due, ts("2026-10-10T18:00:00+08:00"));
    assert!(!d.provisional);
}

#[test]
fn working_hour_clocks() {
    let cal = calendar();
    for (start, minutes, due) in [
        ("2026-09-30T17:30:00+08:00", 60, "2026-10-08T09:00:00+08:00"),
        ("2026-11-28T19:00:00+08:00", 60, "2026-11-30T09:30:00+08:00"),
        ("2026-11-26T06:45:00+08:00", 60, "2026-11-26T09:30:00+08:00"),
        ("2026-11-26T13:00:00+08:00", 60, "2026-11-26T15:30:00+08:00"),
        (
            "2026-10-10T11:00:00+08:00",
            120,
            "2026-10-10T15:30:00+08:00",
        ),
        ("2026-11-26T17:00:00+08:00", 60, "2026-11-26T18:00:00+08:00"),
    ] {
        let d = cal.add_working_minutes(ts(start), minutes);
        assert_eq!(d.due, ts(due), "{start} + {minutes}: {}", d.explanation);
        assert_eq!(
            cal.working_minutes_between(ts(start), d.due),
            i64::from(minutes)
        );
    }
    let d = cal.add_working_minutes(ts("2026-10-08T18:30:00+08:00"), 60);
    assert!(
        d.explanation
            .starts_with("截止 2026-10-09 09:30（周五），1 个工作小时（自 2026-10-09 08:30 起算），工作时间 08:30–12:00、14:30–18:00"),
        "{}",
        d.explanation
    );
    assert!(
        !cal.is_working_time(ts("2026-10-10T12:30:00+08:00")),
        "lunch on a make-up day"
    );
    assert_eq!(
        cal.next_working_time(ts("2026-10-10T12:30:00+08:00")),
        ts("2026-10-10T14:30:00+08:00")
    );
    assert_eq!(
        cal.display(ts("2026-10-10T10:00:00Z")),
        "2026-10-10 18:00（周六）"
    );
}

#[test]
fn year_data_errors_are_chinese_and_name_the_file() {
    let cases = [
        (
            r#"{"year":2027,"source":"s","off_days":["2026-12-31"],"makeup_workdays":[]}"#,
            "off_days 中的 2026-12-31 不在 2027 年内",
        ),
        (
            r#"{"year":2027,"source":"s","off_days":["2027-02-06"],"makeup_workdays":["2027-02-06"]}"#,
            "2027-02-06 既是放假日又是调休上班日",
        ),
        (
            r#"{"year":2027,"off_days":[],"makeup_workdays":[]}"#,
            "缺少 source",
        ),
        (
            r#"{"year":2027,"source":"","off_days":[],"makeup_workdays":[]}"#,
            "缺少 source",
        ),
    ];
    for (text, expected) in cases {
        let err = YearData::parse_json(text, "cn-2027.json")
            .expect_err(expected)
            .to_string();
        assert!(err.starts_with("cn-2027.json 有误："), "{err}");
        assert!(err.contains(expected), "{err}");
    }
}

/// Runs the built binary from the crate root, with the calendar directory overridden when given.
fn tiaochu(args: &[&str], calendar_dir: Option<&Path>) -> Output {
    // A scratch working directory: `calendar load` recomputes the deadlines in the default
    // `tiaochu.db`, which must never be a developer's.
    let mut cmd = crate::support::cli();
    cmd.args(args);
    if let Some(dir) = calendar_dir {
        cmd.env("TIAOCHU_CALENDAR__DIR", dir);
    }
    cmd.output().expect("run tiaochu")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(o: &Output) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(o), stderr(o));
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

#[test]
fn cli_deadline_json() {
    let v = json_of(&tiaochu(
        &[
            "deadline",
            "--start",
            "2026-09-30",
            "--working-days",
            "3",
            "--json",
        ],
        None,
    ));
    assert_eq!(v["due"], "2026-10-10");
    assert_eq!(v["provisional"], false);
    assert_eq!(
        v["explanation"],
        "截止 2026-10-10（周六，调休上班日），已跳过 10/1–10/7 国庆假期"
    );

    let v = json_of(&tiaochu(
        &[
            "deadline",
            "--start",
            "2026-12-31",
            "--working-days",
            "1",
            "--json",
        ],
        None,
    ));
    assert_eq!(v["provisional"], true);
    assert_eq!(v["due"], "2027-01-01");
    assert!(
        v["explanation"]
            .as_str()
            .expect("text")
            .contains("2027 年节假日安排尚未载入"),
        "{v}"
    );

    let args = [
        "deadline",
        "--start",
        "2026-09-30T16:00:00+08:00",
        "--working-days",
        "3",
        "--json",
    ];
    assert_eq!(
        json_of(&tiaochu(&args, None))["due"],
        "2026-10-10T18:00:00+08:00"
    );

    let args = [
        "deadline",
        "--start",
        "2026-09-30T09:30:00Z",
        "--working-hours",
        "1",
        "--json",
    ];
    let v = json_of(&tiaochu(&args, None));
    assert_eq!(v["due"], "2026-10-08T09:00:00+08:00", "{v}");

    let args = [
        "deadline",
        "--start",
        "2026-11-26",
        "--working-hours",
        "0.5",
        "--json",
    ];
    assert_eq!(
        json_of(&tiaochu(&args, None))["due"],
        "2026-11-26T09:00:00+08:00"
    );
}

#[test]
fn cli_deadline_text() {
    let out = tiaochu(
        &["deadline", "--start", "2026-09-30", "--working-days", "3"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "截止：2026-10-10（周六）\n说明：截止 2026-10-10（周六，调休上班日），已跳过 10/1–10/7 国庆假期\n"
    );
    let out = tiaochu(
        &["deadline", "--start", "2026-12-31", "--working-days", "1"],
        None,
    );
    assert!(
        stdout(&out).starts_with("截止（暂定）：2027-01-01（周五）"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn cli_deadline_bad_input_exits_2_in_chinese() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--start", "2026-02-30", "--working-days", "1"],
            "无法识别开始时间",
        ),
        (
            &["--start", "2026-09-30", "--working-hours", "-1"],
            "不小于 0",
        ),
        (
            &["--start", "2026-09-30", "--working-hours", "0.001"],
            "整数分钟",
        ),
        (
            &["--start", "明天", "--working-days", "1"],
            "无法识别开始时间",
        ),
    ];
    for (args, expected) in cases {
        let out = tiaochu(&[&["deadline"], args].concat(), None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let missing = root().join("tests/fixtures/calendar/no-such-dir");
    let out = tiaochu(
        &["deadline", "--start", "2026-09-30", "--working-days", "1"],
        Some(&missing),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("无法读取节假日目录"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cli_calendar_show() {
    let out = tiaochu(&["calendar", "show", "2026"], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("来源：国务院办公厅关于2026年部分节假日安排的通知"),
        "{text}"
    );
    let holiday = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    assert_eq!(
        holiday("国庆").as_deref(),
        Some("国庆 10/1–10/7（7 天）"),
        "{text}"
    );
    assert_eq!(
        holiday("春节").as_deref(),
        Some("春节 2/15–2/23（9 天）"),
        "{text}"
    );
    assert!(
        text.contains("调休上班（6 天）：1/4（周日）、2/14（周六）"),
        "{text}"
    );
    assert!(
        text.contains("每月工作日：1 月 21、2 月 16、3 月 22"),
        "{text}"
    );
    assert!(text.contains("全年工作日：248 天"), "{text}");

    let out = tiaochu(&["calendar", "show", "2027"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("2027 年节假日安排尚未载入"),
        "{}",
        stdout(&out)
    );
}

/// Invented 2027 data for the load tests; not the real schedule.
const FAKE_2027: &str = r#"{"year": 2027, "source": "测试用虚构数据（非官方）",
  "off_days": ["2027-01-01", "2027-01-02", "2027-01-03"], "makeup_workdays": []}"#;

#[test]
fn cli_calendar_load_then_deadlines_are_final() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("calendar");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::copy(fixtures().join("cn-2026.json"), dir.join("cn-2026.json")).expect("copy");
    let file = tmp.path().join("next-year.json");
    std::fs::write(&file, FAKE_2027).expect("write");
    let file_arg = file.to_str().expect("utf8 path");

    let out = tiaochu(&["calendar", "load", file_arg], Some(&dir));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("已载入 2027 年节假日安排：3 个放假日、0 个调休上班日"));
    let written = std::fs::read_to_string(dir.join("cn-2027.json")).expect("written");
    assert_eq!(
        YearData::parse_json(&written, "written")
            .expect("valid")
            .source,
        "测试用虚构数据（非官方）"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp file left behind");

    let args = [
        "deadline",
        "--start",
        "2026-12-31",
        "--working-days",
        "1",
        "--json",
    ];
    let v = json_of(&tiaochu(&args, Some(&dir)));
    assert_eq!(v["due"], "2027-01-04");
    assert_eq!(v["provisional"], false);

    let out = tiaochu(&["calendar", "load", file_arg], Some(&dir));
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("相同，未改动"), "{}", stdout(&out));

    let changed = FAKE_2027.replace(r#""2027-01-03"]"#, r#""2027-01-03", "2027-02-05"]"#);
    std::fs::write(&file, changed).expect("write");
    let out = tiaochu(&["calendar", "load", file_arg], Some(&dir));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("新增放假日：2/5（周五）"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn cli_calendar_load_refuses_invalid_and_duplicate_year() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("calendar");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::copy(
        fixtures().join("cn-2026.json"),
        dir.join("holidays-2026.json"),
    )
    .expect("copy");

    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, FAKE_2027.replace("2027-01-03", "2028-01-03")).expect("write");
    let out = tiaochu(
        &["calendar", "load", bad.to_str().expect("utf8")],
        Some(&dir),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("不在 2027 年内"), "{}", stderr(&out));
    assert!(!dir.join("cn-2027.json").exists());

    let out = tiaochu(
        &[
            "calendar",
            "load",
            fixtures().join("cn-2026.json").to_str().expect("utf8"),
        ],
        Some(&dir),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("holidays-2026.json"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("cn-2026.json").exists());
}

#[test]
fn calendar_load_run_directly_writes_the_year() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("new-dir");
    let file = tmp.path().join("y.json");
    std::fs::write(&file, FAKE_2027).expect("write");
    // Both paths in the temporary directory: `load` recomputes the deadlines in the store.
    let settings = Settings::load_with_env(
        None,
        [
            (
                "TIAOCHU_CALENDAR__DIR".to_string(),
                dir.display().to_string(),
            ),
            (
                "TIAOCHU_STORE__PATH".to_string(),
                tmp.path().join("tiaochu.db").display().to_string(),
            ),
        ],
    )
    .expect("settings");
    let code =
        calendar_cmd::run(&settings, &CalendarCommand::Load { file: file.clone() }).expect("load");
    assert_eq!(code, 0);
    let cal = settings.load_calendar().expect("reload");
    assert_eq!(cal.years(), vec![2027]);
    assert!(!cal.is_working_day(date("2027-01-01")));
    let code = calendar_cmd::run(&settings, &CalendarCommand::Show { year: 2026 }).expect("show");
    assert_eq!(code, 1, "2026 is not in the new directory");
}
