//! The quarantine: inbound messages and timers set aside because processing them failed in a way
//! a retry will not fix, each with the reason, the tries and the time. A quarantined row is left
//! out of the pending inbox and out of the due timers (their partial indexes exclude it), so the
//! rows behind it go on; releasing it puts it back where it was, to be processed again.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use rusqlite::params;

use super::{ReadTx, StoreError, Tx, limit, ms, ts_col};

/// Which table a quarantined row lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuarantineKind {
    Inbox,
    Timer,
}

impl QuarantineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineKind::Inbox => "inbox",
            QuarantineKind::Timer => "timer",
        }
    }
}

/// A quarantined row, written `inbox:12` or `timer:7` (the row id in its own table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuarantineId {
    pub kind: QuarantineKind,
    pub id: i64,
}

impl fmt::Display for QuarantineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)
    }
}

impl FromStr for QuarantineId {
    type Err = String;

    fn from_str(s: &str) -> Result<QuarantineId, String> {
        let wrong = || {
            format!("编号“{s}”无效：应为 inbox:编号 或 timer:编号（见 tiaochu quarantine list）")
        };
        let (kind, id) = s.trim().split_once(':').ok_or_else(wrong)?;
        let kind = match kind {
            "inbox" => QuarantineKind::Inbox,
            "timer" => QuarantineKind::Timer,
            _ => return Err(wrong()),
        };
        let id = id.parse::<i64>().map_err(|_| wrong())?;
        Ok(QuarantineId { kind, id })
    }
}

impl serde::Serialize for QuarantineId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One quarantined row as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QuarantinedRow {
    pub id: QuarantineId,
    /// Inbox: the source (`robot`, `card`, …); timer: the timer key (e.g. `case:12:decide`).
    pub what: String,
    /// The case the row is about, when known (timers only).
    pub case_id: Option<i64>,
    pub reason: String,
    pub attempts: i64,
    pub quarantined_at: Timestamp,
}

fn quarantined_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QuarantinedRow> {
    let kind: String = r.get(0)?;
    let kind = match kind.as_str() {
        "inbox" => QuarantineKind::Inbox,
        _ => QuarantineKind::Timer,
    };
    Ok(QuarantinedRow {
        id: QuarantineId {
            kind,
            id: r.get(1)?,
        },
        what: r.get(2)?,
        case_id: r.get(3)?,
        reason: r.get(4)?,
        attempts: r.get(5)?,
        quarantined_at: ts_col(r, 6)?,
    })
}

impl Tx<'_> {
    /// Records how many times an inbound message has been tried.
    pub fn note_inbox_attempts(&self, id: i64, attempts: i64) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE inbox SET attempts = ?2 WHERE id = ?1")?
            .execute(params![id, attempts])?;
        Ok(())
    }

    /// Quarantines an unfinished inbound message; false when it was finished or quarantined
    /// already (then nothing changes, so a caller tells the admins only once).
    pub fn quarantine_inbox(
        &self,
        id: i64,
        reason: &str,
        attempts: i64,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE inbox SET quarantined_at = ?2, quarantine_reason = ?3, attempts = ?4
                 WHERE id = ?1 AND finished_at IS NULL AND quarantined_at IS NULL",
            )?
            .execute(params![id, ms(at), reason, attempts])?;
        Ok(n == 1)
    }

    /// Records how many times a timer has been tried.
    pub fn note_timer_attempts(&self, id: i64, attempts: i64) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE timers SET attempts = ?2 WHERE id = ?1")?
            .execute(params![id, attempts])?;
        Ok(())
    }

    /// Quarantines a pending timer; false when it is not pending or quarantined already.
    pub fn quarantine_timer(
        &self,
        id: i64,
        reason: &str,
        attempts: i64,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE timers SET quarantined_at = ?2, quarantine_reason = ?3, attempts = ?4
                 WHERE id = ?1 AND state = 'pending' AND quarantined_at IS NULL",
            )?
            .execute(params![id, ms(at), reason, attempts])?;
        if n > 0 {
            self.touch_timers();
        }
        Ok(n == 1)
    }

    /// Puts a quarantined row back: an inbound message is pending again, a timer due again (it
    /// keeps its due time, so it fires at the scheduler's next pass). False when `id` is not
    /// quarantined.
    pub fn release_quarantined(&self, id: QuarantineId) -> Result<bool, StoreError> {
        let sql = match id.kind {
            QuarantineKind::Inbox => {
                "UPDATE inbox SET quarantined_at = NULL, quarantine_reason = NULL
                 WHERE id = ?1 AND quarantined_at IS NOT NULL AND finished_at IS NULL"
            }
            QuarantineKind::Timer => {
                "UPDATE timers SET quarantined_at = NULL, quarantine_reason = NULL
                 WHERE id = ?1 AND quarantined_at IS NOT NULL AND state = 'pending'"
            }
        };
        let n = self.conn().prepare_cached(sql)?.execute([id.id])?;
        if n > 0 && id.kind == QuarantineKind::Timer {
            self.touch_timers();
        }
        Ok(n == 1)
    }

    /// Releases every quarantined row; returns how many.
    pub fn release_all_quarantined(&self) -> Result<usize, StoreError> {
        let inbox = self
            .conn()
            .prepare_cached(
                "UPDATE inbox SET quarantined_at = NULL, quarantine_reason = NULL
                 WHERE quarantined_at IS NOT NULL AND finished_at IS NULL",
            )?
            .execute([])?;
        let timers = self
            .conn()
            .prepare_cached(
                "UPDATE timers SET quarantined_at = NULL, quarantine_reason = NULL
                 WHERE quarantined_at IS NOT NULL AND state = 'pending'",
            )?
            .execute([])?;
        if timers > 0 {
            self.touch_timers();
        }
        Ok(inbox + timers)
    }
}

/// Quarantined rows of both tables: unfinished inbound messages, pending timers.
const QUARANTINED_SQL: &str = "
    SELECT 'inbox', id, source, NULL, quarantine_reason, attempts, quarantined_at
      FROM inbox WHERE quarantined_at IS NOT NULL AND finished_at IS NULL
    UNION ALL
    SELECT 'timer', id, key, case_id, quarantine_reason, attempts, quarantined_at
      FROM timers WHERE quarantined_at IS NOT NULL AND state = 'pending'";

impl ReadTx<'_> {
    /// Quarantined rows, oldest quarantine first, at most `max`.
    pub fn quarantined(&self, max: usize) -> Result<Vec<QuarantinedRow>, StoreError> {
        let sql = format!("{QUARANTINED_SQL} ORDER BY 7, 1, 2 LIMIT ?1");
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([limit(max)], quarantined_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many rows are quarantined (the `/metrics` gauge and `/healthz`).
    pub fn quarantined_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .prepare_cached(&format!("SELECT count(*) FROM ({QUARANTINED_SQL})"))?
            .query_row([], |r| r.get(0))?;
        Ok(n.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_as_written() {
        for text in ["inbox:12", "timer:7"] {
            let id: QuarantineId = text.parse().expect("id");
            assert_eq!(id.to_string(), text);
        }
        for bad in ["12", "inbox:", "outbox:3", "timer:x"] {
            let err = bad.parse::<QuarantineId>().expect_err(bad);
            assert!(err.contains("inbox:编号"), "{err}");
        }
    }
}
