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
//! block (§5.3), so [`RateLimits`] never starts a 21st send inside the window: a step claims
//! custom-robot rows apart from the others and no more than the window lets go (none while it is
//! full or DingTalk's "too fast" wait runs), so a backlog for the group is never claimed only to
//! be held, and never crowds the other channels out of a step. Should a claimed row still find
//! no slot, it is put back, due when one frees, with no attempt counted. The window is kept in
//! memory; after a restart it starts empty.

use std::collections::VecDeque;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::dingtalk::api::{Channel, DingtalkClient, SendOk};
use crate::dingtalk::errors::{ErrorCode, SendError};
use crate::dingtalk::payload::{self, BatchSend, MAX_BATCH_USERS};
use crate::store::{Channels, NewOutbound, OutboxRow, Store, StoreError};

/// How long a claimed row is ours; longer than any send (15 s request timeout, one token
/// refresh and one retry).
pub const LEASE: SignedDuration = SignedDuration::from_secs(60);
/// Backoff of the first retry; doubles per attempt.
pub const BACKOFF_BASE: SignedDuration = SignedDuration::from_secs(2);
/// Longest backoff between two attempts.
pub const BACKOFF_CAP: SignedDuration = SignedDuration::from_mins(10);
/// Attempts after which a still-failing row is dead-lettered.
pub const MAX_ATTEMPTS: i64 = 12;
/// Rows claimed (and sent concurrently) per step.
pub const CLAIM_BATCH: usize = 32;
/// Custom group robot: at most this many sends per [`ROBOT_WINDOW`] (§5.3).
pub const ROBOT_PER_WINDOW: usize = 20;
/// The custom robot's rolling window: one minute plus 1 s for the gap between our clock
/// reading and DingTalk receiving the request.
pub const ROBOT_WINDOW: SignedDuration = SignedDuration::from_secs(61);
/// Delay before flow-controlled users are tried again.
pub const FLOW_CONTROL_DELAY: SignedDuration = SignedDuration::from_secs(60);
/// Longest idle sleep of [`run`]: the store does not signal new rows, so the loop also looks
/// this often (one indexed query).
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
#[derive(Debug, Default)]
pub struct RateLimits {
    /// Start instants of custom-robot sends still inside the window, oldest first.
    robot_sends: VecDeque<Timestamp>,
    /// The custom robot answered "too fast": no sends before this.
    robot_blocked_until: Option<Timestamp>,
}

impl RateLimits {
    pub fn new() -> RateLimits {
        RateLimits::default()
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
    pub claimed: usize,
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

/// Claims due rows, sends them concurrently, records every outcome; returns what it did. The
/// single step the tests drive (with a manual clock) and [`run`] repeats. `admins` are the
/// staff ids told about dead letters.
pub async fn deliver_due(
    store: &Store,
    sender: &dyn Sender,
    clock: &dyn Clock,
    limits: &mut RateLimits,
    admins: &[String],
) -> Result<DeliveryReport, StoreError> {
    let now = clock.now();
    let lease_until = now.saturating_add(LEASE).unwrap_or(now);
    // The custom robot's rows are claimed apart, no more than the window lets go now, so a
    // backlog for the group is never claimed only to be held.
    let robot_slots = limits.robot_slots(now);
    let rows = store
        .write(move |tx| {
            let robot = Channel::GroupWebhook.as_str();
            let mut rows =
                tx.claim_due_outbox_in(now, lease_until, CLAIM_BATCH, Channels::Except(robot))?;
            if robot_slots > 0 {
                rows.extend(tx.claim_due_outbox_in(
                    now,
                    lease_until,
                    robot_slots,
                    Channels::Only(robot),
                )?);
            }
            Ok(rows)
        })
        .await?;
    let mut report = DeliveryReport {
        claimed: rows.len(),
        ..DeliveryReport::default()
    };
    let mut sending = Vec::with_capacity(rows.len());
    let mut deferred = Vec::new();
    for row in &rows {
        if row.channel == Channel::GroupWebhook.as_str() && !limits.take_robot_slot(now) {
            let at = limits.robot_free_at(now).unwrap_or(now);
            deferred.push(Plan::Defer { id: row.id, at });
            report.held += 1;
            continue;
        }
        sending.push(row);
    }
    // The sends borrow the claimed rows, so they run concurrently on this task, not spawned.
    let results = join_all(sending.iter().map(|row| sender.send(row))).await;

    let done = clock.now();
    let mut planner = Planner {
        sender,
        admins,
        now: done,
        plans: Vec::new(),
    };
    for (row, result) in sending.into_iter().zip(results) {
        planner.outcome(row, result, limits);
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
            // Only the planner's: the custom-robot holds (`deferred`) were counted as held.
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
    store.write(move |tx| apply(tx, plans, done)).await?;
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
        if let Err(e) = &result {
            crate::metrics::global().dingtalk_error(e);
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
                if row.channel == Channel::GroupWebhook.as_str() {
                    limits.block_robot(now.saturating_add(wait).unwrap_or(now));
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

/// When a step next has something to send: the earliest claimable row, except that custom-robot
/// rows wait for the window to free (`limits` at `now`). None when nothing is pending.
pub async fn next_step_at(
    store: &Store,
    limits: &mut RateLimits,
    now: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    let robot_free = limits.robot_free_at(now);
    let except = robot_free.map(|_| Channel::GroupWebhook.as_str());
    let next = store
        .read(move |tx| tx.next_outbox_due_except(except))
        .await?;
    // A free slot only matters when robot rows wait; waking for nothing costs one query.
    Ok(match (next, robot_free) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Who is told about dead letters, asked afresh before every step: the admins of the roster in
/// force, so an admin bound in DingTalk (绑定) after start-up is told at their bound id.
pub type Admins = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// Repeats [`deliver_due`] until `shutdown` turns true: immediately while full batches keep
/// coming, otherwise sleeping until the next row is due (at most [`IDLE_POLL`]) or `wake` is
/// notified (the engine notifies after enqueueing). A store error is logged and retried after
/// [`IDLE_POLL`]; a send in progress at shutdown finishes first.
pub async fn run(
    store: Store,
    sender: Arc<dyn Sender>,
    clock: Arc<dyn Clock>,
    admins: Admins,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut limits = RateLimits::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let pause = match deliver_due(
            &store,
            sender.as_ref(),
            clock.as_ref(),
            &mut limits,
            &admins(),
        )
        .await
        {
            Ok(report) if report.claimed == CLAIM_BATCH => Duration::ZERO,
            Ok(_) => {
                let now = clock.now();
                match next_step_at(&store, &mut limits, now).await {
                    Ok(wake) => wake.map_or(IDLE_POLL, |due| {
                        let ms = due.duration_since(now).as_millis().max(0);
                        Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(IDLE_POLL)
                    }),
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
            () = wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_780_000_000_000 + ms).expect("in range")
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
