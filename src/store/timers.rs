//! Timers: reminders, deadlines and escalations, kept in SQLite so a restart loses none. Each
//! has a unique key chosen by the workflow (e.g. `case:12:decide`), so setting it again moves it
//! instead of duplicating it, and firing is idempotent: only a pending timer can fire, once.
//! "What is due" is answered from a partial index over pending timers only.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::{ReadTx, StoreError, Tx, limit, ms, opt_ts_col, ts_col};

/// A timer to set.
#[derive(Debug, Clone, Copy)]
pub struct NewTimer<'a> {
    /// Unique across all timers; the workflow derives it from the case and the clock.
    pub key: &'a str,
    pub case_id: Option<i64>,
    pub kind: &'a str,
    pub due_at: Timestamp,
    pub payload_json: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerState {
    Pending,
    Fired,
    Cancelled,
}

impl TimerState {
    pub fn as_str(self) -> &'static str {
        match self {
            TimerState::Pending => "pending",
            TimerState::Fired => "fired",
            TimerState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Option<TimerState> {
        match s {
            "pending" => Some(TimerState::Pending),
            "fired" => Some(TimerState::Fired),
            "cancelled" => Some(TimerState::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRow {
    pub id: i64,
    pub key: String,
    pub case_id: Option<i64>,
    pub kind: String,
    pub due_at: Timestamp,
    pub payload_json: String,
    pub state: TimerState,
    /// Set exactly when `state` is `Fired`.
    pub fired_at: Option<Timestamp>,
    /// Set while the timer is quarantined (see `store/quarantine.rs`): it stays pending but
    /// does not fire until released.
    pub quarantined_at: Option<Timestamp>,
    /// Tries so far, including those that failed for a passing reason.
    pub attempts: i64,
}

const TIMER_COLUMNS: &str =
    "id, key, case_id, kind, due_at, payload_json, state, fired_at, quarantined_at, attempts";

/// Served by the partial index `timers_pending_due`, which leaves quarantined timers out; a unit
/// test checks the plan.
const DUE_TIMERS_SQL: &str = "SELECT id, key, case_id, kind, due_at, payload_json, state, fired_at,
            quarantined_at, attempts
     FROM timers WHERE state = 'pending' AND quarantined_at IS NULL AND due_at <= ?1
     ORDER BY due_at, id LIMIT ?2";

/// Served by the same partial index.
const NEXT_DUE_SQL: &str =
    "SELECT min(due_at) FROM timers WHERE state = 'pending' AND quarantined_at IS NULL";

fn timer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TimerRow> {
    let state: String = r.get(6)?;
    let state = TimerState::parse(&state).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            6,
            rusqlite::types::Type::Text,
            format!("unknown timer state {state:?}").into(),
        )
    })?;
    Ok(TimerRow {
        id: r.get(0)?,
        key: r.get(1)?,
        case_id: r.get(2)?,
        kind: r.get(3)?,
        due_at: ts_col(r, 4)?,
        payload_json: r.get(5)?,
        state,
        fired_at: opt_ts_col(r, 7)?,
        quarantined_at: opt_ts_col(r, 8)?,
        attempts: r.get(9)?,
    })
}

impl Tx<'_> {
    /// Sets the timer `key`; returns its id. A pending timer with that key is moved to the new
    /// due time (and takes the new kind and payload); a fired or cancelled one is armed again, so
    /// a clock that restarts (a resubmission, a re-requested unit) is never silently lost. A
    /// quarantined one is released: the decision that set it again read its case fine. The
    /// scheduler is woken after commit.
    pub fn set_timer(&self, t: &NewTimer<'_>) -> Result<i64, StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO timers (key, case_id, kind, due_at, payload_json)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (key) DO UPDATE
                 SET case_id = excluded.case_id, kind = excluded.kind, due_at = excluded.due_at,
                     payload_json = excluded.payload_json, state = 'pending', fired_at = NULL,
                     quarantined_at = NULL, quarantine_reason = NULL, attempts = 0",
            )?
            .execute(params![
                t.key,
                t.case_id,
                t.kind,
                ms(t.due_at),
                t.payload_json
            ])?;
        // Read back by key rather than with RETURNING (a temporary table per run), and not by
        // last_insert_rowid, which an update of an existing key leaves unchanged.
        let id = self
            .conn()
            .prepare_cached("SELECT id FROM timers WHERE key = ?1")?
            .query_row([t.key], |r| r.get(0))?;
        self.touch_timers();
        Ok(id)
    }

    /// Cancels the pending timer `key`. False when there is none pending.
    pub fn cancel_timer(&self, key: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE timers SET state = 'cancelled' WHERE key = ?1 AND state = 'pending'",
            )?
            .execute([key])?;
        if n > 0 {
            self.touch_timers();
        }
        Ok(n == 1)
    }

    /// Cancels every pending timer whose key starts with `prefix` (e.g. all of a case's clocks
    /// with `case:12:`); returns how many. The prefix is matched literally, not as a pattern.
    pub fn cancel_timers_with_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE timers SET state = 'cancelled'
                 WHERE state = 'pending' AND substr(key, 1, length(?1)) = ?1",
            )?
            .execute([prefix])?;
        if n > 0 {
            self.touch_timers();
        }
        Ok(n)
    }

    /// Marks a timer fired. Only a pending timer fires: false when it already fired or was
    /// cancelled, so a timer handled twice (a crash between handling and marking) acts once.
    pub fn mark_fired(&self, id: i64, at: Timestamp) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE timers SET state = 'fired', fired_at = ?2 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id, ms(at)])?;
        Ok(n == 1)
    }
}

impl ReadTx<'_> {
    /// Pending timers due at or before `now`, earliest first, at most `max`.
    pub fn due_timers(&self, now: Timestamp, max: usize) -> Result<Vec<TimerRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(DUE_TIMERS_SQL)?;
        let rows = stmt.query_map(params![ms(now), limit(max)], timer_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The due time of the earliest pending timer; None when nothing is pending.
    pub fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let v: Option<i64> = self
            .conn()
            .prepare_cached(NEXT_DUE_SQL)?
            .query_row([], |r| r.get(0))?;
        v.map(|v| {
            Timestamp::from_millisecond(v)
                .map_err(|e| StoreError::BadData(format!("定时器时间无效：{e}")))
        })
        .transpose()
    }

    pub fn timer_by_key(&self, key: &str) -> Result<Option<TimerRow>, StoreError> {
        let sql = format!("SELECT {TIMER_COLUMNS} FROM timers WHERE key = ?1");
        Ok(self
            .conn()
            .prepare_cached(&sql)?
            .query_row([key], timer_row)
            .optional()?)
    }

    /// Every timer of a case, in any state, by due time (the running clocks of `查询`).
    pub fn timers_for_case(&self, case_id: i64) -> Result<Vec<TimerRow>, StoreError> {
        let sql =
            format!("SELECT {TIMER_COLUMNS} FROM timers WHERE case_id = ?1 ORDER BY due_at, id");
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([case_id], timer_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    fn plan(store: &Store, sql: &'static str) -> String {
        store
            .read_blocking(move |r| -> Result<_, StoreError> {
                let mut stmt = r.conn().prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let zeros =
                    rusqlite::params_from_iter(std::iter::repeat_n(0i64, stmt.parameter_count()));
                let details = stmt.query_map(zeros, |row| row.get::<_, String>(3))?;
                Ok(details.collect::<Result<Vec<_>, _>>()?.join("; "))
            })
            .expect("explain")
    }

    #[test]
    fn due_and_next_due_use_the_partial_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let due = plan(&store, DUE_TIMERS_SQL);
        assert!(due.contains("USING INDEX timers_pending_due"), "{due}");
        assert!(
            !due.contains("TEMP B-TREE"),
            "due order comes from the index: {due}"
        );
        let next = plan(&store, NEXT_DUE_SQL);
        assert!(next.contains("timers_pending_due"), "{next}");
    }

    #[test]
    fn prefix_cancel_is_literal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let at = Timestamp::UNIX_EPOCH;
        let n = store
            .write_blocking(move |tx| {
                for key in ["case:1:a", "case:1:b", "case:10:a", "case_1:x", "case%1:y"] {
                    tx.set_timer(&NewTimer {
                        key,
                        case_id: None,
                        kind: "k",
                        due_at: at,
                        payload_json: "{}",
                    })?;
                }
                tx.cancel_timers_with_prefix("case:1:")
            })
            .expect("write");
        assert_eq!(n, 2);
        let left = store
            .read_blocking(move |r| r.due_timers(at, 10))
            .expect("read");
        assert_eq!(
            left.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
            ["case:10:a", "case_1:x", "case%1:y"]
        );
    }
}
