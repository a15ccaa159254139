//! Callbacks, roles, storage and the dashboard (docs/security.md): reading cases and figures
//! one may not see, case numbers spent by refused applications, cross-site and guessed dashboard
//! logins, a store that cannot write, an emptied database file, a replayed callback signature
//! and the encrypted callback envelope.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::SignedDuration;
use reqwest::StatusCode;
use tiaochu::app::App;
use tiaochu::clock::{Clock, ManualClock};
use tiaochu::dingtalk::inbound::CallbackKey;
use tiaochu::dingtalk::sign::callback_sign;
use tiaochu::settings::{DingtalkMode, Secret};
use tiaochu::store::{Store, secret_hash};

use crate::conversation::{CG, Chat, INSPECTOR, RS, ZJ};
use crate::support::{START_MS, TestApp, hv, robot_message, spawn_app};

const TICKET: &str = "DH2026110300017";

const APPLICATION: &str = "工单编号：DH2026110300017
工单标题：反映某建筑公司拖欠薪资的问题
首接单位：区人社局
已采取措施：已向涉事建筑企业取得联系，核实拖欠薪资的基本情况，企业方承认存在拖欠行为。
办理难点：涉诉企业承接区城建公司项目，工程款拨付与住建审批相关，区人社局一家无法办理。
需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。";

/// 区教育局's leader: in the roster, in no unit of the case above.
const OUTSIDER: &str = "local:区教育局:卢建明";
/// A working-group leader: may read every case and the figures.
const GROUP_LEADER: &str = "local:区营商环境建设局:何军";

/// Everything `to` received in one step, joined; empty when nothing.
fn text_for(got: &BTreeMap<String, Vec<String>>, to: &str) -> String {
    got.get(to).map(|v| v.join("\n---\n")).unwrap_or_default()
}

/// Number of case rows and audit events, to show a refusal changed nothing.
async fn case_and_event_counts(store: &Store) -> (usize, usize) {
    store
        .read(|r| -> Result<_, tiaochu::store::StoreError> {
            let cases = r.case_by_ticket(&crate::support::ticket_no(TICKET))?;
            let mut events = 0;
            for c in &cases {
                events += r.events_for_case(c.id)?.len();
            }
            Ok((cases.len(), events))
        })
        .await
        .expect("read")
}

// ---- 查询 and 统计 ------------------------------------------------------------------------

#[tokio::test]
async fn query_by_a_unit_outside_the_case_learns_nothing() {
    let mut chat = Chat::new();
    chat.say(RS, APPLICATION).await;
    chat.say(INSPECTOR, &format!("审核 {TICKET}")).await;
    chat.say(
        INSPECTOR,
        &format!("联合 {TICKET} 区住建局：核查项目审批及工程款拨付；区城市管理局：协助现场核查"),
    )
    .await;
    let before = case_and_event_counts(&chat.store).await;

    let got = chat.say(OUTSIDER, &format!("查询 {TICKET}")).await;
    let refusal = text_for(&got, OUTSIDER);
    assert_eq!(got.len(), 1, "only the sender is answered: {got:#?}");
    assert!(refusal.contains("没有找到您可以查看的"), "{refusal}");
    assert!(
        !refusal.contains("TC-2026") && !refusal.contains("拖欠薪资"),
        "the refusal shows nothing of the case: {refusal}"
    );
    // Exactly the answer for a ticket that has no case: existence is not revealed.
    let got = chat.say(OUTSIDER, "查询 DH2026110399999").await;
    assert_eq!(
        text_for(&got, OUTSIDER).replace("DH2026110399999", TICKET),
        refusal
    );
    assert_eq!(case_and_event_counts(&chat.store).await, before);

    // The case's own people and the hotline still read it.
    for who in [RS, ZJ, CG, INSPECTOR, GROUP_LEADER] {
        let got = chat.say(who, &format!("查询 {TICKET}")).await;
        let answer = text_for(&got, who);
        assert!(answer.contains("TC-2026-0001"), "{who}: {answer}");
    }
}

#[tokio::test]
async fn statistics_asked_by_a_liaison_are_refused_politely() {
    let mut chat = Chat::new();
    chat.say(RS, APPLICATION).await;
    let before = case_and_event_counts(&chat.store).await;
    for who in [RS, OUTSIDER] {
        let got = chat.say(who, "统计 2026-11").await;
        let answer = text_for(&got, who);
        assert!(
            answer.contains("月统计仅供") && answer.contains("工作小组组长"),
            "{who}: {answer}"
        );
        assert!(!answer.contains("办结率"), "no figures: {answer}");
    }
    assert_eq!(case_and_event_counts(&chat.store).await, before);
    for who in [INSPECTOR, GROUP_LEADER] {
        let got = chat.say(who, "统计 2026-11").await;
        assert!(text_for(&got, who).contains("2026-11"), "{got:#?}");
        assert!(!text_for(&got, who).contains("仅供"), "{got:#?}");
    }
}

// ---- case numbers -------------------------------------------------------------------------

#[tokio::test]
async fn refused_applications_do_not_use_up_case_numbers() {
    let mut chat = Chat::new();
    // Neither sender speaks for 区人社局: both are refused by the workflow.
    for who in [ZJ, OUTSIDER] {
        let got = chat.say(who, APPLICATION).await;
        assert!(text_for(&got, who).contains("未受理"), "{got:#?}");
    }
    assert_eq!(case_and_event_counts(&chat.store).await, (0, 0));
    let got = chat.say(RS, APPLICATION).await;
    let receipt = text_for(&got, RS);
    assert!(receipt.contains("TC-2026-0001"), "{receipt}");
}

// ---- dashboard login ----------------------------------------------------------------------

/// A one-time dashboard link for the inspector, stored as 看板 would store it; returns the token.
async fn login_token(app: &TestApp, token: &str) -> String {
    let now = app.clock.now();
    let hash = secret_hash(token);
    app.store
        .write(move |tx| {
            tx.insert_login_token(&hash, INSPECTOR, now, now + SignedDuration::from_mins(10))
        })
        .await
        .expect("store the link");
    token.to_string()
}

async fn post_login(app: &TestApp, token: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut request = client
        .post(format!("{}/dashboard/login", app.address))
        .form(&[("token", token)]);
    for (name, value) in headers {
        request = request.header(*name, hv(value));
    }
    request.send().await.expect("login reaches the server")
}

fn has_session(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|v| v.to_str().unwrap_or("").starts_with("tiaochu_dashboard="))
}

#[tokio::test]
async fn cross_site_dashboard_login_is_refused_and_spends_nothing() {
    let app = spawn_app(|_| {}).await;
    let token = login_token(&app, "cross-site-token-0123456789abcdef").await;
    let host = app.address.trim_start_matches("http://").to_string();
    for headers in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
    ] {
        let response = post_login(&app, &token, &headers).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(!has_session(&response), "{headers:?}");
        let body = response.text().await.expect("body");
        assert!(body.contains("来自其他网站"), "{body}");
    }
    // The link was not spent: the dashboard's own form still logs in with it.
    let origin = app.address.clone();
    let response = post_login(
        &app,
        &token,
        &[
            ("origin", origin.as_str()),
            ("host", host.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(has_session(&response));
}

#[tokio::test]
async fn cross_site_dashboard_logout_is_refused() {
    let app = spawn_app(|_| {}).await;
    let response = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/dashboard/logout", app.address))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response.headers().get("set-cookie").is_none(),
        "the cookie is not cleared"
    );
}

#[tokio::test]
async fn guessing_dashboard_login_links_is_stopped_after_five_failures() {
    let app = spawn_app(|_| {}).await;
    let token = login_token(&app, "the-real-token-0123456789abcdef").await;
    for i in 0..5 {
        let response = post_login(&app, &format!("guess-{i}"), &[]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // The sixth try is refused before the token is looked at: even the right one.
    let response = post_login(&app, &token, &[]).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!has_session(&response));
    let retry_after: i64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    let body = response.text().await.expect("body");
    assert!(
        body.contains("登录失败次数过多") && body.contains("后再试"),
        "{body}"
    );

    // Ten minutes after the first failure a (fresh) link works, and clears the count.
    app.clock.advance(SignedDuration::from_mins(10));
    let token = login_token(&app, "a-fresh-token-0123456789abcdef").await;
    let response = post_login(&app, &token, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(has_session(&response));
    for i in 0..5 {
        let response = post_login(&app, &format!("again-{i}"), &[]).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "after reset {i}"
        );
    }
}

// ---- a store that cannot write --------------------------------------------------------------

async fn store_up(app: &TestApp) -> String {
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("tiaochu_store_up ").map(str::to_string))
        .expect("store_up line")
}

#[tokio::test]
async fn a_full_disk_is_reported_by_healthz_and_metrics_not_hidden() {
    let app = spawn_app(|_| {}).await;
    assert_eq!(app.health().await.0, StatusCode::OK);
    // The database may not grow any more: every write that needs a page fails as on a full disk.
    app.store.set_max_page_count(1).await.expect("cap");
    let big = "满".repeat(20_000);
    // A background write that fits in a free page (a worker's update) may commit between the
    // refused callback and the health check and clear the failure, as it should; the callback
    // is retried as DingTalk would until the health check sees the failure it reports.
    let (mut status, mut body) = (StatusCode::OK, serde_json::Value::Null);
    for attempt in 0..10 {
        let response = app
            .post_signed(robot_message(&format!("msg-disk-full-{attempt}"), &big))
            .await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        (status, body) = app.health().await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
    }
    assert!(app.inbox().await.is_empty(), "nothing stored");

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "degraded");
    let reason = body["store"].as_str().unwrap_or_default();
    assert!(reason.contains("磁盘空间已满"), "{body}");
    assert_eq!(store_up(&app).await, "0");

    // Room again: the next write commits and the service is healthy again.
    app.store
        .set_max_page_count(1 << 30)
        .await
        .expect("lift the cap");
    let response = app.post_signed(robot_message("msg-disk-ok", &big)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = app.health().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["store"], "ok");
    assert_eq!(store_up(&app).await, "1");
}

// ---- an emptied database file ---------------------------------------------------------------

/// `tiaochu <args>` on the database `db`, in sandbox mode on a free port, with none of the
/// developer's own TIAOCHU_* settings.
fn tiaochu_on(db: &std::path::Path, args: &[&str]) -> crate::support::Cli {
    let mut command = crate::support::cli();
    command.args(args).stdin(std::process::Stdio::null());
    command
        .env("TIAOCHU_STORE__PATH", db)
        .env("TIAOCHU_SERVER__LISTEN", "127.0.0.1:0")
        .env("TIAOCHU_DINGTALK__MODE", "sandbox");
    command
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).expect("database file").len()
}

#[test]
fn serve_refuses_an_emptied_database_file_until_told_to_init() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("tiaochu.db");
    std::fs::write(&db, b"").expect("a restore that copied nothing");

    let out = tiaochu_on(&db, &["serve"]).output().expect("run serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("存在但是空的") && stderr.contains("is empty") && stderr.contains("--init"),
        "{stderr}"
    );
    assert_eq!(file_len(&db), 0, "the file was not turned into a database");

    // `serve --init` makes it a database on purpose, then serves.
    let mut serve = tiaochu_on(&db, &["serve", "--init"]);
    let mut child = serve
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start serve --init");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let started = loop {
        match seen.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(line) => {
                let done = line.contains("tiaochu 已启动");
                printed.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    child.kill().expect("stop the service it started");
    child.wait().expect("reap");
    assert!(started, "serve --init did not start: {printed:#?}");
    assert!(
        printed.iter().any(|l| l.contains("已将空的数据库文件")),
        "{printed:#?}"
    );
    assert!(file_len(&db) > 0);
    Store::open(&db).expect("a database now");

    // `tiaochu migrate` is the other deliberate way.
    let other = dir.path().join("other.db");
    std::fs::write(&other, b"").expect("empty");
    let out = tiaochu_on(&other, &["migrate"]).output().expect("migrate");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(file_len(&other) > 0);
}

#[test]
fn the_first_start_on_a_missing_database_file_still_creates_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("fresh.db");
    Store::open(&db).expect("the quick start creates the file");
    assert!(file_len(&db) > 0);
}

// ---- replayed callback signatures -----------------------------------------------------------

async fn seen_signatures(app: &TestApp) -> u64 {
    app.store
        .read(|r| r.seen_signature_count())
        .await
        .expect("read")
}

/// Posts `body` with exactly this (timestamp, sign) pair.
async fn post_with_pair(app: &TestApp, body: String, timestamp: &str, sign: &str) -> StatusCode {
    app.post_robot(body, &[("timestamp", hv(timestamp)), ("sign", hv(sign))])
        .await
        .status()
}

#[tokio::test]
async fn a_captured_signature_replayed_with_another_message_is_refused() {
    let app = spawn_app(|_| {}).await;
    let timestamp = app.now_ms().to_string();
    let sign = callback_sign(&timestamp, &app.secret);
    let first = robot_message("msg-first", "帮助");
    assert_eq!(
        post_with_pair(&app, first.clone(), &timestamp, &sign).await,
        StatusCode::OK
    );
    assert_eq!(app.inbox().await.len(), 1);
    assert_eq!(seen_signatures(&app).await, 1);

    // Within the hour the pair still verifies, but it already carried a message.
    app.clock.advance(SignedDuration::from_mins(30));
    let forged = robot_message("msg-forged", "审核 DH2026110300017");
    let response = app
        .post_robot(
            forged,
            &[("timestamp", hv(&timestamp)), ("sign", hv(&sign))],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = response.text().await.expect("body");
    assert!(body.contains("重放"), "{body}");
    let inbox = app.inbox().await;
    assert_eq!(inbox.len(), 1, "nothing stored");
    assert_eq!(inbox[0].message_id, "msg-first");
    assert_eq!(seen_signatures(&app).await, 1, "nothing remembered");

    // DingTalk delivering the same message again with the same pair is still a duplicate.
    assert_eq!(
        post_with_pair(&app, first, &timestamp, &sign).await,
        StatusCode::OK
    );
    assert_eq!(app.inbox().await.len(), 1);
}

#[tokio::test]
async fn a_replayed_signature_is_refused_after_a_restart_too() {
    let first = spawn_app(|_| {}).await;
    let then = first.now_ms();
    let timestamp = then.to_string();
    let sign = callback_sign(&timestamp, &first.secret);
    assert_eq!(
        post_with_pair(&first, robot_message("msg-1", "帮助"), &timestamp, &sign).await,
        StatusCode::OK
    );
    first.shutdown.trigger();
    first.server.await.expect("join").expect("server");

    let db = first.db_path.clone();
    let again = spawn_app(move |s| s.store.path = db).await;
    again.clock.set_millis(then + 60_000);
    assert_eq!(
        post_with_pair(&again, robot_message("msg-2", "帮助"), &timestamp, &sign).await,
        StatusCode::UNAUTHORIZED
    );
    let inbox = again.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(inbox[0].message_id, "msg-1");
}

#[tokio::test]
async fn remembered_signatures_are_forgotten_once_they_cannot_verify() {
    let app = spawn_app(|_| {}).await;
    assert_eq!(
        app.post_signed(robot_message("msg-old", "帮助"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(seen_signatures(&app).await, 1);
    app.clock.advance(SignedDuration::from_mins(61));
    assert_eq!(
        app.post_signed(robot_message("msg-new", "帮助"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        seen_signatures(&app).await,
        1,
        "the expired pair was dropped"
    );
}

// ---- the encrypted callback envelope ------------------------------------------------------

/// A console-style `aes_key` (43 Base64 characters).
const AES_KEY: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";

fn aes_key() -> CallbackKey {
    CallbackKey::from_setting(&Secret::new(AES_KEY))
        .expect("valid")
        .expect("set")
}

async fn encrypted_app() -> TestApp {
    spawn_app(|s| s.dingtalk.callback_aes_key = Secret::new(AES_KEY)).await
}

#[tokio::test]
async fn an_encrypted_callback_is_opened_and_stored_as_the_message() {
    let app = encrypted_app().await;
    let message = robot_message("msg-sealed", "帮助");
    let body = aes_key().seal(*b"0123456789abcdef", message.as_bytes(), "dingappkey");
    assert_eq!(app.post_signed(body).await.status(), StatusCode::OK);
    let inbox = app.inbox().await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].message_id, "msg-sealed");
    assert_eq!(inbox[0].payload, message, "the decrypted message is stored");
}

#[tokio::test]
async fn a_plain_callback_is_refused_when_encryption_is_on() {
    let app = encrypted_app().await;
    let response = app.post_signed(robot_message("msg-plain", "帮助")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.text().await.expect("body");
    assert!(body.contains("不是加密格式"), "{body}");
    assert!(app.inbox().await.is_empty());
    assert_eq!(seen_signatures(&app).await, 0);
}

#[tokio::test]
async fn an_undecryptable_callback_is_refused_and_stores_nothing() {
    let app = encrypted_app().await;
    let other =
        CallbackKey::from_setting(&Secret::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"))
            .expect("valid")
            .expect("set");
    let message = robot_message("msg-other-key", "帮助");
    for body in [
        other.seal([9; 16], message.as_bytes(), "dingappkey"),
        r#"{"encrypt":"AAAAAAAAAAAAAAAAAAAAAA=="}"#.to_string(),
        r#"{"encrypt":"*** not base64 ***"}"#.to_string(),
    ] {
        let response = app.post_signed(body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let text = response.text().await.expect("body");
        assert!(text.contains("无法解密"), "{text}");
    }
    assert!(app.inbox().await.is_empty());
    assert_eq!(seen_signatures(&app).await, 0);
}

#[tokio::test]
async fn an_encrypted_callback_without_a_configured_key_is_refused() {
    let app = spawn_app(|_| {}).await;
    let body = aes_key().seal([1; 16], robot_message("msg-x", "帮助").as_bytes(), "k");
    let response = app.post_signed(body).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = response.text().await.expect("body");
    assert!(text.contains("callback_aes_key"), "{text}");
    assert!(app.inbox().await.is_empty());
}

#[tokio::test]
async fn a_malformed_callback_aes_key_stops_the_service_from_starting() {
    let mut settings = crate::support::default_settings();
    let dir = tempfile::tempdir().expect("tempdir");
    settings.store.path = dir.path().join("t.db");
    settings.dingtalk.mode = DingtalkMode::Http;
    settings.dingtalk.app_secret = Secret::new("s");
    settings.dingtalk.callback_aes_key = Secret::new("too-short");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_millis(START_MS));
    let err = App::build(settings, listener, clock)
        .err()
        .expect("refused");
    let shown = err.to_string();
    assert!(
        shown.contains("callback_aes_key") && !shown.contains("too-short"),
        "{shown}"
    );
}
