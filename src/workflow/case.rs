//! The case: everything the mechanism records about one application, from submission to close.
//! It is plain data (the store keeps it as one JSON document); every change goes through
//! [`super::transition`], which is the only place that knows the rules.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::clock::{CaseClock, ClockKind};
use super::input::{HelpItem, SatisfactionLevel};
use super::{Application, SimilarCase};
use crate::domain::{CaseNo, PersonId, TicketNo, UnitName};

/// Where a case is in the mechanism's flow (四、工作流程; 五、工作要求).
///
/// ```text
/// (leader confirmation on) AwaitingLeader → Submitted; AwaitingLeader → Returned
/// Submitted → UnderReview → Returned → (resubmission) Submitted …
///                         → Independent                       (terminal)
///                         → CityEscalated → Closed            (terminal)
///                         → Coordinating → JointHandling → Completed → Closed
///                           Coordinating → UnderReview        (every requested unit withdrawn)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Registered with `[workflow] require_leader_confirmation` on: waits for the first unit's
    /// leader to agree (四(一) 经本单位分管领导同意); no mechanism clock runs yet.
    AwaitingLeader,
    /// Registered, waiting for an inspector to claim the review (五(一) 即收即审).
    Submitted,
    /// Claimed by an inspector, who must decide how it is handled (四(二)).
    UnderReview,
    /// Sent back to the first unit for more information; waits for a corrected resubmission.
    Returned,
    /// Closed as independent handling: the first unit continues alone (四(二)). Terminal.
    Independent,
    /// Passed to the city 12345 supervisor (四(一)); waits for the outcome the hotline records.
    CityEscalated,
    /// Cooperating units have been asked and are answering (四(三)).
    Coordinating,
    /// Every remaining cooperating unit accepted; the first unit leads the handling (五(二)).
    JointHandling,
    /// The first unit reported the result (五(三)); waits for the satisfaction record.
    Completed,
    /// Satisfaction or the city outcome is recorded. Terminal.
    Closed,
}

impl State {
    pub const ALL: [State; 10] = [
        State::AwaitingLeader,
        State::Submitted,
        State::UnderReview,
        State::Returned,
        State::Independent,
        State::CityEscalated,
        State::Coordinating,
        State::JointHandling,
        State::Completed,
        State::Closed,
    ];

    /// The stored names (the case row's `state` column) of every state a case can be open in
    /// (not [`State::is_terminal`]).
    pub fn open_names() -> Vec<String> {
        State::ALL
            .into_iter()
            .filter(|s| !s.is_terminal())
            .filter_map(|s| serde_json::to_value(s).ok()?.as_str().map(str::to_string))
            .collect()
    }

    /// Terminal states absorb every input except typical-case marking (and stale timers).
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Independent | State::Closed)
    }

    /// The Chinese name users see.
    pub fn label(self) -> &'static str {
        match self {
            State::AwaitingLeader => "待分管领导确认",
            State::Submitted => "待认领审核",
            State::UnderReview => "研判中",
            State::Returned => "已退回待补充",
            State::Independent => "已转独立办理，已结案",
            State::CityEscalated => "已提请市级协调",
            State::Coordinating => "协调中",
            State::JointHandling => "联合处置中",
            State::Completed => "已办结待评价",
            State::Closed => "已结案",
        }
    }
}

/// One application under the joint-mediation mechanism.
///
/// Invariants (checked by [`super::check_invariants`]): `version == previous_versions.len() + 1`;
/// at most one request per unit is not withdrawn; every timer key is unique in the case; a
/// terminal case has no running clock and no pending timer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Given by the engine, e.g. "TC-2026-0001"; names every timer and card key.
    pub case_no: CaseNo,
    /// Commands name the case by it.
    pub ticket_no: TicketNo,
    /// The first unit (首接单位); fixed for the life of the case.
    pub first_unit: UnitName,
    /// 1 for the first submission, +1 per resubmission after a return.
    pub version: u32,
    /// The latest application.
    pub application: Application,
    /// Roster id of whoever sent the latest version.
    pub submitted_by: PersonId,
    /// Receipt of the latest version; the review clocks run from here. With leader confirmation
    /// on, the leader's confirmation time (四(一): the clocks start when the leader agrees).
    pub received_at: Timestamp,
    /// 五(一) green channel: the latest application is urgent.
    pub green_channel: bool,
    pub state: State,
    /// The inspector who claimed the latest version's review; `None` while Submitted.
    pub claim: Option<Claim>,
    /// Every handling decision, oldest first, across versions.
    pub decisions: Vec<DecisionRecord>,
    /// Every coordination request ever made, oldest first; a unit asked again after a withdrawal
    /// has a second entry, and the latest entry for a unit is the one in force.
    pub requests: Vec<UnitRequest>,
    /// Written supervisions (书面督办), numbered from 1 in issue order.
    pub supervisions: Vec<Supervision>,
    pub progress: Vec<ProgressNote>,
    pub completion: Option<Completion>,
    pub satisfaction: Option<SatisfactionRecord>,
    pub city_outcome: Option<CityOutcome>,
    pub typical: Option<TypicalCase>,
    /// Every clock ever started, oldest first; stopped clocks stay for the record.
    pub clocks: Vec<CaseClock>,
    /// Every interactive card sent for this case, so an action can update every copy.
    pub cards: Vec<CardRef>,
    /// Earlier versions, replaced by a resubmission.
    pub previous_versions: Vec<PreviousVersion>,
    /// The district's past cases most like the latest version (五(五)), for its review card. The
    /// engine takes them from the store when the version is registered (the workflow never
    /// reads the store) and they stay as they were then, so every copy of the card agrees.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub similar: Vec<SimilarCase>,
}

impl Case {
    /// The request in force for `unit`: its latest one.
    pub fn request(&self, unit: &str) -> Option<&UnitRequest> {
        self.requests.iter().rev().find(|r| r.unit == unit)
    }

    pub(crate) fn request_mut(&mut self, unit: &str) -> Option<&mut UnitRequest> {
        self.requests.iter_mut().rev().find(|r| r.unit == unit)
    }

    /// Requests still in play: not withdrawn. All of them belong to the latest joint decision.
    pub fn active_requests(&self) -> impl Iterator<Item = &UnitRequest> {
        self.requests
            .iter()
            .filter(|r| !matches!(r.status, RequestStatus::Withdrawn { .. }))
    }

    /// Units that accepted and so take part in the joint handling.
    pub fn accepted_units(&self) -> impl Iterator<Item = &UnitRequest> {
        self.requests
            .iter()
            .filter(|r| matches!(r.status, RequestStatus::Accepted(_)))
    }

    /// The latest clock of `kind`, running or not.
    pub fn clock(&self, kind: &ClockKind) -> Option<&CaseClock> {
        self.clocks.iter().rev().find(|c| &c.kind == kind)
    }

    /// Roster id of the claiming inspector.
    pub fn inspector(&self) -> Option<&PersonId> {
        self.claim.as_ref().map(|c| &c.by)
    }

    pub fn last_decision(&self) -> Option<&DecisionRecord> {
        self.decisions.last()
    }
}

/// The claim of a review (开始审核).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Roster id of the inspector.
    pub by: PersonId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The application version the decision was about.
    pub version: u32,
    pub by: PersonId,
    pub at: Timestamp,
    pub kind: DecisionKind,
}

/// The four handling methods of docs/spec.md → Review (四(一), 四(二)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecisionKind {
    /// 联合调处: the units asked, in the order given.
    Joint { units: Vec<UnitName> },
    /// 独立办理: the resolution path and the policy basis.
    Independent { path_and_basis: String },
    /// 退回补充.
    Returned { reason: String },
    /// 提请市级协调.
    City { note: String },
}

/// A coordination request to one cooperating unit (四(三)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRequest {
    pub unit: UnitName,
    /// 协同方向及重点, as the inspector wrote it.
    pub direction: String,
    pub requested_at: Timestamp,
    pub requested_by: PersonId,
    /// Response deadline (the unit's UnitResponse clock).
    pub due: Timestamp,
    /// Id of the UnitResponse clock in [`Case::clocks`].
    pub clock_id: String,
    /// Key of the coordination card sent to the unit.
    pub card_key: String,
    pub status: RequestStatus,
    /// The unit's objection, kept after the inspector's withdraw/insist decision.
    pub objection: Option<Objection>,
    /// When the response deadline passed without an answer.
    pub overdue_since: Option<Timestamp>,
    /// The inspector's reason for upholding the request (坚持), when given.
    #[serde(default)]
    pub insist_reason: Option<String>,
}

/// Where a coordination request stands. `Accepted` and `Withdrawn` are settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RequestStatus {
    /// Asked, no answer yet; the UnitResponse clock runs.
    Pending,
    /// 接受协办: the unit joined the case.
    Accepted(Acceptance),
    /// 提出异议: waits for the inspector to withdraw or insist (reason in [`UnitRequest::objection`]).
    Objected,
    /// The inspector insisted after an objection: the unit is under written supervision and must accept.
    Insisted { by: PersonId, at: Timestamp },
    /// No answer by the response deadline: treated like a refusal (docs/spec.md → Coordination).
    Overdue,
    /// The inspector dropped the unit from the case.
    Withdrawn { by: PersonId, at: Timestamp },
}

impl RequestStatus {
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            RequestStatus::Accepted(_) | RequestStatus::Withdrawn { .. }
        )
    }

    /// The Chinese name users see.
    pub fn label(&self) -> &'static str {
        match self {
            RequestStatus::Pending => "待答复",
            RequestStatus::Accepted(_) => "已接受协办",
            RequestStatus::Objected => "提出异议",
            RequestStatus::Insisted { .. } => "异议未采纳，督办中",
            RequestStatus::Overdue => "超时未答复",
            RequestStatus::Withdrawn { .. } => "已撤回",
        }
    }
}

/// What an accepting unit gives the first unit (四(三)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    pub by: PersonId,
    pub at: Timestamp,
    pub contact: Contact,
    /// Accepted by the response deadline.
    pub on_time: bool,
}

/// A cooperating unit's contact person and the help it gives (四(三)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub unit: UnitName,
    pub name: String,
    pub position: String,
    pub phone: String,
    pub help: Vec<HelpItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objection {
    pub by: PersonId,
    pub at: Timestamp,
    pub reason: String,
}

/// Why written supervision was due (四(三): objection or refusal; docs/spec.md: time-outs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisionGround {
    /// The inspector insisted after the unit objected.
    Insisted,
    /// The unit did not answer by the response deadline.
    Overdue,
    /// The first unit passed the handling deadline.
    HandlingOverdue,
}

/// 书面督办 No. `number`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervision {
    /// 1-based, in issue order within the case.
    pub number: u32,
    pub unit: UnitName,
    pub content: String,
    pub ground: SupervisionGround,
    pub by: PersonId,
    pub at: Timestamp,
}

/// 进展 (五(二)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressNote {
    pub by: PersonId,
    pub unit: UnitName,
    pub at: Timestamp,
    pub text: String,
}

/// 结果反馈 (五(三)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    pub by: PersonId,
    pub at: Timestamp,
    pub process: String,
    pub measures: String,
    pub citizen_feedback: String,
    /// Reported by the handling deadline.
    pub on_time: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SatisfactionRecord {
    pub level: SatisfactionLevel,
    pub by: PersonId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CityOutcome {
    pub outcome: String,
    pub by: PersonId,
    pub at: Timestamp,
}

/// 典型案例 (五(五)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypicalCase {
    pub summary: String,
    pub by: PersonId,
    pub at: Timestamp,
}

/// A version replaced by a resubmission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousVersion {
    pub version: u32,
    pub application: Application,
    pub submitted_by: PersonId,
    pub received_at: Timestamp,
}

/// An interactive card sent for the case. `key` is the card's stable `outTrackId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRef {
    pub key: String,
    pub kind: CardKind,
    /// Roster ids the card was delivered to.
    pub recipients: Vec<PersonId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CardKind {
    /// The review card every inspector gets for one application version.
    Review { version: u32 },
    /// The coordination card a cooperating unit's liaisons get.
    Coordination { unit: UnitName },
}
