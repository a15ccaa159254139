//! What each audit event records, typed: one [`EventData`] variant per [`EventKind`], written by
//! the workflow and read back by the reports, the 查询 timeline, the digest and the dashboard.
//!
//! The stored form is the store's `events` row: the variant's name in the `kind` column and its
//! fields as a JSON object in `data_json`, with the event's unit (when it has one) added to that
//! object as `"unit"` ([`EventData::to_stored`], [`EventData::from_stored`]). Every release must
//! read every row an earlier release wrote, so the rule is: **a new variant needs a line in
//! `tests/fixtures/events/release-v11.jsonl`, and a stored field is never renamed**
//! (tests/api/event_compat.rs reads each fixture line, refuses unknown kinds and fields, and
//! writes it back byte for byte). A new optional field is added with `#[serde(default)]` and
//! skipped when empty, so rows without it still read.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::case::SupervisionGround;
use super::clock::Phase;
use super::event::EventKind;
use super::input::SatisfactionLevel;
use crate::domain::{PersonId, TicketNo, UnitName};
use crate::parse::Category;

/// The facts of one audit event, by kind. Deadlines met or not are recorded as `on_time` at the
/// moment the duty was done, so the statistics never recompute them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum EventData {
    /// Application registered; unit = the first unit.
    Submitted(Registration),
    /// Application registered and sent to the first unit's leader for confirmation; unit = the
    /// first unit. `Submitted`/`Resubmitted` follows at the confirmation.
    AwaitingLeader { version: u32, ticket_no: TicketNo },
    /// The first unit's leader sent the waiting application back to its liaison; unit = the
    /// first unit.
    LeaderReturned { version: u32, reason: String },
    /// A corrected application after a return; unit = the first unit. Same fields as
    /// `Submitted` (the variant doc of earlier releases said `version` only; the writer has
    /// always stored them all).
    Resubmitted(Registration),
    /// Review claimed; `on_time`: within the review-start clock.
    Claimed { version: u32, on_time: bool },
    /// Joint mediation decided; `on_time`: within the decision clock.
    DecidedJoint {
        version: u32,
        units: Vec<UnitName>,
        on_time: bool,
    },
    /// Independent handling decided; `on_time`: within the decision clock.
    DecidedIndependent { version: u32, on_time: bool },
    /// Returned to the first unit for more; `on_time`: within the decision clock.
    Returned {
        version: u32,
        reason: String,
        on_time: bool,
    },
    /// Escalated to the city 12345; `on_time`: within the decision clock.
    DecidedCity { version: u32, on_time: bool },
    /// A unit was asked to cooperate, answering by `due`; unit = that unit.
    UnitRequested { direction: String, due: Timestamp },
    /// A unit accepted; `on_time`: by its response deadline; `help`: what it offers, as labels.
    UnitAccepted { on_time: bool, help: Vec<String> },
    /// A unit objected; `on_time`: by its response deadline.
    UnitObjected { reason: String, on_time: bool },
    /// The inspector withdrew the request for an objecting, insisted-on or overdue unit.
    ObjectionWithdrawn { status_before: WithdrawnFrom },
    /// The inspector upheld the request despite the objection (insisted).
    ObjectionUpheld {},
    /// 书面督办 No. `number` issued; unit = the supervised unit.
    SupervisionIssued {
        number: u32,
        ground: SupervisionGround,
    },
    /// A unit did not answer by its response deadline `due`: counted as a refusal.
    UnitOverdue { due: Timestamp },
    /// Every requested unit was withdrawn; the inspector decides again.
    DecisionReopened { withdrawn: Vec<UnitName> },
    /// Every remaining unit accepted; joint handling starts, due by `handling_due`.
    JointHandlingStarted {
        units: Vec<UnitName>,
        handling_due: Timestamp,
    },
    /// A reminder was sent, the `count`-th of clock `clock`; unit = the clock's unit, if any.
    ReminderSent {
        clock: String,
        phase: Phase,
        count: u32,
        /// Only after downtime: how late the batch fired.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        late_minutes: Option<i64>,
        /// Earlier phases of the same clock marked fired without a message; stored only when
        /// there were any.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        skipped_in_catch_up: Vec<Phase>,
    },
    /// Clock `clock`'s deadline `due` passed with its duty undone; unit as for `ReminderSent`.
    Breach {
        clock: String,
        due: Timestamp,
        /// As for `ReminderSent`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        late_minutes: Option<i64>,
        /// As for `ReminderSent`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        skipped_in_catch_up: Vec<Phase>,
    },
    /// A breach was escalated to the roster ids `to`.
    Escalated { clock: String, to: Vec<PersonId> },
    /// A running clock's deadline was counted again after holiday data was loaded; `changed`:
    /// whether the due instant moved.
    DeadlineRecomputed {
        clock: String,
        previous: Timestamp,
        due: Timestamp,
        provisional: bool,
        changed: bool,
    },
    /// A progress note; unit = the writer's unit.
    Progress { text: String },
    /// The first unit reported completion; `on_time`: by the handling deadline.
    Completed { on_time: bool },
    /// The citizen's satisfaction recorded.
    Satisfaction { level: SatisfactionLevel },
    /// Marked a typical case; `revised`: an earlier summary was replaced.
    TypicalMarked { revised: bool },
    /// The city's outcome recorded.
    CityOutcome { outcome: String },
    /// The case closed.
    Closed { how: ClosedBy },
    /// A unit's people changed in the roster while the case was open: what changed, and who now
    /// receives the unit's messages; unit = that unit.
    ContactsChanged {
        changes: Vec<String>,
        contacts: Vec<PersonId>,
    },
}

/// The fields of a registration ([`EventData::Submitted`], [`EventData::Resubmitted`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub version: u32,
    pub ticket_no: TicketNo,
    pub green_channel: bool,
    pub category: Category,
    pub requested_units: Vec<UnitName>,
}

/// Where a withdrawn request stood ([`EventData::ObjectionWithdrawn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawnFrom {
    Objected,
    Insisted,
    Overdue,
}

/// How a case closed ([`EventData::Closed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedBy {
    /// Independent handling by the first unit.
    Independent,
    /// The city's outcome.
    City,
    /// Satisfaction recorded after completion.
    Satisfaction,
}

/// One event as the store keeps it: the `kind` column and the `data_json` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredData {
    pub kind: String,
    pub data_json: String,
}

/// The adjacently tagged form serde reads and writes; the store splits it into two columns.
#[derive(Serialize, Deserialize)]
struct Tagged {
    kind: String,
    data: Map<String, Value>,
}

impl EventData {
    pub fn kind(&self) -> EventKind {
        use EventData as D;
        use EventKind as K;
        match self {
            D::Submitted(_) => K::Submitted,
            D::AwaitingLeader { .. } => K::AwaitingLeader,
            D::LeaderReturned { .. } => K::LeaderReturned,
            D::Resubmitted(_) => K::Resubmitted,
            D::Claimed { .. } => K::Claimed,
            D::DecidedJoint { .. } => K::DecidedJoint,
            D::DecidedIndependent { .. } => K::DecidedIndependent,
            D::Returned { .. } => K::Returned,
            D::DecidedCity { .. } => K::DecidedCity,
            D::UnitRequested { .. } => K::UnitRequested,
            D::UnitAccepted { .. } => K::UnitAccepted,
            D::UnitObjected { .. } => K::UnitObjected,
            D::ObjectionWithdrawn { .. } => K::ObjectionWithdrawn,
            D::ObjectionUpheld {} => K::ObjectionUpheld,
            D::SupervisionIssued { .. } => K::SupervisionIssued,
            D::UnitOverdue { .. } => K::UnitOverdue,
            D::DecisionReopened { .. } => K::DecisionReopened,
            D::JointHandlingStarted { .. } => K::JointHandlingStarted,
            D::ReminderSent { .. } => K::ReminderSent,
            D::Breach { .. } => K::Breach,
            D::Escalated { .. } => K::Escalated,
            D::DeadlineRecomputed { .. } => K::DeadlineRecomputed,
            D::Progress { .. } => K::Progress,
            D::Completed { .. } => K::Completed,
            D::Satisfaction { .. } => K::Satisfaction,
            D::TypicalMarked { .. } => K::TypicalMarked,
            D::CityOutcome { .. } => K::CityOutcome,
            D::Closed { .. } => K::Closed,
            D::ContactsChanged { .. } => K::ContactsChanged,
        }
    }

    /// The deadline flag of the kinds that record one (an answer, a completion, a decision).
    pub fn on_time(&self) -> Option<bool> {
        use EventData as D;
        match self {
            D::Claimed { on_time, .. }
            | D::DecidedJoint { on_time, .. }
            | D::DecidedIndependent { on_time, .. }
            | D::Returned { on_time, .. }
            | D::DecidedCity { on_time, .. }
            | D::UnitAccepted { on_time, .. }
            | D::UnitObjected { on_time, .. }
            | D::Completed { on_time } => Some(*on_time),
            _ => None,
        }
    }

    /// The columns this event is stored as, with `unit` added to the data as `"unit"`. The
    /// object's keys come out sorted, as every release has stored them.
    pub fn to_stored(&self, unit: Option<&str>) -> Result<StoredData, serde_json::Error> {
        let Tagged { kind, mut data } = serde_json::from_value(serde_json::to_value(self)?)?;
        if let Some(unit) = unit {
            data.insert("unit".to_string(), Value::String(unit.to_string()));
        }
        Ok(StoredData {
            kind,
            data_json: Value::Object(data).to_string(),
        })
    }

    /// Reads the `kind` and `data_json` columns back: the data and the event's unit. Refuses an
    /// unknown kind, a missing field and any field this build does not know.
    pub fn from_stored(
        kind: &str,
        data_json: &str,
    ) -> Result<(EventData, Option<UnitName>), serde_json::Error> {
        let mut data: Map<String, Value> = serde_json::from_str(data_json)?;
        let unit = match data.remove("unit") {
            None => None,
            Some(unit) => Some(serde_json::from_value::<UnitName>(unit)?),
        };
        let tagged = Tagged {
            kind: kind.to_string(),
            data,
        };
        let event = serde_json::from_value(serde_json::to_value(tagged)?)?;
        Ok((event, unit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn stored_form_is_kind_column_plus_sorted_object_with_unit() {
        let data = EventData::UnitRequested {
            direction: "核实管网权属".to_string(),
            due: at("2026-11-03T10:00:00Z"),
        };
        let stored = data.to_stored(Some("区住建局")).expect("stored");
        assert_eq!(stored.kind, "unit_requested");
        assert_eq!(
            stored.data_json,
            r#"{"direction":"核实管网权属","due":"2026-11-03T10:00:00Z","unit":"区住建局"}"#
        );
        let (back, unit) = EventData::from_stored(&stored.kind, &stored.data_json).expect("read");
        assert_eq!(back, data);
        assert_eq!(unit.as_deref(), Some("区住建局"));
        assert_eq!(back.kind(), EventKind::UnitRequested);
    }

    #[test]
    fn optional_catch_up_fields_are_stored_only_when_present() {
        let plain = EventData::Breach {
            clock: "handling".to_string(),
            due: at("2026-11-19T10:00:00Z"),
            late_minutes: None,
            skipped_in_catch_up: Vec::new(),
        };
        assert_eq!(
            plain.to_stored(None).expect("stored").data_json,
            r#"{"clock":"handling","due":"2026-11-19T10:00:00Z"}"#
        );
        let late = EventData::Breach {
            clock: "handling".to_string(),
            due: at("2026-11-19T10:00:00Z"),
            late_minutes: Some(90),
            skipped_in_catch_up: vec![Phase::Half, Phase::Soon],
        };
        assert_eq!(
            late.to_stored(None).expect("stored").data_json,
            r#"{"clock":"handling","due":"2026-11-19T10:00:00Z","late_minutes":90,"skipped_in_catch_up":["half","soon"]}"#
        );
    }

    #[test]
    fn unknown_kinds_fields_and_misspellings_are_refused() {
        assert!(EventData::from_stored("completed", r#"{"on_time":true}"#).is_ok());
        for (kind, data) in [
            ("finished", r#"{"on_time":true}"#),
            ("completed", r#"{"ontime":true}"#),
            ("completed", r#"{"on_time":true,"extra":1}"#),
            ("completed", r#"{"on_time":"yes"}"#),
            ("completed", r#"{"on_time":true,"unit":7}"#),
            ("objection_upheld", r#"{"reason":"x"}"#),
            ("submitted", r#"{"version":1}"#),
            (
                "submitted",
                r#"{"version":1,"ticket_no":"DH1","green_channel":false,"category":"lacks_capacity","requested_units":[],"urgent":true}"#,
            ),
        ] {
            assert!(
                EventData::from_stored(kind, data).is_err(),
                "{kind} {data} was read"
            );
        }
    }

    #[test]
    fn on_time_is_read_from_the_kinds_that_record_it() {
        assert_eq!(
            EventData::Completed { on_time: false }.on_time(),
            Some(false)
        );
        assert_eq!(EventData::ObjectionUpheld {}.on_time(), None);
    }
}
