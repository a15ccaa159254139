//! Onboarding rows: which member units were asked to name their liaison, when they answered and
//! how often their leaders were reminded (`src/onboarding.rs` decides; this stores).

use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::{ReadTx, StoreError, Tx, ms, opt_ts_col, ts_col};

/// One unit asked to name its liaison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnboardingRow {
    pub unit: String,
    pub asked_at: Timestamp,
    /// Roster id of whoever asked (the hotline head, an admin, `通讯录` after a departure).
    pub asked_by: String,
    /// When the unit had a liaison; `None` while it is waiting.
    pub done_at: Option<Timestamp>,
    pub reminders: i64,
    pub last_reminded_at: Option<Timestamp>,
}

const COLUMNS: &str = "unit, asked_at, asked_by, done_at, reminders, last_reminded_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OnboardingRow> {
    Ok(OnboardingRow {
        unit: r.get(0)?,
        asked_at: ts_col(r, 1)?,
        asked_by: r.get(2)?,
        done_at: opt_ts_col(r, 3)?,
        reminders: r.get(4)?,
        last_reminded_at: opt_ts_col(r, 5)?,
    })
}

impl Tx<'_> {
    /// Asks `unit` (again): the row starts over as waiting, with no reminders yet.
    pub fn ask_onboarding(&self, unit: &str, by: &str, at: Timestamp) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO onboarding_units (unit, asked_at, asked_by) VALUES (?1, ?2, ?3)
                 ON CONFLICT (unit) DO UPDATE SET asked_at = excluded.asked_at,
                   asked_by = excluded.asked_by, done_at = NULL, reminders = 0,
                   last_reminded_at = NULL",
            )?
            .execute(params![unit, ms(at), by])?;
        Ok(())
    }

    /// Marks the waiting `unit` done; false when it was not waiting.
    pub fn finish_onboarding(&self, unit: &str, at: Timestamp) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE onboarding_units SET done_at = ?2 WHERE unit = ?1 AND done_at IS NULL",
            )?
            .execute(params![unit, ms(at)])?;
        Ok(n == 1)
    }

    /// Counts one reminder sent to the waiting `unit`.
    pub fn note_onboarding_reminder(&self, unit: &str, at: Timestamp) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "UPDATE onboarding_units SET reminders = reminders + 1, last_reminded_at = ?2
                 WHERE unit = ?1 AND done_at IS NULL",
            )?
            .execute(params![unit, ms(at)])?;
        Ok(())
    }
}

impl ReadTx<'_> {
    /// Every unit ever asked, by unit name.
    pub fn onboarding_units(&self) -> Result<Vec<OnboardingRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM onboarding_units ORDER BY unit");
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn onboarding_unit(&self, unit: &str) -> Result<Option<OnboardingRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM onboarding_units WHERE unit = ?1");
        Ok(self
            .conn()
            .prepare_cached(&sql)?
            .query_row([unit], row)
            .optional()?)
    }
}
