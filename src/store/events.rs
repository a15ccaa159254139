//! The audit event log: every state change, answer, late answer, objection, supervision and
//! message, with who and when. Reports are computed from it, never from counters, so it is
//! append-only: the schema's triggers refuse UPDATE and DELETE, and this file offers neither.

use jiff::Timestamp;
use rusqlite::params;

use super::{ReadTx, StoreError, Tx, ms, ts_col};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Increases with every append and is never reused.
    pub id: i64,
    /// None for events about no single case (e.g. a roster reload).
    pub case_id: Option<i64>,
    pub kind: String,
    /// Staff id of whoever acted, or `"system"` for the scheduler.
    pub actor: String,
    pub at: Timestamp,
    pub data_json: String,
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        case_id: r.get(1)?,
        kind: r.get(2)?,
        actor: r.get(3)?,
        at: ts_col(r, 4)?,
        data_json: r.get(5)?,
    })
}

impl Tx<'_> {
    /// Appends one event; returns its id.
    pub fn append_event(
        &self,
        case_id: Option<i64>,
        kind: &str,
        actor: &str,
        at: Timestamp,
        data_json: &str,
    ) -> Result<i64, StoreError> {
        let id = self
            .conn()
            .prepare_cached(
                "INSERT INTO events (case_id, kind, actor, at, data_json)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            )?
            .query_row(params![case_id, kind, actor, ms(at), data_json], |r| {
                r.get(0)
            })?;
        Ok(id)
    }
}

impl ReadTx<'_> {
    /// A case's events in the order they were appended.
    pub fn events_for_case(&self, case_id: i64) -> Result<Vec<EventRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, case_id, kind, actor, at, data_json
             FROM events WHERE case_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([case_id], event_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Events with `from <= at < to`, by time then append order (for reports).
    pub fn events_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<EventRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, case_id, kind, actor, at, data_json
             FROM events WHERE at >= ?1 AND at < ?2 ORDER BY at, id",
        )?;
        let rows = stmt.query_map([ms(from), ms(to)], event_row)?;
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

    #[test]
    fn append_and_query() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let case_id = store
            .write_blocking(|tx| -> Result<_, StoreError> {
                let case_id = tx.insert_case(&super::super::NewCase {
                    case_no: "TC-2026-0001",
                    ticket_no: "DH1",
                    first_unit: "区住建局",
                    urgent: false,
                    state: "submitted",
                    data_json: "{}",
                    created_at: at(0),
                })?;
                tx.append_event(Some(case_id), "submitted", "staff1", at(300), "{}")?;
                tx.append_event(Some(case_id), "claimed", "inspector1", at(100), "{}")?;
                tx.append_event(
                    None,
                    "roster_reloaded",
                    "system",
                    at(200),
                    r#"{"units":30}"#,
                )?;
                Ok(case_id)
            })
            .expect("write");
        let (mine, window) = store
            .read_blocking(move |r| -> Result<_, StoreError> {
                Ok((
                    r.events_for_case(case_id)?,
                    r.events_between(at(100), at(300))?,
                ))
            })
            .expect("read");
        assert_eq!(
            mine.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            ["submitted", "claimed"]
        );
        assert_eq!(
            window.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            ["claimed", "roster_reloaded"],
            "half-open window, ordered by time"
        );
        assert_eq!(window[1].case_id, None);
    }

    #[test]
    fn invalid_json_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        store
            .write_blocking(|tx| tx.append_event(None, "k", "a", at(0), "{not json"))
            .expect_err("json_valid check");
    }
}
