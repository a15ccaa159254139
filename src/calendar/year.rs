//! One year's holiday data file, `{"year", "source", "off_days", "makeup_workdays"}`, as the State
//! Council publishes it each autumn. Files are operator data, so every problem is reported in
//! Chinese with the file it came from, all problems at once.

use std::collections::BTreeSet;

use jiff::civil::{Date, Weekday};
use serde::{Deserialize, Serialize};

use super::CalendarError;

/// One year's holidays and make-up working days (调休上班).
///
/// Invariants after [`YearData::parse_json`] or [`YearData::validate`]: every date is in `year`,
/// `source` is not blank, no date appears twice or in both lists, every make-up working day is a
/// Saturday or Sunday, and both lists are sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct YearData {
    pub year: i16,
    /// Where the dates come from (the notice's title or number, and its date).
    pub source: String,
    /// Days off, including the weekend days inside each holiday range.
    pub off_days: Vec<Date>,
    /// Weekend days that are working days.
    pub makeup_workdays: Vec<Date>,
}

/// The file as written, before validation: optional fields and raw strings so that a missing key
/// or a bad date gets a Chinese message rather than serde's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYear {
    year: Option<i64>,
    source: Option<String>,
    off_days: Option<Vec<String>>,
    makeup_workdays: Option<Vec<String>>,
}

impl YearData {
    /// Parses and validates one file's text; `origin` names the file in error messages.
    pub fn parse_json(text: &str, origin: &str) -> Result<YearData, CalendarError> {
        let raw: RawYear = serde_json::from_str(text).map_err(|e| CalendarError::Syntax {
            origin: origin.to_string(),
            line: e.line(),
            column: e.column(),
            message: syntax_message(&e),
        })?;
        let mut problems = Vec::new();
        let year = match raw.year {
            None => {
                problems.push("缺少 year（年份）".to_string());
                None
            }
            Some(y) if !(1..=9999).contains(&y) => {
                problems.push(format!("year 为 {y}，不是有效年份"));
                None
            }
            Some(y) => i16::try_from(y).ok(),
        };
        let source = raw.source.unwrap_or_default();
        let mut dates = |key: &str, list: Option<Vec<String>>| -> Vec<Date> {
            let Some(list) = list else {
                problems.push(format!("缺少 {key}（{}；没有时写 []）", list_label(key)));
                return Vec::new();
            };
            list.iter()
                .enumerate()
                .filter_map(|(i, s)| match s.trim().parse::<Date>() {
                    Ok(d) => Some(d),
                    Err(_) => {
                        problems.push(format!(
                            "{key} 第 {} 项“{s}”不是有效日期（应为 YYYY-MM-DD）",
                            i + 1
                        ));
                        None
                    }
                })
                .collect()
        };
        let off_days = dates("off_days", raw.off_days);
        let makeup_workdays = dates("makeup_workdays", raw.makeup_workdays);
        let data = YearData {
            year: year.unwrap_or(0),
            source,
            off_days,
            makeup_workdays,
        };
        if year.is_some() {
            problems.extend(data.problems());
        } else if data.source.trim().is_empty() {
            problems.push(missing_source());
        }
        if problems.is_empty() {
            Ok(data.normalized())
        } else {
            Err(CalendarError::Invalid {
                origin: origin.to_string(),
                problems,
            })
        }
    }

    /// Checks the invariants of data built in code; `origin` names it in the error.
    pub fn validate(&self, origin: &str) -> Result<(), CalendarError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CalendarError::Invalid {
                origin: origin.to_string(),
                problems,
            })
        }
    }

    /// The same data with both lists sorted, the canonical form that is stored and compared.
    pub fn normalized(mut self) -> YearData {
        self.off_days.sort_unstable();
        self.makeup_workdays.sort_unstable();
        self
    }

    /// The canonical file text (sorted dates, pretty JSON, final newline).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.clone().normalized())
            .expect("a struct of strings, numbers and dates always serializes");
        text.push('\n');
        text
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=9999).contains(&self.year) {
            problems.push(format!("year 为 {}，不是有效年份", self.year));
        }
        if self.source.trim().is_empty() {
            problems.push(missing_source());
        }
        for (key, list) in [
            ("off_days", &self.off_days),
            ("makeup_workdays", &self.makeup_workdays),
        ] {
            let outside: Vec<String> = list
                .iter()
                .filter(|d| d.year() != self.year)
                .map(Date::to_string)
                .collect();
            if !outside.is_empty() {
                problems.push(format!(
                    "{key} 中的 {} 不在 {} 年内",
                    outside.join("、"),
                    self.year
                ));
            }
            let mut seen = BTreeSet::new();
            let repeated: BTreeSet<String> = list
                .iter()
                .filter(|d| !seen.insert(**d))
                .map(Date::to_string)
                .collect();
            if !repeated.is_empty() {
                problems.push(format!(
                    "{key} 中 {} 重复出现",
                    repeated.into_iter().collect::<Vec<_>>().join("、")
                ));
            }
        }
        let off: BTreeSet<Date> = self.off_days.iter().copied().collect();
        let both: BTreeSet<String> = self
            .makeup_workdays
            .iter()
            .filter(|d| off.contains(d))
            .map(Date::to_string)
            .collect();
        if !both.is_empty() {
            problems.push(format!(
                "{} 既是放假日又是调休上班日",
                both.into_iter().collect::<Vec<_>>().join("、")
            ));
        }
        // A make-up working day on a weekday changes nothing, so it is almost surely a typo.
        let weekdays: Vec<String> = self
            .makeup_workdays
            .iter()
            .filter(|d| !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday))
            .map(|d| format!("{d}（{}）", super::explain::weekday_name(d.weekday())))
            .collect();
        if !weekdays.is_empty() {
            problems.push(format!(
                "调休上班日应为周六或周日，但 {}不是",
                weekdays.join("、")
            ));
        }
        problems
    }
}

fn missing_source() -> String {
    "缺少 source（数据来源，如“国务院办公厅关于2027年部分节假日安排的通知”及日期）".to_string()
}

fn list_label(key: &str) -> &'static str {
    if key == "off_days" {
        "放假日期列表"
    } else {
        "调休上班日期列表"
    }
}

/// serde_json's message, with the cases an operator meets most put in Chinese.
fn syntax_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return format!("未知的字段“{field}”（只允许 year、source、off_days、makeup_workdays）");
    }
    match e.classify() {
        serde_json::error::Category::Eof => "文件不完整（括号或引号未闭合）".to_string(),
        serde_json::error::Category::Syntax => format!("JSON 语法错误（{text}）"),
        serde_json::error::Category::Data => format!("字段类型不对（{text}）"),
        serde_json::error::Category::Io => format!("读取失败（{text}）"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y2026: &str = include_str!("../../config/calendar/cn-2026.json");

    fn problems_of(text: &str) -> String {
        YearData::parse_json(text, "cn-test.json")
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn shipped_2026_parses() {
        let y = YearData::parse_json(Y2026, "cn-2026.json").expect("valid");
        assert_eq!(
            (y.year, y.off_days.len(), y.makeup_workdays.len()),
            (2026, 33, 6)
        );
        assert_eq!(
            YearData::parse_json(&y.to_json(), "again").expect("round trip"),
            y
        );
    }

    #[test]
    fn date_outside_year() {
        let err = problems_of(
            r#"{"year":2026,"source":"s","off_days":["2025-12-31"],"makeup_workdays":[]}"#,
        );
        assert!(err.contains("cn-test.json"), "{err}");
        assert!(
            err.contains("off_days 中的 2025-12-31 不在 2026 年内"),
            "{err}"
        );
    }

    #[test]
    fn date_both_off_and_working() {
        let err = problems_of(
            r#"{"year":2026,"source":"s","off_days":["2026-10-10"],"makeup_workdays":["2026-10-10"]}"#,
        );
        assert!(err.contains("2026-10-10 既是放假日又是调休上班日"), "{err}");
    }

    #[test]
    fn missing_or_blank_source() {
        for text in [
            r#"{"year":2026,"off_days":[],"makeup_workdays":[]}"#,
            r#"{"year":2026,"source":"  ","off_days":[],"makeup_workdays":[]}"#,
        ] {
            assert!(problems_of(text).contains("缺少 source"), "{text}");
        }
    }

    #[test]
    fn duplicates_weekday_makeup_and_bad_dates_all_reported() {
        let err = problems_of(
            r#"{"year":2026,"source":"s","off_days":["2026-01-01","2026-01-01","2026-02-30"],
                "makeup_workdays":["2026-10-09"]}"#,
        );
        assert!(err.contains("off_days 中 2026-01-01 重复出现"), "{err}");
        assert!(
            err.contains("off_days 第 3 项“2026-02-30”不是有效日期"),
            "{err}"
        );
        assert!(
            err.contains("调休上班日应为周六或周日，但 2026-10-09（周五）不是"),
            "{err}"
        );
    }

    #[test]
    fn syntax_and_shape_errors() {
        let err = problems_of(r#"{"year":2026,"source":"s","off_days":["2026-01-01""#);
        assert!(err.contains("不是有效的 JSON（第 1 行"), "{err}");
        let err = problems_of(r#"{"year":2026,"source":"s","off_day":[],"makeup_workdays":[]}"#);
        assert!(err.contains("未知的字段“off_day”"), "{err}");
        let err = problems_of(r#"{"source":"s","off_days":[]}"#);
        assert!(
            err.contains("缺少 year") && err.contains("缺少 makeup_workdays"),
            "{err}"
        );
    }
}
