//! The audit event log: every state change, answer, late answer, objection, supervision and
//! message, with who and when. Reports are computed from it, never from counters, so it is
//! append-only: the schema's triggers refuse UPDATE and DELETE, and this file offers neither.

use jiff::Timestamp;
use rusqlite::params;

use super::{ReadTx, StoreError, Tx, ms, ts_col};
use crate::domain::UnitName;
use crate::workflow::{Event, EventData, EventKind};

/// One stored event, its data read back into [`EventData`].
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Increases with every append and is never reused.
    pub id: i64,
    /// None for events about no single case.
    pub case_id: Option<i64>,
    /// Staff id of whoever acted, or `"system"` for the scheduler.
    pub actor: String,
    pub at: Timestamp,
    /// The unit the fact is about, when there is one (stored inside `data_json` as `"unit"`).
    pub unit: Option<UnitName>,
    pub data: EventData,
}

impl EventRow {
    pub fn kind(&self) -> EventKind {
        self.data.kind()
    }
}

/// The columns as stored, before the data is read.
struct RawEvent {
    id: i64,
    case_id: Option<i64>,
    kind: String,
    actor: String,
    at: Timestamp,
    data_json: String,
}

fn raw_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok(RawEvent {
        id: r.get(0)?,
        case_id: r.get(1)?,
        kind: r.get(2)?,
        actor: r.get(3)?,
        at: ts_col(r, 4)?,
        data_json: r.get(5)?,
    })
}

impl RawEvent {
    /// A row this build cannot read is an error, never skipped: the statistics that name units
    /// in a 通报 count these rows.
    fn typed(self) -> Result<EventRow, StoreError> {
        let (data, unit) = EventData::from_stored(&self.kind, &self.data_json).map_err(|e| {
            StoreError::BadData(format!(
                "事件 #{}（{}）的数据无法读取：{e}；该事件可能由更新版本的 tiaochu 写入",
                self.id, self.kind
            ))
        })?;
        Ok(EventRow {
            id: self.id,
            case_id: self.case_id,
            actor: self.actor,
            at: self.at,
            unit,
            data,
        })
    }
}

impl Tx<'_> {
    /// Appends `event`, about case `case_id`; returns its id.
    pub fn append_event(&self, case_id: Option<i64>, event: &Event) -> Result<i64, StoreError> {
        let stored = event
            .data
            .to_stored(event.unit.as_deref())
            .map_err(|e| StoreError::BadData(format!("无法保存事件数据：{e}")))?;
        self.insert_event(
            case_id,
            &stored.kind,
            &event.actor,
            event.at,
            &stored.data_json,
        )
    }

    /// The INSERT itself; tests reach it to store rows the typed writer cannot produce.
    pub(super) fn insert_event(
        &self,
        case_id: Option<i64>,
        kind: &str,
        actor: &str,
        at: Timestamp,
        data_json: &str,
    ) -> Result<i64, StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO events (case_id, kind, actor, at, data_json)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![case_id, kind, actor, ms(at), data_json])?;
        Ok(self.conn().last_insert_rowid())
    }
}

impl ReadTx<'_> {
    /// A case's events in the order they were appended.
    pub fn events_for_case(&self, case_id: i64) -> Result<Vec<EventRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, case_id, kind, actor, at, data_json
             FROM events WHERE case_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([case_id], raw_event)?;
        rows.map(|r| r.map_err(StoreError::from).and_then(RawEvent::typed))
            .collect()
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
        let rows = stmt.query_map([ms(from), ms(to)], raw_event)?;
        rows.map(|r| r.map_err(StoreError::from).and_then(RawEvent::typed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).expect("ts")
    }

    fn event(at: Timestamp, actor: &str, unit: Option<&str>, data: EventData) -> Event {
        Event {
            at,
            actor: actor.to_string(),
            unit: unit.map(UnitName::unchecked),
            data,
        }
    }

    fn new_case(tx: &Tx<'_>) -> Result<i64, StoreError> {
        tx.insert_case(&super::super::NewCase {
            case_no: &crate::domain::CaseNo::new(2026, 1),
            ticket_no: &crate::domain::TicketNo::parse("DH2026001").expect("ticket"),
            first_unit: &UnitName::unchecked("区住建局"),
            urgent: false,
            state: "submitted",
            data_json: "{}",
            created_at: at(0),
        })
    }

    #[test]
    fn append_and_query() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let completed = EventData::Completed { on_time: true };
        let claimed = EventData::Claimed {
            version: 1,
            on_time: false,
        };
        let typical = EventData::TypicalMarked { revised: false };
        let written = completed.clone();
        let (case_id, other) = store
            .write_blocking(move |tx| -> Result<_, StoreError> {
                let case_id = new_case(tx)?;
                let e = event(at(300), "staff1", Some("区住建局"), written);
                tx.append_event(Some(case_id), &e)?;
                tx.append_event(Some(case_id), &event(at(100), "inspector1", None, claimed))?;
                let other = tx.append_event(None, &event(at(200), "system", None, typical))?;
                Ok((case_id, other))
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
            mine.iter().map(EventRow::kind).collect::<Vec<_>>(),
            [EventKind::Completed, EventKind::Claimed]
        );
        assert_eq!(mine[0].data, completed);
        assert_eq!(mine[0].unit.as_deref(), Some("区住建局"));
        assert_eq!(mine[1].unit, None);
        assert_eq!(
            window.iter().map(EventRow::kind).collect::<Vec<_>>(),
            [EventKind::Claimed, EventKind::TypicalMarked],
            "half-open window, ordered by time"
        );
        assert_eq!((window[1].id, window[1].case_id), (other, None));
    }

    #[test]
    fn the_unit_is_stored_inside_the_data_as_every_release_did() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let e = event(
            at(0),
            "system",
            Some("区城市管理局"),
            EventData::UnitOverdue { due: at(0) },
        );
        store
            .write_blocking(move |tx| tx.append_event(None, &e))
            .expect("write");
        let stored: (String, String) = store
            .read_blocking(|r| -> Result<_, StoreError> {
                Ok(r.conn()
                    .query_row("SELECT kind, data_json FROM events", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?)
            })
            .expect("read");
        assert_eq!(
            stored,
            (
                "unit_overdue".to_string(),
                r#"{"due":"1970-01-01T00:00:00Z","unit":"区城市管理局"}"#.to_string()
            )
        );
    }

    #[test]
    fn an_unreadable_row_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let case_id = store
            .write_blocking(|tx| -> Result<_, StoreError> {
                let case_id = new_case(tx)?;
                tx.insert_event(Some(case_id), "completed", "a", at(0), r#"{"ontime":true}"#)?;
                Ok(case_id)
            })
            .expect("write");
        let err = store
            .read_blocking(move |r| r.events_for_case(case_id))
            .expect_err("a misspelt field is refused");
        let text = err.to_string();
        assert!(
            text.contains("（completed）") && text.contains("ontime"),
            "{text}"
        );
    }

    #[test]
    fn invalid_json_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        store
            .write_blocking(|tx| tx.insert_event(None, "k", "a", at(0), "{not json"))
            .expect_err("json_valid check");
    }
}
