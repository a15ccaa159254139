//! The sandbox clock's offset (migrations/0005_sandbox_clock.sql): kept so the sandbox's moved
//! clock survives a restart.

use jiff::SignedDuration;
use rusqlite::OptionalExtension;

use super::{ReadTx, StoreError, Tx};

impl Tx<'_> {
    /// Adds `by` (positive) to the stored offset.
    pub fn add_sandbox_offset(&self, by: SignedDuration) -> Result<(), StoreError> {
        let ms = i64::try_from(by.as_millis())
            .map_err(|_| StoreError::BadData("沙盒时钟调整量超出范围".into()))?;
        self.conn()
            .prepare_cached(
                "INSERT INTO sandbox_clock (id, offset_ms) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET offset_ms = offset_ms + excluded.offset_ms",
            )?
            .execute([ms])?;
        Ok(())
    }
}

impl ReadTx<'_> {
    /// How far the sandbox clock has been moved ahead of real time (zero when never).
    pub fn sandbox_offset(&self) -> Result<SignedDuration, StoreError> {
        let ms: Option<i64> = self
            .conn()
            .prepare_cached("SELECT offset_ms FROM sandbox_clock WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        Ok(SignedDuration::from_millis(ms.unwrap_or(0)))
    }
}
