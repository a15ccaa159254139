//! The outbox worker: delivers what the store's `outbox` table holds, at least once, without
//! ever losing a message or breaking DingTalk's limits (docs/architecture.md → "Outbound is at-least-once
//! and idempotent"). [`deliver_due`] is the one step — claim due rows under a lease, send them
//! concurrently, record each outcome — and [`run`] repeats it until shutdown.
//!
//! Outcomes: sent; retried with exponential backoff and full jitter (base 2 s, cap 10 min) or
//! after the wait DingTalk asked for; dead-lettered with the reason after a permanent error or
//! [`MAX_ATTEMPTS`], with a notice queued for every admin (the notice is itself an outbox row).
//! batchSend answers are split: flow-controlled users are re-queued as a derived row
//! `<key>#fc<N>`, invalid users become a dead derived row `<key>#inv<N>`, the original is sent.
//!
//! The custom group robot allows 20 messages a minute and punishes the 21st with a 10-minute
//! block (§5.3), so [`RateLimits`] never starts a 21st send inside the window. Every other
//! DingTalk API (batchSend, group send, card create and update, session replies) has a budget of
//! sends per second (`[outbox] sends_per_second`, default [`DEFAULT_SENDS_PER_SECOND`], half
//! the per-app QPS limit of §7), kept the same way over a rolling second — each call counted
//! from its answer, since DingTalk counts it on arrival, somewhere before that; a throttling answer
//! closes that API for the wait DingTalk named. A step therefore claims for each API no more
//! calls than its budget lets start now (none while it is full or waiting out a throttle), so a
//! backlog is never claimed only to be held and never crowds the other APIs out of a step.
//! Should a claimed row still find no slot, it is put back, due when one frees, with no attempt
//! counted. The windows are kept in memory; after a restart they start empty.
//!
//! batchSend takes up to 20 recipients per call (§4.1), and it is the only API that takes
//! several: due rows that carry the same message (robot code, message kind and text) to
//! different people go out in one call, each row recorded on its own.
//!
//! [`run`] steps again at once while rows are due and a budget has room (a full batch or a
//! partial one), and otherwise sleeps until the next row or slot is due, or until a committed
//! transaction queues a row ([`Store::outbox_changed`]): the inbox processor, the scheduler and
//! the outbox's own notices all wake it. [`IDLE_POLL`] is only the safety net (e.g. for
//! `tiaochu outbox retry`, which runs in another process).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::dingtalk::api::{Channel, DingtalkClient, SendOk};
use crate::dingtalk::errors::{ErrorCode, SendError};
use crate::dingtalk::payload::{self, BatchSend, MAX_BATCH_USERS};
use crate::store::{NewOutbound, OutboxRow, Store, StoreError};

/// How long a claimed row is ours; longer than any send (15 s request timeout, one token
/// refresh and one retry).
pub const LEASE: SignedDuration = SignedDuration::from_secs(60);
/// Backoff of the first retry; doubles per attempt.
pub const BACKOFF_BASE: SignedDuration = SignedDuration::from_secs(2);
/// Longest backoff between two attempts.
pub const BACKOFF_CAP: SignedDuration = SignedDuration::from_mins(10);
/// Attempts after which a still-failing row is dead-lettered.
pub const MAX_ATTEMPTS: i64 = 12;
/// Calls started (concurrently) per step, all APIs together; merged batchSend rows ride along.
pub const CLAIM_BATCH: usize = 32;
/// Due rows of each API a step looks at when choosing its calls: enough to find the rows
/// that share a message with the ones it sends.
pub const CANDIDATES_PER_CHANNEL: usize = 64;
/// Sends per second per DingTalk API when `[outbox] sends_per_second` is 0 or absent: half the
/// per-app QPS limit DingTalk documents (40/s, docs/dingtalk-protocol.md §7), leaving room for
/// token fetches, retries of other workers and a second process such as the CLI.
pub const DEFAULT_SENDS_PER_SECOND: u32 = 20;
/// The rolling window of the per-API budget. One extra millisecond would not help here: the
/// budget is already half of DingTalk's limit.
pub const API_WINDOW: SignedDuration = SignedDuration::from_secs(1);
/// The shortest pause of [`run`] when rows are due yet a step could send none of them, so a
/// row no step can take never turns the loop into a spin.
const STALL_PAUSE: Duration = Duration::from_millis(50);
/// Custom group robot: at most this many sends per [`ROBOT_WINDOW`] (§5.3).
pub const ROBOT_PER_WINDOW: usize = 20;
/// The custom robot's rolling window: one minute plus 1 s for the gap between our clock
/// reading and DingTalk receiving the request.
pub const ROBOT_WINDOW: SignedDuration = SignedDuration::from_secs(61);
/// Delay before flow-controlled users are tried again.
pub const FLOW_CONTROL_DELAY: SignedDuration = SignedDuration::from_secs(60);
/// Longest idle sleep of [`run`]: commits that queue rows wake it, so this is only the safety
/// net for rows queued by another process (one indexed query).
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// Keys of admin notices start with this; a dead notice does not notify again (no loops).
pub const ADMIN_NOTICE_PREFIX: &str = "admin-notice:";

/// What one send resolves to.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<SendOk, SendError>> + Send + 'a>>;

/// A new outbox row for an admin notice, in the sender's own transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub channel: String,
    pub target: String,
    pub payload: Vec<u8>,
}

/// Delivers rows. Implemented by [`DingtalkClient`] and [`SandboxSender`].
pub trait Sender: Send + Sync {
    /// Sends `row.payload` as `row.channel` says; never touches the store.
    fn send<'a>(&'a self, row: &'a OutboxRow) -> SendFuture<'a>;

    /// The rows that bring `markdown` to `admins` (empty when there is nobody to tell).
    fn admin_notice(&self, admins: &[String], title: &str, markdown: &str) -> Vec<Notice>;
}

impl Sender for DingtalkClient {
    fn send<'a>(&'a self, row: &'a OutboxRow) -> SendFuture<'a> {
        Box::pin(DingtalkClient::send(
            self,
            &row.channel,
            &row.target,
            &row.payload,
        ))
    }

    /// Robot 1:1 markdown, at most 20 admins a row.
    fn admin_notice(&self, admins: &[String], title: &str, markdown: &str) -> Vec<Notice> {
        admins
            .chunks(MAX_BATCH_USERS)
            .filter_map(|chunk| {
                let payload =
                    payload::batch_send_markdown(self.robot_code(), chunk, title, markdown).ok()?;
                Some(Notice {
                    channel: Channel::RobotBatch.as_str().to_string(),
                    target: chunk.join(","),
                    payload,
                })
            })
            .collect()
    }
}

/// Sandbox mode: nothing goes to DingTalk; every row is "sent" and the sandbox page shows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxSender;

impl Sender for SandboxSender {
    fn send<'a>(&'a self, _row: &'a OutboxRow) -> SendFuture<'a> {
        Box::pin(async {
            Ok(SendOk {
                response: "沙盒模式：未发往钉钉".to_string(),
                ..SendOk::default()
            })
        })
    }

    /// One `sandbox` row `{"to", "title", "text"}`.
    fn admin_notice(&self, admins: &[String], title: &str, markdown: &str) -> Vec<Notice> {
        if admins.is_empty() {
            return Vec::new();
        }
        vec![Notice {
            channel: Channel::Sandbox.as_str().to_string(),
            target: admins.join(","),
            payload: serde_json::json!({ "to": admins, "title": title, "text": markdown })
                .to_string()
                .into_bytes(),
        }]
    }
}

/// Send limits that span steps. Keep one per worker for its whole life.
#[derive(Debug)]
pub struct RateLimits {
    /// Start instants of custom-robot sends still inside the window, oldest first.
    robot_sends: VecDeque<Timestamp>,
    /// The custom robot answered "too fast": no sends before this.
    robot_blocked_until: Option<Timestamp>,
    /// Calls per [`API_WINDOW`] each budgeted API may start.
    budget: usize,
    /// Per budgeted API (by channel name): its sends in the window and its throttle.
    apis: HashMap<&'static str, ApiWindow>,
}

/// One API's rolling second.
#[derive(Debug, Default)]
struct ApiWindow {
    /// Start instants of calls still inside [`API_WINDOW`], oldest first.
    sends: VecDeque<Timestamp>,
    /// DingTalk answered "too fast" on this API: no calls before this.
    blocked_until: Option<Timestamp>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::with_budget(DEFAULT_SENDS_PER_SECOND)
    }
}

/// The channels that call a DingTalk open API and share its per-API budget. The custom robot
/// has its own window; the sandbox calls nothing.
fn budgeted(channel: &str) -> Option<&'static str> {
    match Channel::parse(channel)? {
        c @ (Channel::RobotBatch
        | Channel::RobotGroup
        | Channel::SessionReply
        | Channel::CardCreate
        | Channel::CardUpdate) => Some(c.as_str()),
        Channel::GroupWebhook | Channel::Sandbox => None,
    }
}

impl RateLimits {
    /// The default budget ([`DEFAULT_SENDS_PER_SECOND`] per API).
    pub fn new() -> RateLimits {
        RateLimits::default()
    }

    /// `sends_per_second` calls per API and second (`[outbox] sends_per_second`); 0 means the
    /// default. A very large value lifts the budget (benchmarks against a fake DingTalk).
    pub fn with_budget(sends_per_second: u32) -> RateLimits {
        let budget = match sends_per_second {
            0 => DEFAULT_SENDS_PER_SECOND,
            n => n,
        };
        RateLimits {
            robot_sends: VecDeque::new(),
            robot_blocked_until: None,
            budget: usize::try_from(budget).unwrap_or(usize::MAX),
            apis: HashMap::new(),
        }
    }

    /// Calls per second each budgeted API may start.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// How many calls on `channel` may start at `now`: its API's budget left in the window,
    /// the custom robot's slots, or (sandbox, unknown channels) [`CLAIM_BATCH`].
    pub fn slots(&mut self, channel: &str, now: Timestamp) -> usize {
        if channel == Channel::GroupWebhook.as_str() {
            return self.robot_slots(now);
        }
        let Some(api) = budgeted(channel) else {
            return CLAIM_BATCH;
        };
        let budget = self.budget;
        let window = self.api(api, now);
        if window.blocked_until.is_some() {
            return 0;
        }
        budget.saturating_sub(window.sends.len())
    }

    /// When the next call on `channel` may start, if not at `now` (see
    /// [`RateLimits::robot_free_at`]). None: now.
    pub fn free_at(&mut self, channel: &str, now: Timestamp) -> Option<Timestamp> {
        if channel == Channel::GroupWebhook.as_str() {
            return self.robot_free_at(now);
        }
        let api = budgeted(channel)?;
        let budget = self.budget;
        let window = self.api(api, now);
        let full = (window.sends.len() >= budget)
            .then(|| {
                // The send that must leave the window before one more may start.
                let oldest = window.sends.len() - budget;
                window
                    .sends
                    .get(oldest)
                    .map(|t| t.saturating_add(API_WINDOW))
            })
            .flatten()
            .and_then(Result::ok);
        full.max(window.blocked_until)
    }

    /// Takes a slot for one call on `channel` at `now`, if there is one.
    fn take_slot(&mut self, channel: &str, now: Timestamp) -> bool {
        if channel == Channel::GroupWebhook.as_str() {
            return self.take_robot_slot(now);
        }
        if self.slots(channel, now) == 0 {
            return false;
        }
        if let Some(api) = budgeted(channel) {
            self.api(api, now).sends.push_back(now);
        }
        true
    }

    /// The calls started at `started` were all answered by `answered`: from then on each counts
    /// as made at `answered`. DingTalk counts a call when it receives it, somewhere between the
    /// two; a call that starts in its slot only a second after the answer therefore reaches
    /// DingTalk a second after the one before, however long the way there took. Counted from
    /// the start alone, a burst that reached DingTalk late could meet the next second's burst
    /// inside one of DingTalk's seconds (the load bench saw 55 against a budget of 50).
    fn answered(&mut self, started: Timestamp, answered: Timestamp) {
        for window in self.apis.values_mut() {
            // This step's calls are the newest, at the back; earlier steps' were re-stamped
            // with their own answers, no later than this start, so the order is kept.
            for at in window.sends.iter_mut().rev() {
                if *at != started {
                    break;
                }
                *at = answered;
            }
        }
    }

    /// DingTalk answered "too fast" on `channel`: none of its calls before `until`.
    fn block(&mut self, channel: &str, until: Timestamp) {
        if channel == Channel::GroupWebhook.as_str() {
            self.block_robot(until);
        } else if let Some(api) = budgeted(channel) {
            let window = self.apis.entry(api).or_default();
            if window.blocked_until.is_none_or(|t| t < until) {
                window.blocked_until = Some(until);
            }
        }
    }

    /// `api`'s window at `now`, with the calls that left it and an ended throttle forgotten.
    fn api(&mut self, api: &'static str, now: Timestamp) -> &mut ApiWindow {
        let window = self.apis.entry(api).or_default();
        while window
            .sends
            .front()
            .is_some_and(|t| now.duration_since(*t) >= API_WINDOW)
        {
            window.sends.pop_front();
        }
        if window.blocked_until.is_some_and(|until| now >= until) {
            window.blocked_until = None;
        }
        window
    }

    /// Takes a custom-robot slot at `now` if fewer than [`ROBOT_PER_WINDOW`] sends started in
    /// the last [`ROBOT_WINDOW`] and no throttle is being waited out.
    fn take_robot_slot(&mut self, now: Timestamp) -> bool {
        if self.robot_slots(now) == 0 {
            return false;
        }
        self.robot_sends.push_back(now);
        true
    }

    /// How many custom-robot sends may start at `now`.
    pub fn robot_slots(&mut self, now: Timestamp) -> usize {
        if self.robot_free_at(now).is_some() {
            return 0;
        }
        ROBOT_PER_WINDOW.saturating_sub(self.robot_sends.len())
    }

    /// When the next custom-robot send may start, if not at `now`: the window's oldest send
    /// leaving it, or the end of DingTalk's "too fast" wait, whichever is later. None: now.
    pub fn robot_free_at(&mut self, now: Timestamp) -> Option<Timestamp> {
        // Sends that left the window no longer count.
        while self
            .robot_sends
            .front()
            .is_some_and(|t| now.duration_since(*t) >= ROBOT_WINDOW)
        {
            self.robot_sends.pop_front();
        }
        let window = (self.robot_sends.len() >= ROBOT_PER_WINDOW)
            .then(|| {
                self.robot_sends
                    .front()
                    .map(|t| t.saturating_add(ROBOT_WINDOW))
            })
            .flatten()
            .and_then(Result::ok);
        let blocked = self.robot_blocked_until.filter(|until| now < *until);
        window.max(blocked)
    }

    fn block_robot(&mut self, until: Timestamp) {
        if self.robot_blocked_until.is_none_or(|t| t < until) {
            self.robot_blocked_until = Some(until);
        }
    }
}

/// What one [`deliver_due`] step did; counts of rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Rows claimed.
    pub claimed: usize,
    /// Calls made to DingTalk (a batchSend call may carry several rows).
    pub calls: usize,
    /// Rows that went out in a call started for another row with the same message.
    pub merged: usize,
    pub sent: usize,
    /// Failed transiently; due again later.
    pub retried: usize,
    /// Throttled by DingTalk; due again after its wait.
    pub throttled: usize,
    /// Dead-lettered (including derived rows of invalid users).
    pub dead: usize,
    /// Claimed, then put back (due when the custom-robot window frees) without an attempt.
    pub held: usize,
    /// Put back without an attempt because the last token fetch failed and its wait runs.
    pub token_waits: usize,
    /// Derived rows queued for flow-controlled users.
    pub requeued: usize,
    /// Admin notice rows queued.
    pub notices: usize,
}

/// What to write for one sent row; planned outside the write transaction (which cannot reach
/// the sender) and applied inside it.
enum Plan {
    Sent {
        id: i64,
        response: String,
    },
    Retry {
        id: i64,
        at: Timestamp,
        error: String,
        throttled: bool,
    },
    Dead {
        id: i64,
        reason: String,
    },
    /// Not sent (the custom-robot window filled): due again at `at`, no attempt counted.
    Defer {
        id: i64,
        at: Timestamp,
    },
    /// A derived row: pending (flow control) or dead at once (invalid users).
    Derived {
        key: String,
        target: String,
        payload: Vec<u8>,
        not_before: Timestamp,
        dead_reason: Option<String>,
    },
    Notice {
        key: String,
        notice: Notice,
    },
}

/// One call to DingTalk: a row, or several batchSend rows carrying the same message to
/// different people (at most [`MAX_BATCH_USERS`] in all).
struct Call {
    rows: Vec<OutboxRow>,
    /// The merged batchSend body, for a row that may take company.
    batch: Option<BatchSend>,
}

impl Call {
    fn new(row: OutboxRow, batch: Option<BatchSend>) -> Call {
        Call {
            rows: vec![row],
            batch,
        }
    }

    fn channel(&self) -> &str {
        self.rows.first().map_or("", |r| r.channel.as_str())
    }

    /// Adds `row` (whose body is `other`) if it carries the same message to people not yet in
    /// this call and the call stays within batchSend's recipients.
    fn merge(&mut self, row: &OutboxRow, other: &BatchSend) -> bool {
        let Some(batch) = &mut self.batch else {
            return false;
        };
        let same = batch.robot_code == other.robot_code
            && batch.msg_key == other.msg_key
            && batch.msg_param == other.msg_param;
        if !same
            || batch.user_ids.len() + other.user_ids.len() > MAX_BATCH_USERS
            || other.user_ids.iter().any(|u| batch.user_ids.contains(u))
        {
            return false;
        }
        batch.user_ids.extend(other.user_ids.iter().cloned());
        self.rows.push(row.clone());
        true
    }

    /// What is sent: the row itself, or for merged rows the first with the merged body.
    fn request(&self) -> Option<OutboxRow> {
        let first = self.rows.first()?;
        match &self.batch {
            Some(batch) if self.rows.len() > 1 => Some(OutboxRow {
                target: batch.user_ids.join(","),
                payload: batch.to_vec(),
                ..first.clone()
            }),
            _ => Some(first.clone()),
        }
    }
}

/// Chooses a step's calls from the fair-ordered `candidates`: each row joins an earlier call
/// with its message when it can (batchSend only), else starts a call if its channel may start
/// one more (`caps`, by channel name; [`CLAIM_BATCH`] for any other) and the step has room.
fn plan_calls(candidates: Vec<OutboxRow>, caps: &HashMap<String, usize>) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut started: HashMap<String, usize> = HashMap::new();
    for row in candidates {
        let batch = (row.channel == Channel::RobotBatch.as_str())
            .then(|| BatchSend::from_slice(&row.payload).ok())
            .flatten();
        if let Some(body) = &batch
            && calls.iter_mut().any(|call| call.merge(&row, body))
        {
            continue;
        }
        let cap = caps.get(&row.channel).copied().unwrap_or(CLAIM_BATCH);
        let count = started.entry(row.channel.clone()).or_insert(0);
        if calls.len() >= CLAIM_BATCH || *count >= cap {
            continue;
        }
        *count += 1;
        calls.push(Call::new(row, batch));
    }
    calls
}

/// `ok` as seen by one row of a merged call: the flow-controlled and invalid users of its own.
fn answer_for(row: &OutboxRow, ok: &SendOk) -> SendOk {
    let users = BatchSend::from_slice(&row.payload)
        .map(|b| b.user_ids)
        .unwrap_or_default();
    let mine = |list: &[String]| {
        list.iter()
            .filter(|u| users.contains(u))
            .cloned()
            .collect::<Vec<_>>()
    };
    SendOk {
        response: ok.response.clone(),
        flow_controlled: mine(&ok.flow_controlled),
        invalid: mine(&ok.invalid),
    }
}

/// Claims due rows as calls each API's limit lets start, sends them concurrently, records every
/// outcome; returns what it did. The single step the tests drive (with a manual clock) and
/// [`run`] repeats. `admins` are the staff ids told about dead letters.
pub async fn deliver_due(
    store: &Store,
    sender: &dyn Sender,
    clock: &dyn Clock,
    limits: &mut RateLimits,
    admins: &[String],
) -> Result<DeliveryReport, StoreError> {
    let now = clock.now();
    let lease_until = now.saturating_add(LEASE).unwrap_or(now);
    // What each channel may start now; a channel with no room is not even looked at, so a
    // backlog for it is never claimed only to be held.
    let caps: HashMap<String, usize> = Channel::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), limits.slots(c.as_str(), now)))
        .collect();
    // A synced write, and it must stay one: the decisions that queued these rows committed
    // without an fsync of their own (background writes), and this commit's fsync puts them on
    // the disk before anything built on them leaves the machine.
    let calls = store
        .write(move |tx| -> Result<_, StoreError> {
            let skip: Vec<&str> = caps
                .iter()
                .filter(|(_, cap)| **cap == 0)
                .map(|(c, _)| c.as_str())
                .collect();
            let candidates = tx.due_outbox_candidates(now, CANDIDATES_PER_CHANNEL, &skip)?;
            let calls = plan_calls(candidates, &caps);
            let ids: Vec<i64> = calls
                .iter()
                .flat_map(|c| c.rows.iter().map(|r| r.id))
                .collect();
            tx.lease_outbox(&ids, lease_until)?;
            Ok(calls)
        })
        .await?;
    let mut report = DeliveryReport {
        claimed: calls.iter().map(|c| c.rows.len()).sum(),
        ..DeliveryReport::default()
    };
    let mut sending = Vec::with_capacity(calls.len());
    let mut deferred = Vec::new();
    for call in calls {
        if !limits.take_slot(call.channel(), now) {
            let at = limits.free_at(call.channel(), now).unwrap_or(now);
            for row in &call.rows {
                deferred.push(Plan::Defer { id: row.id, at });
                report.held += 1;
            }
            continue;
        }
        if let Some(request) = call.request() {
            report.calls += 1;
            report.merged += call.rows.len() - 1;
            sending.push((call, request));
        }
    }
    // The sends borrow the claimed rows, so they run concurrently on this task, not spawned.
    let results = join_all(sending.iter().map(|(_, request)| sender.send(request))).await;

    let done = clock.now();
    limits.answered(now, done);
    let mut planner = Planner {
        sender,
        admins,
        now: done,
        plans: Vec::new(),
    };
    for ((call, _), result) in sending.into_iter().zip(results) {
        // One call, one DingTalk error, however many rows it carried. A token wait reached
        // nothing.
        if let Err(e) = &result
            && !matches!(
                e,
                SendError::Throttled {
                    code: ErrorCode::TokenWait,
                    ..
                }
            )
        {
            crate::metrics::global().dingtalk_error(e.kind_label(), e.code().label());
        }
        let merged = call.rows.len() > 1;
        for row in &call.rows {
            let result = match &result {
                Ok(ok) if merged => Ok(answer_for(row, ok)),
                other => other.clone(),
            };
            planner.outcome(row, result, limits);
        }
    }
    let mut plans = planner.plans;
    for plan in &plans {
        match plan {
            Plan::Sent { .. } => report.sent += 1,
            Plan::Retry {
                throttled: true, ..
            } => report.throttled += 1,
            Plan::Retry { .. } => report.retried += 1,
            Plan::Dead { .. } => report.dead += 1,
            // Only the planner's: the holds for a full window (`deferred`) were counted as held.
            Plan::Defer { .. } => report.token_waits += 1,
            Plan::Derived {
                dead_reason: Some(_),
                ..
            } => report.dead += 1,
            Plan::Derived { .. } => report.requeued += 1,
            Plan::Notice { .. } => report.notices += 1,
        }
    }
    plans.extend(deferred);
    // Not synced on its own: lost in a power cut, the rows' leases are released at start-up and
    // they are sent again, which a crash between the send and this write does anyway. The next
    // claim syncs it before anything else is sent.
    store
        .write_deferred(move |tx| apply(tx, plans, done))
        .await?;
    Ok(report)
}

fn apply(tx: &crate::store::Tx<'_>, plans: Vec<Plan>, now: Timestamp) -> Result<(), StoreError> {
    for plan in plans {
        match plan {
            Plan::Sent { id, response } => {
                tx.mark_sent(id, now, &response)?;
            }
            Plan::Retry { id, at, error, .. } => {
                tx.mark_retry(id, at, &error)?;
            }
            Plan::Dead { id, reason } => {
                tx.mark_dead(id, &reason, now)?;
            }
            Plan::Defer { id, at } => {
                tx.defer_outbox(id, at)?;
            }
            Plan::Derived {
                key,
                target,
                payload,
                not_before,
                dead_reason,
            } => {
                let id = tx.enqueue_outbox(&NewOutbound {
                    idem_key: &key,
                    channel: Channel::RobotBatch.as_str(),
                    target: &target,
                    payload: &payload,
                    not_before,
                })?;
                if let Some(reason) = dead_reason {
                    tx.mark_dead(id, &reason, now)?;
                }
            }
            Plan::Notice { key, notice } => {
                tx.enqueue_outbox(&NewOutbound {
                    idem_key: &key,
                    channel: &notice.channel,
                    target: &notice.target,
                    payload: &notice.payload,
                    not_before: now,
                })?;
            }
        }
    }
    Ok(())
}

/// Turns send results into [`Plan`]s; holds what every decision needs.
struct Planner<'a> {
    sender: &'a dyn Sender,
    admins: &'a [String],
    now: Timestamp,
    plans: Vec<Plan>,
}

impl Planner<'_> {
    fn outcome(
        &mut self,
        row: &OutboxRow,
        result: Result<SendOk, SendError>,
        limits: &mut RateLimits,
    ) {
        let now = self.now;
        let attempt = row.attempts + 1;
        let api_wide = result.as_ref().err().is_some_and(SendError::limits_the_api);
        if let Err(SendError::Throttled {
            code: ErrorCode::TokenWait,
            wait,
            ..
        }) = &result
        {
            // Nothing reached DingTalk: back when the token failure's wait ends, no attempt
            // counted, no DingTalk error counted.
            let wait = SignedDuration::try_from(*wait).unwrap_or(BACKOFF_BASE);
            let spread = jitter_within(row.id, row.attempts, now, wait / 10);
            self.plans.push(Plan::Defer {
                id: row.id,
                at: now.saturating_add(wait + spread).unwrap_or(now),
            });
            return;
        }
        let (delay, error, throttled) = match result {
            Ok(ok) => {
                tracing::info!(id = row.id, key = %row.idem_key, channel = %row.channel, "outbox row sent");
                self.partial(row, &ok);
                self.plans.push(Plan::Sent {
                    id: row.id,
                    response: ok.response,
                });
                return;
            }
            Err(SendError::Permanent { reason, .. }) => {
                self.dead(row, reason);
                return;
            }
            Err(SendError::Retryable {
                reason,
                retry_after,
                ..
            }) => {
                let jitter = full_jitter(row.id, row.attempts, now);
                let floor = retry_after
                    .and_then(|d| SignedDuration::try_from(d).ok())
                    .unwrap_or(SignedDuration::ZERO);
                (jitter.max(floor), reason, false)
            }
            Err(SendError::Throttled { reason, wait, .. }) => {
                let wait = SignedDuration::try_from(wait).unwrap_or(BACKOFF_CAP);
                // Spread the rows that were throttled together over a tenth of the wait.
                let spread = jitter_within(row.id, row.attempts, now, wait / 10);
                // A rate limit is the API's, not the row's: its other calls wait too. A card
                // not created yet holds only its own update.
                if api_wide {
                    limits.block(&row.channel, now.saturating_add(wait).unwrap_or(now));
                }
                (wait + spread, reason, true)
            }
        };
        if attempt >= MAX_ATTEMPTS {
            self.dead(
                row,
                format!("已尝试 {attempt} 次仍未成功，最后一次：{error}"),
            );
        } else {
            self.plans.push(Plan::Retry {
                id: row.id,
                at: now.saturating_add(delay).unwrap_or(now),
                error,
                throttled,
            });
        }
    }

    /// batchSend reached some users only: queue the flow-controlled ones again, dead-letter the
    /// invalid ones (their own row, so `tiaochu outbox retry` can resend just them once an
    /// admin fixed the app's visible range) and tell the admins.
    fn partial(&mut self, row: &OutboxRow, ok: &SendOk) {
        if ok.flow_controlled.is_empty() && ok.invalid.is_empty() {
            return;
        }
        let Ok(original) = BatchSend::from_slice(&row.payload) else {
            return;
        };
        let n = row.attempts + 1;
        let subset = |users: &[String]| BatchSend {
            user_ids: users.to_vec(),
            ..original.clone()
        };
        if !ok.flow_controlled.is_empty() {
            self.plans.push(Plan::Derived {
                key: format!("{}#fc{n}", row.idem_key),
                target: ok.flow_controlled.join(","),
                payload: subset(&ok.flow_controlled).to_vec(),
                not_before: self
                    .now
                    .saturating_add(FLOW_CONTROL_DELAY)
                    .unwrap_or(self.now),
                dead_reason: None,
            });
        }
        if !ok.invalid.is_empty() {
            let key = format!("{}#inv{n}", row.idem_key);
            let reason = format!(
                "以下人员不在组织内或不在应用可见范围内，钉钉未送达：{}",
                ok.invalid.join("、")
            );
            let what = format!("消息 #{} 的一部分（{key}）", row.id);
            self.notify_admins(
                &key,
                &what,
                &row.channel,
                &ok.invalid.join(","),
                &reason,
                None,
            );
            self.plans.push(Plan::Derived {
                key,
                target: ok.invalid.join(","),
                payload: subset(&ok.invalid).to_vec(),
                not_before: self.now,
                dead_reason: Some(reason),
            });
        }
    }

    fn dead(&mut self, row: &OutboxRow, reason: String) {
        tracing::warn!(id = row.id, key = %row.idem_key, channel = %row.channel, reason = %crate::messages::notify::mask_phones(&reason), "outbox row dead-lettered");
        self.notify_admins(
            &format!("{}#{}", row.idem_key, row.attempts + 1),
            &format!("#{}", row.id),
            &row.channel,
            &row.target,
            &reason,
            Some(row.id),
        );
        self.plans.push(Plan::Dead { id: row.id, reason });
    }

    /// Queues the notice about a dead letter; `about_key` makes the notice's own key, `what`
    /// names the message, `retry_id` is the row to retry when known.
    fn notify_admins(
        &mut self,
        about_key: &str,
        what: &str,
        channel: &str,
        target: &str,
        reason: &str,
        retry_id: Option<i64>,
    ) {
        // A notice that cannot be delivered does not notify about itself.
        if about_key.starts_with(ADMIN_NOTICE_PREFIX) {
            return;
        }
        if self.admins.is_empty() {
            tracing::warn!(what, "no admin in the roster to tell about a dead letter");
            return;
        }
        let label: &str = match Channel::parse(channel) {
            Some(c) => c.label(),
            None => channel,
        };
        // The sessionWebhook URL works as a credential; it is never shown.
        let shown_target = if channel == Channel::SessionReply.as_str() {
            "会话 webhook"
        } else {
            target
        };
        let retry = match retry_id {
            Some(id) => format!("处理后重新发送：`tiaochu outbox retry {id}`"),
            None => "处理后在 `tiaochu outbox dead` 中找到该消息并重新发送".to_string(),
        };
        let markdown = format!(
            "### 消息发送失败\n\n- 消息：{what}（{label}）\n- 接收方：{shown_target}\n- 原因：{reason}\n\n\
             查看：`tiaochu outbox dead`；{retry}"
        );
        for (i, notice) in self
            .sender
            .admin_notice(self.admins, "消息发送失败", &markdown)
            .into_iter()
            .enumerate()
        {
            self.plans.push(Plan::Notice {
                key: format!("{ADMIN_NOTICE_PREFIX}{about_key}/{i}"),
                notice,
            });
        }
    }
}

/// A pseudo-random number from (row, attempt, now): jitter needs spread, not secrecy, and a
/// hash keeps the crate free of a random-number dependency.
fn hash64(id: i64, attempt: i64, now: Timestamp) -> u64 {
    let mut h = DefaultHasher::new();
    (id, attempt, now.as_millisecond()).hash(&mut h);
    h.finish()
}

/// Uniform in `[0, max]`, in whole milliseconds.
fn jitter_within(id: i64, attempt: i64, now: Timestamp, max: SignedDuration) -> SignedDuration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(0);
    let ms = hash64(id, attempt, now) % (max_ms + 1);
    SignedDuration::from_millis(i64::try_from(ms).unwrap_or(0))
}

/// Full jitter: uniform in `[0, min(cap, base · 2^attempts)]`, `attempts` counting the
/// failures before this one.
fn full_jitter(id: i64, attempts: i64, now: Timestamp) -> SignedDuration {
    let doublings = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
    let ceiling = BACKOFF_BASE
        .checked_mul(1 << doublings.min(20))
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP);
    jitter_within(id, attempts, now, ceiling)
}

/// When a step next has something to send: the earliest instant at which some channel has a
/// claimable row and room in its limit (`limits` at `now`). None when nothing is pending.
pub async fn next_step_at(
    store: &Store,
    limits: &mut RateLimits,
    now: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    let due = store.read(|tx| tx.next_outbox_due_by_channel()).await?;
    Ok(due
        .into_iter()
        .map(|(channel, at)| match limits.free_at(&channel, now) {
            Some(free) => at.max(free),
            None => at,
        })
        .min())
}

/// Who is told about dead letters, asked afresh before every step: the admins of the roster in
/// force, so an admin bound in DingTalk (绑定) after start-up is told at their bound id.
pub type Admins = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// Repeats [`deliver_due`] until `shutdown` turns true: again at once while rows are due and a
/// limit has room, otherwise sleeping until the next row or slot is due (at most
/// [`IDLE_POLL`]) or a committed transaction queues a row. A store error is logged and retried
/// after [`IDLE_POLL`]; a send in progress at shutdown finishes first.
pub async fn run(
    store: Store,
    sender: Arc<dyn Sender>,
    clock: Arc<dyn Clock>,
    admins: Admins,
    mut limits: RateLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut queued = store.outbox_changed();
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Rows queued from here on wake the wait below, even while this step runs.
        queued.borrow_and_update();
        let pause = match deliver_due(
            &store,
            sender.as_ref(),
            clock.as_ref(),
            &mut limits,
            &admins(),
        )
        .await
        {
            Ok(report) => {
                let now = clock.now();
                match next_step_at(&store, &mut limits, now).await {
                    Ok(Some(due)) if due <= now && report.claimed == 0 => STALL_PAUSE,
                    Ok(Some(due)) => {
                        let ms = due.duration_since(now).as_millis().max(0);
                        Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(IDLE_POLL)
                    }
                    Ok(None) => IDLE_POLL,
                    Err(e) => {
                        tracing::error!(error = %e, "outbox: cannot read the next due time");
                        IDLE_POLL
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "outbox step failed");
                IDLE_POLL
            }
        };
        if pause.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = changed(&mut queued) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Resolves on the next change; never, once the sender is gone (so a dropped store cannot turn
/// the loop into a spin).
async fn changed(rx: &mut watch::Receiver<u64>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_780_000_000_000 + ms).expect("in range")
    }

    #[test]
    fn a_call_counts_in_its_window_from_its_answer() {
        let batch = Channel::RobotBatch.as_str();
        let mut limits = RateLimits::with_budget(2);
        assert!(limits.take_slot(batch, at(0)) && limits.take_slot(batch, at(0)));
        assert!(!limits.take_slot(batch, at(0)), "the budget is two");
        // The burst took 300 ms to be answered: it may have reached DingTalk that late.
        limits.answered(at(0), at(300));
        assert_eq!(
            limits.slots(batch, at(1_000)),
            0,
            "a second after the start"
        );
        assert_eq!(limits.free_at(batch, at(1_000)), Some(at(1_300)));
        assert_eq!(
            limits.slots(batch, at(1_300)),
            2,
            "a second after the answer"
        );
    }

    #[test]
    fn robot_window_never_allows_a_21st() {
        let mut limits = RateLimits::new();
        for i in 0..20 {
            assert!(limits.take_robot_slot(at(i * 100)), "send {i}");
        }
        assert!(!limits.take_robot_slot(at(2_000)));
        // The first slot frees one window after it was taken, not before.
        assert!(!limits.take_robot_slot(at(60_999)));
        assert!(limits.take_robot_slot(at(61_000)));
        assert!(!limits.take_robot_slot(at(61_050)));
        limits.block_robot(at(200_000));
        assert!(!limits.take_robot_slot(at(199_999)));
        assert!(limits.take_robot_slot(at(200_000)));
    }

    #[test]
    fn slots_and_the_free_instant_follow_the_window_and_the_block() {
        let mut limits = RateLimits::new();
        assert_eq!(
            (limits.robot_slots(at(0)), limits.robot_free_at(at(0))),
            (20, None)
        );
        for i in 0..18 {
            assert!(limits.take_robot_slot(at(i * 100)));
        }
        assert_eq!(limits.robot_slots(at(2_000)), 2);
        assert!(limits.take_robot_slot(at(2_000)) && limits.take_robot_slot(at(2_100)));
        assert_eq!(limits.robot_slots(at(2_200)), 0);
        // Full: free when the oldest send (at 0) leaves the window.
        assert_eq!(limits.robot_free_at(at(2_200)), Some(at(61_000)));
        assert_eq!(limits.robot_slots(at(61_000)), 1);
        // DingTalk's wait outlasts the window: the later of the two.
        limits.block_robot(at(300_000));
        assert_eq!(limits.robot_free_at(at(61_000)), Some(at(300_000)));
        assert_eq!(limits.robot_slots(at(299_999)), 0);
        assert_eq!(limits.robot_slots(at(300_000)), 20);
    }

    #[test]
    fn full_jitter_stays_under_the_capped_exponential() {
        for attempts in 0..20 {
            let ceiling = (BACKOFF_BASE * (1 << attempts.min(20))).min(BACKOFF_CAP);
            let mut seen_nonzero = false;
            for id in 0..50 {
                let d = full_jitter(id, attempts, at(id * 7));
                assert!(
                    d >= SignedDuration::ZERO && d <= ceiling,
                    "{attempts} {d:?}"
                );
                seen_nonzero |= d > SignedDuration::ZERO;
            }
            assert!(seen_nonzero);
        }
        assert!(full_jitter(1, 100, at(0)) <= BACKOFF_CAP);
    }
}
