//! The outbox: outbound messages written in the same transaction as the decision that caused
//! them, holding the exact bytes to send. Delivery is at-least-once: a worker claims due rows by
//! setting a lease (so two workers never hold the same row at once; an expired lease makes the
//! row claimable again), then marks each sent, to retry later, or dead with the reason.

use std::fmt;

use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::{ReadTx, StoreError, Tx, limit, ms, opt_ts_col, ts_col};

/// A message to send.
#[derive(Debug, Clone, Copy)]
pub struct NewOutbound<'a> {
    /// Stable key of this message (e.g. `case:12:coord:区住建局`); enqueueing the same key twice
    /// keeps the first row only.
    pub idem_key: &'a str,
    /// Which sender delivers it (e.g. `"robot_1to1"`, `"card"`, `"group_webhook"`).
    pub channel: &'a str,
    /// Whom it goes to (staff ids, conversation id, …), as the channel understands it.
    pub target: &'a str,
    /// The exact request body.
    pub payload: &'a [u8],
    /// Not sent before this instant.
    pub not_before: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    Sent,
    /// Permanently failed; kept with the reason until an admin retries it.
    Dead,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Option<OutboxState> {
        match s {
            "pending" => Some(OutboxState::Pending),
            "sent" => Some(OutboxState::Sent),
            "dead" => Some(OutboxState::Dead),
            _ => None,
        }
    }
}

impl fmt::Display for OutboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutboxState::Pending => "待发送",
            OutboxState::Sent => "已发送",
            OutboxState::Dead => "发送失败",
        })
    }
}

/// Which channels a claim takes rows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels<'a> {
    All,
    Only(&'a str),
    Except(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub idem_key: String,
    pub channel: String,
    pub target: String,
    pub payload: Vec<u8>,
    pub state: OutboxState,
    /// Delivery attempts made so far (sent, retried or dead each count one).
    pub attempts: i64,
    /// Not sent before this instant.
    pub next_attempt_at: Timestamp,
    /// Held by a worker until this instant.
    pub lease_until: Option<Timestamp>,
    pub last_error: Option<String>,
    pub sent_at: Option<Timestamp>,
    /// What the receiver answered, as text, for the audit trail.
    pub response: Option<String>,
    pub dead_at: Option<Timestamp>,
}

const OUTBOX_COLUMNS: &str = "id, idem_key, channel, target, payload, state, attempts, \
                              next_attempt_at, lease_until, last_error, sent_at, response, dead_at";

fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    let state: String = r.get(5)?;
    let state = OutboxState::parse(&state).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            5,
            rusqlite::types::Type::Text,
            format!("unknown outbox state {state:?}").into(),
        )
    })?;
    Ok(OutboxRow {
        id: r.get(0)?,
        idem_key: r.get(1)?,
        channel: r.get(2)?,
        target: r.get(3)?,
        payload: r.get(4)?,
        state,
        attempts: r.get(6)?,
        next_attempt_at: ts_col(r, 7)?,
        lease_until: opt_ts_col(r, 8)?,
        last_error: r.get(9)?,
        sent_at: opt_ts_col(r, 10)?,
        response: r.get(11)?,
        dead_at: opt_ts_col(r, 12)?,
    })
}

impl Tx<'_> {
    /// Queues a message; returns its id. Idempotent on `idem_key`: a second enqueue changes
    /// nothing and returns the first row's id, whatever state that row is in.
    pub fn enqueue_outbox(&self, m: &NewOutbound<'_>) -> Result<i64, StoreError> {
        let inserted = self
            .conn()
            .prepare_cached(
                "INSERT INTO outbox (idem_key, channel, target, payload, next_attempt_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (idem_key) DO NOTHING",
            )?
            .execute(params![
                m.idem_key,
                m.channel,
                m.target,
                m.payload,
                ms(m.not_before)
            ])?;
        match inserted {
            1 => {
                self.touch_outbox();
                Ok(self.conn().last_insert_rowid())
            }
            _ => Ok(self
                .conn()
                .prepare_cached("SELECT id FROM outbox WHERE idem_key = ?1")?
                .query_row([m.idem_key], |r| r.get(0))?),
        }
    }

    /// Leases up to `max` pending rows that are due at `now` and not leased by anyone else
    /// (or whose lease has expired) until `lease_until`; returns them in due order.
    pub fn claim_due_outbox(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        max: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.claim_due_outbox_in(now, lease_until, max, Channels::All)
    }

    /// As [`Tx::claim_due_outbox`], for the rows `channels` selects: a channel with a rate limit
    /// of ours is claimed separately, no more rows than it may send.
    pub fn claim_due_outbox_in(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        max: usize,
        channels: Channels<'_>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let (only, except) = match channels {
            Channels::All => (None, None),
            Channels::Only(c) => (Some(c), None),
            Channels::Except(c) => (None, Some(c)),
        };
        // Fair across recipients (security issue 13): each target's due rows are ranked in due
        // order and the claim takes every target's first row before anyone's second, so one
        // person's backlog of thousands never holds another person's single message.
        let sql = format!(
            "UPDATE outbox SET lease_until = ?2
             WHERE id IN (SELECT id FROM (
                            SELECT id, next_attempt_at,
                                   row_number() OVER (PARTITION BY target
                                                      ORDER BY next_attempt_at, id) AS turn
                            FROM outbox
                            WHERE state = 'pending' AND next_attempt_at <= ?1
                              AND (lease_until IS NULL OR lease_until <= ?1)
                              AND (?4 IS NULL OR channel = ?4)
                              AND (?5 IS NULL OR channel <> ?5))
                          ORDER BY turn, next_attempt_at, id LIMIT ?3)
             RETURNING {OUTBOX_COLUMNS}"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![ms(now), ms(lease_until), limit(max), only, except],
            outbox_row,
        )?;
        let rows: Vec<OutboxRow> = rows.collect::<Result<_, _>>()?;
        // RETURNING gives no order guarantee. The rows claimed are each target's earliest, so
        // ranking them again within the claim gives the same turns as the query.
        Ok(fair_order(rows))
    }

    /// Leases the pending rows `ids` until `lease_until` (a claim the caller chose from
    /// [`ReadTx::due_outbox_candidates`] in this same transaction); returns how many.
    pub fn lease_outbox(&self, ids: &[i64], lease_until: Timestamp) -> Result<usize, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "UPDATE outbox SET lease_until = ?2 WHERE id = ?1 AND state = 'pending'",
        )?;
        let mut leased = 0;
        for id in ids {
            leased += stmt.execute(params![id, ms(lease_until)])?;
        }
        Ok(leased)
    }

    /// Clears every lease: at start-up, under the [`super::ServiceLock`], any lease left in the
    /// table belongs to a process that died while sending, and waiting it out would only delay
    /// those messages. Returns how many rows were released.
    pub fn release_outbox_leases(&self) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "UPDATE outbox SET lease_until = NULL
                 WHERE state = 'pending' AND lease_until IS NOT NULL",
            )?
            .execute([])?)
    }

    /// Records a successful delivery. False when the row is not pending (already sent or dead).
    pub fn mark_sent(&self, id: i64, at: Timestamp, response: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE outbox SET state = 'sent', sent_at = ?2, response = ?3,
                                   attempts = attempts + 1, lease_until = NULL
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id, ms(at), response])?;
        Ok(n == 1)
    }

    /// Puts a claimed row back, due at `at`, with no attempt counted: it was not sent (a rate
    /// limit of ours was full). False when not pending.
    pub fn defer_outbox(&self, id: i64, at: Timestamp) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE outbox SET next_attempt_at = ?2, lease_until = NULL
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id, ms(at)])?;
        Ok(n == 1)
    }

    /// Records a failed attempt to be retried at `next_attempt_at`. False when not pending.
    pub fn mark_retry(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2,
                                   last_error = ?3, lease_until = NULL
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id, ms(next_attempt_at), error])?;
        Ok(n == 1)
    }

    /// Records a permanent failure (dead letter) with its reason. False when not pending.
    pub fn mark_dead(&self, id: i64, error: &str, at: Timestamp) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?2,
                                   dead_at = ?3, lease_until = NULL
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id, error, ms(at)])?;
        Ok(n == 1)
    }

    /// Puts a dead letter back in the queue, due at `now`, with its attempt count reset so the
    /// backoff starts over; the last error is kept. False when the row is not dead.
    pub fn retry_outbox(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2,
                                   dead_at = NULL, lease_until = NULL
                 WHERE id = ?1 AND state = 'dead'",
            )?
            .execute(params![id, ms(now)])?;
        if n == 1 {
            self.touch_outbox();
        }
        Ok(n == 1)
    }

    /// [`Tx::retry_outbox`] for every dead letter; returns how many.
    pub fn retry_all_dead_outbox(&self, now: Timestamp) -> Result<usize, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?1,
                                   dead_at = NULL, lease_until = NULL
                 WHERE state = 'dead'",
            )?
            .execute([ms(now)])?;
        if n > 0 {
            self.touch_outbox();
        }
        Ok(n)
    }
}

impl ReadTx<'_> {
    /// (pending, dead) row counts: what is waiting to go out and what needs an admin.
    pub fn outbox_backlog(&self) -> Result<(u64, u64), StoreError> {
        let (pending, dead): (i64, i64) = self
            .conn()
            .prepare_cached(
                "SELECT (SELECT count(*) FROM outbox WHERE state = 'pending'),
                    (SELECT count(*) FROM outbox WHERE state = 'dead')",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        // count(*) is never negative.
        Ok((pending.unsigned_abs(), dead.unsigned_abs()))
    }

    /// When a pending row next becomes claimable (its due time, or its lease expiry if later);
    /// None when nothing is pending. The outbox worker sleeps until then.
    pub fn next_outbox_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.next_outbox_due_except(None)
    }

    /// As [`ReadTx::next_outbox_due`], ignoring the rows of channel `except`.
    pub fn next_outbox_due_except(
        &self,
        except: Option<&str>,
    ) -> Result<Option<Timestamp>, StoreError> {
        let v: Option<i64> = self
            .conn()
            .prepare_cached(
                "SELECT min(max(next_attempt_at, coalesce(lease_until, next_attempt_at)))
                 FROM outbox WHERE state = 'pending' AND (?1 IS NULL OR channel <> ?1)",
            )?
            .query_row([except], |r| r.get(0))?;
        v.map(|v| {
            Timestamp::from_millisecond(v)
                .map_err(|e| StoreError::BadData(format!("发送队列时间无效：{e}")))
        })
        .transpose()
    }

    /// The rows a claim at `now` chooses from: due, pending, not leased, of every channel but
    /// those in `skip` (their limit is full), each channel's first `per_channel` rows in the
    /// fair order of [`Tx::claim_due_outbox_in`] (every target's first row before anyone's
    /// second), all of them in that order. Nothing is leased: the caller picks what it can send
    /// and leases it with [`Tx::lease_outbox`] in the same transaction.
    pub fn due_outbox_candidates(
        &self,
        now: Timestamp,
        per_channel: usize,
        skip: &[&str],
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let skip = serde_json::to_string(skip).unwrap_or_else(|_| "[]".to_string());
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM (
               SELECT *, row_number() OVER (PARTITION BY channel
                                            ORDER BY turn, next_attempt_at, id) AS lane
               FROM (SELECT *, row_number() OVER (PARTITION BY target
                                                  ORDER BY next_attempt_at, id) AS turn
                     FROM outbox
                     WHERE state = 'pending' AND next_attempt_at <= ?1
                       AND (lease_until IS NULL OR lease_until <= ?1)
                       AND channel NOT IN (SELECT value FROM json_each(?3))))
             WHERE lane <= ?2
             ORDER BY turn, next_attempt_at, id"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map(params![ms(now), limit(per_channel), skip], outbox_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// For each channel with pending rows, when its first one becomes claimable (as
    /// [`ReadTx::next_outbox_due`]); the outbox worker holds these against each channel's limit.
    pub fn next_outbox_due_by_channel(&self) -> Result<Vec<(String, Timestamp)>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT channel, min(max(next_attempt_at, coalesce(lease_until, next_attempt_at)))
             FROM outbox WHERE state = 'pending' GROUP BY channel",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, ts_col(r, 1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Rows in `state` (all when None), newest first, at most `max`; for the CLI.
    pub fn list_outbox(
        &self,
        state: Option<OutboxState>,
        max: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox
             WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC LIMIT ?2"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![state.map(OutboxState::as_str), limit(max)],
            outbox_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn outbox(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?1");
        Ok(self
            .conn()
            .prepare_cached(&sql)?
            .query_row([id], outbox_row)
            .optional()?)
    }
}

/// `rows` in turns: every target's first row (in due order), then every target's second, …
fn fair_order(mut rows: Vec<OutboxRow>) -> Vec<OutboxRow> {
    rows.sort_by_key(|r| (r.next_attempt_at, r.id));
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut turned: Vec<(usize, OutboxRow)> = rows
        .into_iter()
        .map(|r| {
            let turn = seen.entry(r.target.clone()).or_insert(0);
            *turn += 1;
            (*turn, r)
        })
        .collect();
    // Stable: within a turn, due order stays.
    turned.sort_by_key(|(turn, _)| *turn);
    turned.into_iter().map(|(_, r)| r).collect()
}
