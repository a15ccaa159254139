//! Stream mode against the fake gateway (tests/api/fake_stream.rs): the open call, persist-then-
//! ACK, ping echo, card callback ACKs, make-before-break on `disconnect`, reconnect backoff with
//! fresh tickets, dead-socket detection, redeliveries and failing handlers; the service wired in
//! `stream` mode; and the conformance run of DingTalk's official Python SDK against the fake.
//! Durations are shortened so the file runs in a few seconds.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tiaochu::app::{App, AppError};
use tiaochu::clock::{Clock, ManualClock};
use tiaochu::dingtalk::stream::{
    FrameHandler, HandlerFuture, InboxHandler, StreamClient, StreamConfig, StreamState,
    TOPIC_CARD_CALLBACK, TOPIC_ROBOT_MESSAGE,
};
use tiaochu::settings::{DingtalkMode, Secret};
use tiaochu::store::{InboxRow, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::fake_stream::{FakeStream, card_frame, robot_frame, system_frame};
use crate::support::{START_MS, spawn_app};

const APP_KEY: &str = "ding-stream-app";
const APP_SECRET: &str = "stream-secret-调处";

fn fast() -> StreamConfig {
    StreamConfig {
        ping_after_silence: Duration::from_millis(500),
        // Generous against a loaded CI machine: a missed deadline would reconnect mid-test.
        pong_deadline: Duration::from_secs(1),
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_millis(400),
        connect_timeout: Duration::from_secs(2),
        drain_after_disconnect: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(1),
        // Delays at their ceiling, so the test can check lower bounds.
        jitter: || 1.0,
        ..StreamConfig::default()
    }
}

/// A handler that counts calls, can be told to fail, and otherwise stores via [`InboxHandler`]
/// and answers card callbacks with a card update, as the workflow will.
struct TestHandler {
    inbox: InboxHandler,
    fail: AtomicBool,
    calls: AtomicUsize,
    card_update: Option<Value>,
}

impl FrameHandler for TestHandler {
    fn robot_message<'a>(&'a self, message_id: &'a str, data: &'a str) -> HandlerFuture<'a, ()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            // A closed store is what a failing store looks like to the handler.
            return Box::pin(async {
                Err(tiaochu::dingtalk::stream::HandlerError::Store(
                    tiaochu::store::StoreError::WriterGone,
                ))
            });
        }
        self.inbox.robot_message(message_id, data)
    }

    fn card_callback<'a>(
        &'a self,
        message_id: &'a str,
        data: &'a str,
    ) -> HandlerFuture<'a, Option<Value>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            self.inbox.card_callback(message_id, data).await?;
            Ok(self.card_update.clone())
        })
    }

    fn event<'a>(
        &'a self,
        message_id: &'a str,
        event: &'a tiaochu::dingtalk::stream::EventFrame,
    ) -> HandlerFuture<'a, ()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inbox.event(message_id, event)
    }
}

struct Harness {
    fake: FakeStream,
    store: Store,
    handler: Arc<TestHandler>,
    state: watch::Receiver<StreamState>,
    stop: watch::Sender<bool>,
    client: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start(config: StreamConfig, card_update: Option<Value>) -> Harness {
    let fake = FakeStream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("t.db")).expect("store");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_millis(START_MS));
    let handler = Arc::new(TestHandler {
        inbox: InboxHandler::new(store.clone(), Arc::clone(&clock)),
        fail: AtomicBool::new(false),
        calls: AtomicUsize::new(0),
        card_update,
    });
    let mut settings = crate::support::default_settings();
    settings.dingtalk.mode = DingtalkMode::Stream;
    settings.dingtalk.api_base = fake.api_base.clone();
    settings.dingtalk.app_key = APP_KEY.into();
    settings.dingtalk.app_secret = Secret::new(APP_SECRET);
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let client =
        StreamClient::new(&settings.dingtalk, http, handler.clone(), clock).with_config(config);
    let (stop, stop_rx) = watch::channel(false);
    let (state_tx, state) = watch::channel(StreamState::NotConfigured);
    let client = tokio::spawn(client.run(stop_rx, state_tx));
    Harness {
        fake,
        store,
        handler,
        state,
        stop,
        client,
        _dir: dir,
    }
}

impl Harness {
    async fn inbox(&self) -> Vec<InboxRow> {
        self.store
            .read(|r| r.all_inbox(100_000))
            .await
            .expect("inbox")
    }

    /// Counts inbox rows at each ACK the fake receives.
    fn probe_inbox_at_ack(&self) {
        let store = self.store.clone();
        self.fake.set_ack_probe(Arc::new(move || {
            let store = store.clone();
            Box::pin(async move {
                store
                    .read(|r| r.all_inbox(100_000))
                    .await
                    .expect("inbox")
                    .len() as i64
            })
        }));
    }

    async fn wait_state(&mut self, want: StreamState) {
        tokio::time::timeout(Duration::from_secs(5), self.state.wait_for(|s| *s == want))
            .await
            .unwrap_or_else(|_| panic!("state never became {want:?}"))
            .expect("client alive");
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), self.client)
            .await
            .expect("client stops")
            .expect("client task");
    }
}

fn ids(rows: &[InboxRow]) -> Vec<(String, String)> {
    let mut ids: Vec<_> = rows
        .iter()
        .map(|r| (r.source.clone(), r.message_id.clone()))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn open_names_both_topics_and_a_robot_message_is_stored_before_its_ack() {
    let mut h = start(fast(), None).await;
    h.probe_inbox_at_ack();
    let conn = h.fake.connection(0).await;
    h.wait_state(StreamState::Connected).await;

    let opens = h.fake.opens();
    assert_eq!(opens.len(), 1);
    let open = &opens[0];
    assert_eq!(open.accept.as_deref(), Some("application/json"));
    assert!(
        open.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json"))
    );
    assert_eq!(open.body["clientId"], APP_KEY);
    assert_eq!(open.body["clientSecret"], APP_SECRET);
    assert_eq!(
        open.body["subscriptions"],
        json!([{"type": "CALLBACK", "topic": TOPIC_ROBOT_MESSAGE},
               {"type": "CALLBACK", "topic": TOPIC_CARD_CALLBACK},
               {"type": "EVENT", "topic": "*"}])
    );
    // The ticket survived percent-encoding in the query (it holds + / = & ?).
    assert_eq!(Some(conn.ticket), open.ticket.clone());

    let frame = robot_frame("frame-1", "msgStream1==", " 审核 DH20261100123");
    h.fake.send(0, frame.clone());
    let acks = h.fake.acked("frame-1", 1).await;
    assert_eq!(
        acks[0].probe,
        Some(1),
        "the row was committed before the ACK"
    );
    assert_eq!(acks[0].frame["code"], 200);
    assert_eq!(acks[0].frame["message"], "OK");
    assert_eq!(
        acks[0].frame["headers"],
        json!({"messageId": "frame-1", "contentType": "application/json"})
    );
    assert_eq!(acks[0].data(), json!({"response": null}));

    let rows = h.inbox().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].source, "stream");
    assert_eq!(rows[0].message_id, "msgStream1==");
    let sent: Value = serde_json::from_str(&frame).expect("frame");
    assert_eq!(rows[0].payload, sent["data"].as_str().expect("data"));
    h.stop().await;
}

#[tokio::test]
async fn ping_is_echoed_and_a_card_callback_ack_carries_the_card_update() {
    let update = json!({"cardUpdateOptions": {"updateCardDataByKey": true},
                        "cardData": {"cardParamMap": {"status": "已同意"}}});
    let h = start(fast(), Some(update.clone())).await;
    h.fake.connection(0).await;

    let opaque = json!({"opaque": "o-1"});
    h.fake.send(0, system_frame("m-1", "ping", &opaque));
    let ping = h.fake.acked("m-1", 1).await;
    assert_eq!(ping[0].frame["code"], 200);
    assert_eq!(
        ping[0].frame["data"].as_str(),
        Some(opaque.to_string().as_str()),
        "ping data echoed verbatim"
    );

    h.fake.send(
        0,
        card_frame(
            "m-2",
            "case-A123-inspect-v1",
            "user001",
            "agree_btn",
            json!({"action": "agree"}),
        ),
    );
    let card = h.fake.acked("m-2", 1).await;
    assert_eq!(card[0].frame["code"], 200);
    assert_eq!(
        card[0].frame["headers"],
        json!({"messageId": "m-2", "contentType": "application/json"})
    );
    assert_eq!(card[0].data(), json!({"response": update}));
    let rows = h.inbox().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].source, "card");
    assert!(
        rows[0]
            .message_id
            .starts_with("case-A123-inspect-v1|user001|agree_btn|"),
        "{}",
        rows[0].message_id
    );
    h.stop().await;
}

#[tokio::test]
async fn inbox_handler_acks_a_card_callback_with_a_null_response() {
    let fake = FakeStream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("t.db")).expect("store");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_millis(START_MS));
    let mut settings = crate::support::default_settings();
    settings.dingtalk.api_base = fake.api_base.clone();
    settings.dingtalk.app_key = APP_KEY.into();
    settings.dingtalk.app_secret = Secret::new(APP_SECRET);
    let handler = Arc::new(InboxHandler::new(store.clone(), Arc::clone(&clock)));
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let client = StreamClient::new(&settings.dingtalk, http, handler, clock).with_config(fast());
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(client.run(stop_rx, watch::channel(StreamState::Connecting).0));
    fake.connection(0).await;
    fake.send(
        0,
        card_frame("m-3", "case-B7-v1", "user002", "reject_btn", json!({})),
    );
    let acks = fake.acked("m-3", 1).await;
    assert_eq!(acks[0].data(), json!({"response": null}));
    stop.send_replace(true);
    task.await.expect("stopped");
}

#[tokio::test]
async fn disconnect_connects_anew_before_the_old_socket_closes_and_loses_nothing() {
    let mut h = start(fast(), None).await;
    h.fake.connection(0).await;
    h.fake.send(0, robot_frame("f-a", "msg-a", "一"));
    h.fake.acked("f-a", 1).await;

    h.fake.send(
        0,
        system_frame(
            "d-1",
            "disconnect",
            &json!({"reason": "connection is expired"}),
        ),
    );
    let second = h.fake.connection(1).await;
    let old = &h.fake.conns()[0];
    assert!(old.closed_at.is_none(), "the old socket is still open");
    assert!(second.opened_at > old.opened_at);
    let opens = h.fake.opens();
    assert_eq!(opens.len(), 2, "one fresh open per connection");
    assert_ne!(opens[0].ticket, opens[1].ticket);

    // Around the switch: the old socket is still read and acknowledged, the new one works, and
    // a frame first pushed on the old socket and redelivered on the new one is stored once.
    h.fake.send(0, robot_frame("f-b", "msg-b", "二"));
    h.fake.send(1, robot_frame("f-c", "msg-c", "三"));
    h.fake.send(1, robot_frame("f-a", "msg-a", "一"));
    assert_eq!(h.fake.acked("f-b", 1).await[0].conn, 0);
    assert_eq!(h.fake.acked("f-c", 1).await[0].conn, 1);
    let a = h.fake.acked("f-a", 2).await;
    assert_eq!((a[0].conn, a[1].conn), (0, 1));

    // The gateway closes the old socket; the client keeps the new one and does not reconnect.
    h.fake.close(0);
    h.fake
        .wait_for("old socket closed", Duration::from_secs(5), |f| {
            f.conns()[0].closed_at
        })
        .await;
    h.fake.send(1, robot_frame("f-d", "msg-d", "四"));
    h.fake.acked("f-d", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.fake.conns().len(),
        2,
        "no reconnect after the old socket closed"
    );
    assert_eq!(*h.state.borrow_and_update(), StreamState::Connected);
    assert_eq!(h.fake.rejected_tickets(), 0);

    let rows = h.inbox().await;
    let want: Vec<_> = ["msg-a", "msg-b", "msg-c", "msg-d"]
        .iter()
        .map(|m| ("stream".to_string(), m.to_string()))
        .collect();
    assert_eq!(ids(&rows), want, "every frame stored exactly once");
    assert_eq!(
        h.handler.calls.load(Ordering::SeqCst),
        4,
        "f-a handled once"
    );
    h.wait_state(StreamState::Connected).await;
    h.stop().await;
}

#[tokio::test]
async fn a_dropped_socket_reconnects_with_a_fresh_ticket_after_backoff() {
    let mut h = start(fast(), None).await;
    h.fake.connection(0).await;
    h.fake.send(0, robot_frame("f-1", "msg-1", "一"));
    h.fake.acked("f-1", 1).await;

    h.fake.refuse_next_opens(2);
    let dropped_at = Instant::now();
    h.fake.drop_socket(0);
    h.wait_state(StreamState::Connecting).await;
    let second = h.fake.connection(1).await;

    let opens = h.fake.opens();
    assert_eq!(opens.len(), 4, "two refused opens, then a successful one");
    assert!(opens[1].ticket.is_none() && opens[2].ticket.is_none());
    assert_eq!(opens[3].ticket.as_ref(), Some(&second.ticket));
    assert_ne!(opens[0].ticket, opens[3].ticket, "a fresh ticket");
    // jitter = 1: delays are exactly 100, 200 and 400 ms (base 100 ms doubling, cap 400 ms).
    let gaps = [
        opens[1].at - dropped_at,
        opens[2].at - opens[1].at,
        opens[3].at - opens[2].at,
    ];
    for (gap, want) in gaps.iter().zip([100, 200, 400]) {
        assert!(
            *gap >= Duration::from_millis(want),
            "gap {gap:?} shorter than {want} ms: {gaps:?}"
        );
        // Loose: only a runaway delay should fail here (the cap is unit-tested).
        assert!(*gap < Duration::from_millis(want + 2000), "gaps {gaps:?}");
    }
    h.wait_state(StreamState::Connected).await;
    h.fake.send(1, robot_frame("f-2", "msg-2", "二"));
    h.fake.acked("f-2", 1).await;
    assert_eq!(h.inbox().await.len(), 2);
    assert_eq!(h.fake.rejected_tickets(), 0);
    h.stop().await;
}

#[tokio::test]
async fn a_silent_socket_is_pinged_then_replaced() {
    let h = start(fast(), None).await;
    let first = h.fake.connection(0).await;
    h.fake.freeze(0);
    // A Ping after 500 ms of silence, no Pong within 1 s: dropped, reconnected 100 ms later.
    let second = h.fake.connection(1).await;
    let replaced_after = second.opened_at - first.opened_at;
    assert!(
        replaced_after >= Duration::from_millis(1500),
        "replaced too early: {replaced_after:?}"
    );
    h.fake.send(1, robot_frame("f-1", "msg-1", "一"));
    h.fake.acked("f-1", 1).await;
    h.stop().await;
}

#[tokio::test]
async fn a_live_socket_answering_pings_is_kept() {
    let h = start(fast(), None).await;
    h.fake.connection(0).await;
    // Several ping periods of silence: tungstenite on the fake answers the client's Pings.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.fake.conns().len(), 1);
    assert!(h.fake.conns()[0].closed_at.is_none());
    h.stop().await;
}

#[tokio::test]
async fn a_redelivered_frame_is_stored_once_and_acked_each_time() {
    let h = start(fast(), None).await;
    h.fake.connection(0).await;
    let frame = robot_frame("f-r", "msg-r", "重复");
    h.fake.send(0, frame.clone());
    h.fake.acked("f-r", 1).await;
    h.fake.send(0, frame);
    let acks = h.fake.acked("f-r", 2).await;
    assert_eq!(acks[0].frame, acks[1].frame);
    assert_eq!(h.inbox().await.len(), 1);
    assert_eq!(h.handler.calls.load(Ordering::SeqCst), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_failing_handler_leaves_the_frame_unacked_until_a_redelivery_succeeds() {
    let h = start(fast(), None).await;
    h.fake.connection(0).await;
    h.handler.fail.store(true, Ordering::SeqCst);
    let frame = robot_frame("f-x", "msg-x", "失败");
    h.fake.send(0, frame.clone());
    h.fake
        .wait_for("the handler ran", Duration::from_secs(5), |_| {
            (h.handler.calls.load(Ordering::SeqCst) == 1).then_some(())
        })
        .await;
    // The read loop is not stuck: a ping behind the failed frame is answered.
    h.fake
        .send(0, system_frame("p-1", "ping", &json!({"opaque": "o"})));
    h.fake.acked("p-1", 1).await;
    assert!(
        h.fake.acks_for("f-x").is_empty(),
        "no ACK for a failed frame"
    );
    assert!(h.inbox().await.is_empty());

    h.handler.fail.store(false, Ordering::SeqCst);
    h.fake.send(0, frame);
    h.fake.acked("f-x", 1).await;
    assert_eq!(h.inbox().await.len(), 1);
    assert_eq!(h.handler.calls.load(Ordering::SeqCst), 2);
    h.stop().await;
}

#[tokio::test]
async fn stream_mode_service_stores_reports_health_and_closes_on_shutdown() {
    let fake = FakeStream::start().await;
    let api_base = fake.api_base.clone();
    let app = spawn_app(move |s| {
        s.dingtalk.mode = DingtalkMode::Stream;
        s.dingtalk.api_base = api_base;
        s.dingtalk.app_key = APP_KEY.into();
    })
    .await;
    fake.connection(0).await;
    assert_eq!(fake.opens()[0].body["clientId"], APP_KEY);
    fake.send(0, robot_frame("f-app", "msg-app", "审核"));
    fake.acked("f-app", 1).await;
    let rows = app.inbox().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].message_id, "msg-app");
    let (_, health) = app.health().await;
    assert_eq!(health["stream"], "connected");
    // No robot callback route in Stream mode.
    let callback = app
        .client
        .post(format!("{}/dingtalk/robot", app.address))
        .body("{}")
        .send()
        .await
        .expect("server reachable");
    assert_eq!(callback.status(), reqwest::StatusCode::NOT_FOUND);

    app.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), app.server)
        .await
        .expect("service stops")
        .expect("join")
        .expect("clean stop");
    fake.wait_for("socket closed at shutdown", Duration::from_secs(5), |f| {
        f.conns()[0].closed_at
    })
    .await;
}

#[tokio::test]
async fn stream_mode_without_app_key_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = crate::support::default_settings();
    settings.store.path = dir.path().join("t.db");
    settings.dingtalk.mode = DingtalkMode::Stream;
    settings.dingtalk.app_secret = Secret::new(APP_SECRET);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_millis(START_MS));
    let err = App::build(settings, listener, clock)
        .err()
        .expect("refused");
    assert!(matches!(err, AppError::MissingStreamCredentials), "{err}");
    assert!(err.to_string().contains("app_key"));
    assert!(!err.to_string().contains(APP_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_acks_the_fakes_robot_message_and_card_callback() {
    let python = crate::support::conformance_python();
    let importable = Command::new(&python)
        .args(["-c", "import dingtalk_stream"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        let why = format!(
            "{} cannot import dingtalk_stream (install with: pip install dingtalk-stream==0.24.3, \
             as .ci/run does into target/conformance-venv)",
            python.display()
        );
        crate::support::skip_or_fail(
            "the_official_python_sdk_acks_the_fakes_robot_message_and_card_callback",
            &why,
        );
        return;
    }

    let fake = FakeStream::start().await;
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/dingtalk_stream_sdk.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .args(["--api-base", &fake.api_base, "--client-id", APP_KEY])
        .args(["--client-secret", APP_SECRET, "--timeout", "20"])
        // The fake is on loopback: no proxy may capture it.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("all_proxy")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");

    let connected = tokio::time::timeout(Duration::from_secs(20), async {
        while fake.conns().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if connected.is_err() {
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        panic!(
            "the SDK never connected; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let open = &fake.opens()[0];
    assert_eq!(open.body["clientId"], APP_KEY);
    assert_eq!(open.body["clientSecret"], APP_SECRET);
    let topics: Vec<&str> = open.body["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .filter_map(|s| s["topic"].as_str())
        .collect();
    assert!(topics.contains(&TOPIC_ROBOT_MESSAGE) && topics.contains(&TOPIC_CARD_CALLBACK));

    fake.send(0, robot_frame("sdk-1", "msgSdk1==", " 审核 DH20261100123"));
    fake.send(
        0,
        card_frame(
            "sdk-2",
            "case-A123-inspect-v1",
            "user001",
            "agree_btn",
            json!({"action": "agree"}),
        ),
    );
    let acked = tokio::time::timeout(Duration::from_secs(15), async {
        while fake.acks_for("sdk-1").is_empty() || fake.acks_for("sdk-2").is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let status = child.wait_with_output();
    let out = status.expect("python output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        acked.is_ok(),
        "ACKs missing: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        fake.acks()
    );
    assert!(
        out.status.success(),
        "script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // The SDK's ACKs have the shape our client sends (§2.4).
    for id in ["sdk-1", "sdk-2"] {
        let ack = &fake.acks_for(id)[0];
        assert_eq!(ack.frame["code"], 200, "{:?}", ack.frame);
        assert_eq!(ack.frame["headers"]["messageId"], id);
        assert_eq!(ack.frame["headers"]["contentType"], "application/json");
        assert!(ack.frame["data"].is_string(), "data is a JSON string");
    }
    assert_eq!(
        fake.acks_for("sdk-2")[0].data(),
        json!({"response": {"cardUpdateOptions": {"updateCardDataByKey": true},
                            "cardData": {"cardParamMap": {"status": "已同意"}}}})
    );
    // And the SDK read the fake's payloads as DingTalk's: the last stdout line is its report.
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|_| panic!("no report on stdout:\n{stdout}\nstderr:\n{stderr}"));
    assert_eq!(
        report,
        json!({
            "robot": {"message_id": "msgSdk1==", "text": [" 审核 DH20261100123"],
                      "sender_staff_id": "user001", "conversation_type": "1"},
            "card": {"out_track_id": "case-A123-inspect-v1", "user_id": "user001",
                     "action_ids": ["agree_btn"], "params": {"action": "agree"}},
        })
    );
}
