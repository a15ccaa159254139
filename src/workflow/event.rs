//! Audit events: one per fact the monthly statistics and quarterly summaries count
//! (五(四) 考核问责). Reports are computed from these, never from counters, so each records
//! who, when, which unit, and whether a deadline was met.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The actor recorded for timer-driven events.
pub const SYSTEM_ACTOR: &str = "system";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub at: Timestamp,
    /// Roster id of the person who acted, or [`SYSTEM_ACTOR`].
    pub actor: String,
    /// The unit the fact is about, when there is one.
    pub unit: Option<String>,
    /// Kind-specific details; the keys each kind carries are listed on [`EventKind`].
    pub data: serde_json::Value,
}

/// Every countable fact, with the keys its `data` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Application registered (data: `version`, `ticket_no`, `green_channel`, `category`,
    /// `requested_units`); unit = first unit.
    Submitted,
    /// Application registered and sent to the first unit's leader for confirmation (data:
    /// `version`, `ticket_no`); unit = first unit. The `Submitted`/`Resubmitted` event follows
    /// at the confirmation.
    AwaitingLeader,
    /// The first unit's leader sent the waiting application back to its liaison (data:
    /// `version`, `reason`); unit = first unit.
    LeaderReturned,
    /// Corrected application after a return (data: `version`); unit = first unit.
    Resubmitted,
    /// Review claimed (data: `version`, `on_time`: within the review-start clock).
    Claimed,
    /// Joint mediation decided (data: `version`, `units`, `on_time`: within the decision clock).
    DecidedJoint,
    /// Independent handling decided (data: `version`, `on_time`).
    DecidedIndependent,
    /// Returned to the first unit (data: `version`, `reason`, `on_time`).
    Returned,
    /// Escalated to the city 12345 (data: `version`, `on_time`).
    DecidedCity,
    /// A unit was asked to cooperate (data: `direction`, `due`); unit = that unit.
    UnitRequested,
    /// A unit accepted (data: `on_time`: by its response deadline, `help`).
    UnitAccepted,
    /// A unit objected (data: `reason`, `on_time`).
    UnitObjected,
    /// The inspector withdrew the request for an objecting, insisted-on or overdue unit
    /// (data: `status_before`: objected | insisted | overdue).
    ObjectionWithdrawn,
    /// The inspector upheld the request despite the objection (insisted).
    ObjectionUpheld,
    /// 书面督办 issued (data: `number`, `ground`).
    SupervisionIssued,
    /// A unit did not answer by its response deadline: counted as a refusal (data: `due`).
    UnitOverdue,
    /// Every requested unit was withdrawn; the inspector decides again (data: `withdrawn`).
    DecisionReopened,
    /// Every remaining unit accepted; joint handling starts (data: `units`, `handling_due`).
    JointHandlingStarted,
    /// A reminder was sent (data: `clock`, `phase`, `count`; after downtime also `late_minutes`
    /// and `skipped_in_catch_up`: the earlier phases marked fired without a message).
    ReminderSent,
    /// A deadline passed with its duty undone (data: `clock`, `due`; after downtime also
    /// `late_minutes` and `skipped_in_catch_up`, as for [`EventKind::ReminderSent`]).
    Breach,
    /// A breach was escalated (data: `clock`, `to`).
    Escalated,
    /// A running clock's deadline was counted again after holiday data was loaded (data:
    /// `clock`, `previous`, `due`, `provisional`, `changed`: whether the due instant moved).
    DeadlineRecomputed,
    /// A progress note (data: `text`).
    Progress,
    /// The first unit reported completion (data: `on_time`: by the handling deadline).
    Completed,
    /// Satisfaction recorded (data: `level`).
    Satisfaction,
    /// Marked a typical case (data: `revised`: an earlier summary was replaced).
    TypicalMarked,
    /// The city's outcome recorded (data: `outcome`).
    CityOutcome,
    /// The case closed (data: `how`: independent | city | satisfaction).
    Closed,
    /// A unit's people changed in the roster while the case was open (data: `changes`: what
    /// changed, `contacts`: who now receives the unit's messages); unit = that unit.
    ContactsChanged,
}
