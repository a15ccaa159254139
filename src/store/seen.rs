//! Robot callback signatures already used (`seen_signatures`): each (timestamp, sign) pair with
//! the msgId it first came with, kept while the pair can still verify, so a captured signature
//! cannot carry another message — across restarts too, since it is in the database.

use jiff::Timestamp;
use rusqlite::params;

use super::{ReadTx, StoreError, Tx, ms};

/// What a verified callback signature is to this store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureUse {
    /// Not seen before: now recorded with the message.
    New,
    /// Seen with this same message (DingTalk delivering it again).
    SameMessage,
    /// Seen with another message: a replay.
    OtherMessage,
}

impl Tx<'_> {
    /// Records that the pair (`timestamp_ms`, `sign_hash`) carried `msg_id`, unless it already
    /// carried a message. Only [`SignatureUse::New`] writes a row.
    pub fn use_signature(
        &self,
        timestamp_ms: i64,
        sign_hash: &str,
        msg_id: &str,
        now: Timestamp,
    ) -> Result<SignatureUse, StoreError> {
        // Recording first: a new pair, the common case, is one statement.
        let recorded = self
            .conn()
            .prepare_cached(
                "INSERT INTO seen_signatures (timestamp_ms, sign_hash, msg_id, seen_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (timestamp_ms, sign_hash) DO NOTHING",
            )?
            .execute(params![timestamp_ms, sign_hash, msg_id, ms(now)])?;
        if recorded == 1 {
            return Ok(SignatureUse::New);
        }
        let first: String = self
            .conn()
            .prepare_cached(
                "SELECT msg_id FROM seen_signatures WHERE timestamp_ms = ?1 AND sign_hash = ?2",
            )?
            .query_row(params![timestamp_ms, sign_hash], |r| r.get(0))?;
        if first == msg_id {
            Ok(SignatureUse::SameMessage)
        } else {
            Ok(SignatureUse::OtherMessage)
        }
    }

    /// Forgets every pair whose timestamp is before `oldest_valid_ms`: it can no longer verify,
    /// so it can carry nothing. Returns how many were forgotten.
    pub fn forget_signatures_before(&self, oldest_valid_ms: i64) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM seen_signatures WHERE timestamp_ms < ?1")?
            .execute([oldest_valid_ms])?)
    }
}

impl ReadTx<'_> {
    /// How many signature pairs are remembered.
    pub fn seen_signature_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .prepare_cached("SELECT count(*) FROM seen_signatures")?
            .query_row([], |r| r.get(0))?;
        Ok(n.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn a_pair_serves_one_message_until_it_expires() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let now = Timestamp::from_millisecond(10_000).expect("now");
        let use_it = |ts: i64, msg: &'static str| {
            store.write_blocking(move |tx| tx.use_signature(ts, "h", msg, now))
        };
        assert_eq!(use_it(5_000, "a").expect("a"), SignatureUse::New);
        assert_eq!(use_it(5_000, "a").expect("a"), SignatureUse::SameMessage);
        assert_eq!(use_it(5_000, "b").expect("b"), SignatureUse::OtherMessage);
        assert_eq!(use_it(6_000, "b").expect("b"), SignatureUse::New);
        let count = || {
            store
                .read_blocking(|r| r.seen_signature_count())
                .expect("count")
        };
        assert_eq!(count(), 2, "a refusal writes nothing");
        // Once 5 000 can no longer verify, it is forgotten, and 6 000 is kept.
        let forget =
            |oldest: i64| store.write_blocking(move |tx| tx.forget_signatures_before(oldest));
        assert_eq!(forget(5_001).expect("forget"), 1);
        assert_eq!(count(), 1);
        assert_eq!(use_it(5_000, "c").expect("c"), SignatureUse::New);
    }
}
