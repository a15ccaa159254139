//! Stored events stay readable across releases. `tests/fixtures/events/release-v11.jsonl` holds one
//! line per kind and field set the v11 release writes (captured by driving this suite's engine and
//! workflow scenarios and dumping the `events` table's `kind` and `data_json`). Every line must
//! read into [`EventData`] — an unknown kind or field fails — and write back byte for byte, and
//! every [`EventKind`] needs a line: a new variant needs a fixture line, and a stored field is
//! never renamed (docs/architecture.md → Audit events).

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{Map, Value};
use tiaochu::store::{Store, StoreError};
use tiaochu::workflow::{EventData, EventKind};

const FIXTURE: &str = include_str!("../fixtures/events/release-v11.jsonl");

/// One fixture line: the `kind` column and the `data_json` column as a JSON object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    kind: String,
    data: Map<String, Value>,
}

/// (line text, kind, data_json exactly as stored).
fn lines() -> Vec<(&'static str, String, String)> {
    FIXTURE
        .lines()
        .map(|text| {
            let line: Line = serde_json::from_str(text).expect("fixture line");
            let data_json = Value::Object(line.data).to_string();
            assert!(
                text.contains(&format!(r#""data":{data_json}"#)),
                "the fixture keeps data_json as stored (compact, keys sorted): {text}"
            );
            (text, line.kind, data_json)
        })
        .collect()
}

fn kind_name(kind: EventKind) -> String {
    match serde_json::to_value(kind) {
        Ok(Value::String(name)) => name,
        other => panic!("{kind:?} is stored as {other:?}"),
    }
}

#[test]
fn every_stored_shape_reads_and_writes_back_byte_for_byte() {
    let lines = lines();
    assert!(lines.len() >= EventKind::ALL.len(), "{}", lines.len());
    let mut seen = BTreeSet::new();
    for (text, kind, data_json) in &lines {
        assert!(seen.insert(*text), "duplicate fixture line {text}");
        let (data, unit) = EventData::from_stored(kind, data_json)
            .unwrap_or_else(|e| panic!("cannot read {text}: {e}"));
        assert_eq!(&kind_name(data.kind()), kind, "{text}");
        let stored = data.to_stored(unit.as_deref()).expect("write back");
        assert_eq!(
            (&stored.kind, &stored.data_json),
            (kind, data_json),
            "written back differently: {text}"
        );
    }
}

#[test]
fn every_event_kind_has_a_fixture_line() {
    let kinds: BTreeSet<String> = lines().into_iter().map(|(_, kind, _)| kind).collect();
    let missing: Vec<String> = EventKind::ALL
        .iter()
        .map(|k| kind_name(*k))
        .filter(|name| !kinds.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "add a line for each new kind to tests/fixtures/events/release-v11.jsonl: {missing:?}"
    );
    assert_eq!(kinds.len(), EventKind::ALL.len(), "{kinds:?}");
}

/// A renamed or misspelt field, an extra field or a new kind is refused, not skipped: a report
/// reading it would otherwise count it wrongly.
#[test]
fn a_changed_stored_shape_is_refused() {
    for (text, kind, data_json) in lines() {
        let mut data: Map<String, Value> = serde_json::from_str(&data_json).expect("object");
        data.insert("renamed_field".to_string(), Value::Bool(true));
        let extra = Value::Object(data.clone()).to_string();
        assert!(
            EventData::from_stored(&kind, &extra).is_err(),
            "an unknown field was accepted: {text}"
        );
        data.remove("renamed_field");
        if let Some(first) = data.keys().find(|k| *k != "unit").cloned() {
            let value = data.remove(&first).expect("field");
            data.insert(format!("{first}_x"), value);
            let renamed = Value::Object(data).to_string();
            assert!(
                EventData::from_stored(&kind, &renamed).is_err(),
                "a renamed field was accepted: {text}"
            );
        }
        assert!(
            EventData::from_stored(&format!("{kind}_v2"), &data_json).is_err(),
            "an unknown kind was accepted: {text}"
        );
    }
}

/// The store reads rows written by the earlier release through the same types.
#[test]
fn the_store_reads_every_fixture_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    let store = Store::open_initialising(&path).expect("store");
    let lines = lines();
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        for (i, (_, kind, data_json)) in lines.iter().enumerate() {
            conn.execute(
                "INSERT INTO events (case_id, kind, actor, at, data_json) VALUES (NULL, ?1, 'system', ?2, ?3)",
                rusqlite::params![kind, i64::try_from(i).expect("index") * 1000, data_json],
            )
            .expect("insert");
        }
    }
    let rows = store
        .read_blocking(|r| -> Result<_, StoreError> {
            r.events_between(jiff::Timestamp::UNIX_EPOCH, jiff::Timestamp::MAX)
        })
        .expect("every row reads");
    assert_eq!(rows.len(), lines.len());
    for (row, (text, kind, data_json)) in rows.iter().zip(&lines) {
        let (data, unit) = EventData::from_stored(kind, data_json).expect("reads");
        assert_eq!((&row.data, &row.unit), (&data, &unit), "{text}");
    }
}
