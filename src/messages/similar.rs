//! Similar past cases in words (五(五)): the section of the inspectors' review card, and the
//! replies to `相似` and `案例`. Each past case says how it was decided, which units helped and
//! with what, how many working days it took, how the citizen rated it and, when it was marked
//! typical, its summary. Units that helped in similar cases but are not asked for now are listed
//! as a suggestion only; nothing here changes a case.

use super::notify::{Rendered, mask_phones};
use crate::similar::{SimilarCase, suggested_units};
use crate::workflow::Case;

/// Text a user wrote (titles, summaries, help in the unit's words), on one line and with phone
/// numbers masked, as every card item is shown.
fn user_text(text: &str) -> String {
    mask_phones(text).replace(['\n', '\r'], " ")
}

/// The review card's lines about the version's similar past cases; none when there are none.
pub fn review_lines(case: &Case) -> Vec<String> {
    if case.similar.is_empty() {
        return Vec::new();
    }
    let mut lines = vec!["**类似案例**（本区往期案例，供研判参考）".to_string()];
    lines.extend(
        case.similar
            .iter()
            .enumerate()
            .map(|(i, s)| entry(i + 1, s)),
    );
    let extra = suggested_units(
        &case.similar,
        &case.first_unit,
        &case.application.requested_units,
    );
    if !extra.is_empty() {
        lines.push(format!(
            "类似案例中协办过、本次未列出的单位：{}（仅供参考，是否加派由质检专员决定）",
            extra.join("、")
        ));
    }
    lines
}

/// The reply to `相似 DH…`.
pub fn similar_reply(ticket_no: &str, found: &[SimilarCase]) -> Rendered {
    let markdown = if found.is_empty() {
        format!("暂无与工单 {ticket_no} 相似的往期案例。")
    } else {
        let mut lines = vec![format!("与工单 {ticket_no} 最相似的往期案例：")];
        lines.extend(found.iter().enumerate().map(|(i, s)| entry(i + 1, s)));
        lines.join("\n\n")
    };
    // Headed like every other message, so the sandbox and a DingTalk preview show what it is.
    Rendered {
        title: format!("相似案例 {ticket_no}"),
        markdown: format!("#### 相似案例\n\n{markdown}"),
    }
}

/// The reply to `案例 关键词`.
pub fn cases_reply(keywords: &str, found: &[SimilarCase]) -> Rendered {
    let shown = user_text(keywords);
    let markdown = if found.is_empty() {
        format!(
            "没有找到与“{shown}”相关的典型案例或已结案案例。可换个说法再查，如“欠薪”“物业”“噪音”。"
        )
    } else {
        let mut lines = vec![format!("与“{shown}”相关的典型案例和已结案案例：")];
        lines.extend(found.iter().enumerate().map(|(i, s)| entry(i + 1, s)));
        lines.join("\n\n")
    };
    Rendered {
        title: format!("案例 {shown}"),
        markdown: format!("#### 案例查询\n\n{markdown}"),
    }
}

/// One past case: what it was, then what became of it.
pub fn entry(n: usize, s: &SimilarCase) -> String {
    let typical = if s.typical.is_some() {
        "【典型】"
    } else {
        ""
    };
    let mut head = format!(
        "{n}. {typical}{}（工单 {}）{}",
        s.case_no,
        s.ticket_no,
        user_text(&s.title)
    );
    let mut facts = Vec::new();
    match (s.handling, s.state.is_terminal()) {
        (Some(h), true) => facts.push(format!("{}，已结案", h.label())),
        (Some(h), false) => facts.push(format!("{}，{}", h.label(), s.state.label())),
        (None, _) => facts.push(s.state.label().to_string()),
    }
    if !s.helpers.is_empty() {
        let helpers: Vec<String> = s
            .helpers
            .iter()
            .map(|h| {
                let help: Vec<String> = h.help.iter().map(|i| user_text(&i.label())).collect();
                if help.is_empty() {
                    h.unit.to_string()
                } else {
                    format!("{}（{}）", h.unit, help.join("、"))
                }
            })
            .collect();
        facts.push(format!("协办：{}", helpers.join("、")));
    }
    // Working days from receipt to close, the start day not counted: 0 is the same day.
    match s.working_days {
        Some(0) => facts.push("当日办结".to_string()),
        Some(days) => facts.push(format!("用时 {days} 个工作日")),
        None => {}
    }
    if let Some(level) = s.satisfaction {
        facts.push(format!("群众{}", level.label()));
    }
    head.push_str(&format!("\n   {}", facts.join("；")));
    if let Some(summary) = &s.typical {
        head.push_str(&format!("\n   典型经验：{}", user_text(summary)));
    }
    head
}
