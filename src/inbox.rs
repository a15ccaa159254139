//! The inbox processor: turns each stored inbound message into what it asks for — a command, an
//! application, or a question — and answers it. Every message is processed in ONE transaction
//! with the decision it causes and the replies it gets, and marked finished in that same commit,
//! so a crash either loses nothing (the message is processed again after restart) or has done
//! everything exactly once.
//!
//! A message that fails in a way a retry will not fix is quarantined and the next one goes on;
//! one that fails because the storage does is tried again with backoff ([`crate::quarantine`]).
//!
//! Who may do what is the workflow's business; this module only finds the sender in the roster
//! and reads the text (docs/spec.md → Text commands, → Parsing).

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use crate::card_callback::{self as cards, CardCallback, CardCopy, CardReply, Refusal};
use crate::casebook;
use crate::clock::Clock;
use crate::dingtalk::inbound::RobotMessage;
use crate::dingtalk::stream::{
    ContactEvent, EventFrame, FrameHandler, HandlerError, HandlerFuture, InboxHandler, SOURCE_CARD,
    SOURCE_EVENT,
};
use crate::domain::{PersonId, TicketNo, UnitName};
use crate::engine::{Engine, EngineError, Outcome, decode, enqueue};
use crate::messages::application::{TEMPLATE, render_incomplete};
use crate::messages::help::{help_all, help_text, is_for};
use crate::messages::notify::Rendered;
use crate::messages::timeline::{TimelineEntry, render_query};
use crate::onboarding;
use crate::parse::command::{Command, Verb, parse_command};
use crate::parse::{Field, UnitMatcher, parse_application};
use crate::quarantine;
use crate::roster::{Mentioned, Person, PersonChange};
use crate::settings::DingtalkMode;
use crate::store::{
    InboxInsert, InboxRow, NewInbound, QuarantineId, QuarantineKind, StoreError, Tx,
};
use crate::workflow::{self, Actor, Input};

/// The field of a sandbox message naming the console's origin (`http://host:port`), so a 看板
/// link sent in the sandbox points where the person's browser already is.
pub const SANDBOX_ORIGIN_KEY: &str = "sandboxOrigin";

/// Whether an action registers an application or acts on an existing case.
enum InputKind {
    Submit,
    Command,
}

/// Most open cases suggested for a ticket number that names no case.
const SUGGESTED_CASES: usize = 3;

/// The answer to a command naming a ticket without a case: the number as received, then the
/// sender's own open cases (those of their unit, or for hotline staff the ones they claimed,
/// else any open), the ones whose numbers look most like it first.
fn no_such_case(tx: &Tx<'_>, person: &Person, ticket_no: &str) -> Result<String, EngineError> {
    let open = workflow::State::open_names();
    let open: Vec<&str> = open.iter().map(String::as_str).collect();
    let mut mine = Vec::new();
    for row in tx.cases_in_states(&open)? {
        let case = decode(&row)?;
        let own_unit =
            person.unit == case.first_unit || case.active_requests().any(|r| r.unit == person.unit);
        let claimed = case.claim.as_ref().is_some_and(|c| c.by == person.id());
        if own_unit || claimed || workflow::may_see_statistics(person) {
            mine.push((u8::from(!(own_unit || claimed)), case));
        }
    }
    // Digits in the same place, counted from the end, where typing mistakes differ least.
    let alike = |other: &str| {
        ticket_no
            .chars()
            .rev()
            .zip(other.chars().rev())
            .filter(|(a, b)| a == b)
            .count()
    };
    mine.sort_by_key(|(rank, c)| (*rank, std::cmp::Reverse(alike(&c.ticket_no))));
    let mut text = format!("没有找到工单 {ticket_no} 的联合调处案件，请核对工单编号。");
    if mine.is_empty() {
        text.push_str("\n\n您目前没有在办的联合调处案件；如需发起，请先由首接单位联络员发送申请（发送“模板”获取格式）。");
    } else {
        text.push_str("\n\n您在办的案件：");
        for (_, c) in mine.iter().take(SUGGESTED_CASES) {
            text.push_str(&format!(
                "\n· {}（{}，{}）",
                c.ticket_no,
                excerpt_title(&c.application.title),
                c.state.label()
            ));
        }
    }
    Ok(text)
}

/// A title short enough for a phone line.
fn excerpt_title(title: &str) -> String {
    const MAX: usize = 16;
    let masked = crate::messages::notify::mask_phones(title);
    if masked.chars().count() > MAX {
        format!("{}…", masked.chars().take(MAX).collect::<String>())
    } else {
        masked
    }
}

/// Where 看板 links point when no `[dashboard] base_url` was given (the shipped default).
pub(crate) const DEFAULT_DASHBOARD_URL: &str = "http://127.0.0.1:8080";

/// How many inbound messages one step takes.
pub const BATCH: usize = 50;

/// The first try of a message in [`InboxProcessor::process_pending`].
enum FirstTry {
    /// Processed (`None`: another step had finished it).
    Ran(Option<Handled>),
    /// Not run: the message before it was still pending (its try failed).
    NotRun,
}

/// What became of one inbound message (stored as the inbox row's outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// A workflow decision was committed.
    Applied,
    /// The workflow refused; the sender was told why.
    Rejected,
    /// Answered without touching a case (help, template, query, an incomplete application).
    Answered,
    /// Not processable (not a robot message): recorded, nothing sent.
    Ignored,
    /// Over the sender's per-minute limit: recorded, not acted on; the sender is told once per
    /// window.
    Throttled,
}

impl Handled {
    fn as_str(self) -> &'static str {
        match self {
            Handled::Applied => "applied",
            Handled::Rejected => "rejected",
            Handled::Answered => "answered",
            Handled::Ignored => "ignored",
            Handled::Throttled => "throttled",
        }
    }
}

/// Whether a robot message is within its sender's per-minute limit.
enum SenderLimit {
    Within,
    /// Over the limit: not acted on; `notice` is the one message telling the sender, set for the
    /// first message over the limit in a window.
    Over {
        notice: Option<Rendered>,
    },
}

/// Who a robot message counts against for the flood limit: its sender, or its conversation
/// when it names no sender.
fn sender_key(message: &RobotMessage) -> String {
    match message.sender_staff_id() {
        Some(id) => format!("staff:{id}"),
        None => format!("conversation:{}", message.conversation_id),
    }
}

/// Processes the inbox with the engine's roster, calendar and dispatch.
#[derive(Clone)]
pub struct InboxProcessor {
    engine: Engine,
    units: Arc<UnitMatcher>,
    /// `[dashboard] base_url`: where the 看板 login links point.
    dashboard_url: Arc<str>,
    /// `[inbox] per_sender_per_minute`: robot messages one sender may have processed in one
    /// minute; 0 means no limit.
    per_sender_per_minute: u32,
}

impl InboxProcessor {
    pub fn new(engine: Engine) -> InboxProcessor {
        let units = Arc::clone(engine.units());
        InboxProcessor {
            engine,
            units,
            dashboard_url: Arc::from(DEFAULT_DASHBOARD_URL),
            per_sender_per_minute: crate::settings::DEFAULT_PER_SENDER_PER_MINUTE,
        }
    }

    /// At most `n` robot messages per sender and minute are acted on (0: no limit).
    pub fn with_sender_limit(mut self, n: u32) -> InboxProcessor {
        self.per_sender_per_minute = n;
        self
    }

    /// Login links for 看板 start with `base_url` (`[dashboard] base_url`).
    pub fn with_dashboard_url(mut self, base_url: &str) -> InboxProcessor {
        self.dashboard_url = Arc::from(base_url);
        self
    }

    /// Processes every pending message, oldest first, up to [`BATCH`]; returns how many it
    /// finished or quarantined.
    ///
    /// Every message's first try is queued on the writer at once, as background writes
    /// ([`crate::store::Store::write_background`]): acknowledgements go ahead of them, and
    /// several commit in one transaction, each under its own savepoint, its inbox row finished
    /// in the same savepoint as its decision. A try runs only once the message before it in the
    /// step is no longer pending, so the order of decisions is the order of messages even when
    /// one fails: the tries behind a failed one do nothing, and from the failed one on the
    /// messages are taken one at a time, as follows. A message that fails for good is
    /// quarantined (the admins are told once) and the next one goes on; one that fails because
    /// the storage does is tried again with backoff, and when it still fails the step stops with
    /// that error, leaving it and the rest pending for the next step.
    pub async fn process_pending(&self, now: Timestamp) -> Result<usize, EngineError> {
        let rows = self.engine.store().read(|r| r.pending_inbox(BATCH)).await?;
        let rows: Vec<Arc<InboxRow>> = rows.into_iter().map(Arc::new).collect();
        let mut tries = Vec::with_capacity(rows.len());
        let mut before: Option<i64> = None;
        // Robot messages of each sender earlier in this step: not all counted in the store yet.
        let mut earlier: HashMap<String, u32> = HashMap::new();
        for row in &rows {
            self.search_ahead(row, &mut earlier, now).await;
            let (this, id) = (self.clone(), row.id);
            let row = Arc::clone(row);
            tries.push(
                self.engine
                    .store()
                    .write_background(move |tx| -> Result<_, EngineError> {
                        if let Some(id) = before
                            && tx.inbox(id)?.is_some_and(|r| {
                                r.finished_at.is_none() && r.quarantined_at.is_none()
                            })
                        {
                            return Ok(FirstTry::NotRun);
                        }
                        tx.note_inbox_attempts(row.id, row.attempts + 1)?;
                        Ok(FirstTry::Ran(this.process_in_tx(tx, &row, now)?))
                    }),
            );
            before = Some(id);
        }
        let mut done = 0;
        let mut one_by_one = Vec::new();
        for (row, first) in rows.into_iter().zip(tries) {
            match first.await {
                Ok(FirstTry::Ran(processed)) if one_by_one.is_empty() => {
                    done += usize::from(processed.is_some());
                }
                Ok(FirstTry::Ran(_)) => {
                    // Cannot happen while the try checks the message before it; were it to,
                    // the message is finished and the next step passes it over.
                    tracing::error!(
                        inbox = row.id,
                        "a message was decided before the one ahead of it"
                    );
                }
                Ok(FirstTry::NotRun) => one_by_one.push((row, None)),
                Err(e) => one_by_one.push((row, Some(e))),
            }
        }
        if one_by_one.iter().any(|(_, e)| e.is_some()) {
            // A failed decision may have changed the roster in memory before it was undone.
            if let Err(reload) = self.engine.reload_roster().await {
                tracing::error!(error = %reload, "could not rebuild the roster after a failed write");
            }
        }
        for (row, failed) in one_by_one {
            done += self.one_by_one(row, failed.map(Err), now).await?;
        }
        self.engine.similar_ahead().clear();
        Ok(done)
    }

    /// When `row` is a complete application its decision will act on, searches the similar
    /// cases its review card will show on a read snapshot, off the writer, for the decision to
    /// take ([`casebook::SearchedAhead`]). Anything else, or a failed search, leaves the search
    /// to the decision itself. A message from someone not in the roster, or over its sender's
    /// flood limit, is not searched for: it will not be decided, and a flood must stay as cheap
    /// as the limit makes it. `earlier` counts each sender's robot messages earlier in the step.
    async fn search_ahead(
        &self,
        row: &InboxRow,
        earlier: &mut HashMap<String, u32>,
        now: Timestamp,
    ) {
        if !matches!(row.source.as_str(), "robot" | "stream" | "sandbox") {
            return;
        }
        let Ok(message) = RobotMessage::from_json(row.payload.as_bytes()) else {
            return;
        };
        let key = sender_key(&message);
        let before = earlier.entry(key.clone()).or_default();
        let earlier_in_step = *before;
        *before += 1;
        let known = message
            .sender_staff_id()
            .is_some_and(|id| self.engine.roster().person(id).is_some());
        if !known {
            return;
        }
        let text = message.text().unwrap_or_default();
        if parse_command(&text, &self.units).is_some() {
            return;
        }
        let report = parse_application(&text, &self.units);
        let Ok(app) = workflow::Application::from_report(&report, &self.units) else {
            return;
        };
        let (engine, limit) = (self.engine.clone(), self.per_sender_per_minute);
        let searched = self
            .engine
            .store()
            .read(move |r| -> Result<(), EngineError> {
                // Counted in the store or earlier in this step (a message of this step already
                // committed counts twice: then the decision searches itself, as before).
                if limit > 0 && r.sender_count(&key, now)? + earlier_in_step >= limit {
                    return Ok(());
                }
                // As the decision will: the ticket's open case is left out (a resubmission
                // registers a new version of it), a closed one is not.
                let mut open = None;
                for case_row in r.case_by_ticket(&app.ticket_no)? {
                    if !decode(&case_row)?.state.is_terminal() {
                        open = Some(case_row.id);
                        break;
                    }
                }
                let query = casebook::review_query(&app, &app.first_unit);
                let found = casebook::review_search(r, &query, open, engine.calendar())?;
                engine.similar_ahead().put(query, open, found);
                Ok(())
            })
            .await;
        if let Err(e) = searched {
            tracing::debug!(inbox = row.id, error = %e, "similar cases not searched ahead; the decision will");
        }
    }

    /// One message with retries and quarantine: 1 when it was finished or quarantined, 0 when
    /// another step had; `Err` when the storage still fails after the retries (the step stops).
    /// `first` is the outcome of a try already made in this step, if any.
    async fn one_by_one(
        &self,
        row: Arc<InboxRow>,
        first: Option<Result<Option<Handled>, EngineError>>,
        now: Timestamp,
    ) -> Result<usize, EngineError> {
        let (result, tries) = quarantine::continue_retries(first, |n| {
            let this = self.clone();
            let row = Arc::clone(&row);
            let attempts = row.attempts + i64::from(n);
            // A message may change the roster (leaders' @-commands).
            async move {
                let engine = this.engine.clone();
                engine
                    .write_keeping_roster(move |tx| {
                        tx.note_inbox_attempts(row.id, attempts)?;
                        this.process_in_tx(tx, &row, now)
                    })
                    .await
            }
        })
        .await;
        let attempts = row.attempts + i64::from(tries);
        match result {
            Ok(processed) => Ok(usize::from(processed.is_some())),
            Err(e) if e.is_transient() => {
                let id = row.id;
                // Best effort: the storage is failing, so this may fail too.
                if let Err(note) = self
                    .engine
                    .store()
                    .write(move |tx| tx.note_inbox_attempts(id, attempts))
                    .await
                {
                    tracing::warn!(inbox = id, error = %note, "could not record the attempts");
                }
                Err(e)
            }
            Err(e) => Ok(usize::from(self.quarantine(&row, &e, attempts, now).await?)),
        }
    }

    /// Sets `row` aside after the failure `error` and tells the admins, in one transaction;
    /// false when another step had finished or quarantined it meanwhile.
    async fn quarantine(
        &self,
        row: &InboxRow,
        error: &EngineError,
        attempts: i64,
        now: Timestamp,
    ) -> Result<bool, EngineError> {
        tracing::error!(inbox = row.id, source = %row.source, attempts, error = %error, "inbound message quarantined");
        let engine = self.engine.clone();
        let (id, source, reason) = (row.id, row.source.clone(), error.to_string());
        self.engine
            .store()
            .write(move |tx| {
                if !tx.quarantine_inbox(id, &reason, attempts, now)? {
                    return Ok(false);
                }
                let what = format!("收到的消息 #{id}（来源：{}）", source_label(&source));
                let qid = QuarantineId {
                    kind: QuarantineKind::Inbox,
                    id,
                };
                quarantine::notify_admins(&engine, tx, &[qid], &what, &reason, attempts, now)?;
                Ok(true)
            })
            .await
    }

    /// One message in the caller's transaction; `None` when another step already finished it.
    pub fn process_in_tx(
        &self,
        tx: &Tx<'_>,
        row: &InboxRow,
        now: Timestamp,
    ) -> Result<Option<Handled>, EngineError> {
        if tx.inbox(row.id)?.is_none_or(|r| r.finished_at.is_some()) {
            return Ok(None);
        }
        let handled = match row.source.as_str() {
            "robot" | "stream" | "sandbox" => match RobotMessage::from_json(row.payload.as_bytes())
            {
                Ok(message) => self.robot_message(tx, row, &message, now)?,
                Err(e) => {
                    tracing::warn!(inbox = row.id, error = %e, "inbound message is not a robot message");
                    Handled::Ignored
                }
            },
            // Card callbacks are normally processed before their answer
            // ([`InboxProcessor::card_callback`]); a row stored without that (by a bare
            // `InboxHandler`) is processed here, its refusal told in a 1:1 message instead.
            SOURCE_CARD => self.card_row(tx, row, now)?,
            SOURCE_EVENT => self.contact_event(tx, row, now)?,
            _ => Handled::Ignored,
        };
        tx.finish_inbox(row.id, handled.as_str(), now)?;
        Ok(Some(handled))
    }

    /// A card callback (§6.4), processed before it is answered, since the answer carries the
    /// card update: in ONE transaction the callback is stored in the inbox under its dedupe key
    /// ([`InboxHandler::card_key`]), its action decided and the row finished. A callback for a
    /// card that is not ours, or from anyone but the copy's owner, stores nothing; a duplicate
    /// answers the current card without acting again.
    ///
    /// Only what is stored is answered: a failure of the storage comes back as `Err`, and the
    /// caller gives no answer, so DingTalk delivers the tap again. A failure a retry would not
    /// fix (the case document does not read, the decision breaks an invariant) stores the tap
    /// quarantined instead, tells the admins, and answers [`CardReply::Failed`]: an operator
    /// replays it with `tiaochu quarantine retry` once the cause is fixed.
    pub async fn card_callback(&self, data: &str, now: Timestamp) -> Result<CardReply, StoreError> {
        let this = self.clone();
        let owned = data.to_string();
        let failed = match self
            .engine
            .store()
            .write(move |tx| this.card_callback_in_tx(tx, &owned, now))
            .await
        {
            Ok(reply) => return Ok(reply),
            Err(EngineError::Store(e)) if e.is_transient() => return Err(e),
            Err(e) => e,
        };
        let Some(key) = InboxHandler::card_key(data) else {
            return Ok(CardReply::Refused(Refusal::UnknownCard));
        };
        let engine = self.engine.clone();
        let (payload, reason) = (data.to_string(), failed.to_string());
        tracing::error!(error = %reason, "card callback failed; stored quarantined");
        self.engine
            .store()
            .write(move |tx| -> Result<(), StoreError> {
                let id = tx
                    .insert_inbox(&NewInbound {
                        source: SOURCE_CARD,
                        message_id: &key,
                        received_at: now,
                        payload: &payload,
                    })?
                    .id();
                if tx.quarantine_inbox(id, &reason, 1, now)? {
                    let qid = QuarantineId {
                        kind: QuarantineKind::Inbox,
                        id,
                    };
                    let what = format!("卡片操作 #{id}");
                    quarantine::notify_admins(&engine, tx, &[qid], &what, &reason, 1, now)?;
                }
                Ok(())
            })
            .await?;
        Ok(CardReply::Failed)
    }

    fn card_callback_in_tx(
        &self,
        tx: &Tx<'_>,
        data: &str,
        now: Timestamp,
    ) -> Result<CardReply, EngineError> {
        let roster = self.engine.roster();
        let (Some(callback), Some(key)) =
            (CardCallback::from_json(data), InboxHandler::card_key(data))
        else {
            return Ok(CardReply::Refused(Refusal::UnknownCard));
        };
        let copy = match cards::locate(
            tx,
            &roster,
            self.engine.dispatch().card_secrets(),
            &callback,
        )? {
            Ok(copy) => copy,
            Err(refusal) => return Ok(CardReply::Refused(refusal)),
        };
        let inserted = tx.insert_inbox(&NewInbound {
            source: SOURCE_CARD,
            message_id: &key,
            received_at: now,
            payload: data,
        })?;
        let error = match inserted {
            // Answered before: the card as it is now is the whole answer.
            InboxInsert::Duplicate(_) => None,
            InboxInsert::Inserted(id) => {
                let (handled, error) = self.card_action(tx, &copy, &callback, now)?;
                // Whoever taps gets an answer in the chat too: the card's own notice shows only
                // on that card, which may be far up the conversation.
                if let (Some(message), Some(person)) =
                    (&error, self.engine.roster().person(&copy.owner))
                {
                    let out = self
                        .engine
                        .dispatch()
                        .message(person, &plain("卡片操作未受理", message));
                    enqueue(tx, &format!("inbox:{id}:reply"), &out, now)?;
                }
                tx.finish_inbox(id, handled.as_str(), now)?;
                error
            }
        };
        // Read again: the decision just taken (in this transaction) changed the case.
        let content = match cards::locate(
            tx,
            &roster,
            self.engine.dispatch().card_secrets(),
            &callback,
        )? {
            Ok(now_copy) => {
                self.engine
                    .card_for_viewer(&now_copy.case, &now_copy.card.kind, &now_copy.owner)
            }
            Err(_) => self
                .engine
                .card_for_viewer(&copy.case, &copy.card.kind, &copy.owner),
        };
        Ok(CardReply::Answer { content, error })
    }

    /// Decides one tap; the error is for the tapping user when nothing changed.
    fn card_action(
        &self,
        tx: &Tx<'_>,
        copy: &CardCopy,
        callback: &CardCallback,
        now: Timestamp,
    ) -> Result<(Handled, Option<String>), EngineError> {
        let (ticket_no, input) = match cards::input(copy, callback, &self.units) {
            Ok(found) => found,
            Err(message) => return Ok((Handled::Answered, Some(message))),
        };
        match self.engine.handle_in_tx(
            tx,
            &ticket_no,
            input,
            &Actor::Person(copy.owner.clone()),
            now,
        )? {
            Outcome::Applied { .. } => Ok((Handled::Applied, None)),
            Outcome::Rejected(rejection) => Ok((Handled::Rejected, Some(rejection.message))),
        }
    }

    /// A stored card callback nobody answered: acted on as a tap would be; a refusal or a
    /// mistake goes to the tapping user as a 1:1 message, since no answer can carry it.
    fn card_row(
        &self,
        tx: &Tx<'_>,
        row: &InboxRow,
        now: Timestamp,
    ) -> Result<Handled, EngineError> {
        let Some(callback) = CardCallback::from_json(&row.payload) else {
            return Ok(Handled::Ignored);
        };
        let copy = match cards::locate(
            tx,
            &self.engine.roster(),
            self.engine.dispatch().card_secrets(),
            &callback,
        )? {
            Ok(copy) => copy,
            Err(refusal) => {
                tracing::warn!(inbox = row.id, ?refusal, "stored card callback refused");
                return Ok(Handled::Ignored);
            }
        };
        let (handled, error) = self.card_action(tx, &copy, &callback, now)?;
        if let (Some(message), Some(person)) = (error, self.engine.roster().person(&copy.owner)) {
            let out = self
                .engine
                .dispatch()
                .message(person, &plain("卡片操作未受理", &message));
            enqueue(tx, &format!("inbox:{}:reply", row.id), &out, now)?;
        }
        Ok(handled)
    }

    /// An address-book event (Stream EVENT, stored by [`InboxHandler`]): each liaison or leader
    /// who left the organisation, or now sits outside their unit, is replaced as
    /// [`onboarding::person_gone_in_tx`] says. Anything else is recorded and ignored.
    fn contact_event(
        &self,
        tx: &Tx<'_>,
        row: &InboxRow,
        now: Timestamp,
    ) -> Result<Handled, EngineError> {
        let Some(event) = ContactEvent::from_json(&row.payload) else {
            tracing::warn!(inbox = row.id, "stored event is unreadable");
            return Ok(Handled::Ignored);
        };
        let mut any = false;
        for (i, staff_id) in event.user_ids.iter().enumerate() {
            let key = format!("inbox:{}/{i}", row.id);
            any |= if event.is_leave() {
                onboarding::person_left_in_tx(&self.engine, tx, staff_id, &key, now)?
            } else if let (true, Some(departments)) =
                (event.is_modify(), event.departments.get(staff_id))
            {
                onboarding::person_moved_in_tx(&self.engine, tx, staff_id, departments, &key, now)?
            } else {
                false
            };
        }
        Ok(if any {
            Handled::Applied
        } else {
            Handled::Ignored
        })
    }

    fn robot_message(
        &self,
        tx: &Tx<'_>,
        row: &InboxRow,
        message: &RobotMessage,
        now: Timestamp,
    ) -> Result<Handled, EngineError> {
        let text = message.text().unwrap_or_default();
        let roster = self.engine.roster();
        let sender = message.sender_staff_id().and_then(|id| roster.person(id));
        let reply = |rendered: Rendered| self.reply(tx, row, message, sender, &rendered, now);
        match self.sender_limit(tx, message, now)? {
            SenderLimit::Within => {}
            SenderLimit::Over { notice } => {
                if let Some(notice) = notice {
                    reply(notice)?;
                }
                return Ok(Handled::Throttled);
            }
        }
        let Some(person) = sender else {
            reply(plain(
                "无法使用联合调处机器人",
                &format!(
                    "您不在疑难工单联合调处工作名单中（钉钉 userId：{}），机器人不能受理您的消息。\n\n请联系本单位分管领导在钉钉群中把您设为联络员，或联系区12345热线管理员把您加入名单。",
                    message.sender_staff_id().unwrap_or("未知")
                ),
            ))?;
            return Ok(Handled::Answered);
        };
        if text.trim().is_empty() {
            reply(plain(
                "请发送文字",
                "机器人只能读取文字消息。发送“帮助”查看可用的命令，发送“模板”获取申请格式。",
            ))?;
            return Ok(Handled::Answered);
        }
        match parse_command(&text, &self.units) {
            Some(Ok(command)) => self.command(tx, row, message, person, command, now),
            Some(Err(e)) => {
                reply(plain("命令格式有误", &e.message))?;
                Ok(Handled::Answered)
            }
            None => self.application(tx, row, message, person, &text, now),
        }
    }

    /// The flood limit (security issue 13): one sender's burst must not hold up everyone else's
    /// answers. A message over the sender's limit is not acted on, and the first one over it in
    /// a window carries the one notice saying so. Messages without a sender id are counted by
    /// conversation.
    fn sender_limit(
        &self,
        tx: &Tx<'_>,
        message: &RobotMessage,
        now: Timestamp,
    ) -> Result<SenderLimit, EngineError> {
        if self.per_sender_per_minute == 0 {
            return Ok(SenderLimit::Within);
        }
        let key = sender_key(message);
        let window = tx.note_inbound(&key, now)?;
        if window.count <= self.per_sender_per_minute {
            return Ok(SenderLimit::Within);
        }
        if window.told {
            return Ok(SenderLimit::Over { notice: None });
        }
        tx.mark_sender_told(&key)?;
        let resume = window
            .ends_at
            .to_zoned(self.engine.calendar().time_zone().clone())
            .strftime("%H:%M");
        tracing::warn!(
            limit = self.per_sender_per_minute,
            "a sender went over the per-minute message limit"
        );
        Ok(SenderLimit::Over {
            notice: Some(plain(
                "消息过于频繁",
                &format!(
                    "您一分钟内发送了超过 {} 条消息，机器人暂停处理您的消息到 {resume}。\n\n从这条起到 {resume} 前发来的消息都未处理，请在 {resume} 后重新发送需要办理的内容。",
                    self.per_sender_per_minute
                ),
            )),
        })
    }

    fn command(
        &self,
        tx: &Tx<'_>,
        row: &InboxRow,
        message: &RobotMessage,
        person: &Person,
        command: Command,
        now: Timestamp,
    ) -> Result<Handled, EngineError> {
        let reply = |rendered: Rendered| self.reply(tx, row, message, Some(person), &rendered, now);
        match command {
            Command::Help => reply(plain("联合调处机器人 · 帮助", &help_text(&person.roles)))?,
            Command::HelpAll => {
                reply(plain("联合调处机器人 · 全部命令", &help_all(&person.roles)))?
            }
            Command::Template => reply(plain("联合调处申请模板", TEMPLATE))?,
            Command::Query { ticket_no } => reply(self.query(tx, person, &ticket_no)?)?,
            Command::Stats { month } => reply(self.stats(tx, person, month, now)?)?,
            Command::Similar { ticket_no } => reply(crate::casebook::similar_command(
                tx,
                person,
                &ticket_no,
                self.engine.calendar(),
            )?)?,
            Command::Cases { keywords } => reply(crate::casebook::cases_command(
                tx,
                person,
                &keywords,
                self.engine.calendar(),
            )?)?,
            // The link logs in as the sender: always 1:1, never into a group.
            Command::Dashboard => {
                // In the sandbox, the link opens on the host the console was reached on.
                let sandbox_origin = (row.source == "sandbox")
                    .then(|| serde_json::from_str::<serde_json::Value>(&row.payload).ok())
                    .flatten()
                    .and_then(|v| v[SANDBOX_ORIGIN_KEY].as_str().map(str::to_string));
                let rendered = crate::dashboard_access::login_reply(
                    tx,
                    person,
                    sandbox_origin.as_deref().unwrap_or(&self.dashboard_url),
                    self.engine.calendar(),
                    now,
                )?;
                let out = self.engine.dispatch().message(person, &rendered);
                enqueue(tx, &format!("inbox:{}:reply", row.id), &out, now)?;
            }
            Command::Act { ticket_no, input } => {
                return self.act(tx, row, message, person, &ticket_no, input, now);
            }
            Command::Answer { ticket_no, answer } => {
                let input = answer.by(UnitName::of_person(person));
                return self.act(tx, row, message, person, &ticket_no, input, now);
            }
            Command::ListRoster { unit } => {
                let unit = unit.unwrap_or_else(|| UnitName::of_person(person));
                reply(plain(
                    &format!("{unit}名单"),
                    &self.engine.roster().unit_listing(&unit),
                ))?;
            }
            Command::RosterChange {
                action,
                unit,
                mentions,
            } => {
                let planned = mentioned(message, &mentions).and_then(|target| {
                    self.engine
                        .roster()
                        .plan_change(person, action, unit.as_deref(), &target)
                });
                return self.roster_change(tx, row, message, person, planned, now);
            }
            Command::SetLiaisonByName { unit, name } => {
                let sandbox = self.engine.dispatch().mode() == DingtalkMode::Sandbox;
                let planned = self.engine.roster().plan_liaison_by_name(
                    person,
                    unit.as_deref(),
                    &name,
                    sandbox,
                );
                return self.roster_change(tx, row, message, person, planned, now);
            }
            Command::StartOnboarding => {
                if !is_for(Verb::StartOnboarding, &person.roles) {
                    reply(plain(
                        "未受理",
                        "只有区12345热线负责人或管理员可以启动联络员指定。如需了解进度，请联系区12345热线。",
                    ))?;
                    return Ok(Handled::Rejected);
                }
                let started = onboarding::start_in_tx(
                    &self.engine,
                    tx,
                    person.id(),
                    &format!("inbox:{}", row.id),
                    now,
                )?;
                reply(plain("已启动联络员指定", &started.describe(&person.roles)))?;
                return Ok(Handled::Applied);
            }
            Command::OnboardingProgress => {
                if !is_for(Verb::OnboardingProgress, &person.roles) {
                    reply(plain(
                        "无法查看进度",
                        "联络员指定进度仅供区12345热线工作人员和管理员查看。发送“名单”可查看本单位现有人员。",
                    ))?;
                    return Ok(Handled::Answered);
                }
                reply(onboarding::progress_in_tx(&self.engine, tx, &person.roles)?)?;
            }
            Command::Bind { name, mentions } => {
                let planned = mentioned(message, &mentions).and_then(|target| {
                    let roster = self.engine.roster();
                    let change = roster.plan_bind(person, &name, &target)?;
                    Ok((change.after.unit.clone(), vec![change]))
                });
                return self.roster_change(tx, row, message, person, planned, now);
            }
        }
        Ok(Handled::Answered)
    }

    /// Applies a planned roster change (or tells the sender why not): the history, the roster
    /// in force and the unit's open cases change in this transaction; the people changed, the
    /// hotline head and the sender are told.
    fn roster_change(
        &self,
        tx: &Tx<'_>,
        row: &InboxRow,
        message: &RobotMessage,
        person: &Person,
        planned: Result<(String, Vec<PersonChange>), String>,
        now: Timestamp,
    ) -> Result<Handled, EngineError> {
        let (unit, changes) = match planned {
            Ok(p) => p,
            Err(refusal) => {
                self.reply(
                    tx,
                    row,
                    message,
                    Some(person),
                    &plain("未受理", &refusal),
                    now,
                )?;
                return Ok(Handled::Rejected);
            }
        };
        let roster = self
            .engine
            .change_roster_in_tx(tx, &unit, &changes, person.id(), now)?;
        onboarding::after_roster_change_in_tx(&self.engine, tx, &unit, now)?;
        let lines: Vec<String> = changes
            .iter()
            .map(|c| format!("· {}", c.describe()))
            .collect();
        let notice = plain(
            "名单变更",
            &format!(
                "{}（{}）调整了{unit}的名单：\n{}\n\n此后{unit}的协办请求和提醒发给现任联络员；发送“名单 {unit}”查看现有人员。",
                person.name,
                person.unit,
                lines.join("\n")
            ),
        );
        let mut told: Vec<String> = vec![person.id().to_string()];
        let heads = roster.people_with_role(crate::roster::Role::HotlineHead);
        let changed = changes.iter().filter_map(|c| roster.person(c.after.id()));
        for (i, p) in changed.chain(heads).enumerate() {
            if told.iter().any(|id| id == p.id()) {
                continue;
            }
            told.push(p.id().to_string());
            let out = self.engine.dispatch().message(p, &notice);
            enqueue(tx, &format!("inbox:{}:roster/{i}", row.id), &out, now)?;
        }
        self.reply(tx, row, message, Some(person), &notice, now)?;
        Ok(Handled::Applied)
    }

    #[allow(clippy::too_many_arguments)] // one message's whole context, passed down once
    fn act(
        &self,
        tx: &Tx<'_>,
        row: &InboxRow,
        message: &RobotMessage,
        person: &Person,
        ticket_no: &TicketNo,
        input: Input,
        now: Timestamp,
    ) -> Result<Handled, EngineError> {
        let input_kind = if matches!(input, Input::Submit { .. }) {
            InputKind::Submit
        } else {
            InputKind::Command
        };
        match self.engine.handle_in_tx(
            tx,
            ticket_no,
            input,
            &Actor::Person(PersonId::of(person)),
            now,
        )? {
            Outcome::Applied { .. } => Ok(Handled::Applied),
            Outcome::Rejected(rejection) => {
                let text = if rejection.reason == workflow::RejectReason::NoSuchCase
                    && !matches!(input_kind, InputKind::Submit)
                {
                    // Principle 3: a wrong number is named back, with the sender's own open
                    // cases to pick from.
                    no_such_case(tx, person, ticket_no)?
                } else {
                    rejection.message
                };
                self.reply(tx, row, message, Some(person), &plain("未受理", &text), now)?;
                Ok(Handled::Rejected)
            }
        }
    }

    fn application(
        &self,
        tx: &Tx<'_>,
        row: &InboxRow,
        message: &RobotMessage,
        person: &Person,
        text: &str,
        now: Timestamp,
    ) -> Result<Handled, EngineError> {
        let app = parse_application(text, &self.units);
        if app.missing.len() == Field::REQUIRED.len() && app.ticket_no.is_none() {
            // Not an application and not a command: chit-chat or a question.
            let body = "没有看懂这条消息。\n\n· 发起联合调处：发送“模板”获取申请格式，填好后整段发给我；\n· 查看全部命令：发送“帮助”。";
            self.reply(
                tx,
                row,
                message,
                Some(person),
                &plain("没有看懂", body),
                now,
            )?;
            return Ok(Handled::Answered);
        }
        let Ok(application) = workflow::Application::from_report(&app, &self.units) else {
            self.reply(
                tx,
                row,
                message,
                Some(person),
                &plain("申请未登记", &render_incomplete(&app)),
                now,
            )?;
            return Ok(Handled::Answered);
        };
        let ticket_no = application.ticket_no.clone();
        let input = Input::Submit { application };
        self.act(tx, row, message, person, &ticket_no, input, now)
    }

    /// 查询: the case's timeline for those who may read it ([`workflow::may_view_case`]); anyone
    /// else gets the same answer as for a ticket without a case, so nobody learns which tickets
    /// are under mediation.
    fn query(
        &self,
        tx: &Tx<'_>,
        person: &Person,
        ticket_no: &TicketNo,
    ) -> Result<Rendered, EngineError> {
        let rows = tx.case_by_ticket(ticket_no)?;
        let found = match rows.first() {
            Some(row) => Some((row, decode(row)?)),
            None => None,
        };
        let Some((row, case)) = found.filter(|(_, case)| workflow::may_view_case(person, case))
        else {
            return Ok(plain(
                "未找到案件",
                &format!(
                    "没有找到您可以查看的工单 {ticket_no} 的联合调处案件。请核对工单编号（如 DH2026110300017）；案件只对首接单位、配合单位和区12345热线工作人员可见。"
                ),
            ));
        };
        let events: Vec<TimelineEntry> = tx
            .events_for_case(row.id)?
            .iter()
            .map(TimelineEntry::from_row)
            .collect();
        let body = render_query(
            &case,
            &events,
            &self.engine.roster(),
            self.engine.calendar(),
        );
        Ok(plain(&format!("查询 {ticket_no}"), &body))
    }

    /// 统计: the month's figures, targets against actuals and the units named, from the audit log
    /// (the full report with evidence is `tiaochu report`).
    fn stats(
        &self,
        tx: &Tx<'_>,
        person: &Person,
        month: Option<(i16, i8)>,
        now: Timestamp,
    ) -> Result<Rendered, EngineError> {
        if !workflow::may_see_statistics(person) {
            let roles: Vec<&str> = workflow::STATISTICS_ROLES
                .iter()
                .map(|r| r.label())
                .collect();
            return Ok(plain(
                "无法查看统计",
                &format!(
                    "月统计仅供{}查看。本单位的案件可发送“查询 工单编号”查看办理经过；如需统计数据，请联系区12345热线。",
                    roles.join("、")
                ),
            ));
        }
        let calendar = self.engine.calendar();
        let today = calendar.local_date(now);
        let (year, month) = month.unwrap_or((today.year(), today.month()));
        let period = crate::report::Period::Month { year, month };
        let report = crate::report::build(tx, calendar, &period, now)?;
        // Already markdown, with people's text escaped where the report writes it.
        Ok(Rendered {
            title: format!("{year}-{month:02} 统计"),
            markdown: crate::report::markdown::brief(&report),
        })
    }

    /// Answers the sender where [`crate::dispatch::Dispatch::reply`] routes it, keyed to the
    /// inbox row so a retried step queues the answer once.
    fn reply(
        &self,
        tx: &Tx<'_>,
        row: &InboxRow,
        message: &RobotMessage,
        person: Option<&Person>,
        rendered: &Rendered,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let key = format!("inbox:{}:reply", row.id);
        let Some(out) =
            self.engine
                .dispatch()
                .reply(message, row.received_at, person, rendered, now)?
        else {
            tracing::warn!(
                inbox = row.id,
                "no way to answer a sender without staff id outside a group"
            );
            return Ok(());
        };
        Ok(enqueue(tx, &key, &out, now)?)
    }
}

/// How an admin reads an inbox `source`.
fn source_label(source: &str) -> &str {
    match source {
        "robot" => "机器人回调",
        "stream" => "钉钉 Stream",
        "sandbox" => "沙盒",
        SOURCE_CARD => "卡片操作",
        other => other,
    }
}

/// The one person a roster command `@`-mentions: the staff id from the message's `atUsers`
/// (entries without one are the robot itself or people outside the organisation) and the nick
/// written after `@`, paired in order; `Err` is the Chinese refusal.
fn mentioned(message: &RobotMessage, nicks: &[String]) -> Result<Mentioned, String> {
    let ids: Vec<&str> = message
        .at_users()
        .iter()
        .filter_map(|u| u.staff_id.as_deref())
        .filter(|s| !s.is_empty())
        .collect();
    match (ids.as_slice(), nicks) {
        ([id], [nick, ..]) => Ok(Mentioned {
            staff_id: (*id).to_string(),
            nick: nick.clone(),
        }),
        ([], _) => Err(
            "没有识别到被@人员的钉钉账号：请在钉钉中输入 @ 并从列表中选择该人员（对方须为本单位钉钉组织成员）。"
                .into(),
        ),
        _ => Err("一次只能@一位人员（机器人除外），请分开发送。".into()),
    }
}

/// A reply written as plain text: escaped into markdown line by line, since it may carry what
/// other people wrote (a title in 查询, a nick in 名单变更) and must never become a live link.
fn plain(title: &str, text: &str) -> Rendered {
    Rendered {
        title: title.to_string(),
        markdown: crate::messages::escape::md_block(text),
    }
}

/// The Stream handler of a running service: robot messages go to the inbox as before
/// ([`InboxHandler`]); a card callback is processed before its ACK, which carries the update
/// (§2.4, §6.4). Only a stored tap is acknowledged: a failure of the storage leaves the frame
/// unacknowledged, so the gateway delivers it again (§2.7); a tap that fails for good is stored
/// quarantined first ([`InboxProcessor::card_callback`]).
#[derive(Clone)]
pub struct CardStreamHandler {
    inbox: InboxHandler,
    processor: InboxProcessor,
    clock: Arc<dyn Clock>,
}

impl CardStreamHandler {
    pub fn new(
        inbox: InboxHandler,
        processor: InboxProcessor,
        clock: Arc<dyn Clock>,
    ) -> CardStreamHandler {
        CardStreamHandler {
            inbox,
            processor,
            clock,
        }
    }
}

impl FrameHandler for CardStreamHandler {
    fn robot_message<'a>(&'a self, message_id: &'a str, data: &'a str) -> HandlerFuture<'a, ()> {
        self.inbox.robot_message(message_id, data)
    }

    fn event<'a>(&'a self, message_id: &'a str, event: &'a EventFrame) -> HandlerFuture<'a, ()> {
        self.inbox.event(message_id, event)
    }

    fn card_callback<'a>(
        &'a self,
        message_id: &'a str,
        data: &'a str,
    ) -> HandlerFuture<'a, Option<serde_json::Value>> {
        Box::pin(async move {
            let reply = self
                .processor
                .card_callback(data, self.clock.now())
                .await
                .map_err(|e| {
                    tracing::error!(message_id, error = %e, "card callback not stored; left unacknowledged");
                    HandlerError::Store(e)
                })?;
            Ok(reply.response())
        })
    }
}
