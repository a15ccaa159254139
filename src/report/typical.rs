//! 案例总结 (五(五)): the cases marked 典型 in the period, compiled into a 热线故事汇 draft —
//! background, difficulty, which units did what, the result, and what others can reuse — for the
//! hotline to edit before publishing. Everything comes from the case document; nothing is
//! invented, so a section the case has no data for says so. The stories hold the text as written;
//! the Markdown draft escapes it ([`md_text`]).

use jiff::Timestamp;
use serde::Serialize;

use super::Loaded;
use crate::messages::escape::md_text;
use crate::workflow::{EventData, RequestStatus};

/// One typical case, as the draft tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Story {
    pub case_no: String,
    pub ticket_no: String,
    /// 工单标题.
    pub title: String,
    /// 背景: the ticket and what the first unit had done (已采取措施).
    pub background: String,
    /// 难点: 办理难点 as the first unit wrote it.
    pub difficulty: String,
    /// 各单位做法: `(unit, what it did)`, the first unit first.
    pub units: Vec<(String, String)>,
    /// 结果: the completion (process, measures, citizen feedback) and the satisfaction.
    pub result: String,
    /// 可复制经验: the inspector's typical-case summary.
    pub lessons: String,
    /// When it was marked typical.
    pub marked_at: Timestamp,
}

/// Stories of the cases with a `typical_marked` event in `[from, to)`, by case number.
pub(crate) fn compute(cases: &[Loaded], from: Timestamp, to: Timestamp) -> Vec<Story> {
    cases
        .iter()
        .filter(|l| {
            l.events.iter().any(|e| {
                matches!(e.data, EventData::TypicalMarked { .. }) && e.at >= from && e.at < to
            })
        })
        .filter_map(story)
        .collect()
}

fn story(l: &Loaded) -> Option<Story> {
    let c = &l.case;
    let typical = c.typical.as_ref()?;
    let app = &c.application;
    let mut units = Vec::new();
    let own_notes = notes(l, &c.first_unit);
    units.push((
        c.first_unit.to_string(),
        join(&[
            format!("首接牵头：{}", app.measures_taken.trim()),
            own_notes,
        ]),
    ));
    for r in &c.requests {
        let RequestStatus::Accepted(a) = &r.status else {
            continue;
        };
        let help: Vec<String> = a.contact.help.iter().map(|h| h.label()).collect();
        units.push((
            r.unit.to_string(),
            join(&[
                format!("协同方向：{}", r.direction.trim()),
                format!(
                    "联系人 {}（{}），提供{}",
                    a.contact.name,
                    a.contact.position,
                    if help.is_empty() {
                        "协助".to_string()
                    } else {
                        help.join("、")
                    }
                ),
                notes(l, &r.unit),
            ]),
        ));
    }
    let result = match (&c.completion, &c.city_outcome) {
        (Some(done), _) => {
            let mut s = format!(
                "办理过程：{}；解决措施：{}；群众反馈：{}",
                done.process, done.measures, done.citizen_feedback
            );
            if let Some(sat) = &c.satisfaction {
                s.push_str(&format!("；满意度：{}", sat.level.label()));
            }
            s
        }
        (None, Some(city)) => format!("市级协调结果：{}", city.outcome),
        (None, None) => match c.decisions.last().map(|d| &d.kind) {
            Some(crate::workflow::DecisionKind::Independent { path_and_basis }) => {
                format!("经研判由首接单位独立办理：{path_and_basis}")
            }
            _ => "（案件尚无办理结果记录）".to_string(),
        },
    };
    Some(Story {
        case_no: c.case_no.to_string(),
        ticket_no: c.ticket_no.to_string(),
        title: app.title.clone(),
        background: format!(
            "群众通过12345热线反映“{}”（工单 {}），由{}首接办理。",
            app.title, c.ticket_no, c.first_unit
        ),
        difficulty: app.difficulties.trim().to_string(),
        units,
        result,
        lessons: typical.summary.clone(),
        marked_at: typical.at,
    })
}

/// The unit's progress notes, oldest first.
fn notes(l: &Loaded, unit: &str) -> String {
    let texts: Vec<&str> = l
        .case
        .progress
        .iter()
        .filter(|p| p.unit == unit)
        .map(|p| p.text.trim())
        .collect();
    if texts.is_empty() {
        String::new()
    } else {
        format!("进展：{}", texts.join("；"))
    }
}

fn join(parts: &[String]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join("；")
}

/// The 热线故事汇 draft in Markdown.
pub fn markdown(period_label: &str, stories: &[Story]) -> String {
    let mut out = format!("# 热线故事汇（草稿）· {period_label}\n\n");
    if stories.is_empty() {
        out.push_str("本期没有标记为典型的联合调处案例。\n");
        return out;
    }
    for (i, s) in stories.iter().enumerate() {
        out.push_str(&format!(
            "## {}. {}\n\n案件 {} · 工单 {}\n\n",
            i + 1,
            md_text(&s.title),
            md_text(&s.case_no),
            md_text(&s.ticket_no)
        ));
        out.push_str(&format!("**背景**：{}\n\n", md_text(&s.background)));
        out.push_str(&format!("**难点**：{}\n\n", md_text(&s.difficulty)));
        out.push_str("**各单位做法**：\n\n");
        for (unit, did) in &s.units {
            out.push_str(&format!("- {}：{}\n", md_text(unit), md_text(did)));
        }
        out.push_str(&format!("\n**结果**：{}\n\n", md_text(&s.result)));
        out.push_str(&format!(
            "**可复制推广的经验**：{}\n\n",
            md_text(&s.lessons)
        ));
    }
    out
}
