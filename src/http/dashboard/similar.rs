//! The dashboard's case history (五(五)): `GET /dashboard/similar?q=关键词` searches the typical
//! and closed cases as the `案例` command does, and every case page lists the past cases most
//! like it, as `相似` does. Same viewers and headers as the rest of the dashboard; the table is
//! `templates/dashboard/similar_table.html`.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::viewer::Viewer;
use super::{DashboardError, DashboardState, enc, page};
use crate::casebook;
use crate::messages::notify::mask_phones;
use crate::roster::Person;
use crate::similar::SimilarCase;
use crate::workflow::Case;

#[derive(Debug, Default, Deserialize)]
pub(super) struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// The search form and its results (`templates/dashboard/similar.html`).
#[derive(Template)]
#[template(path = "dashboard/similar.html")]
struct SearchPage<'a> {
    viewer: Option<&'a Person>,
    keywords: &'a str,
    rows: Vec<SimilarRow>,
}

/// One past case as the table shows it; free text has phone numbers masked.
pub(super) struct SimilarRow {
    pub(super) href: String,
    pub(super) case_no: String,
    pub(super) ticket_no: String,
    pub(super) title: String,
    /// How it was handled, with the state while not finished.
    pub(super) handling: String,
    /// The helping units and what each helped with.
    pub(super) helpers: String,
    /// Working days taken, or `—`.
    pub(super) days: String,
    pub(super) satisfaction: &'static str,
    /// The typical experience written for it, or `—`.
    pub(super) typical: String,
}

/// `GET /dashboard/similar?q=`: the search form and, for a query, its typical and closed cases.
pub(super) async fn search(
    Viewer(person): Viewer,
    State(state): State<DashboardState>,
    Query(q): Query<SearchQuery>,
) -> Result<Response, DashboardError> {
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
    page(&SearchPage {
        viewer: Some(&person),
        keywords: &keywords,
        rows: rows(&found),
    })
}

/// The past cases most like `case` (row `case_id`), for its page.
pub(super) async fn for_case(
    state: &DashboardState,
    case_id: i64,
    case: Case,
) -> Result<Vec<SimilarCase>, DashboardError> {
    let engine = state.engine.clone();
    Ok(state
        .store()
        .read(move |r| casebook::for_case(r, case_id, &case, engine.calendar()))
        .await?)
}

pub(super) fn rows(found: &[SimilarCase]) -> Vec<SimilarRow> {
    found.iter().map(row).collect()
}

fn row(s: &SimilarCase) -> SimilarRow {
    let helpers: Vec<String> = s
        .helpers
        .iter()
        .map(|h| {
            let help: Vec<String> = h.help.iter().map(|i| i.label()).collect();
            if help.is_empty() {
                h.unit.to_string()
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
    SimilarRow {
        href: format!("/dashboard/cases/{}", enc(&s.case_no)),
        case_no: s.case_no.to_string(),
        ticket_no: s.ticket_no.to_string(),
        title: mask_phones(&s.title),
        handling,
        helpers: mask_phones(&helpers.join("、")),
        days: s.working_days.map_or("—".to_string(), |d| d.to_string()),
        satisfaction: s.satisfaction.map_or("—", |l| l.label()),
        typical: mask_phones(s.typical.as_deref().unwrap_or("—")),
    }
}
