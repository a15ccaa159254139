//! Refusals. A rejected input changes nothing; the sender gets the Chinese message, which says
//! why and what to do instead. Each cause has its own [`RejectReason`] so the engine and the
//! tests can tell them apart without reading the text.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub reason: RejectReason,
    /// Chinese: why, and what to do.
    pub message: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    // Who is acting.
    /// The sender is not in the roster.
    UnknownActor,
    /// A person's action arrived as a system input.
    SystemNotAllowed,
    /// A timer firing arrived from a person.
    PersonNotAllowed,
    /// The sender is not a liaison or leader of the first unit (nor an admin).
    NotFirstUnit,
    /// Leader confirmation (同意 / 退回联络员) from someone who is not a leader of the first unit
    /// (nor an admin).
    NotUnitLeader,
    /// The sender is not a liaison or leader of the unit named.
    NotUnitMember,
    NotInspector,
    /// A decision by an inspector who did not claim the review.
    NotClaimer,
    NotSupervisor,
    /// Satisfaction or the city outcome from someone outside the hotline.
    NotHotlineStaff,
    /// A progress note from someone outside the first unit and the accepted units.
    NotParticipant,

    // Which case, in which state.
    /// No case for this ticket (only a submission creates one).
    NoSuchCase,
    /// The case is closed: it absorbs every input but typical-case marking.
    CaseClosed,
    /// The input does not apply in the case's current state.
    WrongState,

    // Submission.
    /// The application's first unit is not a member unit. (An incomplete application never
    /// reaches the workflow: [`super::Application`] is built only from a complete report.)
    FirstUnitNotMember,
    /// A different application for a ticket that already has an open case.
    TicketHasOpenCase,
    /// The application is for another ticket than the case.
    TicketMismatch,
    /// A resubmission names another first unit.
    FirstUnitChanged,
    /// A resubmission for a case that was not returned.
    NotReturned,

    // Review.
    /// The same inspector claims again (double tap).
    AlreadyClaimed,
    /// Another inspector already claimed the review.
    ClaimedByOther,
    /// A decision before anyone claimed the review.
    NotClaimedYet,
    /// A second decision on a case already decided.
    AlreadyDecided,
    NoUnits,
    UnknownUnit,
    /// A hotline unit named as a cooperating unit.
    NotCooperatingUnit,
    FirstUnitAsCooperator,
    DuplicateUnit,
    MissingDirection,
    /// A unit with neither liaison nor leader in the roster: nobody could answer.
    UnitUnreachable,
    /// A required text (reason, path, note, content, summary, …) is empty.
    MissingText,

    // Coordination.
    /// The unit was not asked to cooperate on this case.
    UnitNotRequested,
    AlreadyAccepted,
    AlreadyObjected,
    /// An objection after the inspector already insisted.
    ObjectionAlreadyDecided,
    /// An answer for a request the inspector withdrew.
    RequestWithdrawn,
    /// Contact name, position, phone or help missing or invalid.
    IncompleteAcceptance,
    /// Withdraw or insist on a unit that has no objection, refusal or time-out to decide.
    NoObjectionToDecide,
    AlreadyWithdrawn,
    AlreadyInsisted,
    /// Supervision of a unit that has not objected-and-been-insisted, timed out or passed its handling deadline.
    NothingToSupervise,
    /// The same supervision content to the same unit again (double tap).
    DuplicateSupervision,

    // Handling and result.
    IncompleteCompletion,
    AlreadyCompleted,
    /// Typical-case marking before the case is completed or closed.
    NotTypicalYet,
    /// The same typical-case summary again (double tap).
    AlreadyTypical,

    // Timers.
    /// A timer key this case never set.
    UnknownTimer,
}
