//! Similar past cases (五(五) 案例总结 "为同类问题的处置提供参考依据"): which cases of the district
//! are most like a new application, and what became of them, so the inspector deciding it sees
//! what worked before.
//!
//! Pure: tokenising ([`tokens`]), what a case contributes to the index ([`IndexDoc`]), ranking
//! ([`rank()`], BM25 over character bigrams with the units as a signal) and the summary the review
//! card shows ([`SimilarCase`]). The index itself lives in the store (src/store/similar.rs), kept
//! in step with case writes by [`crate::casebook`]; [`MemoryIndex`] holds one in memory for
//! `tiaochu similar --corpus` and the evaluation (docs/similar.md).

mod memory;
mod rank;
mod summary;
pub mod tokens;

pub use memory::MemoryIndex;
pub use rank::{DocView, Hit, Index, Params, Scope, Stats, Terms, rank, shared_pairs};
pub use summary::{Handling, Helper, SimilarCase, closed_at, suggested_units, summarize};

use crate::parse::Application;
use crate::workflow::{self, Case, RequestStatus};

/// How many times the title's tokens count: a title names the problem in a dozen characters,
/// while the other fields add the circumstances.
const TITLE_WEIGHT: usize = 2;

/// What one case (or a query) puts in the index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexDoc {
    /// [`tokens::tokens`] of the title ([`TITLE_WEIGHT`] times), measures, difficulties and
    /// coordination text (for a stored case, then its outcome: see [`IndexDoc::from_case`]).
    pub terms: Vec<String>,
    /// The units involved, canonical names, no repeats: the first unit, the units the
    /// application asks for and, for a stored case, the units that accepted.
    pub units: Vec<String>,
    /// Closed (satisfaction or city outcome recorded) or closed as independent handling.
    pub closed: bool,
    /// Marked 典型案例.
    pub typical: bool,
}

impl IndexDoc {
    /// The document of a parsed application (a corpus file, or a query from the command line).
    pub fn from_application(app: &Application) -> IndexDoc {
        IndexDoc::of_fields(
            app.first_unit.as_deref(),
            &app.requested_units,
            [
                &app.title,
                &app.measures_taken,
                &app.difficulties,
                &app.coordination,
            ],
        )
    }

    /// The document of a registered application (a case's latest version).
    pub fn from_registered(app: &workflow::Application) -> IndexDoc {
        IndexDoc::of_fields(
            Some(&app.first_unit),
            &app.requested_units,
            [
                &app.title,
                &app.measures_taken,
                &app.difficulties,
                &app.coordination,
            ],
        )
    }

    /// `texts` are the title, measures, difficulties and coordination text, in that order.
    fn of_fields<U: AsRef<str>>(
        first_unit: Option<&str>,
        requested_units: &[U],
        texts: [&str; 4],
    ) -> IndexDoc {
        let mut units = Vec::new();
        for u in first_unit
            .into_iter()
            .chain(requested_units.iter().map(AsRef::as_ref))
        {
            push_unique(&mut units, u);
        }
        IndexDoc {
            terms: application_terms(texts),
            units,
            closed: false,
            typical: false,
        }
    }

    /// Free text as a query (the 案例 keyword search), with the units it names.
    pub fn from_text(text: &str, units: Vec<String>) -> IndexDoc {
        IndexDoc {
            terms: tokens::tokens(text),
            units,
            closed: false,
            typical: false,
        }
    }

    /// The document of a stored case: its latest application with what became of it (the
    /// completion's process and measures, the typical-case summary: the 热线故事汇 text the 案例
    /// search looks through), the units that helped, and whether it is finished.
    pub fn from_case(case: &Case) -> IndexDoc {
        let mut doc = IndexDoc::from_registered(&case.application);
        if let Some(done) = &case.completion {
            doc.terms.extend(tokens::tokens(&done.process));
            doc.terms.extend(tokens::tokens(&done.measures));
        }
        if let Some(typical) = &case.typical {
            doc.terms.extend(tokens::tokens(&typical.summary));
        }
        push_unique(&mut doc.units, &case.first_unit);
        for r in &case.requests {
            if matches!(r.status, RequestStatus::Accepted(_)) {
                push_unique(&mut doc.units, &r.unit);
            }
        }
        doc.closed = case.state.is_terminal();
        doc.typical = case.typical.is_some();
        doc
    }
}

fn application_terms([title, measures, difficulties, coordination]: [&str; 4]) -> Vec<String> {
    let title = tokens::tokens(title);
    let mut terms = Vec::with_capacity(title.len() * TITLE_WEIGHT + 128);
    for _ in 0..TITLE_WEIGHT {
        terms.extend(title.iter().cloned());
    }
    for text in [measures, difficulties, coordination] {
        terms.extend(tokens::tokens(text));
    }
    terms
}

fn push_unique(units: &mut Vec<String>, unit: &str) {
    if !unit.is_empty() && !units.iter().any(|u| u == unit) {
        units.push(unit.to_string());
    }
}
