//! The backlog snapshot: how much work waits in the inbox, the outbox and the timers, read in one
//! statement so `GET /metrics` reports numbers that belong together. Kept here because every
//! line of SQL is the store's (docs/architecture.md); the exposition only formats what this returns.

use std::time::Duration;

use jiff::Timestamp;

use super::{ReadTx, StoreError, ms};

/// What waits, at one instant. Counts never go negative; an age is zero when nothing waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Inbound messages stored but not yet processed (`finished_at IS NULL`), quarantined ones
    /// left out.
    pub inbox_pending: u64,
    /// How long the oldest unprocessed inbound message has waited (zero when none, or when its
    /// `received_at` lies after `now`).
    pub inbox_oldest_age: Duration,
    /// Outbound rows in state `pending` (due or not).
    pub outbox_pending: u64,
    /// Outbound rows in state `dead`, waiting for an admin.
    pub outbox_dead: u64,
    /// Pending timers with `due_at <= now`.
    pub timers_due: u64,
    /// Pending timers with `due_at <= now - overdue_after`.
    pub timers_overdue: u64,
    /// Inbound messages and timers in quarantine, waiting for an operator.
    pub quarantined: u64,
    /// The last write failed in the storage ([`super::Store::write_failure`]): the figures are
    /// the last committed ones and nothing new can be stored.
    pub writes_failing: bool,
}

impl ReadTx<'_> {
    /// The backlog at `now`; a pending timer counts as overdue once it is `overdue_after` past
    /// due. Each count is served by a partial index (`inbox_pending`, `outbox_pending_due`,
    /// `outbox_dead`, `timers_pending_due`, `inbox_quarantined`, `timers_quarantined`), so the
    /// read stays cheap however many finished rows accumulate. Quarantined rows count only as
    /// quarantined: they are not waiting for the service.
    pub fn backlog(&self, now: Timestamp, overdue_after: Duration) -> Result<Backlog, StoreError> {
        let now_ms = ms(now);
        let overdue_ms = i64::try_from(overdue_after.as_millis()).unwrap_or(i64::MAX);
        let overdue_before = now_ms.saturating_sub(overdue_ms);
        #[allow(clippy::type_complexity)] // one row of seven counts, named right below
        let (
            inbox_pending,
            oldest,
            outbox_pending,
            outbox_dead,
            timers_due,
            timers_overdue,
            quarantined,
        ): (i64, Option<i64>, i64, i64, i64, i64, i64) = self
            .conn()
            .prepare_cached(
                "SELECT (SELECT count(*) FROM inbox
                          WHERE finished_at IS NULL AND quarantined_at IS NULL),
                        (SELECT min(received_at) FROM inbox
                          WHERE finished_at IS NULL AND quarantined_at IS NULL),
                        (SELECT count(*) FROM outbox WHERE state = 'pending'),
                        (SELECT count(*) FROM outbox WHERE state = 'dead'),
                        (SELECT count(*) FROM timers
                          WHERE state = 'pending' AND quarantined_at IS NULL AND due_at <= ?1),
                        (SELECT count(*) FROM timers
                          WHERE state = 'pending' AND quarantined_at IS NULL AND due_at <= ?2),
                        (SELECT count(*) FROM inbox
                          WHERE quarantined_at IS NOT NULL AND finished_at IS NULL)
                        + (SELECT count(*) FROM timers
                          WHERE quarantined_at IS NOT NULL AND state = 'pending')",
            )?
            .query_row([now_ms, overdue_before], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                ))
            })?;
        let age_ms = oldest.map_or(0, |t| now_ms.saturating_sub(t).max(0));
        // count(*) is never negative, so unsigned_abs is the value itself.
        Ok(Backlog {
            inbox_pending: inbox_pending.unsigned_abs(),
            inbox_oldest_age: Duration::from_millis(age_ms.unsigned_abs()),
            outbox_pending: outbox_pending.unsigned_abs(),
            outbox_dead: outbox_dead.unsigned_abs(),
            timers_due: timers_due.unsigned_abs(),
            timers_overdue: timers_overdue.unsigned_abs(),
            quarantined: quarantined.unsigned_abs(),
            writes_failing: self.write_failure().is_some(),
        })
    }
}
