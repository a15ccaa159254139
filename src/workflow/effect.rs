//! What a decision asks the outside world to do: notify roster people, send or update cards, set
//! or cancel timers. Messages carry data, never sentences: Chinese text is rendered elsewhere,
//! together with the decision's case (case number, ticket number and the green-channel flag,
//! which every message shows, are read from there).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::case::{CardKind, Contact, SupervisionGround};
use super::clock::{CaseClock, ClockKind, Phase};
use super::input::{CoordinationAsk, SatisfactionLevel};
use crate::calendar::Deadline;
use crate::domain::{PersonId, UnitName};
use crate::parse::Category;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// A message to one person; `to` is always a roster id ([`crate::roster::Person::id`]).
    Notify {
        to: PersonId,
        message: Message,
    },
    /// Send a new interactive card; `card_key` is its stable `outTrackId`.
    Card {
        card_key: String,
        kind: CardKind,
        recipients: Vec<PersonId>,
    },
    /// Re-render every copy of an already sent card from the decision's case.
    UpdateCard {
        card_key: String,
    },
    /// Fire the timer `key` at `due_at` (the scheduler hands it to `workflow::fire_timers`).
    /// Keys are unique for the life of the case.
    SetTimer {
        key: String,
        due_at: Timestamp,
        kind: TimerKind,
    },
    CancelTimer {
        key: String,
    },
}

/// What a timer is for, so the scheduler can log it and the store index it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerKind {
    pub clock: ClockKind,
    pub phase: Phase,
}

/// A deadline as messages show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    pub at: Timestamp,
    /// Computed on weekdays only because a year's holidays are not loaded: say so.
    pub provisional: bool,
    /// Chinese explanation from the calendar.
    pub explanation: String,
}

impl From<&CaseClock> for Due {
    fn from(c: &CaseClock) -> Due {
        Due {
            at: c.due,
            provisional: c.provisional,
            explanation: c.explanation.clone(),
        }
    }
}

impl From<Deadline> for Due {
    fn from(d: Deadline) -> Due {
        Due {
            at: d.due,
            provisional: d.provisional,
            explanation: d.explanation,
        }
    }
}

/// A roster person named in a message (the first unit's contact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRef {
    pub id: PersonId,
    pub name: String,
    pub unit: UnitName,
    pub phone: String,
}

/// A step on a cooperating unit's request, as the first unit is told of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "update", rename_all = "snake_case")]
pub enum CoordinationUpdate {
    /// The unit objected; the inspector decides.
    Objected { reason: String },
    /// The inspector upheld the request; written supervision follows.
    Insisted { reason: String },
    /// The unit did not answer in time; written supervision follows.
    Overdue,
    /// 书面督办 No. `number` was issued, with a new answer deadline.
    Supervised { number: u32, due: Option<Due> },
    /// The unit let the 书面督办's deadline pass too; its leader and the supervisor are told.
    SupervisedOverdue { due: Due },
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum ClosedHow {
    /// 四(二): the first unit handles it alone.
    Independent,
    /// The city 12345 handled it.
    City { outcome: String },
    /// Joint handling completed and satisfaction recorded.
    Satisfaction { level: SatisfactionLevel },
}

/// The content of a notification. Each variant names its recipients in its doc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "snake_case")]
pub enum Message {
    /// To the submitter: the application is registered (or registered again: same receipt).
    Receipt {
        version: u32,
        first_unit: UnitName,
        requested_units: Vec<UnitName>,
        unresolved_mentions: Vec<String>,
        city_level: bool,
        category: Category,
        review_due: Due,
        decision_due: Due,
        /// Green channel only.
        coordination_due: Option<Due>,
    },
    /// To the submitter: the application is registered and waits for the first unit's leader
    /// (`[workflow] require_leader_confirmation`).
    AwaitingLeader {
        version: u32,
        leaders: Vec<PersonRef>,
    },
    /// To the first unit's leaders: confirm (同意) or send back (退回联络员) the application.
    LeaderConfirmationRequest {
        version: u32,
        submitted_by: Option<PersonRef>,
    },
    /// To the first unit: its leader sent the application back.
    LeaderReturned {
        leader: Option<PersonRef>,
        reason: String,
    },
    /// To the first unit: an inspector started the review.
    Claimed { inspector: PersonRef },
    /// To the first unit: joint mediation with these units.
    DecidedJoint { units: Vec<CoordinationAsk> },
    /// To the first unit and its leader: independent handling; the case closes.
    DecidedIndependent { path_and_basis: String },
    /// To the first unit: returned for more; resubmit the corrected application.
    Returned { reason: String },
    /// To the first unit: passed to the city 12345; `due` is when its outcome is expected.
    DecidedCity {
        note: String,
        #[serde(default)]
        due: Option<Due>,
    },
    /// To the city 12345 supervisors: a case that needs city-level or cross-county units.
    CityEscalation {
        note: String,
        first_unit: UnitName,
        title: String,
        coordination: String,
        /// When the district expects the outcome (the CityAnswer clock).
        #[serde(default)]
        due: Option<Due>,
    },
    /// To a cooperating unit's leader (the liaisons get the coordination card): the unit is asked
    /// to cooperate (二、组织领导: leaders organise the cooperation their unit is asked for).
    CoordinationRequest {
        unit: UnitName,
        direction: String,
        due: Due,
        first_unit_contact: Option<PersonRef>,
    },
    /// To the inspector: a cooperating unit accepted (the first unit gets every contact at once).
    UnitAccepted { contact: Contact },
    /// To the inspector and the unit's leader: a cooperating unit objected.
    ObjectionRaised { unit: UnitName, reason: String },
    /// To the unit, its leader and the first unit: the inspector dropped the unit from the case.
    RequestWithdrawn { unit: UnitName },
    /// To the unit and its leader: the inspector keeps the request, for `reason`; written
    /// supervision follows.
    RequestInsisted {
        unit: UnitName,
        objection: String,
        #[serde(default)]
        reason: String,
    },
    /// To the first unit: what became of its request to `unit` (principle 6: the first unit is
    /// told at each step of an objection or a missed answer).
    CoordinationUpdate {
        unit: UnitName,
        update: CoordinationUpdate,
    },
    /// To the supervisors: issue written supervision to `unit`.
    SupervisionRequested {
        unit: UnitName,
        ground: SupervisionGround,
    },
    /// To the unit, its leader and the inspector: 书面督办 No. `number`.
    Supervision {
        number: u32,
        unit: UnitName,
        content: String,
        ground: SupervisionGround,
        /// The new answer deadline the supervision sets (四(三); none for a handling overdue).
        #[serde(default)]
        due: Option<Due>,
    },
    /// To the inspector: every requested unit was withdrawn; decide again.
    DecisionReopened {
        withdrawn: Vec<UnitName>,
        decision_due: Due,
    },
    /// To the first unit: every cooperating unit accepted; all contacts in one message.
    ContactsReady {
        contacts: Vec<Contact>,
        handling_due: Due,
    },
    /// To the cooperating units: joint handling starts, led by the first unit (五(二)).
    JointHandlingStarted {
        first_unit_contact: Option<PersonRef>,
        handling_due: Due,
    },
    /// To the other side of the joint handling (五(二)).
    Progress {
        from_unit: UnitName,
        by: PersonRef,
        text: String,
    },
    /// To whoever pasted an application that is already registered, unchanged: nothing to do.
    AlreadyRegistered { state: String },
    /// To whoever sent a progress note: to whom it went (the sender always gets an answer).
    ProgressShared { to_units: Vec<UnitName> },
    /// To the first unit's sender of 办结: the result is recorded and what happens next.
    CompletionRecorded { on_time: bool },
    /// To the inspector and the cooperating units: the first unit reported the result (五(三)).
    Completed {
        process: String,
        measures: String,
        citizen_feedback: String,
        on_time: bool,
    },
    /// To everyone involved: the case is closed.
    Closed { how: ClosedHow },
    /// To whoever must act on `clock`.
    Reminder {
        clock: ClockKind,
        phase: Phase,
        due: Due,
        remaining_minutes: i64,
        count: u32,
    },
    /// To whoever had to act on `clock` (and the inspector, for a unit's response): its deadline passed.
    Breach { clock: ClockKind, due: Due },
    /// Up the ladder (a unit's leader; the hotline head for hotline clocks): `responsible` missed `clock`.
    Escalation {
        clock: ClockKind,
        due: Due,
        responsible: Vec<PersonId>,
    },
    /// To each person a catch-up concerns (firings that came due while the service was down):
    /// everything they would have been told, in one message. `scheduled` is the earliest missed
    /// firing time; `late_minutes` how long after it this goes out (wall-clock minutes).
    CatchUp {
        scheduled: Timestamp,
        late_minutes: i64,
        items: Vec<Message>,
    },
    /// To whoever acted, when nothing else the decision sends reaches them: what their action
    /// did and what happens next (whoever acts gets an answer, in every mode — a card changing
    /// somewhere above is not one).
    Done { done: Done },
    /// To whoever must act on `clock`: its deadline moved because holiday data was loaded.
    DeadlineChanged {
        clock: ClockKind,
        previous: Timestamp,
        due: Due,
    },
}

/// What an action did, for [`Message::Done`]; the rest is read from the case after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "done", rename_all = "snake_case")]
pub enum Done {
    Claimed,
    DecidedJoint,
    DecidedIndependent,
    Returned,
    EscalatedCity,
    CityOutcome,
    Accepted {
        unit: UnitName,
    },
    Objected {
        unit: UnitName,
    },
    Withdrawn {
        unit: UnitName,
    },
    Insisted {
        unit: UnitName,
    },
    Supervised {
        unit: UnitName,
    },
    Satisfaction,
    Typical,
    /// Anything else, by its command word.
    Other {
        command: String,
    },
}
