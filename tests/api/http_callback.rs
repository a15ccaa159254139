//! Integration tests: the signed robot callback and the health check through the real server
//! (port 0, temp database, manual clock). Every rejected request must leave the inbox empty.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use tiaochu::app::{App, AppError};
use tiaochu::clock::{Clock, ManualClock};
use tiaochu::dingtalk::sign::callback_sign;
use tiaochu::settings::{DingtalkMode, Secret};
use tiaochu::store::NewOutbound;

use crate::support::{SECRET, START_MS, TestApp, hv, robot_message, spawn_app};

/// §10.1: (timestamp, appSecret, sign).
const VECTORS: [(&str, &str, &str); 4] = [
    (
        "1577262236757",
        "this is a secret",
        "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA=",
    ),
    (
        "1700000000000",
        "secret",
        "OuzzJR5+xZ4/EYwqtNt6sMYZQMTa/HEGvc9miJe7XzY=",
    ),
    (
        "1735689600000",
        "Zq3b9sVt1-xK8mP0wLr7_eYhC2uNd5fGaJ4kQ6iT9oB1cXzR3vW8yE0pS7lU2nM5",
        "4WaaT3upDv3jNeFYdk0q8u0UYtJlyqPbc29K1nVTnMY=",
    ),
    (
        "1767225600000",
        "dingtalk-app-secret-中文",
        "yezwYjzsz7KU7AhdqJLB5ObTdgKjdrzm6EYONwwXVjQ=",
    ),
];

const HOUR_MS: i64 = 3_600_000;

async fn assert_inbox_empty(app: &TestApp, context: &str) {
    let rows = app.inbox().await;
    assert!(
        rows.is_empty(),
        "{context}: inbox has {} row(s)",
        rows.len()
    );
}

async fn inbox_ids(app: &TestApp) -> Vec<String> {
    app.inbox()
        .await
        .into_iter()
        .map(|r| r.message_id)
        .collect()
}

#[tokio::test]
async fn reference_vectors_are_accepted_through_the_route_and_committed_before_200() {
    for (i, (ts, secret, sign)) in VECTORS.into_iter().enumerate() {
        let app = spawn_app(|s| s.dingtalk.app_secret = Secret::new(secret)).await;
        app.clock.set_millis(ts.parse().expect("vector timestamp"));
        let body = robot_message(&format!("kat-{i}"), " 工单编号：DH2026110001");
        let response = app
            .post_robot(body.clone(), &[("timestamp", hv(ts)), ("sign", hv(sign))])
            .await;
        assert_eq!(response.status(), StatusCode::OK, "vector {ts}");
        assert_eq!(response.text().await.expect("body"), "{}");
        // The 200 came after the commit, so the row is visible at once.
        let rows = app.inbox().await;
        assert_eq!(rows.len(), 1, "vector {ts}");
        assert_eq!(rows[0].source, "robot");
        assert_eq!(rows[0].message_id, format!("kat-{i}"));
        assert_eq!(rows[0].payload, body, "the raw body is stored verbatim");
        assert_eq!(rows[0].received_at, app.clock.now());
    }
}

#[tokio::test]
async fn the_reference_negative_vector_is_refused() {
    // §10.1: vector 1 verified with the secret "this is secret" must fail.
    let (ts, _, sign) = VECTORS[0];
    let app = spawn_app(|s| s.dingtalk.app_secret = Secret::new("this is secret")).await;
    app.clock.set_millis(ts.parse().expect("vector timestamp"));
    let response = app
        .post_robot(
            robot_message("neg", "x"),
            &[("timestamp", hv(ts)), ("sign", hv(sign))],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_inbox_empty(&app, "wrong secret").await;
}

#[tokio::test]
async fn flipping_any_byte_of_timestamp_or_sign_is_401_and_leaves_no_row() {
    let app = spawn_app(|_| {}).await;
    let ts = app.now_ms().to_string();
    let sign = callback_sign(&ts, SECRET);
    let body = robot_message("flip", "内容");
    // XOR 1 keeps digits digits and Base64 characters visible ASCII, so every variant is a
    // well-formed header that reaches the verifier.
    for i in 0..ts.len() {
        let mut b = ts.clone().into_bytes();
        b[i] ^= 1;
        let flipped = String::from_utf8(b).expect("ascii");
        let response = app
            .post_robot(
                body.clone(),
                &[("timestamp", hv(&flipped)), ("sign", hv(&sign))],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "timestamp byte {i}"
        );
    }
    for i in 0..sign.len() {
        let mut b = sign.clone().into_bytes();
        b[i] ^= 1;
        let flipped = String::from_utf8(b).expect("ascii");
        let response = app
            .post_robot(
                body.clone(),
                &[("timestamp", hv(&ts)), ("sign", hv(&flipped))],
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "sign byte {i}");
    }
    assert_inbox_empty(&app, "after flipped headers").await;
    // The unflipped pair is accepted, so the 401s above came from the flips.
    let response = app
        .post_robot(body, &[("timestamp", hv(&ts)), ("sign", hv(&sign))])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(inbox_ids(&app).await, ["flip"]);
}

#[tokio::test]
async fn window_edges_are_inclusive_and_one_step_past_is_401() {
    let app = spawn_app(|_| {}).await;
    let ts = START_MS.to_string();

    app.clock.set_millis(START_MS + HOUR_MS);
    let r = app
        .post_signed_at(robot_message("old-edge", "x"), &ts)
        .await;
    assert_eq!(r.status(), StatusCode::OK, "exactly 1 hour old");

    app.clock.set_millis(START_MS + HOUR_MS + 1);
    let r = app.post_signed_at(robot_message("old-1ms", "x"), &ts).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "1 ms past the hour");

    app.clock.set_millis(START_MS + HOUR_MS + 1_000);
    let r = app.post_signed_at(robot_message("old-1s", "x"), &ts).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "1 s past the hour");

    // Another message needs its own timestamp: the pair above already carried one, and a
    // pair that comes with a second message is a replay (attacks::low).
    let ts = (START_MS + 1).to_string();
    app.clock.set_millis(START_MS + 1 - 300_000);
    let r = app
        .post_signed_at(robot_message("future-edge", "x"), &ts)
        .await;
    assert_eq!(r.status(), StatusCode::OK, "exactly 5 minutes ahead");

    app.clock.set_millis(START_MS + 1 - 301_000);
    let r = app
        .post_signed_at(robot_message("future-1s", "x"), &ts)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "5 min + 1 s ahead");

    // A whole hour ahead is within DingTalk's ±1 h but beyond our 5-minute future limit.
    app.clock.set_millis(START_MS + 1 - HOUR_MS);
    let r = app
        .post_signed_at(robot_message("future-hour", "x"), &ts)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "1 hour ahead");

    assert_eq!(inbox_ids(&app).await, ["old-edge", "future-edge"]);
}

#[tokio::test]
async fn missing_doubled_or_garbled_headers_are_401_never_500() {
    let app = spawn_app(|_| {}).await;
    let ts = app.now_ms().to_string();
    let sign = callback_sign(&ts, SECRET);
    let other_ts = (app.now_ms() - 1).to_string();
    let other_sign = callback_sign(&other_ts, SECRET);
    let cases: Vec<(&str, Vec<(&str, HeaderValue)>)> = vec![
        ("no headers", vec![]),
        ("timestamp only", vec![("timestamp", hv(&ts))]),
        ("sign only", vec![("sign", hv(&sign))]),
        (
            "timestamp twice (same value)",
            vec![
                ("timestamp", hv(&ts)),
                ("timestamp", hv(&ts)),
                ("sign", hv(&sign)),
            ],
        ),
        (
            "sign twice (same value)",
            vec![
                ("timestamp", hv(&ts)),
                ("sign", hv(&sign)),
                ("sign", hv(&sign)),
            ],
        ),
        (
            "two valid pairs",
            vec![
                ("timestamp", hv(&ts)),
                ("sign", hv(&sign)),
                ("timestamp", hv(&other_ts)),
                ("sign", hv(&other_sign)),
            ],
        ),
        (
            "doubled under another case",
            vec![
                ("timestamp", hv(&ts)),
                ("Timestamp", hv(&ts)),
                ("sign", hv(&sign)),
            ],
        ),
        (
            "empty values",
            vec![("timestamp", hv("")), ("sign", hv(""))],
        ),
        (
            "non-ASCII timestamp",
            vec![
                (
                    "timestamp",
                    HeaderValue::from_bytes("时间".as_bytes()).expect("obs-text"),
                ),
                ("sign", hv(&sign)),
            ],
        ),
        (
            "URL-encoded sign",
            vec![
                ("timestamp", hv(&ts)),
                (
                    "sign",
                    hv(&sign
                        .replace('+', "%2B")
                        .replace('/', "%2F")
                        .replace('=', "%3D")),
                ),
            ],
        ),
    ];
    for (name, headers) in cases {
        let response = app.post_robot(robot_message("hdr", "x"), &headers).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
    }
    assert_inbox_empty(&app, "after bad headers").await;
    // Header names are case-insensitive: DingTalk's exact spelling does not matter.
    let response = app
        .post_robot(
            robot_message("hdr", "x"),
            &[("Timestamp", hv(&ts)), ("SIGN", hv(&sign))],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn body_limit_is_64_kib_and_a_401_does_not_depend_on_the_body() {
    let app = spawn_app(|_| {}).await;
    let limit = 64 * 1024;
    let bare = robot_message("big", "");
    let exact = robot_message("big", &"a".repeat(limit - bare.len()));
    assert_eq!(exact.len(), limit);
    let over = robot_message("ovr", &"a".repeat(limit + 1 - bare.len()));
    assert_eq!(over.len(), limit + 1);

    let r = app.post_signed(over.clone()).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_inbox_empty(&app, "oversize body").await;

    // Forged signature with an oversize body: the signature is judged first.
    let r = app
        .post_robot(
            over,
            &[
                ("timestamp", hv(&app.now_ms().to_string())),
                ("sign", hv(&callback_sign("1", SECRET))),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let r = app.post_signed(exact).await;
    assert_eq!(r.status(), StatusCode::OK, "exactly 64 KiB is accepted");
    assert_eq!(inbox_ids(&app).await, ["big"]);
}

#[tokio::test]
async fn a_validly_signed_body_that_is_not_a_robot_message_is_400_and_leaves_no_row() {
    let app = spawn_app(|_| {}).await;
    for body in [
        "",
        "hello",
        "[1,2,3]",
        "{}",
        r#"{"msgtype":"text","text":{"content":"没有 msgId"}}"#,
        r#"{"msgId":"","msgtype":"text"}"#,
        r#"{"msgId":"no-type"}"#,
        r#"{"msgId":"truncated","msgtype":"te"#,
    ] {
        let response = app.post_signed(body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body:?}");
        let json: serde_json::Value = response.json().await.expect("JSON error body");
        let message = json["error"].as_str().expect("error text");
        assert!(message.contains("机器人消息"), "{message}");
    }
    assert_inbox_empty(&app, "after malformed bodies").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_msg_id_three_times_concurrently_gives_one_row_and_three_200s() {
    let app = spawn_app(|_| {}).await;
    let body = robot_message("dup-1", "工单编号：DH2026110001");
    let (a, b, c) = tokio::join!(
        app.post_signed(body.clone()),
        app.post_signed(body.clone()),
        app.post_signed(body.clone()),
    );
    for response in [a, b, c] {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.expect("body"), "{}");
    }
    let rows = app.inbox().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].message_id, "dup-1");
    // Counted straight from the file too, processed or not.
    let raw = rusqlite::Connection::open(&app.db_path).expect("open raw");
    let n: i64 = raw
        .query_row(
            "SELECT count(*) FROM inbox WHERE message_id = 'dup-1'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 1);
    // A later redelivery (DingTalk retrying) is a 200 and still one row.
    let again = app.post_signed(body).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(app.inbox().await.len(), 1);
}

#[tokio::test]
async fn healthz_reports_store_stream_and_outbox_backlog() {
    let app = spawn_app(|_| {}).await;
    let (status, body) = app.health().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({
            "status": "ok",
            "store": "ok",
            "outbox": {"pending": 0, "dead": 0},
            "quarantine": 0,
            "stream": "not_configured",
        })
    );

    let now = app.clock.now();
    // Due in an hour: the app's outbox worker, woken by this commit, must not send them before
    // /healthz is read (under a loaded test run it did).
    let later = now + jiff::SignedDuration::from_hours(1);
    app.store
        .write(move |tx| -> Result<_, tiaochu::store::StoreError> {
            for key in ["a", "b", "c"] {
                tx.enqueue_outbox(&NewOutbound {
                    idem_key: key,
                    channel: "robot_1to1",
                    target: "user001",
                    payload: b"{}",
                    not_before: later,
                })?;
            }
            let dead = tx.enqueue_outbox(&NewOutbound {
                idem_key: "d",
                channel: "robot_1to1",
                target: "user001",
                payload: b"{}",
                not_before: now,
            })?;
            tx.mark_dead(dead, "400102 bot is stopped", now)?;
            Ok(())
        })
        .await
        .expect("seed outbox");
    let (status, body) = app.health().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["outbox"], serde_json::json!({"pending": 3, "dead": 1}));
    assert_eq!(body["status"], "degraded", "a dead letter needs an admin");
    assert_eq!(body["store"], "ok");
}

#[tokio::test]
async fn sandbox_mode_has_no_robot_callback() {
    let app = spawn_app(|s| {
        s.dingtalk.mode = DingtalkMode::Sandbox;
        s.dingtalk.app_secret = Secret::new("");
    })
    .await;
    let response = app.post_signed(robot_message("sb", "x")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_inbox_empty(&app, "sandbox").await;
    assert_eq!(app.health().await.0, StatusCode::OK);
}

#[tokio::test]
async fn http_mode_without_a_secret_does_not_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = crate::support::default_settings();
    settings.store.path = dir.path().join("t.db");
    settings.dingtalk.mode = DingtalkMode::Http;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err = App::build(
        settings,
        listener,
        Arc::new(ManualClock::at_millis(START_MS)),
    )
    .err()
    .expect("must refuse");
    assert!(matches!(err, AppError::MissingAppSecret), "{err:?}");
    assert!(err.to_string().contains("app_secret"), "{err}");
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let app = spawn_app(|_| {}).await;
    assert_eq!(app.health().await.0, StatusCode::OK);
    app.shutdown.trigger();
    let TestApp {
        server, address, ..
    } = app;
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("server stops within 10 s")
        .expect("server task joined")
        .expect("clean stop");
    let refused = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("{address}/healthz"))
        .send()
        .await;
    assert!(refused.is_err(), "the listener is closed after shutdown");
}

/// `GET /` answers someone who opens the service's address: a short page pointing to DingTalk
/// and the dashboard, or, in sandbox mode, the sandbox console.
#[tokio::test]
async fn the_root_page_points_people_to_dingtalk_or_the_sandbox() {
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    let app = spawn_app(|_| {}).await;
    let response = no_redirects
        .get(format!("{}/", app.address))
        .send()
        .await
        .expect("GET /");
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response
        .headers()
        .get("content-security-policy")
        .expect("a CSP")
        .to_str()
        .expect("text")
        .to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let page = response.text().await.expect("body");
    assert!(
        page.contains("联合调处") && page.contains("发送“帮助”"),
        "{page}"
    );
    assert!(page.contains(r#"href="/dashboard""#), "{page}");
    app.shutdown.trigger();

    let sandbox = spawn_app(|s| s.dingtalk.mode = DingtalkMode::Sandbox).await;
    let response = no_redirects
        .get(format!("{}/", sandbox.address))
        .send()
        .await
        .expect("GET /");
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(
        response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok()),
        Some("/sandbox")
    );
    sandbox.shutdown.trigger();
}
