//! The per-sender inbound count (migrations/0008_sender_rate.sql) behind the inbox's flood limit:
//! a fixed one-minute window per sender, counted in the transaction that processes the message,
//! so a crash never counts a message that was not processed.

use jiff::Timestamp;
use rusqlite::OptionalExtension;

use super::{ReadTx, StoreError, Tx, ms};

/// The length of one counting window, in milliseconds.
pub const SENDER_WINDOW_MS: i64 = 60_000;

/// A sender's count in the window that holds the message just noted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderWindow {
    /// Messages in this window, the one just noted included.
    pub count: u32,
    /// Whether the sender was already told about the limit in this window.
    pub told: bool,
    /// When the window ends (the next message is counted afresh from then).
    pub ends_at: Timestamp,
}

impl Tx<'_> {
    /// Counts one message from `sender` at `now`, starting a new window when the last one ended.
    pub fn note_inbound(&self, sender: &str, now: Timestamp) -> Result<SenderWindow, StoreError> {
        let start = ms(now) - ms(now).rem_euclid(SENDER_WINDOW_MS);
        self.conn()
            .prepare_cached(
                "INSERT INTO sender_rate (sender, window_start, count, told) VALUES (?1, ?2, 1, 0)
                 ON CONFLICT (sender) DO UPDATE SET
                   count = CASE WHEN window_start = excluded.window_start THEN count + 1 ELSE 1 END,
                   told = CASE WHEN window_start = excluded.window_start THEN told ELSE 0 END,
                   window_start = excluded.window_start",
            )?
            .execute(rusqlite::params![sender, start])?;
        let (count, told): (i64, i64) = self
            .conn()
            .prepare_cached("SELECT count, told FROM sender_rate WHERE sender = ?1")?
            .query_row([sender], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let ends_at = Timestamp::from_millisecond(start + SENDER_WINDOW_MS)
            .map_err(|e| StoreError::BadData(format!("时间超出范围：{e}")))?;
        Ok(SenderWindow {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            told: told != 0,
            ends_at,
        })
    }

    /// Records that `sender` was told about the limit in the current window.
    pub fn mark_sender_told(&self, sender: &str) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE sender_rate SET told = 1 WHERE sender = ?1")?
            .execute([sender])?;
        Ok(())
    }
}

impl ReadTx<'_> {
    /// How many messages `sender` has had counted in the window that holds `now` (0 when its
    /// last window has ended).
    pub fn sender_count(&self, sender: &str, now: Timestamp) -> Result<u32, StoreError> {
        let start = ms(now) - ms(now).rem_euclid(SENDER_WINDOW_MS);
        let count: Option<i64> = self
            .conn()
            .prepare_cached(
                "SELECT count FROM sender_rate WHERE sender = ?1 AND window_start = ?2",
            )?
            .query_row(rusqlite::params![sender, start], |r| r.get(0))
            .optional()?;
        Ok(count.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)))
    }
}
