//! Interactive cards by their DingTalk `outTrackId`: which case and kind each card is, who got
//! it and what it shows now, so every action can update the same card in place and a card
//! callback can be traced back to its case.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::{ReadTx, StoreError, Tx, ms, ts_col};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRow {
    pub out_track_id: String,
    pub case_id: Option<i64>,
    pub kind: String,
    /// JSON array of staff ids.
    pub recipients_json: String,
    /// The card's current public data, as last sent.
    pub data_json: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const CARD_COLUMNS: &str =
    "out_track_id, case_id, kind, recipients_json, data_json, created_at, updated_at";

fn card_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CardRow> {
    Ok(CardRow {
        out_track_id: r.get(0)?,
        case_id: r.get(1)?,
        kind: r.get(2)?,
        recipients_json: r.get(3)?,
        data_json: r.get(4)?,
        created_at: ts_col(r, 5)?,
        updated_at: ts_col(r, 6)?,
    })
}

impl Tx<'_> {
    /// Records a card when first created, or its new content when updated; `created_at` stays
    /// the first `at`.
    pub fn upsert_card(
        &self,
        out_track_id: &str,
        case_id: Option<i64>,
        kind: &str,
        recipients_json: &str,
        data_json: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO cards (out_track_id, case_id, kind, recipients_json, data_json,
                                    created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT (out_track_id) DO UPDATE
                 SET case_id = excluded.case_id, kind = excluded.kind,
                     recipients_json = excluded.recipients_json, data_json = excluded.data_json,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![
                out_track_id,
                case_id,
                kind,
                recipients_json,
                data_json,
                ms(at)
            ])?;
        Ok(())
    }
}

impl ReadTx<'_> {
    pub fn card(&self, out_track_id: &str) -> Result<Option<CardRow>, StoreError> {
        let sql = format!("SELECT {CARD_COLUMNS} FROM cards WHERE out_track_id = ?1");
        Ok(self
            .conn()
            .prepare_cached(&sql)?
            .query_row([out_track_id], card_row)
            .optional()?)
    }

    /// Every card of a case, oldest first.
    pub fn cards_for_case(&self, case_id: i64) -> Result<Vec<CardRow>, StoreError> {
        let sql = format!(
            "SELECT {CARD_COLUMNS} FROM cards WHERE case_id = ?1 ORDER BY created_at, out_track_id"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([case_id], card_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    #[test]
    fn upsert_keeps_creation_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let t1 = Timestamp::from_millisecond(1_000).expect("ts");
        let t2 = Timestamp::from_millisecond(2_000).expect("ts");
        store
            .write_blocking(move |tx| {
                tx.upsert_card("trk-1", None, "review", r#"["u1","u2"]"#, r#"{"v":1}"#, t1)?;
                tx.upsert_card("trk-1", None, "review", r#"["u1","u2"]"#, r#"{"v":2}"#, t2)
            })
            .expect("write");
        let card = store
            .read_blocking(|r| r.card("trk-1"))
            .expect("read")
            .expect("card");
        assert_eq!((card.created_at, card.updated_at), (t1, t2));
        assert_eq!(card.data_json, r#"{"v":2}"#);
        assert_eq!(store.read_blocking(|r| r.card("nope")).expect("read"), None);
    }
}
