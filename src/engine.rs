//! The engine: finds the case an input is about, runs the pure [`workflow::transition`], and
//! applies the [`Decision`] in ONE store transaction — case row, application versions,
//! participating units, audit events, outbound messages, cards and timers commit together or not
//! at all (docs/architecture.md → "One transaction per decision"). A rejection writes nothing.
//!
//! Everything runs inside the store's writer closure, so reading the case and writing its next
//! state cannot interleave with another decision on the same case.

use std::sync::{Arc, PoisonError, RwLock};

use jiff::Timestamp;
use serde_json::json;

use crate::calendar::Calendar;
use crate::casebook;
use crate::dingtalk::api::Channel;
use crate::dingtalk::payload;
use crate::dispatch::{Dispatch, Outgoing};
use crate::domain::{CaseNo, PersonId, TicketNo};
use crate::messages::card::{self, CardContent};
use crate::messages::notify;
use crate::parse::UnitMatcher;
use crate::roster::{Person, PersonChange, Role, Roster};
use crate::settings::{DingtalkMode, SlaSettings};
use crate::store::{
    CaseRow, NewCase, NewOutbound, NewTimer, ReadTx, Store, StoreError, Tx, TxError,
};
use crate::workflow::{
    self, Actor, CardKind, Case, Ctx, Decision, Effect, EventData, Input, Rejection, State, Subject,
};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("案件数据无法读取（{case_no}）：{message}")]
    Corrupt { case_no: String, message: String },
    /// A decision that would break a case invariant is a bug: it is refused, never stored.
    #[error("内部错误：案件 {case_no} 的处理结果不一致，未保存（{problems}）")]
    Invariant { case_no: CaseNo, problems: String },
    /// The workflow only addresses roster people; anything else is a bug, refused unsaved.
    #[error("内部错误：案件 {case_no} 的消息收件人 {id} 不在名单中，未保存")]
    UnknownRecipient { case_no: CaseNo, id: PersonId },
    #[error("无法生成发往钉钉的消息：{0}")]
    Payload(#[from] crate::dingtalk::payload::PayloadError),
}

impl TxError for EngineError {
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            EngineError::Store(s) => Some(s),
            _ => None,
        }
    }
}

impl EngineError {
    /// Whether the same work may succeed when tried again later: the storage failed under it or
    /// another write got there first ([`StoreError::is_transient`]). Everything else — a case
    /// document that does not read, a decision that breaks an invariant, a recipient not on the
    /// roster — fails the same way every time, so the inbox and the scheduler quarantine it.
    pub fn is_transient(&self) -> bool {
        matches!(self, EngineError::Store(s) if s.is_transient())
    }
}

/// What became of an input.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The decision was committed; `revision` is the case row's revision after it.
    Applied {
        case_no: CaseNo,
        revision: i64,
        decision: Box<Decision>,
    },
    /// Refused: nothing was written; the message says why in Chinese.
    Rejected(Rejection),
}

/// Shared, immutable context every decision reads, plus the store it writes to.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    /// The roster in force, swapped whole after each roster change so every clone of the engine
    /// sees it at once; a decision takes one snapshot and keeps it to the end.
    roster: Arc<RwLock<Arc<Roster>>>,
    /// The roster file as loaded: the base DingTalk changes are laid over.
    roster_file: Arc<Roster>,
    /// The unit names and aliases of the roster file, compiled once: people change at run
    /// time, units never do, and compiling the matcher costs more than a whole decision.
    units: Arc<UnitMatcher>,
    /// Review-card searches the inbox worker made ahead, off the writer.
    similar_ahead: casebook::SearchedAhead,
    calendar: Arc<Calendar>,
    sla: Arc<SlaSettings>,
    dispatch: Arc<Dispatch>,
    /// The scheduler's per-pass digest goes to the hotline group's custom robot
    /// (`[dingtalk] group_webhook` is set) rather than to the hotline head.
    group_digest: bool,
    leader_confirmation: bool,
}

impl Engine {
    pub fn new(
        store: Store,
        roster: Arc<Roster>,
        calendar: Arc<Calendar>,
        sla: SlaSettings,
        dispatch: Dispatch,
    ) -> Engine {
        Engine {
            store,
            roster: Arc::new(RwLock::new(Arc::clone(&roster))),
            units: Arc::new(UnitMatcher::new(&roster)),
            similar_ahead: casebook::SearchedAhead::default(),
            roster_file: roster,
            calendar,
            sla: Arc::new(sla),
            dispatch: Arc::new(dispatch),
            group_digest: false,
            leader_confirmation: false,
        }
    }

    /// Sends the scheduler's digest to the hotline group's custom robot; call with whether
    /// `[dingtalk] group_webhook` is configured. Ignored in sandbox mode, which has no group.
    pub fn with_group_digest(mut self, on: bool) -> Engine {
        self.group_digest = on;
        self
    }

    /// Whether applications wait for the first unit's leader (`[workflow]
    /// require_leader_confirmation`; off by default).
    pub fn with_leader_confirmation(mut self, on: bool) -> Engine {
        self.leader_confirmation = on;
        self
    }

    /// Whether the digest goes to the hotline group (see [`Engine::with_group_digest`]).
    pub fn group_digest(&self) -> bool {
        self.group_digest
    }

    /// The rows that post `rendered` to the hotline: the hotline group's custom robot when the
    /// group digest is configured (and the mode is not the sandbox, which has no group), else
    /// each hotline head, who stand in for the group. Each row is paired with who it is for:
    /// `group`, or the head's roster id. The one place that decides "group or heads", for the
    /// scheduler's digest and the monthly report alike.
    pub fn hotline_posts(&self, rendered: &notify::Rendered) -> Vec<(String, Outgoing)> {
        if self.group_digest && self.dispatch.mode() != DingtalkMode::Sandbox {
            return vec![(
                "group".to_string(),
                Outgoing {
                    channel: Channel::GroupWebhook,
                    target: "区12345热线工作群".into(),
                    payload: payload::custom_robot_markdown(
                        &rendered.title,
                        &rendered.markdown,
                        &[],
                    ),
                    undeliverable: None,
                },
            )];
        }
        self.roster()
            .people_with_role(Role::HotlineHead)
            .map(|head| (head.id().to_string(), self.dispatch.message(head, rendered)))
            .collect()
    }

    pub fn sla(&self) -> &SlaSettings {
        &self.sla
    }

    /// What every decision reads besides the case, with `roster` (a [`Engine::roster`]
    /// snapshot taken by the caller, so one decision never sees two rosters).
    pub fn ctx<'a>(&'a self, roster: &'a Roster) -> Ctx<'a> {
        Ctx {
            roster,
            calendar: &self.calendar,
            sla: &self.sla,
            require_leader_confirmation: self.leader_confirmation,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The roster in force now: the file with the DingTalk changes laid over it.
    pub fn roster(&self) -> Arc<Roster> {
        Arc::clone(&self.roster.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The matcher of the roster's unit names and aliases (see [`Engine::units`]'s field).
    pub fn units(&self) -> &Arc<UnitMatcher> {
        &self.units
    }

    /// Review-card searches made ahead of their decisions ([`casebook::SearchedAhead`]).
    pub fn similar_ahead(&self) -> &casebook::SearchedAhead {
        &self.similar_ahead
    }

    /// The roster file as loaded at start-up, before any DingTalk change.
    pub fn roster_file(&self) -> &Roster {
        &self.roster_file
    }

    /// Rebuilds the roster in force from the file and the changes stored so far, reading in
    /// `tx` (the transaction that just recorded a change, or any read), and puts it in force.
    pub fn reload_roster_in_tx(&self, tx: &ReadTx<'_>) -> Result<Arc<Roster>, EngineError> {
        let mut changed = Vec::new();
        for row in tx.roster_overrides()? {
            changed.push(
                Person::from_override(&row)
                    .map_err(|m| EngineError::Store(StoreError::BadData(m)))?,
            );
        }
        let roster = Arc::new(self.roster_file.with_overrides(&changed));
        *self.roster.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&roster);
        Ok(roster)
    }

    /// As [`Engine::reload_roster_in_tx`] on a read connection: at start-up, so the changes
    /// made in DingTalk before a restart are in force again.
    pub fn reload_roster_blocking(&self) -> Result<Arc<Roster>, EngineError> {
        let engine = self.clone();
        self.store
            .read_blocking(move |r| engine.reload_roster_in_tx(r))
    }

    /// As [`Engine::reload_roster_blocking`], from async code.
    pub async fn reload_roster(&self) -> Result<Arc<Roster>, EngineError> {
        let engine = self.clone();
        self.store
            .read(move |r| engine.reload_roster_in_tx(r))
            .await
    }

    /// Runs `f` as one store write, like [`Store::write`], for writes that may change the roster
    /// ([`Engine::change_roster_in_tx`] puts the new roster in force inside the transaction, so
    /// the decisions after it in the same transaction see it). When the write does not commit,
    /// the roster in force is rebuilt from the database, so an uncommitted change never stays
    /// in force.
    pub async fn write_keeping_roster<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: TxError,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        match self.store.write(f).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if let Err(reload) = self.reload_roster().await {
                    tracing::error!(error = %reload, "could not rebuild the roster after a failed write");
                }
                Err(e)
            }
        }
    }

    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// What `viewer`'s copy of the card `kind` of `case` shows: the same content the outbox
    /// sends that person, so a card callback's answer and the card updates agree.
    pub fn card_for_viewer(&self, case: &Case, kind: &CardKind, viewer: &str) -> CardContent {
        for_viewer(case, kind, viewer, &render_card(self, case, kind)).into_owned()
    }

    /// Applies `input` from `actor` to the case of `ticket_no`.
    ///
    /// An [`Input::Submit`] goes to the open case of the ticket (a re-paste or a conflicting
    /// application, which the workflow answers), or registers a new case under the next case
    /// number ([`workflow::Subject::New`]) — taken only when the workflow registers it, so
    /// refused applications leave no gaps.
    pub async fn handle(
        &self,
        ticket_no: &TicketNo,
        input: Input,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        let job = self.handle_job(ticket_no, input, actor, now);
        self.store.write(job).await
    }

    /// As [`Engine::handle`], on the calling thread (CLI, tests).
    pub fn handle_blocking(
        &self,
        ticket_no: &TicketNo,
        input: Input,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        let job = self.handle_job(ticket_no, input, actor, now);
        self.store.write_blocking(job)
    }

    /// Records the roster `changes` of `unit` made by `actor` (history and the people as they now
    /// stand), puts the rebuilt roster in force and makes the unit's open cases follow it, all
    /// in `tx`: each open case of the unit gets a [`EventData::ContactsChanged`] event, and the
    /// card of a coordination request still open for the unit goes to its new contacts. Returns
    /// the roster now in force.
    pub fn change_roster_in_tx(
        &self,
        tx: &Tx<'_>,
        unit: &str,
        changes: &[PersonChange],
        actor: &str,
        now: Timestamp,
    ) -> Result<Arc<Roster>, EngineError> {
        let before = self.roster();
        for change in changes {
            let row = change.after.to_override(now, actor);
            let before_json = change.before.as_ref().map(|p| person_json(p).to_string());
            tx.record_roster_change(
                &row,
                change.action,
                before_json.as_deref(),
                &person_json(&change.after).to_string(),
            )?;
        }
        let after = self.reload_roster_in_tx(tx)?;
        let old_contacts = workflow::unit_contacts(&before, unit);
        let new_contacts = workflow::unit_contacts(&after, unit);
        let described: Vec<String> = changes.iter().map(PersonChange::describe).collect();
        let open = State::open_names();
        let open: Vec<&str> = open.iter().map(String::as_str).collect();
        for row in tx.cases_in_states(&open)? {
            let case = decode(&row)?;
            // The case's own name for the unit, when it involves it.
            let named = if case.first_unit == unit {
                Some(case.first_unit.clone())
            } else {
                case.request(unit).map(|r| r.unit.clone())
            };
            let Some(unit_name) = named.filter(|_| !case.state.is_terminal()) else {
                continue;
            };
            let mut next = case.clone();
            let mut effects = Vec::new();
            let request_open = case
                .request(unit)
                .is_some_and(|r| !matches!(r.status, workflow::RequestStatus::Withdrawn { .. }));
            let added: Vec<PersonId> = new_contacts
                .iter()
                .filter(|id| !old_contacts.contains(id))
                .cloned()
                .collect();
            if request_open {
                let coordination = CardKind::Coordination {
                    unit: unit_name.clone(),
                };
                // The latest card for the unit is the one its open request answers.
                if let Some(card) = next.cards.iter_mut().rev().find(|c| c.kind == coordination) {
                    // Former contacts stop receiving the unit's card; anyone else on it stays.
                    card.recipients.retain(|id| {
                        after.person(id).is_some()
                            && (new_contacts.contains(id) || !old_contacts.contains(id))
                    });
                    for id in &added {
                        if !card.recipients.contains(id) {
                            card.recipients.push(id.clone());
                        }
                    }
                    if !added.is_empty() {
                        effects.push(Effect::Card {
                            card_key: card.key.clone(),
                            kind: coordination,
                            recipients: added.clone(),
                        });
                    }
                }
            }
            let decision = Decision {
                case: next,
                events: vec![workflow::Event {
                    at: now,
                    actor: actor.to_string(),
                    unit: Some(unit_name),
                    data: EventData::ContactsChanged {
                        changes: described.clone(),
                        contacts: new_contacts.clone(),
                    },
                }],
                effects,
            };
            self.apply_in_tx(tx, Some((&row, &case)), decision, now)?;
        }
        Ok(after)
    }

    fn handle_job(
        &self,
        ticket_no: &TicketNo,
        input: Input,
        actor: Actor,
        now: Timestamp,
    ) -> impl FnOnce(&Tx<'_>) -> Result<Outcome, EngineError> + Send + 'static {
        let engine = self.clone();
        let ticket_no = ticket_no.clone();
        move |tx| engine.handle_in_tx(tx, &ticket_no, input, &actor, now)
    }

    /// [`Engine::handle`] inside the caller's transaction, so that an inbound message can be
    /// marked processed in the same commit as the decision it caused.
    pub fn handle_in_tx(
        &self,
        tx: &Tx<'_>,
        ticket_no: &TicketNo,
        input: Input,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        let rows = tx.case_by_ticket(ticket_no)?;
        let mut cases = Vec::with_capacity(rows.len());
        for row in rows {
            let case = decode(&row)?;
            cases.push((row, case));
        }
        // Newest first from the store: an open case wins, else the newest closed one.
        let current = cases
            .iter()
            .find(|(_, c)| !c.state.is_terminal())
            .or_else(|| cases.first())
            .map(|(r, c)| (r, c));
        let submission = matches!(input, Input::Submit { .. });
        match current {
            // A submission on a ticket whose cases are all closed opens a new case.
            Some((row, case)) if !(submission && case.state.is_terminal()) => {
                self.decide_and_apply(tx, (row, case), &input, actor, now)
            }
            _ => {
                // The number is only looked at until the workflow registers the application:
                // a refused one (wrong sender, unknown first unit) must not use one up.
                let year = now.to_zoned(self.calendar.time_zone().clone()).year();
                let case_no = tx.peek_case_no(year)?;
                let roster = self.roster();
                let subject = Subject::New { case_no: &case_no };
                let decision =
                    match workflow::transition(subject, &input, actor, now, &self.ctx(&roster)) {
                        Ok(d) => d,
                        Err(rejection) => return Ok(Outcome::Rejected(rejection)),
                    };
                // Same writer transaction as the peek, so nothing took the number since.
                let taken = tx.next_case_no(year)?;
                if taken != decision.case.case_no {
                    return Err(EngineError::Invariant {
                        case_no: decision.case.case_no.clone(),
                        problems: format!("案件编号已变为 {taken}"),
                    });
                }
                self.apply_in_tx(tx, None, decision, now)
            }
        }
    }

    fn decide_and_apply(
        &self,
        tx: &Tx<'_>,
        (row, case): (&CaseRow, &Case),
        input: &Input,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        let roster = self.roster();
        let decision = match workflow::transition(
            Subject::Case(case),
            input,
            actor,
            now,
            &self.ctx(&roster),
        ) {
            Ok(d) => d,
            Err(rejection) => return Ok(Outcome::Rejected(rejection)),
        };
        self.apply_in_tx(tx, Some((row, case)), decision, now)
    }

    /// Checks and writes a decision taken outside [`workflow::transition`] (the scheduler's
    /// grouped firings, recomputed deadlines) inside the caller's transaction, exactly as an
    /// input's decision is written.
    pub fn apply_in_tx(
        &self,
        tx: &Tx<'_>,
        current: Option<(&CaseRow, &Case)>,
        mut decision: Decision,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        if let Err(problems) = workflow::check_invariants(&decision.case) {
            return Err(EngineError::Invariant {
                case_no: decision.case.case_no.clone(),
                problems: problems.join("；"),
            });
        }
        // A version registered now is reviewed against the district's past cases as they stand
        // now (五(五)); its review card, sent by this same decision, shows them.
        if current.is_none_or(|(_, c)| c.version != decision.case.version) {
            let query =
                casebook::review_query(&decision.case.application, &decision.case.first_unit);
            let exclude = current.map(|(row, _)| row.id);
            decision.case.similar = match self.similar_ahead.take(&query, exclude) {
                Some(found) => found,
                None => casebook::review_search(tx, &query, exclude, &self.calendar)?,
            };
        }
        let revision = apply(self, tx, current, &decision, now)?;
        Ok(Outcome::Applied {
            case_no: decision.case.case_no.clone(),
            revision,
            decision: Box::new(decision),
        })
    }
}

/// A person as the roster history stores them.
fn person_json(p: &Person) -> serde_json::Value {
    json!({
        "name": p.name, "unit": p.unit, "title": p.title,
        "roles": p.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "staff_id": p.staff_id, "phone": p.phone,
    })
}

/// Writes one decision; returns the case row's revision after it.
fn apply(
    engine: &Engine,
    tx: &Tx<'_>,
    before: Option<(&CaseRow, &Case)>,
    decision: &Decision,
    now: Timestamp,
) -> Result<i64, EngineError> {
    let case = &decision.case;
    let roster = engine.roster();
    let data = serde_json::to_string(case).map_err(|e| corrupt(case, e))?;
    let state = serde_json::to_value(case.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let (case_id, revision) = match before {
        None => {
            let id = tx.insert_case(&NewCase {
                case_no: &case.case_no,
                ticket_no: &case.ticket_no,
                first_unit: &case.first_unit,
                urgent: case.green_channel,
                state: &state,
                data_json: &data,
                created_at: now,
            })?;
            (id, 1)
        }
        // A no-op (a stale timer) writes nothing. Any other decision bumps the revision, even
        // when the case document is unchanged (a re-pasted application's repeated receipt),
        // because the revision keys its outbound messages.
        Some((row, _)) if decision.events.is_empty() && decision.effects.is_empty() => {
            return Ok(row.revision);
        }
        Some((row, _)) => (
            row.id,
            tx.update_case(row.id, row.revision, &state, &data, now)?,
        ),
    };

    casebook::sync(tx, case_id, before.map(|(_, c)| c), case)?;
    // Application versions: one row per version, written when the version first appears.
    if before.is_none_or(|(_, old)| old.version != case.version) {
        let application = serde_json::to_string(&case.application).map_err(|e| corrupt(case, e))?;
        tx.insert_case_version(
            case_id,
            i64::from(case.version),
            &application,
            &case.submitted_by,
            case.received_at,
        )?;
    }
    for request in &case.requests {
        if case
            .request(&request.unit)
            .is_some_and(|r| std::ptr::eq(r, request))
        {
            let json = serde_json::to_string(request).map_err(|e| corrupt(case, e))?;
            tx.upsert_case_unit(
                case_id,
                &request.unit,
                status_name(&request.status),
                &json,
                now,
            )?;
        }
    }
    for event in &decision.events {
        tx.append_event(Some(case_id), event)?;
    }
    for (i, effect) in decision.effects.iter().enumerate() {
        // Keys are stable per decision (case revision + position), so re-applying nothing twice
        // is guaranteed by the outbox's unique key rather than by hope.
        let key = format!("{}#r{revision}/{i}", case.case_no);
        match effect {
            Effect::Notify { to, message } => {
                let Some(person) = roster.person(to) else {
                    return Err(EngineError::UnknownRecipient {
                        case_no: case.case_no.clone(),
                        id: to.clone(),
                    });
                };
                let rendered = notify::render(
                    case,
                    message,
                    &person.roles,
                    &roster,
                    &engine.units,
                    &engine.calendar,
                );
                enqueue(tx, &key, &engine.dispatch.message(person, &rendered), now)?;
            }
            Effect::Card {
                card_key,
                kind,
                recipients,
            } => {
                tx.upsert_card(
                    card_key,
                    Some(case_id),
                    &json!(kind).to_string(),
                    &json!(recipients).to_string(),
                    &data,
                    now,
                )?;
                let content = render_card(engine, case, kind);
                for (j, to) in recipients.iter().enumerate() {
                    let content = for_viewer(case, kind, to, &content);
                    let Some(person) = roster.person(to) else {
                        return Err(EngineError::UnknownRecipient {
                            case_no: case.case_no.clone(),
                            id: to.clone(),
                        });
                    };
                    enqueue(
                        tx,
                        &format!("{key}/{j}"),
                        &engine.dispatch.card(card_key, person, content.as_ref()),
                        now,
                    )?;
                }
            }
            Effect::UpdateCard { card_key } => {
                let Some(card) = case.cards.iter().find(|c| &c.key == card_key) else {
                    continue;
                };
                if let Some(row) = tx.card(card_key)? {
                    tx.upsert_card(
                        card_key,
                        Some(case_id),
                        &row.kind,
                        &row.recipients_json,
                        &data,
                        now,
                    )?;
                }
                let content = render_card(engine, case, &card.kind);
                let shown = before.map(|(_, old)| (old, render_card(engine, old, &card.kind)));
                for (j, to) in card.recipients.iter().enumerate() {
                    let Some(person) = roster.person(to) else {
                        continue;
                    };
                    let content = for_viewer(case, &card.kind, to, &content);
                    // A copy that would look the same is left alone: "updated" only when
                    // something on it changed.
                    if shown.as_ref().is_some_and(|(old, was)| {
                        for_viewer(old, &card.kind, to, was).as_ref() == content.as_ref()
                    }) {
                        continue;
                    }
                    if let Some(out) =
                        engine
                            .dispatch
                            .card_update(card_key, person, content.as_ref())
                    {
                        enqueue(tx, &format!("{key}/{j}"), &out, now)?;
                    }
                }
            }
            Effect::SetTimer {
                key: timer_key,
                due_at,
                kind,
            } => {
                let kind_json = json!(kind).to_string();
                tx.set_timer(&NewTimer {
                    key: timer_key,
                    case_id: Some(case_id),
                    kind: &kind_json,
                    due_at: *due_at,
                    payload_json: &json!({"case_no": case.case_no}).to_string(),
                })?;
            }
            Effect::CancelTimer { key: timer_key } => {
                tx.cancel_timer(timer_key)?;
            }
        }
    }
    Ok(revision)
}

/// Writes one outbox row; an undeliverable one is dead-lettered in the same transaction, with
/// its reason, so it shows in `tiaochu outbox dead` instead of vanishing.
pub fn enqueue(tx: &Tx<'_>, key: &str, out: &Outgoing, now: Timestamp) -> Result<(), StoreError> {
    let id = tx.enqueue_outbox(&NewOutbound {
        idem_key: key,
        channel: out.channel.as_str(),
        target: &out.target,
        payload: &out.payload,
        not_before: now,
    })?;
    if let Some(reason) = &out.undeliverable {
        tx.mark_dead(id, reason, now)?;
    }
    Ok(())
}

/// A claimed review card keeps its decision buttons for the claiming inspector only (四(二): the
/// inspector who reviews decides); every other copy shows the status without buttons.
fn for_viewer<'c>(
    case: &Case,
    kind: &CardKind,
    viewer: &str,
    content: &'c CardContent,
) -> std::borrow::Cow<'c, CardContent> {
    match (kind, &case.claim) {
        (CardKind::Review { .. }, Some(claim))
            if claim.by != viewer && !content.buttons.is_empty() =>
        {
            let mut own = content.clone();
            own.buttons.clear();
            std::borrow::Cow::Owned(own)
        }
        _ => std::borrow::Cow::Borrowed(content),
    }
}

fn render_card(engine: &Engine, case: &Case, kind: &CardKind) -> CardContent {
    match kind {
        CardKind::Review { version } if *version != case.version => {
            card::superseded_review_card(case, *version)
        }
        CardKind::Review { .. } => card::review_card(case, &engine.roster(), &engine.calendar),
        CardKind::Coordination { unit } => {
            card::coordination_card(case, unit, &engine.roster(), &engine.calendar)
        }
    }
}

fn status_name(status: &workflow::RequestStatus) -> &'static str {
    use workflow::RequestStatus as S;
    match status {
        S::Pending => "pending",
        S::Accepted(_) => "accepted",
        S::Objected => "objected",
        S::Insisted { .. } => "insisted",
        S::Overdue => "overdue",
        S::Withdrawn { .. } => "withdrawn",
    }
}

/// The case document of a row.
pub fn decode(row: &CaseRow) -> Result<Case, EngineError> {
    serde_json::from_str(&row.data_json).map_err(|e| EngineError::Corrupt {
        case_no: row.case_no.to_string(),
        message: e.to_string(),
    })
}

fn corrupt(case: &Case, e: serde_json::Error) -> EngineError {
    EngineError::Corrupt {
        case_no: case.case_no.to_string(),
        message: e.to_string(),
    }
}
