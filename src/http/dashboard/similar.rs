//! The dashboard's case history (五(五)): `GET /dashboard/similar?q=关键词` searches the typical
//! and closed cases as the `案例` command does, and every case page lists the past cases most
//! like it, as `相似` does. Same viewers, escaping and headers as the rest of the dashboard.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::{DashboardError, DashboardState, enc, escape, page, viewer};
use crate::casebook;
use crate::messages::notify::mask_phones;
use crate::similar::SimilarCase;
use crate::workflow::Case;

#[derive(Debug, Default, Deserialize)]
pub(super) struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `GET /dashboard/similar?q=`: the search form and, for a query, its typical and closed cases.
pub(super) async fn search(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(q): Query<SearchQuery>,
) -> Result<Response, DashboardError> {
    let person = viewer(&state, &headers).await?;
    let keywords = q.q.trim().to_string();
    let engine = state.engine.clone();
    let wanted = keywords.clone();
    let found = if keywords.is_empty() {
        Vec::new()
    } else {
        state
            .store()
            .read(move |r| casebook::search(r, &wanted, engine.calendar()))
            .await?
    };
    let mut body = format!(
        r#"<h1>案例</h1><p class="hint">按关键词查找典型案例（热线故事汇）和已结案案例，典型案例在前。</p><form class="filters" method="get" action="/dashboard/similar"><label>关键词 <input name="q" value="{}" placeholder="拖欠工资"></label><button type="submit">查找</button></form>"#,
        escape(&keywords)
    );
    if !keywords.is_empty() {
        body.push_str(&table(
            "found",
            &found,
            "没有找到相关的典型案例或已结案案例，可换个说法再查。",
        ));
    }
    Ok(page("案例", Some(&person), &body))
}

/// The case page's section: the past cases most like `case` (row `case_id`).
pub(super) async fn case_section(
    state: &DashboardState,
    case_id: i64,
    case: Case,
) -> Result<String, DashboardError> {
    let engine = state.engine.clone();
    let found = state
        .store()
        .read(move |r| casebook::for_case(r, case_id, &case, engine.calendar()))
        .await?;
    Ok(format!(
        "<h2>相似案例</h2>{}",
        table("similar", &found, "暂无相似的往期案例。")
    ))
}

fn table(id: &str, found: &[SimilarCase], empty: &str) -> String {
    let mut out = format!(
        r#"<div class="scroll"><table id="{id}"><thead><tr><th>案件</th><th>工单编号</th><th>工单标题</th><th>办理方式</th><th>协办单位及协助事项</th><th>用时（工作日）</th><th>满意度</th><th>典型经验</th></tr></thead><tbody>"#
    );
    for s in found {
        let helpers: Vec<String> = s
            .helpers
            .iter()
            .map(|h| {
                let help: Vec<String> = h.help.iter().map(|i| i.label()).collect();
                if help.is_empty() {
                    h.unit.clone()
                } else {
                    format!("{}（{}）", h.unit, help.join("、"))
                }
            })
            .collect();
        let handling = match (s.handling, s.state.is_terminal()) {
            (Some(h), true) => h.label().to_string(),
            (Some(h), false) => format!("{}（{}）", h.label(), s.state.label()),
            (None, _) => s.state.label().to_string(),
        };
        let _ = write!(
            out,
            r#"<tr><td><a href="/dashboard/cases/{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            enc(&s.case_no),
            escape(&s.case_no),
            escape(&s.ticket_no),
            escape(&mask_phones(&s.title)),
            escape(&handling),
            escape(&mask_phones(&helpers.join("、"))),
            s.working_days.map_or("—".to_string(), |d| d.to_string()),
            s.satisfaction.map_or("—", |l| l.label()),
            escape(&mask_phones(s.typical.as_deref().unwrap_or("—")))
        );
    }
    if found.is_empty() {
        let _ = write!(
            out,
            r#"<tr><td colspan="8" class="empty">{}</td></tr>"#,
            escape(empty)
        );
    }
    out.push_str("</tbody></table></div>");
    out
}
