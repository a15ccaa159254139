//! Dashboard login (issue 7): one-time login links sent through the robot and the browser
//! sessions made from them, plus the case query behind the dashboard's case list.
//!
//! Only SHA-256 hashes of link tokens and session ids are stored, so whoever reads the database
//! (a backup, a copy) cannot log in with what they find. Secrets are 32 bytes from the kernel's
//! random source (`getrandom`), never derived from time, counters or configuration.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{ReadTx, StoreError, Tx, ms};

/// Spent or expired rows older than this many milliseconds before now are dropped when new ones
/// are written, so the tables stay small without a separate cleaner (one day).
const KEEP_EXPIRED_MS: i64 = 24 * 60 * 60 * 1000;

/// A fresh secret: 32 random bytes as 64 lower-case hex digits (safe in URLs and cookies).
pub fn new_secret() -> Result<String, StoreError> {
    Ok(crate::hex::lower_hex(&super::random_bytes()?))
}

/// The SHA-256 of `secret`, hex; what the tables keep instead of the secret.
pub fn secret_hash(secret: &str) -> String {
    crate::hex::lower_hex(&Sha256::digest(secret.as_bytes()))
}

/// What the dashboard's case list filters on; `None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFilter {
    /// A workflow state in its stored (snake_case) form.
    pub state: Option<String>,
    /// The first unit or any participating unit, canonical name.
    pub unit: Option<String>,
    /// Registered in `[from, to)`.
    pub registered: Option<(Timestamp, Timestamp)>,
    /// Green-channel cases only (`Some(true)`) or ordinary ones only (`Some(false)`).
    pub green: Option<bool>,
}

impl Tx<'_> {
    /// Stores a one-time login link for `person_id`, valid until `expires_at`.
    pub fn insert_login_token(
        &self,
        token_hash: &str,
        person_id: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let cutoff = ms(now) - KEEP_EXPIRED_MS;
        self.conn().execute(
            "DELETE FROM dashboard_login_tokens WHERE expires_at < ?1",
            [cutoff],
        )?;
        self.conn().execute(
            "INSERT INTO dashboard_login_tokens (token_hash, person_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![token_hash, person_id, ms(now), ms(expires_at)],
        )?;
        Ok(())
    }

    /// Spends a login link: the person it was issued to when it exists, is unused and has not
    /// expired at `now`; `None` otherwise. A spent link never works again.
    pub fn redeem_login_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "UPDATE dashboard_login_tokens SET used_at = ?2
                 WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2
                 RETURNING person_id",
                params![token_hash, ms(now)],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Stores a browser session for `person_id`, valid until `expires_at`.
    pub fn insert_session(
        &self,
        session_hash: &str,
        person_id: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM dashboard_sessions WHERE expires_at < ?1",
            [ms(now) - KEEP_EXPIRED_MS],
        )?;
        self.conn().execute(
            "INSERT INTO dashboard_sessions (session_hash, person_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![session_hash, person_id, ms(now), ms(expires_at)],
        )?;
        Ok(())
    }

    /// Ends a session (logout); true when it existed.
    pub fn delete_session(&self, session_hash: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM dashboard_sessions WHERE session_hash = ?1",
            [session_hash],
        )? > 0)
    }
}

impl ReadTx<'_> {
    /// The person of a session that has not expired at `now`.
    pub fn session_person(
        &self,
        session_hash: &str,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT person_id FROM dashboard_sessions
                 WHERE session_hash = ?1 AND expires_at > ?2",
                params![session_hash, ms(now)],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Ids of the cases matching `filter`, newest registration first, at most `limit`.
    pub fn filtered_case_ids(
        &self,
        filter: &CaseFilter,
        limit: usize,
    ) -> Result<Vec<i64>, StoreError> {
        let (from, to) = filter
            .registered
            .map_or((None, None), |(f, t)| (Some(ms(f)), Some(ms(t))));
        let mut stmt = self.conn().prepare_cached(
            "SELECT c.id FROM cases c
             WHERE (?1 IS NULL OR c.state = ?1)
               AND (?2 IS NULL OR c.first_unit = ?2
                    OR EXISTS (SELECT 1 FROM case_units u WHERE u.case_id = c.id AND u.unit = ?2))
               AND (?3 IS NULL OR c.created_at >= ?3)
               AND (?4 IS NULL OR c.created_at < ?4)
               AND (?5 IS NULL OR c.urgent = ?5)
             ORDER BY c.created_at DESC, c.id DESC
             LIMIT ?6",
        )?;
        let rows = stmt.query_map(
            params![
                filter.state,
                filter.unit,
                from,
                to,
                filter.green,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| r.get(0),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    #[test]
    fn secrets_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (new_secret().expect("a"), new_secret().expect("b"));
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        // SHA-256 of "abc" (FIPS 180-2 test vector).
        assert_eq!(
            secret_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_login_token_works_once_and_only_before_it_expires() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let now = at("2026-11-02T01:00:00Z");
        let later = at("2026-11-02T01:10:00Z");
        store
            .write_blocking(move |tx| {
                tx.insert_login_token("h1", "p1", now, later)?;
                tx.insert_login_token("h2", "p2", now, later)
            })
            .expect("insert");
        let redeem = |hash: &'static str, t: Timestamp| {
            store
                .write_blocking(move |tx| tx.redeem_login_token(hash, t))
                .expect("redeem")
        };
        assert_eq!(redeem("h1", at("2026-11-02T01:09:59Z")), Some("p1".into()));
        assert_eq!(redeem("h1", at("2026-11-02T01:09:59Z")), None, "single use");
        assert_eq!(redeem("h2", later), None, "expired at its expiry");
        assert_eq!(redeem("nope", now), None);
    }

    #[test]
    fn a_session_is_found_until_it_expires_or_is_deleted() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let now = at("2026-11-02T01:00:00Z");
        let end = at("2026-11-02T09:00:00Z");
        store
            .write_blocking(move |tx| tx.insert_session("s1", "p1", now, end))
            .expect("insert");
        let find = |t: Timestamp| {
            store
                .read_blocking(move |r| r.session_person("s1", t))
                .expect("read")
        };
        assert_eq!(find(now), Some("p1".into()));
        assert_eq!(find(end), None);
        assert!(
            store
                .write_blocking(|tx| tx.delete_session("s1"))
                .expect("delete")
        );
        assert_eq!(find(now), None);
    }
}
