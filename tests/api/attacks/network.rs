//! Attacks on the connection layer and the web surface (docs/security.md, "Connections,
//! resources and the web surface"): stuck and over-cap connections, label flooding of
//! `/metrics`, a second service through a link to the database, the login-free sandbox reached
//! from the network or through a rebound DNS name, and a stop that kills instead of draining.
//!
//! Timeouts here are 1–2 s so the tests stay short; the defaults are 10 s (headers) and 30 s
//! (request, idle). A connection counts as closed by the server when a read returns end of file
//! or a reset. Attackers connect from other loopback addresses (127.0.0.2, 127.1.x.y, all
//! routed to `lo` on Linux) so that the per-address cap tells them from the test's own client,
//! which connects from 127.0.0.1.
//!
//! The flood test scales: `TIAOCHU_SLOWLORIS_CONNECTIONS` and `TIAOCHU_SILENT_CONNECTIONS`
//! (40 and 10 by default; `tests/evidence-full.sh slowloris` runs 1 500 and 500) and prints its
//! figures with `--nocapture`.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use tiaochu::app::{App, AppError};
use tiaochu::clock::{Clock, ManualClock};
use tiaochu::dingtalk::sign::callback_sign;
use tiaochu::settings::{DingtalkMode, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{START_MS, TestApp, robot_message, spawn_app};

/// Nothing listens here: DingTalk sends from the apps under attack fail at once instead of
/// leaving the machine.
const NOWHERE: &str = "http://127.0.0.1:9";

/// How much later than its timeout a connection may be closed and still pass: the runtime's
/// timer and a loaded two-core machine.
const SLACK: Duration = Duration::from_millis(1500);

/// The test app in `http` mode with the given `[http]` limits, sending nowhere.
async fn app_with(
    header_read: u64,
    request: u64,
    idle: u64,
    max_connections: usize,
    per_ip: usize,
) -> TestApp {
    spawn_app(|s| {
        s.http.header_read_timeout_secs = header_read;
        s.http.request_timeout_secs = request;
        s.http.idle_timeout_secs = idle;
        s.http.max_connections = max_connections;
        s.http.max_connections_per_ip = per_ip;
        s.dingtalk.api_base = NOWHERE.to_string();
        s.dingtalk.oapi_base = NOWHERE.to_string();
    })
    .await
}

fn server(app: &TestApp) -> SocketAddr {
    app.address
        .trim_start_matches("http://")
        .parse()
        .expect("server address")
}

/// A connection to `server` from the loopback address `from`.
async fn connect_from(from: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(from), 0))
        .expect("bind a loopback source address");
    socket.connect(server).await.expect("connect")
}

/// What happened to a connection the client kept open.
struct Fate {
    /// When the server closed it, counted from the call; None when it was still open at the
    /// limit.
    closed_after: Option<Duration>,
    /// Whatever the server wrote before closing.
    received: Vec<u8>,
}

/// Sends `trickle` one byte every `every` (nothing when empty) and reads until the server
/// closes the connection or `limit` passes.
async fn hold(stream: TcpStream, trickle: &[u8], every: Duration, limit: Duration) -> Fate {
    let start = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let mut next = 0;
    let mut tick = tokio::time::interval(every);
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Fate { closed_after: Some(start.elapsed()), received },
                Ok(n) => received.extend_from_slice(&buf[..n]),
            },
            _ = tick.tick(), if next < trickle.len() => {
                // A write into a closed connection fails only later; the read above sees it.
                let _ = writer.write_all(&trickle[next..=next]).await;
                next += 1;
            }
            () = &mut deadline => return Fate { closed_after: None, received },
        }
    }
}

/// Headers that never end: a slowloris client sends them a byte at a time.
fn endless_headers() -> Vec<u8> {
    let mut head = b"POST /dingtalk/robot HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    head.extend(b"X-Slow: ".iter().chain([b'a'; 4000].iter()));
    head
}

fn assert_closed_between(fate: &Fate, at_least: Duration, at_most: Duration, what: &str) {
    let closed = fate
        .closed_after
        .unwrap_or_else(|| panic!("{what}: still open"));
    assert!(
        closed >= at_least && closed <= at_most,
        "{what}: closed after {closed:?}, expected between {at_least:?} and {at_most:?}"
    );
}

async fn assert_inbox_empty(app: &TestApp) {
    assert!(app.inbox().await.is_empty(), "nothing may be stored");
}

#[tokio::test]
async fn slowloris_headers_are_cut_at_the_header_timeout() {
    // Idle and request limits far away: only the header clock can close it at 1 s.
    let app = app_with(1, 30, 30, 64, 16).await;
    let stream = connect_from(Ipv4Addr::new(127, 0, 0, 2), server(&app)).await;
    let fate = hold(
        stream,
        &endless_headers(),
        Duration::from_millis(100),
        Duration::from_secs(10),
    )
    .await;
    assert_closed_between(
        &fate,
        Duration::from_millis(900),
        Duration::from_secs(1) + SLACK,
        "slowloris",
    );
    assert!(fate.received.is_empty(), "no answer to half a request");
    assert_inbox_empty(&app).await;
    let (status, _) = app.health().await;
    assert!(status.is_success());
}

#[tokio::test]
async fn silent_and_kept_alive_connections_are_closed_at_the_idle_timeout() {
    let app = app_with(30, 30, 1, 64, 16).await;
    let silent = connect_from(Ipv4Addr::new(127, 0, 0, 2), server(&app)).await;
    let silent = tokio::spawn(hold(
        silent,
        b"",
        Duration::from_secs(1),
        Duration::from_secs(10),
    ));

    // One answered request, then nothing: the kept-alive connection idles out the same way.
    let mut kept = connect_from(Ipv4Addr::new(127, 0, 0, 2), server(&app)).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    let fate = hold(kept, b"", Duration::from_secs(1), Duration::from_secs(10)).await;
    assert!(
        fate.received.starts_with(b"HTTP/1.1 200"),
        "the request was answered: {}",
        String::from_utf8_lossy(&fate.received)
    );
    assert_closed_between(
        &fate,
        Duration::from_millis(900),
        Duration::from_secs(1) + SLACK,
        "kept alive",
    );
    let fate = silent.await.expect("join");
    assert_closed_between(
        &fate,
        Duration::from_millis(900),
        Duration::from_secs(1) + SLACK,
        "silent",
    );
}

#[tokio::test]
async fn a_trickled_body_is_cut_at_the_request_timeout() {
    let app = app_with(30, 1, 30, 64, 16).await;
    // Correctly signed, so the route reads the body: 1 000 bytes announced, one sent at a time.
    let timestamp = app.now_ms().to_string();
    let sign = callback_sign(&timestamp, &app.secret);
    let head = format!(
        "POST /dingtalk/robot HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         timestamp: {timestamp}\r\nsign: {sign}\r\nContent-Length: 1000\r\n\r\n"
    );
    let mut stream = connect_from(Ipv4Addr::new(127, 0, 0, 2), server(&app)).await;
    stream.write_all(head.as_bytes()).await.expect("head");
    let body = robot_message("msg-trickled-body", "帮助").into_bytes();
    let fate = hold(
        stream,
        &body,
        Duration::from_millis(100),
        Duration::from_secs(10),
    )
    .await;
    assert_closed_between(
        &fate,
        Duration::from_millis(900),
        Duration::from_secs(1) + SLACK,
        "trickled body",
    );
    assert!(
        !fate.received.starts_with(b"HTTP/1.1 200"),
        "never acknowledged: {}",
        String::from_utf8_lossy(&fate.received)
    );
    assert_inbox_empty(&app).await;
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed_at_once_while_others_are_served() {
    let app = app_with(30, 30, 30, 100, 5).await;
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from(attacker, server(&app)).await);
    }
    let over_cap = env_count("TIAOCHU_OVERCAP_CONNECTIONS", 20);
    let mut over = Vec::new();
    for _ in 0..over_cap {
        let stream = connect_from(attacker, server(&app)).await;
        over.push(tokio::spawn(hold(
            stream,
            b"",
            Duration::from_secs(1),
            Duration::from_secs(5),
        )));
    }
    let mut slowest = Duration::ZERO;
    for fate in over {
        let fate = fate.await.expect("join");
        assert_closed_between(
            &fate,
            Duration::ZERO,
            Duration::from_millis(500),
            "over the per-address cap",
        );
        assert!(fate.received.is_empty());
        slowest = slowest.max(fate.closed_after.unwrap_or_default());
    }

    // The test's own client (127.0.0.1) is another address: answered.
    let asked = Instant::now();
    let (status, _) = app.health().await;
    assert!(status.is_success());
    let response = app
        .post_signed(robot_message("msg-during-cap", "帮助"))
        .await;
    assert_eq!(response.status(), 200);
    println!(
        "over-cap test: {over_cap} connections from one address over its cap of 5: all closed at once \
         (slowest {} ms); /healthz and a signed callback from another address answered in {} ms",
        slowest.as_millis(),
        asked.elapsed().as_millis()
    );
    let ids: Vec<String> = app
        .inbox()
        .await
        .into_iter()
        .map(|r| r.message_id)
        .collect();
    assert_eq!(ids, vec!["msg-during-cap".to_string()]);

    // The five within the cap were left alone.
    for stream in held {
        let fate = hold(
            stream,
            b"",
            Duration::from_secs(1),
            Duration::from_millis(300),
        )
        .await;
        assert!(
            fate.closed_after.is_none(),
            "a connection within the cap was closed"
        );
    }
}

#[tokio::test]
async fn connections_over_the_total_cap_are_closed_at_once_and_slots_come_back() {
    let app = app_with(2, 30, 2, 10, 10).await;
    let mut held = Vec::new();
    for i in 0..10 {
        let stream = connect_from(Ipv4Addr::new(127, 0, 1, 1 + i), server(&app)).await;
        held.push(tokio::spawn(hold(
            stream,
            b"",
            Duration::from_secs(1),
            Duration::from_secs(10),
        )));
    }
    // Every slot is taken (from ten addresses, each under its own cap).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let over = connect_from(Ipv4Addr::new(127, 0, 2, 1), server(&app)).await;
    let fate = hold(over, b"", Duration::from_secs(1), Duration::from_secs(5)).await;
    assert_closed_between(
        &fate,
        Duration::ZERO,
        Duration::from_millis(500),
        "over the total cap",
    );
    for fate in held {
        let fate = fate.await.expect("join");
        assert_closed_between(
            &fate,
            Duration::from_millis(1900),
            Duration::from_secs(2) + SLACK,
            "a held slot",
        );
    }
    // The slots are free again once the stuck connections timed out.
    let (status, _) = app.health().await;
    assert!(status.is_success());
    assert!(started.elapsed() < Duration::from_secs(2) + SLACK + SLACK);
    assert_inbox_empty(&app).await;
}

#[tokio::test]
async fn stopping_closes_idle_connections_at_once_and_finishes_requests_under_way() {
    let app = app_with(30, 30, 30, 64, 16).await;
    let idle = connect_from(Ipv4Addr::new(127, 0, 0, 2), server(&app)).await;
    let idle = tokio::spawn(hold(
        idle,
        b"",
        Duration::from_secs(1),
        Duration::from_secs(10),
    ));
    // A signed callback whose body is still coming when the stop is asked.
    let body = robot_message("msg-during-stop", "帮助");
    let timestamp = app.now_ms().to_string();
    let sign = callback_sign(&timestamp, &app.secret);
    let mut under_way = connect_from(Ipv4Addr::new(127, 0, 0, 3), server(&app)).await;
    let head = format!(
        "POST /dingtalk/robot HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         timestamp: {timestamp}\r\nsign: {sign}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    under_way.write_all(head.as_bytes()).await.expect("head");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stop_at = Instant::now();
    app.shutdown.trigger();
    let fate = idle.await.expect("join");
    assert_closed_between(
        &fate,
        Duration::ZERO,
        Duration::from_secs(1),
        "an idle connection at stop",
    );
    assert!(stop_at.elapsed() < Duration::from_secs(1));

    under_way.write_all(body.as_bytes()).await.expect("body");
    let mut answer = Vec::new();
    under_way
        .read_to_end(&mut answer)
        .await
        .expect("read answer");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "the request under way is answered: {}",
        String::from_utf8_lossy(&answer)
    );
    app.server
        .await
        .expect("join")
        .expect("the server stops cleanly");
    let ids: Vec<String> = app
        .store
        .read(|r| r.all_inbox(10))
        .await
        .expect("inbox")
        .into_iter()
        .map(|r| r.message_id)
        .collect();
    assert_eq!(ids, vec!["msg-during-stop".to_string()]);
}

/// The process's soft open-file limit, where Linux tells it.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn env_count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median_and_max(mut values: Vec<Duration>) -> (Duration, Duration) {
    values.sort();
    let median = values.get(values.len() / 2).copied().unwrap_or_default();
    (median, values.last().copied().unwrap_or_default())
}

/// The stuck-connection flood of the original finding (1 500 slowloris and 500 silent sockets
/// stayed open over 70 s), at any size: every connection is accepted (the caps are set above
/// the flood, spread over addresses, so the timeouts alone must free the descriptors) and closed
/// by the server within its timeout, while signed callbacks keep being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_silent_floods_are_closed_within_the_timeouts_while_callbacks_are_answered() {
    const PER_ADDRESS: usize = 50;
    const TIMEOUT: Duration = Duration::from_secs(2);
    let slow = env_count("TIAOCHU_SLOWLORIS_CONNECTIONS", 40);
    let silent = env_count("TIAOCHU_SILENT_CONNECTIONS", 10);
    let total = slow + silent;
    // Both ends of every connection live in this process.
    let needed = 2 * total as u64 + 512;
    if let Some(limit) = open_file_limit() {
        assert!(
            limit >= needed,
            "{total} connections need an open-file limit of at least {needed} (now {limit}): ulimit -n {needed}"
        );
    }
    let app = app_with(2, 5, 2, total + 64, PER_ADDRESS).await;
    let server = server(&app);
    let app = Arc::new(app);

    // Signed callbacks from 127.0.0.1 every 100 ms for as long as the flood lasts.
    let flooding = Arc::new(AtomicBool::new(true));
    let callbacks = {
        let app = Arc::clone(&app);
        let flooding = Arc::clone(&flooding);
        tokio::spawn(async move {
            let mut answered = Vec::new();
            let mut i = 0;
            while flooding.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let status = app
                    .post_signed(robot_message(&format!("msg-flood-{i}"), "帮助"))
                    .await
                    .status();
                answered.push((status, sent.elapsed()));
                i += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answered
        })
    };

    let started = Instant::now();
    let mut held = Vec::with_capacity(total);
    for i in 0..total {
        let k = i / PER_ADDRESS;
        let from = Ipv4Addr::new(127, 1, (k / 250) as u8, (k % 250 + 1) as u8);
        let stream = connect_from(from, server).await;
        let trickle = if i < slow {
            endless_headers()
        } else {
            Vec::new()
        };
        held.push(tokio::spawn(async move {
            hold(
                stream,
                &trickle,
                Duration::from_millis(250),
                TIMEOUT + Duration::from_secs(20),
            )
            .await
        }));
    }
    let opened_in = started.elapsed();
    let mut closed = Vec::with_capacity(total);
    let mut still_open = 0;
    for fate in held {
        match fate.await.expect("join").closed_after {
            Some(after) => closed.push(after),
            None => still_open += 1,
        }
    }
    let all_closed_in = started.elapsed();
    flooding.store(false, Ordering::Relaxed);
    let answered = callbacks.await.expect("join");

    let late = closed.iter().filter(|c| **c > TIMEOUT + SLACK).count();
    let (close_median, close_max) = median_and_max(closed.clone());
    let (cb_median, cb_max) = median_and_max(answered.iter().map(|(_, l)| *l).collect());
    let ok = answered.iter().filter(|(s, _)| s.is_success()).count();
    println!(
        "slowloris test: {total} connections ({slow} slowloris, {silent} silent) from {} addresses opened in {} ms; \
         closed by the server: {} of {total} ({still_open} still open), all within {} ms of the start; \
         after opening: median {} ms, max {} ms (header and idle timeout {} s, {late} later than {} ms)",
        total.div_ceil(PER_ADDRESS),
        opened_in.as_millis(),
        closed.len(),
        all_closed_in.as_millis(),
        close_median.as_millis(),
        close_max.as_millis(),
        TIMEOUT.as_secs(),
        (TIMEOUT + SLACK).as_millis(),
    );
    println!(
        "slowloris test: signed callbacks during the flood: {} sent, {ok} answered 200; latency median {} ms, max {} ms",
        answered.len(),
        cb_median.as_millis(),
        cb_max.as_millis(),
    );
    assert_eq!(
        still_open, 0,
        "every stuck connection is closed by the server"
    );
    assert_eq!(
        late, 0,
        "every stuck connection is closed within its timeout"
    );
    assert!(answered.len() >= 5, "callbacks kept going during the flood");
    assert_eq!(
        ok,
        answered.len(),
        "every callback during the flood answered"
    );
    assert_eq!(app.inbox().await.len(), answered.len(), "and stored");
}

#[tokio::test]
async fn random_methods_and_paths_do_not_grow_metrics() {
    let app = app_with(10, 30, 30, 64, 16).await;
    let series = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("tiaochu_http_request_duration_seconds_count{"))
            .map(|l| l.rsplit_once(' ').expect("sample").0.to_string())
            .collect()
    };
    let scrape = || async {
        app.client
            .get(format!("{}/metrics", app.address))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body")
    };
    let before = series(&scrape().await);

    // xorshift: reproducible without a dependency.
    let mut state = 0x5449_414f_4348_5532_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut sent = Vec::new();
    for _ in 0..200 {
        let method: String = (0..6)
            .map(|_| char::from(b'A' + (next() % 26) as u8))
            .collect();
        let path = format!("/x{:016x}/{:x}", next(), next());
        let response = app
            .client
            .request(
                Method::from_bytes(method.as_bytes()).expect("method"),
                format!("{}{path}", app.address),
            )
            .send()
            .await
            .expect("answered");
        assert!(response.status().is_client_error(), "{method} {path}");
        sent.push((method, path));
    }
    // The known routes with made-up methods, too.
    for route in ["/healthz", "/metrics", "/dingtalk/robot"] {
        let response = app
            .client
            .request(
                Method::from_bytes(b"MADEUP").expect("method"),
                format!("{}{route}", app.address),
            )
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 405, "{route}");
    }

    let text = scrape().await;
    let after = series(&text);
    let added: Vec<&String> = after.iter().filter(|s| !before.contains(s)).collect();
    // At most: (other, other) for the 200, one per known route for MADEUP, and a few pairs
    // other tests in this process may add at the same time.
    assert!(added.len() <= 8, "series added: {added:#?}");
    for (method, path) in &sent {
        assert!(!text.contains(method.as_str()), "{method} became a label");
        assert!(!text.contains(path.as_str()), "{path} became a label");
    }
    assert!(!text.contains("MADEUP"));
    assert!(
        after
            .iter()
            .any(|s| s.contains("route=\"other\",method=\"other\"")),
        "{text}"
    );
}

#[tokio::test]
async fn a_second_service_through_a_link_to_the_database_is_refused() {
    let app = app_with(10, 30, 30, 64, 16).await;
    let links = tempfile::tempdir().expect("tempdir");
    let link = links.path().join("same.db");
    std::os::unix::fs::symlink(&app.db_path, &link).expect("symlink");
    let dir_link = links.path().join("data");
    std::os::unix::fs::symlink(app.db_path.parent().expect("dir"), &dir_link).expect("symlink");

    for db in [link, dir_link.join("tiaochu.db")] {
        let out = tokio::task::spawn_blocking(move || {
            let mut serve = crate::support::cli();
            let mut child = serve
                .arg("serve")
                .env("TIAOCHU_STORE__PATH", &db)
                .env("TIAOCHU_SERVER__LISTEN", "127.0.0.1:0")
                .env("TIAOCHU_DINGTALK__MODE", "sandbox")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            // A refusal is immediate; a second service would run until killed.
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().expect("wait").is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("a second service started on {}", db.display());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            child.wait_with_output().expect("output")
        })
        .await
        .expect("join");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains("已有一个 tiaochu serve 在运行"), "{stderr}");
        assert!(
            stderr.contains(&std::process::id().to_string()),
            "names the holder: {stderr}"
        );
    }
    let (status, _) = app.health().await;
    assert!(status.is_success(), "the running service was not disturbed");
}

/// Settings for a sandbox app on `listen` with a database in `dir`.
fn sandbox_settings(dir: &Path, allow_remote: bool) -> Settings {
    let mut settings = crate::support::default_settings();
    settings.store.path = dir.join("tiaochu.db");
    settings.dingtalk.mode = DingtalkMode::Sandbox;
    settings.sandbox.allow_remote = allow_remote;
    settings
}

#[tokio::test]
async fn the_sandbox_refuses_to_start_on_a_network_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_millis(START_MS));
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let refused = App::build(
        sandbox_settings(dir.path(), false),
        listener,
        Arc::clone(&clock),
    );
    let Err(AppError::SandboxExposed(message)) = refused else {
        panic!("a sandbox on 0.0.0.0 must not start");
    };
    for needed in [
        "[sandbox] allow_remote",
        "TIAOCHU_SANDBOX__ALLOW_REMOTE",
        "沙盒",
        "loopback",
    ] {
        assert!(message.contains(needed), "{needed} missing in: {message}");
    }
    assert!(
        !dir.path().join("tiaochu.db").exists(),
        "refused before the database is opened"
    );

    // check-config says the same before anyone tries.
    let out = crate::support::cli()
        .arg("check-config")
        .env("TIAOCHU_DINGTALK__MODE", "sandbox")
        .env("TIAOCHU_SERVER__LISTEN", "0.0.0.0:8080")
        .env("TIAOCHU_STORE__PATH", dir.path().join("check.db"))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("TIAOCHU_SANDBOX__ALLOW_REMOTE"), "{stderr}");

    // Allowed on purpose, it starts (and warns; see App::build).
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let app = App::build(sandbox_settings(dir.path(), true), listener, clock)
        .unwrap_or_else(|e| panic!("allow_remote = true starts: {e}"));
    assert_eq!(app.mode(), DingtalkMode::Sandbox);
}

#[tokio::test]
async fn a_sandbox_request_naming_a_foreign_host_is_refused() {
    let app = spawn_app(|s| s.dingtalk.mode = DingtalkMode::Sandbox).await;
    let clock_before = app.now_ms();
    let send = |host: &'static str| {
        app.client
            .post(format!("{}/sandbox/send", app.address))
            .header("host", host)
            .json(&serde_json::json!({"as": "local:区人社局:任燕", "text": "帮助"}))
            .send()
    };
    let response = send("evil.example").await.expect("answered");
    assert_eq!(response.status(), 403);
    let body = response.text().await.expect("body");
    assert!(body.contains("禁止访问"), "{body}");
    let response = app
        .client
        .post(format!("{}/sandbox/clock", app.address))
        .header("host", "evil.example:8080")
        .json(&serde_json::json!({"unit": "hours", "amount": 5}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 403);
    for path in [
        "/sandbox",
        "/sandbox/chat?as=local%3A%E5%8C%BA%E4%BA%BA%E7%A4%BE%E5%B1%80%3A%E4%BB%BB%E7%87%95",
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .header("host", "rebound.evil.example")
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 403, "{path}");
    }
    assert!(app.inbox().await.is_empty(), "nothing stored");
    assert_eq!(app.now_ms(), clock_before, "the clock did not move");

    // The same request naming the local address goes through.
    let response = send("localhost").await.expect("answered");
    assert_eq!(response.status(), 200);
    assert_eq!(app.inbox().await.len(), 1);
}

/// `ENV` assignments of deploy/Containerfile.
fn containerfile_env() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/Containerfile"))
            .expect("Containerfile");
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_container_image_without_credentials_refuses_to_start() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/Containerfile"))
            .expect("Containerfile");
    assert!(
        text.lines().any(|l| l.trim() == "STOPSIGNAL SIGTERM"),
        "the image stops with SIGTERM"
    );
    let env = containerfile_env();
    let get = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(get("TIAOCHU_DINGTALK__MODE"), "stream");
    assert!(get("TIAOCHU_SERVER__LISTEN").starts_with("0.0.0.0:"));

    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("tiaochu.db");
    let mut serve = crate::support::cli();
    serve.arg("serve");
    for (key, value) in &env {
        serve.env(key, value);
    }
    // The image's settings, with this checkout's files and a free port.
    let out = serve
        .env("TIAOCHU_STORE__PATH", &db)
        .env("TIAOCHU_ROSTER__PATH", "config/roster.toml")
        .env("TIAOCHU_CALENDAR__DIR", "config/calendar")
        .env("TIAOCHU_SERVER__LISTEN", "0.0.0.0:0")
        .env_remove("TIAOCHU_DINGTALK__APP_KEY")
        .env_remove("TIAOCHU_DINGTALK__APP_SECRET")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("钉钉模式为 stream，但未配置 [dingtalk] app_key 或 app_secret"),
        "{stderr}"
    );
    assert!(!db.exists(), "refused before the database is created");
}

#[test]
fn sigterm_stops_the_service_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut serve = crate::support::cli();
    let mut child = serve
        .arg("serve")
        .env("TIAOCHU_STORE__PATH", dir.path().join("tiaochu.db"))
        .env("TIAOCHU_SERVER__LISTEN", "127.0.0.1:0")
        .env("TIAOCHU_DINGTALK__MODE", "sandbox")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    // Started once it printed how to stop it.
    for line in lines.by_ref() {
        let line = line.expect("line");
        let ready = line.contains("按 Ctrl-C 停止");
        printed.push(line);
        if ready {
            break;
        }
    }
    assert!(
        printed.iter().any(|l| l.contains("按 Ctrl-C 停止")),
        "did not start: {printed:?}"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    printed.extend(lines.map(|l| l.expect("line")));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(printed.iter().any(|l| l == "tiaochu 已停止"), "{printed:?}");
    assert!(stderr.contains("收到停止信号（SIGTERM）"), "{stderr}");
    assert!(stderr.contains("stop signal received"), "{stderr}");
    assert!(stderr.contains("stopped in order"), "{stderr}");
    // stderr is a pipe here, as under systemd or in a log file: no colour codes.
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a piped log: {stderr:?}"
    );
}
