//! The scheduler's digest queue: lines written by timer firings, taken whole by the digest that
//! sends them (see migrations/0004_digest.sql for why it is a table). The lines are opaque JSON
//! here; `clocks` owns their shape.

use jiff::Timestamp;
use rusqlite::params;

use super::{StoreError, Tx, ms};

impl Tx<'_> {
    /// Queues digest lines (each a JSON text) written at `at`.
    pub fn add_digest_lines(&self, lines: &[String], at: Timestamp) -> Result<(), StoreError> {
        let mut stmt = self
            .conn()
            .prepare_cached("INSERT INTO digest_lines (line_json, created_at) VALUES (?1, ?2)")?;
        for line in lines {
            stmt.execute(params![line, ms(at)])?;
        }
        Ok(())
    }

    /// Removes and returns every queued line as `(id, json)`, oldest first. The ids are unique
    /// for the life of the database, so the first one names the digest that took them.
    pub fn take_digest_lines(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let lines = self
            .conn()
            .prepare_cached("DELETE FROM digest_lines RETURNING id, line_json")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<(i64, String)>, _>>()?;
        let mut lines = lines;
        // RETURNING gives no order guarantee.
        lines.sort_by_key(|(id, _)| *id);
        Ok(lines)
    }
}
