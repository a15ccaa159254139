//! The workflow core: the whole life of an application under the joint-mediation mechanism
//! (docs/mechanism.md 四、工作流程 and 五、工作要求; docs/spec.md → The life of an application,
//! Text commands, Clocks) as one pure function, [`transition`].
//!
//! Pure: no I/O, no clock reads, no database. The engine loads the case, calls `transition` with
//! the sender and the current time, and applies the returned [`Decision`] — new case, audit
//! events, effects (messages, cards, timers) — in ONE store transaction, so a state change and
//! everything it causes are committed together or not at all. A [`Rejection`] changes nothing.
//!
//! Decisions taken here where the mechanism is silent (each is commented where it is applied):
//! - When the inspector withdraws every requested unit, the case goes back to review (`UnderReview`,
//!   same inspector, a new decision clock): 四(二) makes the handling method the inspector's call,
//!   and independent handling needs a resolution path and policy basis only the inspector can give.
//! - A unit may still accept after objecting, after the inspector insisted, or after its response
//!   deadline passed: otherwise a supervised unit could never comply.
//! - Terminal states absorb every input with a rejection, except typical-case marking, and timer
//!   firings, which are no-ops there (every clock of a terminal case is stopped).

mod application;
mod case;
mod clock;
mod coordination;
mod draft;
mod effect;
mod event;
mod event_data;
mod handling;
mod input;
mod invariants;
mod people;
mod reject;
mod review;
mod similar_case;
mod submission;
mod timers;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use application::Application;
pub use case::{
    Acceptance, CardKind, CardRef, Case, CityOutcome, Claim, Completion, Contact, DecisionKind,
    DecisionRecord, Objection, PreviousVersion, ProgressNote, RequestStatus, SatisfactionRecord,
    State, Supervision, SupervisionGround, TypicalCase, UnitRequest,
};
pub use clock::{CaseClock, ClockKind, ClockState, Length, Phase, Timer, TimerState};
pub use effect::{ClosedHow, CoordinationUpdate, Done, Due, Effect, Message, PersonRef, TimerKind};
pub use event::{Event, EventKind, SYSTEM_ACTOR};
pub use event_data::{ClosedBy, EventData, Registration, StoredData, WithdrawnFrom};
pub use input::{CoordinationAsk, HelpItem, Input, SatisfactionLevel};
pub use invariants::check_invariants;
pub use people::{STATISTICS_ROLES, may_see_statistics, may_view_case};
pub use reject::{RejectReason, Rejection};
pub use similar_case::{Handling, Helper, SimilarCase};
pub use timers::CATCH_UP_AFTER_MINUTES;

/// Who receives `unit`'s messages and cards under `roster`: its liaisons, else its leaders
/// (二、组织领导). Roster changes compare this before and after.
pub fn unit_contacts(roster: &Roster, unit: &str) -> Vec<PersonId> {
    people::unit_contacts(roster, unit)
}

use crate::calendar::Calendar;
use crate::domain::{CaseNo, PersonId};
use crate::roster::Roster;
use crate::settings::SlaSettings;
use people::Who;

/// What a transition reads besides the case: who is who, working time, and the deadlines.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub roster: &'a Roster,
    pub calendar: &'a Calendar,
    pub sla: &'a SlaSettings,
    /// `[workflow] require_leader_confirmation`: a submission waits for the first unit's leader
    /// ([`State::AwaitingLeader`]) before the review clocks start.
    pub require_leader_confirmation: bool,
}

/// Who sent an input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// A roster person, by [`crate::roster::Person::id`] (DingTalk staffId or `local:` id).
    Person(PersonId),
    /// The scheduler, firing timers.
    System,
}

/// The outcome of an accepted input: the case after it, the facts to record, and what to do.
/// A decision whose `case` equals the input case and has no events and no effects is a no-op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub case: Case,
    pub events: Vec<Event>,
    pub effects: Vec<Effect>,
}

impl Decision {
    fn unchanged(case: &Case) -> Decision {
        Decision {
            case: case.clone(),
            events: Vec::new(),
            effects: Vec::new(),
        }
    }
}

/// What an input is applied to.
///
/// A new case's number exists only here, beside the input, never inside it: the engine reserves
/// the next number when the ticket has no case a submission would join and passes it as
/// [`Subject::New`], so no input ever carries a number still to be filled in.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// The ticket's case: its open one, else its newest closed one.
    Case(&'a Case),
    /// The ticket has no case a submission would join (none, or only closed ones). A
    /// [`Input::Submit`] registers a new case under `case_no`, the number the engine reserved
    /// (taken only when the registration is decided, so refusals leave no gaps); every other
    /// input is refused.
    New { case_no: &'a CaseNo },
}

/// The one entry point: applies `input` from `actor` at `now` to `subject`.
///
/// Inputs are authorised by role and unit against `ctx.roster`; every refusal has its own
/// [`RejectReason`] and a Chinese message.
pub fn transition(
    subject: Subject<'_>,
    input: &Input,
    actor: &Actor,
    now: Timestamp,
    ctx: &Ctx,
) -> Result<Decision, Rejection> {
    let who = Who::resolve(actor, ctx.roster)?;
    let case = match subject {
        Subject::Case(case) => case,
        Subject::New { case_no } => {
            return match input {
                Input::Submit { application } => {
                    submission::submit(case_no, application, who, now, *ctx)
                }
                _ => Err(Rejection::new(
                    RejectReason::NoSuchCase,
                    "没有找到该工单的联合调处案件。请核对工单编号；如需发起联合调处，请先由首接单位联络员发送申请（发送“模板”获取申请格式）。",
                )),
            };
        }
    };
    let call = Call {
        case,
        who,
        now,
        ctx: *ctx,
    };
    let decided = match input {
        Input::TimerFired { key } => timers::fire(call, key),
        Input::MarkTypical { summary } => handling::mark_typical(call, summary),
        _ if case.state.is_terminal() => Err(Rejection::new(
            RejectReason::CaseClosed,
            format!(
                "工单 {} 的联合调处案件 {} {}，不再受理“{}”。如有疑问请联系区12345热线。",
                case.ticket_no,
                case.case_no,
                // Principle 8: "已结案（已结案）" said nothing twice; only how it closed.
                match case.state {
                    State::Independent => "已结案（由首接单位独立办理）",
                    _ => "已结案",
                },
                input.command()
            ),
        )),
        Input::Submit { application } => submission::submit_again(call, application),
        Input::Resubmit { application } => submission::resubmit(call, application),
        Input::LeaderApprove => submission::leader_approve(call),
        Input::LeaderReturn { reason } => submission::leader_return(call, reason),
        Input::Claim => review::claim(call),
        Input::DecideJoint { units } => review::decide_joint(call, units),
        Input::DecideIndependent { path_and_basis } => {
            review::decide_independent(call, path_and_basis)
        }
        Input::Return { reason } => review::return_for_more(call, reason),
        Input::EscalateCity { note } => review::escalate_city(call, note),
        Input::RecordCityOutcome { outcome } => review::record_city_outcome(call, outcome),
        Input::Accept {
            unit,
            contact_name,
            position,
            phone,
            help,
        } => coordination::accept(call, unit, contact_name, position, phone, help),
        Input::Object { unit, reason } => coordination::object(call, unit, reason),
        Input::Withdraw { unit } => coordination::withdraw(call, unit),
        Input::Insist { unit, reason } => coordination::insist(call, unit, reason),
        Input::Supervise { unit, content } => coordination::supervise(call, unit, content),
        Input::Progress { text } => handling::progress(call, text),
        Input::Complete {
            process,
            measures,
            citizen_feedback,
        } => handling::complete(call, process, measures, citizen_feedback),
        Input::Satisfaction { level } => handling::satisfaction(call, *level),
    };
    decided.map(|d| acknowledged(d, input, actor))
}

/// Whoever acts gets an answer: when nothing the decision sends reaches the actor (a message or
/// a new card), they are told what their action did. A no-op stays a no-op.
fn acknowledged(mut decision: Decision, input: &Input, actor: &Actor) -> Decision {
    let Actor::Person(id) = actor else {
        return decision;
    };
    let told = decision.effects.iter().any(|e| match e {
        Effect::Notify { to, .. } => to == id,
        Effect::Card { recipients, .. } => recipients.contains(id),
        _ => false,
    });
    if told || (decision.events.is_empty() && decision.effects.is_empty()) {
        return decision;
    }
    let done = match input {
        Input::Claim => Done::Claimed,
        Input::DecideJoint { .. } => Done::DecidedJoint,
        Input::DecideIndependent { .. } => Done::DecidedIndependent,
        Input::Return { .. } => Done::Returned,
        Input::EscalateCity { .. } => Done::EscalatedCity,
        Input::RecordCityOutcome { .. } => Done::CityOutcome,
        Input::Accept { unit, .. } => Done::Accepted { unit: unit.clone() },
        Input::Object { unit, .. } => Done::Objected { unit: unit.clone() },
        Input::Withdraw { unit } => Done::Withdrawn { unit: unit.clone() },
        Input::Insist { unit, .. } => Done::Insisted { unit: unit.clone() },
        Input::Supervise { unit, .. } => Done::Supervised { unit: unit.clone() },
        Input::Satisfaction { .. } => Done::Satisfaction,
        Input::MarkTypical { .. } => Done::Typical,
        other => Done::Other {
            command: other.command().to_string(),
        },
    };
    decision.effects.push(Effect::Notify {
        to: id.clone(),
        message: Message::Done { done },
    });
    decision
}

/// The scheduler's firing of several due timers of `case` at once (`keys`, as stored): the same
/// as one [`Input::TimerFired`] each, except that firings of one clock collapse into the latest
/// phase and a late batch (after downtime) tells each person once (see `timers.rs`).
pub fn fire_timers(
    case: &Case,
    keys: &[String],
    now: Timestamp,
    ctx: &Ctx,
) -> Result<Decision, Rejection> {
    timers::fire_all(system_call(case, now, ctx), keys, true)
}

/// As [`fire_timers`], when lateness means the clock was moved on (the sandbox clock panel),
/// not that the service was down: every firing is told as if punctual, with no catch-up
/// message.
pub fn fire_timers_after_clock_move(
    case: &Case,
    keys: &[String],
    now: Timestamp,
    ctx: &Ctx,
) -> Result<Decision, Rejection> {
    timers::fire_all(system_call(case, now, ctx), keys, false)
}

/// Counts the running clocks of `case` again on `ctx.calendar` (new holiday data); a no-op
/// decision when no deadline changed.
pub fn recompute_clocks(case: &Case, now: Timestamp, ctx: &Ctx) -> Decision {
    timers::recompute(system_call(case, now, ctx))
}

fn system_call<'a>(case: &'a Case, now: Timestamp, ctx: &Ctx<'a>) -> Call<'a> {
    Call {
        case,
        who: Who::System,
        now,
        ctx: *ctx,
    }
}

/// One input on an existing case, as the handlers receive it.
#[derive(Clone, Copy)]
struct Call<'a> {
    case: &'a Case,
    who: Who<'a>,
    now: Timestamp,
    ctx: Ctx<'a>,
}

impl<'a> Call<'a> {
    fn draft(self) -> draft::Draft<'a> {
        draft::Draft::edit(self.ctx, self.now, self.who.id(), self.case)
    }
}

/// A required free text, trimmed; `what` names it in the refusal ("退回原因").
fn required_text(text: &str, what: &str, example: &str) -> Result<String, Rejection> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Rejection::new(
            RejectReason::MissingText,
            format!("请填写{what}，例如：{example}"),
        ));
    }
    Ok(text.to_string())
}

/// A wrong-state refusal that names the current state.
fn wrong_state(case: &Case, doing: &str, hint: &str) -> Rejection {
    Rejection::new(
        RejectReason::WrongState,
        format!(
            "工单 {} 目前处于“{}”阶段，不能{doing}。{hint}",
            case.ticket_no,
            case.state.label()
        ),
    )
}
