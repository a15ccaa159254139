//! Whole-path throughput (issue 19) and replies without polling (issue 15): the inbox worker
//! is woken by the commit that stores a message, and the HTTP robot callback sheds load beyond
//! `[inbox] max_backlog` — 503 with Retry-After and nothing stored — while below it every
//! verified callback is acknowledged. The load figures are in `benches/load.rs`.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use tiaochu::http::shed::{FRESH, RETRY_AFTER_SECS};
use tiaochu::store::{NewInbound, StoreError};

use crate::support::{TestApp, hold_writer, robot_message, spawn_app};

/// Unprocessed inbound messages.
async fn pending(app: &TestApp) -> usize {
    app.inbox()
        .await
        .iter()
        .filter(|r| r.finished_at.is_none())
        .count()
}

fn stored(rows: &[tiaochu::store::InboxRow], msg_id: &str) -> bool {
    rows.iter().any(|r| r.message_id == msg_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_backlog_limit_callbacks_get_503_with_retry_after_and_nothing_is_stored() {
    let app = spawn_app(|s| s.inbox.max_backlog = 5).await;
    let below = app.post_signed(robot_message("below", "帮助")).await;
    assert_eq!(below.status(), 200, "below the limit a callback is taken");

    // Messages the worker cannot finish while the writer is held: far more than the limit of
    // five, because the worker may commit some of them before the holder below takes the
    // writer. With ten, a test thread paused for a few milliseconds on a busy machine let the
    // worker finish six first and the backlog fell under the limit (seen once in CI).
    let rows = app
        .store
        .write(|tx| -> Result<(), StoreError> {
            for i in 0..500 {
                tx.insert_inbox(&NewInbound {
                    source: "robot",
                    message_id: &format!("held-{i}"),
                    received_at: Timestamp::UNIX_EPOCH,
                    payload: "{}",
                })?;
            }
            Ok(())
        })
        .await;
    rows.expect("insert");
    let held = hold_writer(&app.store);
    // Past the gate's last count (taken for the first callback).
    tokio::time::sleep(FRESH * 2).await;

    let shed = app.post_signed(robot_message("shed", "帮助")).await;
    assert_eq!(shed.status(), 503);
    let retry_after = shed
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(retry_after, Some(RETRY_AFTER_SECS.to_string()));
    let body: serde_json::Value = shed.json().await.expect("json body");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("待处理消息过多"), "{error}");
    // A forged callback is still refused as forged, before any look at the backlog.
    let forged = app
        .post_robot(
            robot_message("forged", "帮助"),
            &[
                ("timestamp", crate::support::hv(&app.now_ms().to_string())),
                ("sign", crate::support::hv("bm90IGEgc2lnbmF0dXJl")),
            ],
        )
        .await;
    assert_eq!(forged.status(), 401);

    held.release();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pending(&app).await > 0 {
        assert!(Instant::now() < deadline, "the backlog was not worked off");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !stored(&app.inbox().await, "shed"),
        "a refused callback stores nothing"
    );

    // Below the limit again (once the gate counted afresh): DingTalk's redelivery is taken.
    tokio::time::sleep(FRESH * 2).await;
    let again = app.post_signed(robot_message("shed", "帮助")).await;
    assert_eq!(again.status(), 200);
    assert!(stored(&app.inbox().await, "shed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_shedding_off_a_backlog_never_refuses() {
    let app = spawn_app(|s| s.inbox.max_backlog = 0).await;
    app.store
        .write(|tx| -> Result<(), StoreError> {
            for i in 0..10 {
                tx.insert_inbox(&NewInbound {
                    source: "robot",
                    message_id: &format!("held-{i}"),
                    received_at: Timestamp::UNIX_EPOCH,
                    payload: "{}",
                })?;
            }
            Ok(())
        })
        .await
        .expect("insert");
    let held = hold_writer(&app.store);
    let post = {
        let app = &app;
        async move { app.post_signed(robot_message("taken", "帮助")).await }
    };
    // The callback's own write waits behind the held writer: release it shortly after.
    let releaser = async {
        tokio::time::sleep(FRESH * 3).await;
        held.release();
    };
    let (response, ()) = tokio::join!(post, releaser);
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_message_is_processed_at_once_not_at_the_next_poll() {
    let app = spawn_app(|_| {}).await;
    // Past the worker's first look (an empty inbox): from here on only the commit of the
    // callback, or the one-second safety poll, makes it look again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let posted = Instant::now();
    let response = app.post_signed(robot_message("wake", "帮助")).await;
    assert_eq!(response.status(), 200);
    let deadline = posted + Duration::from_secs(10);
    loop {
        let rows = app.inbox().await;
        if rows
            .iter()
            .any(|r| r.message_id == "wake" && r.finished_at.is_some())
        {
            break;
        }
        assert!(Instant::now() < deadline, "never processed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The safety poll would have come about 900 ms after the callback.
    assert!(
        posted.elapsed() < Duration::from_millis(500),
        "processed {:?} after the callback",
        posted.elapsed()
    );
}

/// The inbox worker's first tries are pipelined: every pending message of a step is queued on
/// the writer at once and several commit together, each under its own savepoint. A message whose
/// decision fails is undone alone — the ones before it stay committed, the ones behind it wait
/// for it — and is then tried on its own and quarantined, while the rest are still processed in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_decision_among_pipelined_ones_is_quarantined_alone() {
    use std::path::Path;
    use std::sync::Arc;

    use serde_json::json;
    use tiaochu::calendar::{Calendar, WorkingHours};
    use tiaochu::card_secrets::CardSecrets;
    use tiaochu::dispatch::Dispatch;
    use tiaochu::engine::Engine;
    use tiaochu::inbox::InboxProcessor;
    use tiaochu::roster::{Person, Role, Roster};
    use tiaochu::settings::Settings;
    use tiaochu::store::Store;

    const RS: &str = "rs-liaison";
    let shipped = Roster::load(Path::new("config/roster.toml")).expect("roster");
    let mut people = shipped.people().to_vec();
    for (name, unit, id) in [
        ("王联络", "区人社局", RS),
        ("赵联络", "区住建局", "zj-liaison"),
        ("钱联络", "区城市管理局", "cg-liaison"),
    ] {
        people.push(Person::new(name, unit, "股长", vec![Role::Liaison], id, ""));
    }
    people.push(Person::new(
        "孙管理",
        "区12345热线",
        "管理员",
        vec![Role::Admin],
        "u-admin",
        "",
    ));
    let calendar = Calendar::load_dir(Path::new("config/calendar"), WorkingHours::default())
        .expect("calendar");
    let settings = Settings::load_with_env(None, Vec::new()).expect("settings");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("pipeline.db");
    let store = Store::open(&db).expect("store");
    let engine = Engine::new(
        store.clone(),
        Arc::new(Roster::from_parts(shipped.units().to_vec(), people)),
        Arc::new(calendar),
        settings.sla,
        Dispatch::from_settings(&settings.dingtalk, CardSecrets::ephemeral()),
    );
    let processor = InboxProcessor::new(engine).with_sender_limit(0);
    let now: Timestamp = "2026-11-02T09:00:00+08:00".parse().expect("now");
    let application = |ticket: &str| {
        format!(
            "工单编号：{ticket}\n工单标题：反映某建筑公司拖欠薪资的问题\n首接单位：区人社局\n已采取措施：已向涉事企业取得联系，核实基本情况。\n办理难点：工程款拨付与住建审批相关，区人社局一家无法办理。\n需协调部门及事由：区住建局核查项目审批；区城市管理局协助现场核查。\n请示分管领导相关情况：分管领导已同意。"
        )
    };
    let send = |n: usize, text: String| {
        let body = json!({
            "msgtype": "text", "text": {"content": text}, "msgId": format!("m-{n}"),
            "conversationType": "1", "conversationId": "cid-1to1", "senderStaffId": RS,
            "senderNick": RS, "createAt": now.as_millisecond(), "robotCode": "sandbox"
        })
        .to_string();
        store.write(move |tx| {
            tx.insert_inbox(&NewInbound {
                source: "sandbox",
                message_id: &format!("m-{n}"),
                received_at: now,
                payload: &body,
            })
            .map(|i| i.id())
        })
    };
    let registered = |ticket: &'static str| {
        store.read(move |r| {
            r.case_by_ticket(&crate::support::ticket_no(ticket))
                .map(|rows| !rows.is_empty())
        })
    };

    send(0, application("DH2026110300017")).await.expect("send");
    assert_eq!(processor.process_pending(now).await.expect("step"), 1);
    // The case's document no longer reads, as after a bad restore or a bug.
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute(
        "UPDATE cases SET data_json = '{\"not\":\"a case\"}' WHERE ticket_no = 'DH2026110300017'",
        [],
    )
    .expect("corrupt");

    send(1, application("DH2026110300018")).await.expect("send");
    let stuck = send(2, application("DH2026110300017")).await.expect("send");
    send(3, application("DH2026110300019")).await.expect("send");
    send(4, "帮助".to_string()).await.expect("send");
    assert_eq!(
        processor.process_pending(now).await.expect("step"),
        4,
        "three processed, one quarantined"
    );
    for ticket in ["DH2026110300018", "DH2026110300019"] {
        assert!(registered(ticket).await.expect("read"), "{ticket}");
    }
    let rows = store.read(|r| r.all_inbox(100)).await.expect("inbox");
    let unfinished: Vec<_> = rows
        .iter()
        .filter(|r| r.finished_at.is_none())
        .map(|r| (r.id, r.attempts, r.quarantined_at.is_some()))
        .collect();
    assert_eq!(
        unfinished,
        [(stuck, 1, true)],
        "only the failing message is left, quarantined after one try: {rows:#?}"
    );
    // The help request behind it was answered, after the quarantine.
    assert!(
        rows.iter()
            .any(|r| r.message_id == "m-4" && r.outcome.as_deref() == Some("answered")),
        "{rows:#?}"
    );
}
