//! Audit events: one per fact the monthly statistics and quarterly summaries count
//! (五(四) 考核问责). Reports are computed from these, never from counters, so each records
//! who, when, which unit, and whether a deadline was met.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::event_data::EventData;
use crate::domain::UnitName;

/// The actor recorded for timer-driven events.
pub const SYSTEM_ACTOR: &str = "system";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: Timestamp,
    /// Roster id of the person who acted, or [`SYSTEM_ACTOR`].
    pub actor: String,
    /// The unit the fact is about, when there is one.
    pub unit: Option<UnitName>,
    /// What happened, with the facts the statistics count.
    pub data: EventData,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        self.data.kind()
    }
}

/// Declares [`EventKind`] and [`EventKind::ALL`] from one list, so the list cannot miss a kind.
macro_rules! event_kinds {
    ($($(#[$doc:meta])* $kind:ident,)+) => {
        /// Every countable fact; its data is the [`EventData`] variant of the same name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum EventKind {
            $($(#[$doc])* $kind,)+
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$kind,)+];
        }
    };
}

event_kinds! {
    /// Application registered.
    Submitted,
    /// Application waiting for the first unit's leader.
    AwaitingLeader,
    /// The leader sent the application back to the liaison.
    LeaderReturned,
    /// Corrected application after a return.
    Resubmitted,
    /// Review claimed.
    Claimed,
    /// Joint mediation decided.
    DecidedJoint,
    /// Independent handling decided.
    DecidedIndependent,
    /// Returned to the first unit.
    Returned,
    /// Escalated to the city 12345.
    DecidedCity,
    /// A unit was asked to cooperate.
    UnitRequested,
    /// A unit accepted.
    UnitAccepted,
    /// A unit objected.
    UnitObjected,
    /// The inspector withdrew a unit's request.
    ObjectionWithdrawn,
    /// The inspector upheld a request despite the objection.
    ObjectionUpheld,
    /// 书面督办 issued.
    SupervisionIssued,
    /// A unit did not answer by its response deadline.
    UnitOverdue,
    /// Every requested unit was withdrawn; the inspector decides again.
    DecisionReopened,
    /// Joint handling started.
    JointHandlingStarted,
    /// A reminder was sent.
    ReminderSent,
    /// A deadline passed with its duty undone.
    Breach,
    /// A breach was escalated.
    Escalated,
    /// A deadline was counted again after holiday data was loaded.
    DeadlineRecomputed,
    /// A progress note.
    Progress,
    /// The first unit reported completion.
    Completed,
    /// Satisfaction recorded.
    Satisfaction,
    /// Marked a typical case.
    TypicalMarked,
    /// The city's outcome recorded.
    CityOutcome,
    /// The case closed.
    Closed,
    /// A unit's people changed in the roster while the case was open.
    ContactsChanged,
}
