//! Roster changes made in DingTalk: the people they touched, as they now stand, and the
//! append-only history of who changed what and when. `config/roster.toml` seeds the roster; these
//! rows win over it for the people they name, keyed by (unit, name), which no change alters.

use jiff::Timestamp;
use rusqlite::params;

use super::{ReadTx, StoreError, Tx, ms, opt_ts_col, ts_col};

/// One person as a DingTalk change left them. `roles_json` is a JSON array of role names
/// (`["leader","liaison"]`), as in the roster file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterOverride {
    pub unit: String,
    pub name: String,
    pub title: String,
    pub roles_json: String,
    pub staff_id: String,
    pub phone: String,
    pub updated_at: Timestamp,
    /// Roster id of whoever made the latest change.
    pub updated_by: String,
    /// When the address book reported that they left the organisation; `None` while they belong.
    pub departed_at: Option<Timestamp>,
}

/// One entry of the change history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterChangeRow {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    /// What was done: `set_liaison`, `remove_liaison`, `set_leader`, `drop_leader`, `bind`.
    pub action: String,
    pub unit: String,
    pub name: String,
    /// The person before the change; `None` when the change added them.
    pub before_json: Option<String>,
    pub after_json: String,
}

impl Tx<'_> {
    /// Stores `person` as it now stands and appends the change to the history, in this
    /// transaction; returns the history row's id.
    pub fn record_roster_change(
        &self,
        person: &RosterOverride,
        action: &str,
        before_json: Option<&str>,
        after_json: &str,
    ) -> Result<i64, StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO roster_people
                   (unit, name, title, roles_json, staff_id, phone, updated_at, updated_by,
                    departed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (unit, name) DO UPDATE SET
                   title = excluded.title, roles_json = excluded.roles_json,
                   staff_id = excluded.staff_id, phone = excluded.phone,
                   updated_at = excluded.updated_at, updated_by = excluded.updated_by,
                   departed_at = excluded.departed_at",
            )?
            .execute(params![
                person.unit,
                person.name,
                person.title,
                person.roles_json,
                person.staff_id,
                person.phone,
                ms(person.updated_at),
                person.updated_by,
                person.departed_at.map(ms)
            ])?;
        self.conn()
            .prepare_cached(
                "INSERT INTO roster_changes (at, actor, action, unit, name, before_json, after_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                ms(person.updated_at),
                person.updated_by,
                action,
                person.unit,
                person.name,
                before_json,
                after_json
            ])?;
        Ok(self.conn().last_insert_rowid())
    }
}

impl ReadTx<'_> {
    /// Every person a DingTalk change touched, by unit then name.
    pub fn roster_overrides(&self) -> Result<Vec<RosterOverride>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT unit, name, title, roles_json, staff_id, phone, updated_at, updated_by,
                    departed_at
             FROM roster_people ORDER BY unit, name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RosterOverride {
                unit: r.get(0)?,
                name: r.get(1)?,
                title: r.get(2)?,
                roles_json: r.get(3)?,
                staff_id: r.get(4)?,
                phone: r.get(5)?,
                updated_at: ts_col(r, 6)?,
                updated_by: r.get(7)?,
                departed_at: opt_ts_col(r, 8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The change history, oldest first.
    pub fn roster_changes(&self) -> Result<Vec<RosterChangeRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, at, actor, action, unit, name, before_json, after_json
             FROM roster_changes ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RosterChangeRow {
                id: r.get(0)?,
                at: ts_col(r, 1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                unit: r.get(4)?,
                name: r.get(5)?,
                before_json: r.get(6)?,
                after_json: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
