//! Integration tests: the store through its public API, on real files in a temp directory
//! (migrations, pragmas, dedupe under concurrency, atomic rollback, append-only events, outbox
//! leases, timers, online backup) and the `migrate` / `backup` commands.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use jiff::{Timestamp, ToSpan};
use tiaochu::store::{
    InboxInsert, NewCase, NewInbound, NewOutbound, NewTimer, OutboxState, SCHEMA_VERSION, Store,
    StoreError, TimerState,
};
use tiaochu::workflow::{Event, EventData, EventKind};

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(1_780_000_000_000 + ms).expect("timestamp in range")
}

fn event(actor: &str, at: Timestamp, data: EventData) -> Event {
    Event {
        at,
        actor: actor.to_string(),
        unit: None,
        data,
    }
}

fn progress(text: &str) -> EventData {
    EventData::Progress {
        text: text.to_string(),
    }
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("tiaochu.db")).expect("open store");
    (dir, store)
}

static TICKET: std::sync::LazyLock<tiaochu::domain::TicketNo> =
    std::sync::LazyLock::new(|| crate::support::ticket_no("DH20261100123"));
static FIRST_UNIT: std::sync::LazyLock<tiaochu::domain::UnitName> =
    std::sync::LazyLock::new(|| crate::support::unit_named("区住房和城乡建设局"));

fn case(case_no: &tiaochu::domain::CaseNo) -> NewCase<'_> {
    NewCase {
        case_no,
        ticket_no: &TICKET,
        first_unit: &FIRST_UNIT,
        urgent: false,
        state: "submitted",
        data_json: r#"{"title":"小区供暖不热"}"#,
        created_at: at(0),
    }
}

fn count(path: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open raw");
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_and_pragmas_are_in_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiaochu.db");

    let store = Store::open(&path).expect("create");
    let report = store.migration_report();
    assert_eq!((report.before, report.after), (0, SCHEMA_VERSION));
    let pragmas = store.pragmas().await.expect("pragmas");
    assert_eq!(pragmas.journal_mode, "wal");
    assert_eq!(
        pragmas.synchronous, 1,
        "synchronous=NORMAL: the sync thread does the fsyncs"
    );
    assert_eq!(pragmas.busy_timeout_ms, 5000);
    assert!(pragmas.foreign_keys);
    let case_id = store
        .write(|tx| {
            let no = tx.next_case_no(2026)?;
            tx.insert_case(&case(&no))
        })
        .await
        .expect("write");
    drop(store);

    let again = Store::open(&path).expect("reopen");
    let report = again.migration_report();
    assert_eq!(
        (report.before, report.after),
        (SCHEMA_VERSION, SCHEMA_VERSION),
        "nothing to redo"
    );
    assert_eq!(
        again.schema_version_blocking().expect("version"),
        SCHEMA_VERSION
    );
    assert!(again.pragmas().await.expect("pragmas").foreign_keys);
    let row = again
        .read(|r| r.case_by_no(&crate::support::case_no("TC-2026-0001")))
        .await
        .expect("read")
        .expect("the case survived the reopen");
    assert_eq!(row.id, case_id);
    assert_eq!(row.data_json, r#"{"title":"小区供暖不热"}"#);

    let tables: Vec<String> = rusqlite::Connection::open(&path)
        .expect("raw")
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for t in [
        "case_counters",
        "case_units",
        "case_versions",
        "cases",
        "cards",
        "events",
        "inbox",
        "outbox",
        "timers",
    ] {
        assert!(
            tables.iter().any(|x| x == t),
            "missing table {t}: {tables:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn the_inbox_dedupes_concurrent_deliveries() {
    let (_dir, store) = temp_store();
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    let mut tasks = Vec::new();
    for n in 0..3 {
        let store = store.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .write(move |tx| {
                    tx.insert_inbox(&NewInbound {
                        source: "stream",
                        message_id: "msg-0001",
                        received_at: at(n),
                        payload: r#"{"text":"审核 DH20261100123"}"#,
                    })
                })
                .await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("join").expect("insert"));
    }
    let inserted: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, InboxInsert::Inserted(_)))
        .collect();
    assert_eq!(inserted.len(), 1, "{outcomes:?}");
    let id = inserted[0].id();
    assert!(
        outcomes.iter().all(|o| o.id() == id),
        "duplicates point at the first copy: {outcomes:?}"
    );
    let pending = store.read(|r| r.pending_inbox(10)).await.expect("read");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].message_id, "msg-0001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_leaves_nothing_behind() {
    let (dir, store) = temp_store();
    let mut timers_changed = store.timers_changed();

    let err = store
        .write(|tx| {
            let no = tx.next_case_no(2026)?;
            let id = tx.insert_case(&case(&no))?;
            tx.insert_case_version(id, 1, "{}", "liaison-1", at(0))?;
            tx.upsert_case_unit(id, "区住房和城乡建设局", "first", "{}", at(0))?;
            tx.append_event(Some(id), &event("liaison-1", at(0), progress("已受理")))?;
            tx.enqueue_outbox(&NewOutbound {
                idem_key: "receipt:1",
                channel: "robot_1to1",
                target: "liaison-1",
                payload: b"{}",
                not_before: at(0),
            })?;
            tx.set_timer(&NewTimer {
                key: "case:1:review_start",
                case_id: Some(id),
                kind: "review_start",
                due_at: at(3_600_000),
                payload_json: "{}",
            })?;
            tx.upsert_card("trk-1", Some(id), "review", "[]", "{}", at(0))?;
            tx.insert_inbox(&NewInbound {
                source: "robot",
                message_id: "m1",
                received_at: at(0),
                payload: "{}",
            })?;
            Err::<(), _>(StoreError::Abort("收到重复申请".into()))
        })
        .await
        .expect_err("the closure failed");
    assert!(matches!(err, StoreError::Abort(_)), "{err:?}");

    let db = dir.path().join("tiaochu.db");
    for table in [
        "case_counters",
        "cases",
        "case_versions",
        "case_units",
        "events",
        "outbox",
        "timers",
        "cards",
        "inbox",
    ] {
        assert_eq!(
            count(&db, table),
            0,
            "{table} must be empty after a rollback"
        );
    }
    assert!(
        !timers_changed.has_changed().expect("sender alive"),
        "no wake-up for a rolled-back timer"
    );

    // The same work committed does wake the scheduler.
    store
        .write(|tx| {
            tx.set_timer(&NewTimer {
                key: "k",
                case_id: None,
                kind: "x",
                due_at: at(5),
                payload_json: "{}",
            })
        })
        .await
        .expect("commit");
    assert!(timers_changed.has_changed().expect("sender alive"));
    timers_changed.borrow_and_update();
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let s = store.clone();
        s.write(|tx| tx.cancel_timer("k")).await.expect("cancel");
        timers_changed.changed().await.expect("woken");
    })
    .await
    .expect("a cancel also wakes the scheduler");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_append_only() {
    let (dir, store) = temp_store();
    store
        .write(|tx| tx.append_event(None, &event("system", at(0), progress("已受理"))))
        .await
        .expect("append");
    let conn = rusqlite::Connection::open(dir.path().join("tiaochu.db")).expect("raw");
    let update = conn
        .execute("UPDATE events SET kind = 'tampered'", [])
        .expect_err("update refused");
    assert!(update.to_string().contains("append-only"), "{update}");
    let delete = conn
        .execute("DELETE FROM events", [])
        .expect_err("delete refused");
    assert!(delete.to_string().contains("append-only"), "{delete}");
    let events = store
        .read(|r| r.events_between(at(-1), at(1)))
        .await
        .expect("read");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind(), EventKind::Progress);
}

fn outbound<'a>(key: &'a str, payload: &'a [u8], not_before: Timestamp) -> NewOutbound<'a> {
    NewOutbound {
        idem_key: key,
        channel: "card",
        target: r#"["staff-1"]"#,
        payload,
        not_before,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_enqueue_is_idempotent_and_keeps_exact_bytes() {
    let (_dir, store) = temp_store();
    let bytes: &'static [u8] =
        b"{\"msgParam\":\"{\\\"content\\\":\\\"\xe4\xbd\xa0\xe5\xa5\xbd\\\"}\"}\xff";
    let (a, b, backlog) = store
        .write(move |tx| -> Result<_, tiaochu::store::StoreError> {
            let a = tx.enqueue_outbox(&outbound("coord:1:区城市管理局", bytes, at(0)))?;
            let b = tx.enqueue_outbox(&outbound("coord:1:区城市管理局", b"other", at(99)))?;
            Ok((a, b, tx.outbox_backlog()?))
        })
        .await
        .expect("enqueue");
    assert_eq!(a, b, "same key, same row");
    assert_eq!(backlog, (1, 0));
    let row = store
        .read(move |r| r.outbox(a))
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        row.payload, bytes,
        "the first payload is kept byte for byte"
    );
    assert_eq!(row.next_attempt_at, at(0));
    assert_eq!((row.state, row.attempts), (OutboxState::Pending, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_leases_retries_and_dead_letters() {
    let (_dir, store) = temp_store();
    store
        .write(|tx| -> Result<_, tiaochu::store::StoreError> {
            tx.enqueue_outbox(&outbound("b", b"2", at(20)))?;
            tx.enqueue_outbox(&outbound("a", b"1", at(10)))?;
            tx.enqueue_outbox(&outbound("later", b"3", at(100_000)))?;
            Ok(())
        })
        .await
        .expect("enqueue");

    let now = at(100);
    let lease = now + 30.seconds();
    let claimed = store
        .write(move |tx| tx.claim_due_outbox(now, lease, 10))
        .await
        .expect("claim");
    assert_eq!(
        claimed
            .iter()
            .map(|r| r.idem_key.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"],
        "due ones, in due order"
    );
    assert!(claimed.iter().all(|r| r.lease_until == Some(lease)));

    let again = store
        .write(move |tx| tx.claim_due_outbox(now + 1.second(), lease, 10))
        .await
        .expect("claim");
    assert!(
        again.is_empty(),
        "a held lease prevents a second claim: {again:?}"
    );

    let next = store.read(|r| r.next_outbox_due()).await.expect("read");
    assert_eq!(
        next,
        Some(lease),
        "the worker wakes when the lease runs out"
    );

    // The worker holding "a" crashed; once its lease expires the row is claimable again.
    let (a_id, b_id) = (claimed[0].id, claimed[1].id);
    let sent = store
        .write(move |tx| tx.mark_sent(b_id, now, r#"{"errcode":0}"#))
        .await
        .expect("mark sent");
    assert!(sent);
    let reclaimed = store
        .write(move |tx| tx.claim_due_outbox(lease, lease + 30.seconds(), 10))
        .await
        .expect("claim");
    assert_eq!(reclaimed.iter().map(|r| r.id).collect::<Vec<_>>(), [a_id]);

    // A transient failure: retried later, with the attempt and the error recorded.
    let retry_at = lease + 1.minute();
    assert!(
        store
            .write(move |tx| tx.mark_retry(a_id, retry_at, "HTTP 429 限流"))
            .await
            .expect("retry")
    );
    let not_yet = store
        .write(move |tx| tx.claim_due_outbox(retry_at - 1.second(), retry_at, 10))
        .await
        .expect("claim");
    assert!(not_yet.is_empty(), "{not_yet:?}");
    let retried = store
        .write(move |tx| tx.claim_due_outbox(retry_at, retry_at + 30.seconds(), 10))
        .await
        .expect("claim");
    assert_eq!(retried.len(), 1);
    assert_eq!(
        (retried[0].attempts, retried[0].last_error.as_deref()),
        (1, Some("HTTP 429 限流"))
    );

    // A permanent failure: dead-lettered with the reason, until an admin retries it.
    assert!(
        store
            .write(move |tx| tx.mark_dead(a_id, "用户不存在", retry_at))
            .await
            .expect("dead")
    );
    assert!(
        !store
            .write(move |tx| tx.mark_sent(a_id, retry_at, ""))
            .await
            .expect("sent?"),
        "a dead row stays dead"
    );
    let (backlog, dead) = store
        .read(|r| -> Result<_, tiaochu::store::StoreError> {
            Ok((
                r.outbox_backlog()?,
                r.list_outbox(Some(OutboxState::Dead), 10)?,
            ))
        })
        .await
        .expect("read");
    assert_eq!(backlog, (1, 1), "\"later\" pending, \"a\" dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].id, dead[0].attempts, dead[0].dead_at),
        (a_id, 2, Some(retry_at))
    );

    let revived = store
        .write(move |tx| tx.retry_outbox(a_id, retry_at))
        .await
        .expect("revive");
    assert!(revived);
    let row = store
        .read(move |r| r.outbox(a_id))
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        (row.state, row.attempts, row.dead_at),
        (OutboxState::Pending, 0, None)
    );
    assert_eq!(
        row.last_error.as_deref(),
        Some("用户不存在"),
        "the reason is kept for the admin"
    );
    assert_eq!(
        store
            .read(|r| r.list_outbox(None, 10))
            .await
            .expect("list")
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_claim_the_same_row() {
    let (_dir, store) = temp_store();
    store
        .write(|tx| -> Result<_, tiaochu::store::StoreError> {
            for i in 0..40 {
                tx.enqueue_outbox(&outbound(&format!("k{i}"), b"x", at(i)))?;
            }
            Ok(())
        })
        .await
        .expect("enqueue");
    let claim = |store: Store| {
        tokio::spawn(async move {
            store
                .write(|tx| tx.claim_due_outbox(at(1000), at(60_000), 25))
                .await
                .expect("claim")
        })
    };
    let (x, y) = tokio::join!(claim(store.clone()), claim(store.clone()));
    let (x, y) = (x.expect("join"), y.expect("join"));
    let mut ids: Vec<i64> = x.iter().chain(&y).map(|r| r.id).collect();
    assert_eq!(ids.len(), 40, "25 + 15");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 40, "no row was claimed by both workers");
}

fn timer<'a>(key: &'a str, due: Timestamp) -> NewTimer<'a> {
    NewTimer {
        key,
        case_id: None,
        kind: "remind",
        due_at: due,
        payload_json: r#"{"n":1}"#,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_in_due_order_and_once() {
    let (_dir, store) = temp_store();
    let ids = store
        .write(|tx| -> Result<_, tiaochu::store::StoreError> {
            let c = tx.set_timer(&timer("c", at(300)))?;
            let a = tx.set_timer(&timer("a", at(100)))?;
            tx.set_timer(&timer("b", at(900)))?;
            // Re-setting a pending key moves it (here earlier) instead of adding a row.
            let b = tx.set_timer(&timer("b", at(200)))?;
            tx.set_timer(&timer("future", at(10_000)))?;
            tx.set_timer(&timer("cancelled", at(50)))?;
            assert!(tx.cancel_timer("cancelled")?);
            assert!(
                !tx.cancel_timer("cancelled")?,
                "only a pending timer cancels"
            );
            Ok([a, b, c])
        })
        .await
        .expect("set");

    let (due, next) = store
        .read(|r| Ok::<_, StoreError>((r.due_timers(at(1000), 10)?, r.next_due()?)))
        .await
        .expect("read");
    assert_eq!(
        due.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(due.iter().map(|t| t.id).collect::<Vec<_>>(), ids);
    assert_eq!(due[1].due_at, at(200));
    assert_eq!(next, Some(at(100)));
    let limited = store
        .read(|r| r.due_timers(at(1000), 2))
        .await
        .expect("read");
    assert_eq!(limited.len(), 2);

    let a = ids[0];
    let (first, second) = store
        .write(move |tx| {
            Ok::<_, StoreError>((tx.mark_fired(a, at(1000))?, tx.mark_fired(a, at(1001))?))
        })
        .await
        .expect("fire");
    assert!(first && !second, "a timer fires once");
    let fired = store
        .read(|r| r.timer_by_key("a"))
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        (fired.state, fired.fired_at),
        (TimerState::Fired, Some(at(1000)))
    );
    let (due, next) = store
        .read(|r| Ok::<_, StoreError>((r.due_timers(at(1000), 10)?, r.next_due()?)))
        .await
        .expect("read");
    assert_eq!(
        due.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        ["b", "c"]
    );
    assert_eq!(next, Some(at(200)));

    let cancelled = store
        .read(|r| r.timer_by_key("cancelled"))
        .await
        .expect("read")
        .expect("row");
    assert_eq!(cancelled.state, TimerState::Cancelled);
    assert!(
        !store
            .write(move |tx| tx.mark_fired(cancelled.id, at(1000)))
            .await
            .expect("fire")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_a_live_database() {
    let (dir, store) = temp_store();
    // Enough data that VACUUM INTO takes a while.
    let before = 2_000;
    store
        .write(move |tx| -> Result<_, tiaochu::store::StoreError> {
            let no = tx.next_case_no(2026)?;
            let id = tx.insert_case(&case(&no))?;
            let filler = "进展".repeat(200);
            for i in 0..before {
                tx.append_event(Some(id), &event("liaison-1", at(i), progress(&filler)))?;
            }
            Ok(())
        })
        .await
        .expect("seed");

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writer = {
        let (store, stop, committed) = (store.clone(), Arc::clone(&stop), Arc::clone(&committed));
        tokio::spawn(async move {
            let mut i = 0i64;
            while !stop.load(Ordering::SeqCst) {
                store
                    .write(move |tx| {
                        let typical = EventData::TypicalMarked { revised: false };
                        tx.append_event(Some(1), &event("system", at(i), typical))?;
                        tx.enqueue_outbox(&outbound(&format!("during-{i}"), b"x", at(i)))
                    })
                    .await
                    .expect("write during backup");
                committed.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    while committed.load(Ordering::SeqCst) < 3 {
        tokio::task::yield_now().await;
    }

    let dest = dir.path().join("backup.db");
    let committed_at_start = committed.load(Ordering::SeqCst);
    let report = {
        let (store, dest) = (store.clone(), dest.clone());
        tokio::task::spawn_blocking(move || store.backup_to(&dest))
            .await
            .expect("join")
            .expect("backup")
    };
    let committed_at_end = committed.load(Ordering::SeqCst);
    assert!(
        !writer.is_finished(),
        "the writer was still writing when the backup finished"
    );
    stop.store(true, Ordering::SeqCst);
    writer.await.expect("writer task");

    let conn = rusqlite::Connection::open(&dest).expect("open copy");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    let n =
        |sql: &str| -> u64 { conn.query_row(sql, [], |r| r.get::<_, i64>(0)).expect(sql) as u64 };
    assert_eq!(
        n("SELECT count(*) FROM events WHERE kind = 'progress'"),
        before as u64
    );
    let during = n("SELECT count(*) FROM events WHERE kind = 'typical_marked'");
    assert!(
        during >= committed_at_start && during <= committed_at_end,
        "the copy holds everything committed before it started: {committed_at_start} <= {during} <= {committed_at_end}"
    );
    assert_eq!(
        n("SELECT count(*) FROM outbox"),
        during,
        "each transaction is in the copy whole or not at all"
    );
    assert_eq!(report.schema_version, SCHEMA_VERSION);
    assert!(
        report.rows.contains(&("events", before as u64 + during)),
        "{:?}",
        report.rows
    );
    assert!(report.rows.contains(&("cases", 1)), "{:?}", report.rows);
    assert!(report.bytes > 100_000, "{}", report.bytes);
}

#[test]
fn migrate_and_backup_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("data.db");
    let settings = tiaochu::settings::Settings::load_with_env(
        None,
        [("TIAOCHU_STORE__PATH".to_string(), db.display().to_string())],
    )
    .expect("settings");

    let args = tiaochu::cli::store_cmd::BackupArgs {
        dest: dir.path().join("b1.db"),
    };
    let missing = tiaochu::cli::store_cmd::backup(&settings, &args).expect_err("no database yet");
    assert!(missing.to_string().contains("不存在"), "{missing}");
    assert!(!db.exists(), "a backup must not create an empty database");

    assert_eq!(
        tiaochu::cli::store_cmd::migrate(&settings).expect("migrate"),
        0
    );
    assert!(db.exists());
    assert_eq!(
        tiaochu::cli::store_cmd::migrate(&settings).expect("migrate again"),
        0
    );

    // The service is running: its latest commit may still be only in the WAL.
    let service = Store::open(&db).expect("service opens the database");
    service
        .write_blocking(|tx| {
            let no = tx.next_case_no(2026)?;
            tx.insert_case(&case(&no))
        })
        .expect("service writes");
    assert_eq!(
        tiaochu::cli::store_cmd::backup(&settings, &args).expect("backup"),
        0
    );
    let copied: String = rusqlite::Connection::open(&args.dest)
        .expect("open copy")
        .query_row("SELECT case_no FROM cases", [], |r| r.get(0))
        .expect("the live commit is in the backup");
    assert_eq!(copied, "TC-2026-0001");
    let twice =
        tiaochu::cli::store_cmd::backup(&settings, &args).expect_err("refuses to overwrite");
    assert!(format!("{twice:#}").contains("已存在"), "{twice:#}");
}

/// Writes queued together share one commit (group commit), yet each stays atomic on its own:
/// a write that fails or panics in the middle of a burst is undone alone, the others commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_commits_together_but_each_fails_alone() {
    let (dir, store) = temp_store();
    let mut tasks = Vec::new();
    for i in 0..60_i64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .write(move |tx| {
                    let key = format!("m-{i}");
                    tx.insert_inbox(&NewInbound {
                        source: "robot",
                        message_id: &key,
                        received_at: at(i),
                        payload: "{}",
                    })?;
                    match i % 3 {
                        0 => Err(StoreError::Abort(format!("refused {i}"))),
                        1 if i % 2 == 1 && i % 7 == 0 => panic!("write {i} panics"),
                        _ => Ok(i),
                    }
                })
                .await
        }));
    }
    let mut kept = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        let i = i as i64;
        match task.await.expect("join") {
            Ok(v) => {
                assert_eq!(v, i);
                kept += 1;
            }
            Err(StoreError::Abort(m)) => assert_eq!(m, format!("refused {i}")),
            Err(StoreError::Panicked) => assert!(i % 7 == 0, "only the panicking write fails so"),
            Err(e) => panic!("write {i}: {e}"),
        }
    }
    assert_eq!(count(&dir.path().join("tiaochu.db"), "inbox"), kept);
    // The writer survived the panic and the failures: one more write goes through.
    store
        .write(|tx| tx.next_case_no(2026))
        .await
        .expect("writer alive");
}

/// A service killed while sending leaves its rows leased; the next one, holding the database's
/// service lock, knows nobody else can be sending them and releases them at start, so they go out
/// at once instead of after the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_service_sends_what_a_dead_one_left_leased() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("tiaochu.db");
    let start = Timestamp::from_millisecond(crate::support::START_MS).expect("start");
    {
        let store = Store::open(&db).expect("open");
        let claimed = store
            .write(move |tx| {
                let payload = br#"{"to":"staff-1","title":"t","text":"x"}"#;
                tx.enqueue_outbox(&NewOutbound {
                    idem_key: "left-leased",
                    channel: "sandbox",
                    target: r#"["staff-1"]"#,
                    payload,
                    not_before: start,
                })?;
                tx.claim_due_outbox(start, start + 1.hour(), 10)
            })
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1, "leased for an hour by the 'dead' process");
    }
    let path = db.clone();
    let app = crate::support::spawn_app(move |s| {
        s.store.path = path;
        s.dingtalk.mode = tiaochu::settings::DingtalkMode::Sandbox;
    })
    .await;
    let mut state = OutboxState::Pending;
    for _ in 0..100 {
        let rows = app
            .store
            .read(|r| r.list_outbox(None, 10))
            .await
            .expect("list");
        state = rows[0].state;
        if state == OutboxState::Sent {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        state,
        OutboxState::Sent,
        "sent within 5 s of the start, not after the hour"
    );
    app.shutdown.trigger();
    app.server.await.expect("join").expect("server");
}

/// The writer never checkpoints (so no commit waits for one); the checkpoint thread copies the
/// WAL into the database file in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_in_the_background() {
    let (dir, store) = temp_store();
    let db = dir.path().join("tiaochu.db");
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let before = size(&db);
    let payload = vec![b'x'; 4000];
    store
        .write(move |tx| -> Result<_, tiaochu::store::StoreError> {
            for i in 0..500 {
                tx.enqueue_outbox(&outbound(&format!("wal-{i}"), &payload, at(0)))?;
            }
            Ok(())
        })
        .await
        .expect("write");
    let wal = dir.path().join("tiaochu.db-wal");
    assert!(
        size(&wal) > 1_000_000,
        "the commit went to the WAL: {} bytes, db {} bytes",
        size(&wal),
        size(&db)
    );
    let mut grown = 0;
    for _ in 0..50 {
        grown = size(&db);
        if grown > before + 1_000_000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        grown > before + 1_000_000,
        "the database file took the WAL's pages within 5 s ({before} → {grown} bytes)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_claims_are_fair_across_recipients() {
    let (_dir, store) = temp_store();
    // 500 rows queued for one person first, then one each for two others.
    store
        .write(|tx| -> Result<_, tiaochu::store::StoreError> {
            for i in 0..500 {
                tx.enqueue_outbox(&NewOutbound {
                    target: "flooder",
                    ..outbound(&format!("flood-{i}"), b"x", at(i))
                })?;
            }
            tx.enqueue_outbox(&NewOutbound {
                target: "quiet-a",
                ..outbound("quiet-a", b"a", at(600))
            })?;
            tx.enqueue_outbox(&NewOutbound {
                target: "quiet-b",
                ..outbound("quiet-b", b"b", at(700))
            })?;
            Ok(())
        })
        .await
        .expect("enqueue");
    let now = at(1_000);
    let claimed = store
        .write(move |tx| tx.claim_due_outbox(now, now + 30.seconds(), 5))
        .await
        .expect("claim");
    assert_eq!(
        claimed
            .iter()
            .map(|r| r.idem_key.as_str())
            .collect::<Vec<_>>(),
        ["flood-0", "quiet-a", "quiet-b", "flood-1", "flood-2"],
        "every recipient's first row before anyone's second, each in due order"
    );
}

/// Inserts inbox row `key` (a write's visible trace) and returns its id.
fn insert_marker(tx: &tiaochu::store::Tx<'_>, key: &str) -> Result<i64, StoreError> {
    Ok(tx
        .insert_inbox(&NewInbound {
            source: "robot",
            message_id: key,
            received_at: at(0),
            payload: "{}",
        })?
        .id())
}

/// The inbox worker's decisions are background writes: an acknowledgement queued behind a long
/// run of them is served ahead, after the decision in progress, and committed while the rest
/// still wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_is_committed_while_a_long_run_of_decisions_waits() {
    let (_dir, store) = temp_store();
    const SLOW: std::time::Duration = std::time::Duration::from_millis(40);
    const DECISIONS: usize = 8;
    let started = Arc::new(AtomicU64::new(0));
    let decisions: Vec<_> = (0..DECISIONS)
        .map(|i| {
            let started = Arc::clone(&started);
            store.write_background(move |tx| {
                started.fetch_add(1, Ordering::SeqCst);
                // A decision that takes its time on the writer thread.
                std::thread::sleep(SLOW);
                insert_marker(tx, &format!("decision-{i}"))
            })
        })
        .collect();
    // The first decision is under way when the acknowledgement arrives.
    while started.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let asked = std::time::Instant::now();
    store
        .write(|tx| insert_marker(tx, "ack"))
        .await
        .expect("acknowledged");
    let waited = asked.elapsed();
    let ran = started.load(Ordering::SeqCst);
    assert!(
        ran <= 2,
        "the acknowledgement waited for {ran} decisions ({waited:?})"
    );
    assert!(
        waited < SLOW * 4,
        "the acknowledgement took {waited:?} behind {DECISIONS} decisions of {SLOW:?}"
    );
    // Every decision still commits, in the order queued.
    let mut ids = Vec::new();
    for decision in decisions {
        ids.push(decision.await.expect("decision committed"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(started.load(Ordering::SeqCst), DECISIONS as u64);
}

/// A write that arrives while its round is still running the writes before it joins that
/// round: one commit carries all three of these, each submitted while the one before it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_arrive_while_a_round_runs_share_its_commit() {
    let (_dir, store) = temp_store();
    let started = Arc::new(AtomicU64::new(0));
    let slow_write = |key: &'static str| {
        let (store, started) = (store.clone(), Arc::clone(&started));
        tokio::spawn(async move {
            store
                .write(move |tx| {
                    started.fetch_add(1, Ordering::SeqCst);
                    // Long enough for the next to be submitted meanwhile on a busy machine.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    insert_marker(tx, key)
                })
                .await
        })
    };
    let before = store.commit_times().count;
    let mut writes = Vec::new();
    for (n, key) in ["first", "second", "third"].into_iter().enumerate() {
        // Each is submitted once the one before it is running on the writer.
        while started.load(Ordering::SeqCst) < n as u64 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        writes.push(slow_write(key));
    }
    for write in writes {
        write.await.expect("task").expect("committed");
    }
    assert_eq!(
        store.commit_times().count - before,
        1,
        "one commit for the three"
    );
}

/// Decisions keep committing while acknowledgements are queued without a break: every round of
/// them earns the decisions time on the writer (src/store/share.rs), so they commit long before
/// the queue of acknowledgements is through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_commit_under_an_unbroken_flood_of_acknowledgements() {
    const FLOOD: u64 = 20_000;
    let (_dir, store) = temp_store();
    let acked = Arc::new(AtomicU64::new(0));
    let flood: Vec<_> = (0..FLOOD)
        .map(|n| {
            let (store, acked) = (store.clone(), Arc::clone(&acked));
            tokio::spawn(async move {
                store
                    .write(move |tx| insert_marker(tx, &format!("ack-{n}")))
                    .await
                    .expect("acknowledged");
                acked.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    while acked.load(Ordering::SeqCst) < 64 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let decisions: Vec<_> = (0..30)
        .map(|i| store.write_background(move |tx| insert_marker(tx, &format!("decision-{i}"))))
        .collect();
    for decision in decisions {
        decision.await.expect("decision committed");
    }
    let acked_by_then = acked.load(Ordering::SeqCst);
    for task in flood {
        task.await.expect("flood task");
    }
    assert!(
        acked_by_then < FLOOD / 2,
        "the decisions waited for {acked_by_then} of {FLOOD} acknowledgements"
    );
}

/// Background writes share commits, each under its own savepoint: one that fails or panics is
/// undone alone, the others are kept, and the writer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_writes_commit_together_but_each_fails_alone() {
    let (dir, store) = temp_store();
    let writes: Vec<_> = (0..12)
        .map(|i| {
            store.write_background(move |tx| {
                let id = insert_marker(tx, &format!("d-{i}"))?;
                match i {
                    3 => Err(StoreError::Abort(format!("refused {i}"))),
                    7 => panic!("decision {i} panics"),
                    _ => Ok(id),
                }
            })
        })
        .collect();
    for (i, write) in writes.into_iter().enumerate() {
        match (i, write.await) {
            (3, Err(StoreError::Abort(m))) => assert_eq!(m, "refused 3"),
            (7, Err(StoreError::Panicked)) => {}
            (3 | 7, other) => panic!("write {i}: {other:?}"),
            (_, result) => {
                result.unwrap_or_else(|e| panic!("write {i}: {e}"));
            }
        }
    }
    assert_eq!(count(&dir.path().join("tiaochu.db"), "inbox"), 10);
    let kept = store
        .read(|r| r.all_inbox(100))
        .await
        .expect("read")
        .into_iter()
        .map(|r| r.message_id)
        .collect::<Vec<_>>();
    assert!(!kept.contains(&"d-3".to_string()) && !kept.contains(&"d-7".to_string()));
}

/// A case document as the v11 release stored it (`tests/fixtures/cases/`, captured from the
/// engine: a resubmitted application with a deadline, a joint decision, one unit accepted and one
/// objecting). It reads into today's types with every field intact and writes back byte for byte,
/// so a database and its backups stay readable in both directions; the stored application still
/// reads as the parser's report older releases keep in a case.
#[test]
fn a_case_stored_by_the_v11_release_reads_and_writes_back_unchanged() {
    let stored = include_str!("../fixtures/cases/release-v11-coordinating.json");
    let row = tiaochu::store::CaseRow {
        id: 1,
        case_no: crate::support::case_no("TC-2026-0001"),
        ticket_no: crate::support::ticket_no("DH2026110300017"),
        first_unit: crate::support::unit_named("区人社局"),
        urgent: false,
        state: "coordinating".into(),
        data_json: stored.to_string(),
        revision: 9,
        created_at: at(0),
        updated_at: at(0),
    };
    let case = tiaochu::engine::decode(&row).expect("the v11 case reads");
    assert_eq!(case.case_no, "TC-2026-0001");
    assert_eq!(case.ticket_no, "DH2026110300017");
    assert_eq!(case.first_unit, "区人社局");
    assert_eq!(case.version, 2);
    assert_eq!(case.submitted_by, "rs-liaison");
    let app = &case.application;
    assert_eq!(app.ticket_no, "DH2026110300017");
    assert_eq!(app.first_unit, "区人社局");
    assert_eq!(app.title, "反映某建筑公司（甲公司）拖欠薪资的问题");
    assert_eq!(
        app.requested_units,
        ["区住建局", "区城市管理局", "区城建公司"]
    );
    assert_eq!(app.unresolved_mentions, ["国企"]);
    assert_eq!(app.deadline, Some(jiff::civil::date(2026, 12, 5)));
    assert!(app.leader_approved && !app.urgent && !app.city_level);
    let previous = &case.previous_versions[0].application;
    assert_eq!(previous.title, "反映某建筑公司拖欠薪资的问题");
    let units: Vec<&str> = case.requests.iter().map(|r| r.unit.as_str()).collect();
    assert_eq!(units, ["区住建局", "区城市管理局"]);

    assert_eq!(
        serde_json::to_string(&case).expect("write"),
        stored.trim_end()
    );
    let document: serde_json::Value = serde_json::from_str(stored).expect("json");
    let report: tiaochu::parse::Application =
        serde_json::from_value(document["application"].clone()).expect("an older release reads it");
    assert!(report.ok && report.missing.is_empty() && report.errors.is_empty());
}
