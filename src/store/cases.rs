//! Cases, their application versions and participating units, and the per-year case-number
//! counter. The workflow's case is stored as a JSON document plus the columns queries filter on;
//! updates are optimistic, guarded by a revision that every update must name and increments.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::{ReadTx, StoreError, Tx, ms, ts_col};
use crate::domain::{CaseNo, TicketNo, UnitName};

/// A case to register.
#[derive(Debug, Clone, Copy)]
pub struct NewCase<'a> {
    /// From [`Tx::next_case_no`], e.g. `TC-2026-0001`; unique.
    pub case_no: &'a CaseNo,
    pub ticket_no: &'a TicketNo,
    pub first_unit: &'a UnitName,
    pub urgent: bool,
    pub state: &'a str,
    pub data_json: &'a str,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRow {
    pub id: i64,
    pub case_no: CaseNo,
    pub ticket_no: TicketNo,
    pub first_unit: UnitName,
    pub urgent: bool,
    pub state: String,
    pub data_json: String,
    /// 1 when inserted, +1 on every update; pass it back to [`Tx::update_case`].
    pub revision: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseVersionRow {
    pub case_id: i64,
    /// 1 for the first submission.
    pub version: i64,
    pub application_json: String,
    /// Staff id of the liaison who submitted it.
    pub submitted_by: String,
    pub submitted_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseUnitRow {
    pub case_id: i64,
    pub unit: String,
    pub status: String,
    pub data_json: String,
    pub updated_at: Timestamp,
}

const CASE_COLUMNS: &str = "id, case_no, ticket_no, first_unit, urgent, state, data_json, \
                            revision, created_at, updated_at";

fn case_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseRow> {
    Ok(CaseRow {
        id: r.get(0)?,
        case_no: CaseNo::from_stored(r.get(1)?),
        ticket_no: TicketNo::from_stored(r.get(2)?),
        first_unit: UnitName::from_stored(r.get(3)?),
        urgent: r.get(4)?,
        state: r.get(5)?,
        data_json: r.get(6)?,
        revision: r.get(7)?,
        created_at: ts_col(r, 8)?,
        updated_at: ts_col(r, 9)?,
    })
}

fn case_unit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseUnitRow> {
    Ok(CaseUnitRow {
        case_id: r.get(0)?,
        unit: r.get(1)?,
        status: r.get(2)?,
        data_json: r.get(3)?,
        updated_at: ts_col(r, 4)?,
    })
}

impl Tx<'_> {
    /// The next case number of `year` (the local calendar year of registration), e.g.
    /// `TC-2026-0001`: monotonic per year, never reused once committed.
    pub fn next_case_no(&self, year: i16) -> Result<CaseNo, StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO case_counters (year, last) VALUES (?1, 1)
                 ON CONFLICT (year) DO UPDATE SET last = last + 1",
            )?
            .execute([year])?;
        let n: i64 = self
            .conn()
            .prepare_cached("SELECT last FROM case_counters WHERE year = ?1")?
            .query_row([year], |r| r.get(0))?;
        Ok(CaseNo::new(year, n))
    }

    /// The number [`Tx::next_case_no`] would give now, without taking it: a refused application
    /// must not use one up (the numbers run without gaps for the yearly statistics).
    pub fn peek_case_no(&self, year: i16) -> Result<CaseNo, StoreError> {
        let last: Option<i64> = self
            .conn()
            .prepare_cached("SELECT last FROM case_counters WHERE year = ?1")?
            .query_row([year], |r| r.get(0))
            .optional()?;
        Ok(CaseNo::new(year, last.unwrap_or(0) + 1))
    }

    /// Registers a case at revision 1; returns its id.
    pub fn insert_case(&self, c: &NewCase<'_>) -> Result<i64, StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO cases (case_no, ticket_no, first_unit, urgent, state, data_json,
                                    revision, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7)",
            )?
            .execute(params![
                c.case_no.as_str(),
                c.ticket_no.as_str(),
                c.first_unit.as_str(),
                c.urgent,
                c.state,
                c.data_json,
                ms(c.created_at)
            ])?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Replaces a case's state and document if it is still at `expected_revision`; returns the
    /// new revision. [`StoreError::Conflict`] when someone else updated it since it was read,
    /// [`StoreError::NotFound`] when there is no such case.
    pub fn update_case(
        &self,
        id: i64,
        expected_revision: i64,
        state: &str,
        data_json: &str,
        updated_at: Timestamp,
    ) -> Result<i64, StoreError> {
        let updated = self
            .conn()
            .prepare_cached(
                "UPDATE cases SET state = ?3, data_json = ?4, updated_at = ?5,
                                  revision = revision + 1
                 WHERE id = ?1 AND revision = ?2",
            )?
            .execute(params![
                id,
                expected_revision,
                state,
                data_json,
                ms(updated_at)
            ])?;
        // The row matched the revision it was read at, so it now holds the next one.
        if updated == 1 {
            return Ok(expected_revision + 1);
        }
        let what = format!("案件（内部编号 {id}）");
        if self.case(id)?.is_some() {
            Err(StoreError::Conflict { what })
        } else {
            Err(StoreError::NotFound { what })
        }
    }

    /// Records submission `version` of a case's application. Versions are unique per case.
    pub fn insert_case_version(
        &self,
        case_id: i64,
        version: i64,
        application_json: &str,
        submitted_by: &str,
        submitted_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO case_versions
                     (case_id, version, application_json, submitted_by, submitted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                case_id,
                version,
                application_json,
                submitted_by,
                ms(submitted_at)
            ])?;
        Ok(())
    }

    /// Adds a unit to a case or updates where it stands.
    pub fn upsert_case_unit(
        &self,
        case_id: i64,
        unit: &str,
        status: &str,
        data_json: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO case_units (case_id, unit, status, data_json, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (case_id, unit) DO UPDATE
                 SET status = excluded.status, data_json = excluded.data_json,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![case_id, unit, status, data_json, ms(at)])?;
        Ok(())
    }
}

impl ReadTx<'_> {
    pub fn case(&self, id: i64) -> Result<Option<CaseRow>, StoreError> {
        let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ?1");
        Ok(self
            .conn()
            .prepare_cached(&sql)?
            .query_row([id], case_row)
            .optional()?)
    }

    /// The case with this case number (`TC-2026-0001`).
    pub fn case_by_no(&self, case_no: &CaseNo) -> Result<Option<CaseRow>, StoreError> {
        let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE case_no = ?1");
        Ok(self
            .conn()
            .prepare_cached(&sql)?
            .query_row([case_no.as_str()], case_row)
            .optional()?)
    }

    /// Every case for a ticket number, newest first.
    pub fn case_by_ticket(&self, ticket_no: &TicketNo) -> Result<Vec<CaseRow>, StoreError> {
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE ticket_no = ?1
             ORDER BY created_at DESC, id DESC"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([ticket_no.as_str()], case_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Cases in any of `states`, oldest first (e.g. every open case, for the dashboard).
    pub fn cases_in_states(&self, states: &[&str]) -> Result<Vec<CaseRow>, StoreError> {
        let states_json = serde_json::to_string(states)
            .map_err(|e| StoreError::BadData(format!("状态列表无法编码：{e}")))?;
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases
             WHERE state IN (SELECT value FROM json_each(?1))
             ORDER BY created_at, id"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([states_json], case_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every submitted version of a case's application, first first.
    pub fn case_versions(&self, case_id: i64) -> Result<Vec<CaseVersionRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT case_id, version, application_json, submitted_by, submitted_at
             FROM case_versions WHERE case_id = ?1 ORDER BY version",
        )?;
        let rows = stmt.query_map([case_id], |r| {
            Ok(CaseVersionRow {
                case_id: r.get(0)?,
                version: r.get(1)?,
                application_json: r.get(2)?,
                submitted_by: r.get(3)?,
                submitted_at: ts_col(r, 4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The units of a case, in the order they joined it.
    pub fn case_units(&self, case_id: i64) -> Result<Vec<CaseUnitRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT case_id, unit, status, data_json, updated_at
             FROM case_units WHERE case_id = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([case_id], case_unit_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).expect("ts")
    }

    static TICKET: std::sync::LazyLock<TicketNo> =
        std::sync::LazyLock::new(|| TicketNo::parse("DH2026001").expect("ticket"));
    static UNIT: std::sync::LazyLock<UnitName> =
        std::sync::LazyLock::new(|| UnitName::unchecked("区住建局"));

    fn new_case(case_no: &CaseNo, created: Timestamp) -> NewCase<'_> {
        NewCase {
            case_no,
            ticket_no: &TICKET,
            first_unit: &UNIT,
            urgent: true,
            state: "submitted",
            data_json: r#"{"a":1}"#,
            created_at: created,
        }
    }

    #[test]
    fn case_numbers_are_monotonic_per_year() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let nos = store
            .write_blocking(|tx| -> Result<_, StoreError> {
                Ok(vec![
                    tx.next_case_no(2026)?,
                    tx.next_case_no(2026)?,
                    tx.next_case_no(2027)?,
                ])
            })
            .expect("write");
        assert_eq!(nos, ["TC-2026-0001", "TC-2026-0002", "TC-2027-0001"]);
        // A rolled-back transaction does not consume a number.
        let _ = store.write_blocking(|tx| {
            tx.next_case_no(2026)?;
            Err::<(), _>(StoreError::Abort("test".into()))
        });
        let next = store
            .write_blocking(|tx| tx.next_case_no(2026))
            .expect("write");
        assert_eq!(next, "TC-2026-0003");
    }

    #[test]
    fn optimistic_update_detects_conflicts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let id = store
            .write_blocking(|tx| tx.insert_case(&new_case(&CaseNo::new(2026, 1), at(1000))))
            .expect("insert");
        let rev = store
            .write_blocking(move |tx| tx.update_case(id, 1, "reviewing", r#"{"a":2}"#, at(2000)))
            .expect("update at revision 1");
        assert_eq!(rev, 2);
        let stale = store
            .write_blocking(move |tx| tx.update_case(id, 1, "decided", r#"{"a":3}"#, at(3000)))
            .expect_err("revision 1 is stale");
        assert!(matches!(stale, StoreError::Conflict { .. }), "{stale:?}");
        let missing = store
            .write_blocking(|tx| tx.update_case(9999, 1, "x", "{}", at(3000)))
            .expect_err("no such case");
        assert!(
            matches!(missing, StoreError::NotFound { .. }),
            "{missing:?}"
        );

        let row = store
            .read_blocking(|r| r.case_by_no(&CaseNo::new(2026, 1)))
            .expect("read")
            .expect("row");
        assert_eq!(
            (row.state.as_str(), row.revision, row.data_json.as_str()),
            ("reviewing", 2, r#"{"a":2}"#)
        );
        assert_eq!((row.created_at, row.updated_at), (at(1000), at(2000)));
        assert!(row.urgent);
    }

    #[test]
    fn tickets_versions_and_units() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let (old, new) = store
            .write_blocking(|tx| -> Result<_, StoreError> {
                let old = tx.insert_case(&new_case(&CaseNo::new(2026, 1), at(1000)))?;
                let new = tx.insert_case(&new_case(&CaseNo::new(2026, 2), at(5000)))?;
                tx.insert_case_version(new, 1, r#"{"v":1}"#, "staff1", at(5000))?;
                tx.insert_case_version(new, 2, r#"{"v":2}"#, "staff1", at(6000))?;
                tx.upsert_case_unit(new, "区住建局", "first", "{}", at(5000))?;
                tx.upsert_case_unit(new, "区城市管理局", "requested", "{}", at(5000))?;
                tx.upsert_case_unit(
                    new,
                    "区城市管理局",
                    "accepted",
                    r#"{"contact":"x"}"#,
                    at(7000),
                )?;
                Ok((old, new))
            })
            .expect("write");
        let dup = store
            .write_blocking(move |tx| tx.insert_case_version(new, 2, "{}", "staff1", at(8000)))
            .expect_err("version numbers are unique per case");
        assert!(matches!(dup, StoreError::Sqlite { .. }), "{dup:?}");

        let (by_ticket, versions, units, open) = store
            .read_blocking(move |r| -> Result<_, StoreError> {
                Ok((
                    r.case_by_ticket(&TicketNo::parse("DH2026001").expect("ticket"))?,
                    r.case_versions(new)?,
                    r.case_units(new)?,
                    r.cases_in_states(&["submitted", "reviewing"])?,
                ))
            })
            .expect("read");
        assert_eq!(
            by_ticket.iter().map(|c| c.id).collect::<Vec<_>>(),
            [new, old],
            "newest first"
        );
        assert_eq!(
            versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(units.len(), 2);
        assert_eq!(units[1].status, "accepted");
        assert_eq!(units[1].updated_at, at(7000));
        assert_eq!(open.len(), 2);
    }

    #[test]
    fn foreign_keys_are_enforced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let err = store
            .write_blocking(|tx| tx.upsert_case_unit(42, "区住建局", "first", "{}", at(0)))
            .expect_err("no case 42");
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
