//! What a case carries of the similar past cases shown on its review card (docs/similar.md): the
//! summaries are taken by `crate::similar` when a version is registered and kept in the case
//! document, so every re-rendering of the card shows the same list. Plain data here, so the case
//! does not depend on the index that finds them.

use serde::{Deserialize, Serialize};

use super::{HelpItem, SatisfactionLevel, State};
use crate::domain::{CaseNo, TicketNo, UnitName};

/// How a past case was decided (四(二)); a return for more information is not a decision on
/// how to handle it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    Joint,
    Independent,
    City,
}

impl Handling {
    /// The short Chinese name users see.
    pub fn label(self) -> &'static str {
        match self {
            Handling::Joint => "联合调处",
            Handling::Independent => "独立办理",
            Handling::City => "市级协调",
        }
    }
}

/// A unit that accepted to help, and the help it gave (四(三)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Helper {
    pub unit: UnitName,
    pub help: Vec<HelpItem>,
}

/// One similar past case as the review card shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarCase {
    pub case_no: CaseNo,
    pub ticket_no: TicketNo,
    pub title: String,
    /// Where the past case stood when the list was taken.
    pub state: State,
    pub handling: Option<Handling>,
    pub helpers: Vec<Helper>,
    /// Working days from the first receipt to the close; `None` while open.
    pub working_days: Option<u32>,
    pub satisfaction: Option<SatisfactionLevel>,
    /// The 典型案例 summary, when the case was marked typical.
    pub typical: Option<String>,
}
