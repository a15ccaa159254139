//! The inbox: every inbound message (robot callback, card callback, Stream frame, sandbox page)
//! is written here before it is acknowledged, unique on (source, message id), so a redelivered
//! message is recognised and does nothing; the slow work reads the pending rows afterwards.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::{ReadTx, StoreError, Tx, limit, ms, opt_ts_col, ts_col};

/// An inbound message as received.
#[derive(Debug, Clone, Copy)]
pub struct NewInbound<'a> {
    /// `"robot"`, `"card"`, `"stream"` or `"sandbox"` (enforced by the schema).
    pub source: &'a str,
    /// The sender's unique id: `msgId`, the Stream frame `messageId`, or for a card callback
    /// `outTrackId` + user + action.
    pub message_id: &'a str,
    pub received_at: Timestamp,
    /// The raw body as received (JSON text).
    pub payload: &'a str,
}

/// The outcome of [`Tx::insert_inbox`]; both carry the row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxInsert {
    Inserted(i64),
    /// Seen before: the id of the first copy.
    Duplicate(i64),
}

impl InboxInsert {
    pub fn id(self) -> i64 {
        match self {
            InboxInsert::Inserted(id) | InboxInsert::Duplicate(id) => id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRow {
    pub id: i64,
    pub source: String,
    pub message_id: String,
    pub received_at: Timestamp,
    pub payload: String,
    /// Set together with `finished_at` once processed.
    pub outcome: Option<String>,
    pub finished_at: Option<Timestamp>,
    /// Tries so far, including those that failed for a passing reason.
    pub attempts: i64,
    /// Set while the message is quarantined (see `store/quarantine.rs`), with the reason.
    pub quarantined_at: Option<Timestamp>,
    pub quarantine_reason: Option<String>,
}

const INBOX_COLUMNS: &str = "id, source, message_id, received_at, payload, outcome, finished_at, \
                             attempts, quarantined_at, quarantine_reason";

fn inbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InboxRow> {
    Ok(InboxRow {
        id: r.get(0)?,
        source: r.get(1)?,
        message_id: r.get(2)?,
        received_at: ts_col(r, 3)?,
        payload: r.get(4)?,
        outcome: r.get(5)?,
        finished_at: opt_ts_col(r, 6)?,
        attempts: r.get(7)?,
        quarantined_at: opt_ts_col(r, 8)?,
        quarantine_reason: r.get(9)?,
    })
}

impl Tx<'_> {
    /// Records an inbound message unless the same (source, message id) is already there.
    pub fn insert_inbox(&self, m: &NewInbound<'_>) -> Result<InboxInsert, StoreError> {
        // No RETURNING: SQLite builds a temporary table for it on every run, which cost more
        // than the insert itself on every acknowledgement (docs/throughput.md).
        let inserted = self
            .conn()
            .prepare_cached(
                "INSERT INTO inbox (source, message_id, received_at, payload)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (source, message_id) DO NOTHING",
            )?
            .execute(params![
                m.source,
                m.message_id,
                ms(m.received_at),
                m.payload
            ])?;
        if inserted == 1 {
            self.touch_inbox();
            return Ok(InboxInsert::Inserted(self.conn().last_insert_rowid()));
        }
        let id = self
            .conn()
            .prepare_cached("SELECT id FROM inbox WHERE source = ?1 AND message_id = ?2")?
            .query_row(params![m.source, m.message_id], |r| r.get(0))?;
        Ok(InboxInsert::Duplicate(id))
    }

    /// Marks an inbound message processed with a short outcome (e.g. `"registered"`,
    /// `"rejected"`). Returns false when it was already finished or does not exist.
    pub fn finish_inbox(&self, id: i64, outcome: &str, at: Timestamp) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE inbox SET outcome = ?2, finished_at = ?3
                 WHERE id = ?1 AND finished_at IS NULL",
            )?
            .execute(params![id, outcome, ms(at)])?;
        Ok(n == 1)
    }
}

impl ReadTx<'_> {
    /// Unprocessed messages, oldest first (the order they were received in), leaving out
    /// quarantined ones.
    pub fn pending_inbox(&self, max: usize) -> Result<Vec<InboxRow>, StoreError> {
        let sql = format!(
            "SELECT {INBOX_COLUMNS} FROM inbox
             WHERE finished_at IS NULL AND quarantined_at IS NULL ORDER BY id LIMIT ?1"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([limit(max)], inbox_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many messages wait to be processed (served by the partial index `inbox_pending`).
    pub fn inbox_pending_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .prepare_cached(
                "SELECT count(*) FROM inbox WHERE finished_at IS NULL AND quarantined_at IS NULL",
            )?
            .query_row([], |r| r.get(0))?;
        // count(*) is never negative.
        Ok(n.unsigned_abs())
    }

    /// Every message, processed or not, oldest first, up to `max` (tests, diagnostics).
    pub fn all_inbox(&self, max: usize) -> Result<Vec<InboxRow>, StoreError> {
        let sql = format!("SELECT {INBOX_COLUMNS} FROM inbox ORDER BY id LIMIT ?1");
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([limit(max)], inbox_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn inbox(&self, id: i64) -> Result<Option<InboxRow>, StoreError> {
        let sql = format!("SELECT {INBOX_COLUMNS} FROM inbox WHERE id = ?1");
        Ok(self
            .conn()
            .prepare_cached(&sql)?
            .query_row([id], inbox_row)
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    #[test]
    fn dedupes_and_finishes_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let at = Timestamp::from_millisecond(1_780_000_000_000).expect("ts");
        let (first, again, other_source) = store
            .write_blocking(move |tx| -> Result<_, StoreError> {
                let m = NewInbound {
                    source: "robot",
                    message_id: "m1",
                    received_at: at,
                    payload: "{}",
                };
                let first = tx.insert_inbox(&m)?;
                let again = tx.insert_inbox(&m)?;
                let other = tx.insert_inbox(&NewInbound {
                    source: "stream",
                    ..m
                })?;
                Ok((first, again, other))
            })
            .expect("write");
        assert!(matches!(first, InboxInsert::Inserted(_)));
        assert_eq!(again, InboxInsert::Duplicate(first.id()));
        assert!(matches!(other_source, InboxInsert::Inserted(id) if id != first.id()));

        let id = first.id();
        let (a, b) = store
            .write_blocking(move |tx| -> Result<_, StoreError> {
                Ok((
                    tx.finish_inbox(id, "registered", at)?,
                    tx.finish_inbox(id, "x", at)?,
                ))
            })
            .expect("finish");
        assert!(a && !b, "an inbound message finishes once");
        let pending = store.read_blocking(|r| r.pending_inbox(10)).expect("read");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].source, "stream");
        let row = store
            .read_blocking(move |r| r.inbox(id))
            .expect("read")
            .expect("row");
        assert_eq!(row.outcome.as_deref(), Some("registered"));
        assert_eq!(row.finished_at, Some(at));
    }

    #[test]
    fn unknown_source_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let err = store
            .write_blocking(|tx| {
                tx.insert_inbox(&NewInbound {
                    source: "email",
                    message_id: "m",
                    received_at: Timestamp::UNIX_EPOCH,
                    payload: "{}",
                })
            })
            .expect_err("CHECK constraint");
        assert!(
            matches!(
                err,
                StoreError::Sqlite {
                    code: Some(rusqlite::ErrorCode::ConstraintViolation),
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
