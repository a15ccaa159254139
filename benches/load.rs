//! Load evidence (issue 8): the robot webhook path of the real service — signature check,
//! dedupe, durable commit of the inbox row (`synchronous=FULL`), with the inbox worker parsing,
//! deciding and queueing outbox rows behind it — against a bare axum endpoint that only answers
//! 200, both in this process, driven by the same client with the same signed callbacks:
//!
//! 1. a held 200 requests/s for [`HELD_FULL`] (open loop: latency is measured from each request's
//!    scheduled start, so a stall is not hidden by sending less) → p50 and p99 ratios;
//! 2. as many requests as [`WORKERS`] concurrent clients get answered in [`MAX_FULL`] → the
//!    throughput ratio;
//! 3. the resident memory of a separate `tiaochu serve` process (the binary built with this
//!    bench), idle after 5 s and again after a held 200 requests/s for [`RSS_LOAD_FULL`].
//!
//! Run with `cargo bench --bench load` (the full form); prints the figures and the goals they are
//! measured against (throughput ≥ 0.30× bare, p99 ≤ 3× bare at 200 req/s, idle RSS ≤ 30 MB).
//! `cargo bench --bench load -- --short` runs every phase for a fifth of the time: `.ci/run`
//! uses it so the whole path is exercised on every change; its figures are noisier.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tiaochu::app::App;
use tiaochu::clock::{Clock, SystemClock};
use tiaochu::dingtalk::sign::callback_sign;
use tiaochu::roster::{Person, Role, Roster};
use tiaochu::settings::{DingtalkMode, Secret, Settings};

const SECRET: &str = "bench-app-secret";
const RATE: u64 = 200;
const HELD_FULL: Duration = Duration::from_secs(20);
const MAX_FULL: Duration = Duration::from_secs(10);
const RSS_LOAD_FULL: Duration = Duration::from_secs(5);

static SHORT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// A phase's length: the full form, or a fifth of it with `--short`.
fn phase(full: Duration) -> Duration {
    if *SHORT.get_or_init(|| std::env::args().any(|a| a == "--short")) {
        full / 5
    } else {
        full
    }
}

fn held_phase() -> Duration {
    phase(HELD_FULL)
}

fn max_phase() -> Duration {
    phase(MAX_FULL)
}

fn rss_load_phase() -> Duration {
    phase(RSS_LOAD_FULL)
}
const WORKERS: usize = 64;
const LIAISON: &str = "u-bench-liaison";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let roster = roster_file(dir.path());
    let bare = start_bare().await;
    let service = start_service(&dir.path().join("bench.db"), &roster, &bare).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(WORKERS)
        .build()
        .expect("client");
    let seq = Arc::new(AtomicU64::new(0));
    println!("machine: {}", machine());

    // Warm both up (connections, page cache, the token fetch behind the first reply).
    held(&client, &bare, &seq, Duration::from_secs(2)).await;
    held(&client, &service, &seq, Duration::from_secs(2)).await;

    println!("held {RATE} req/s for {} s each:", held_phase().as_secs());
    let bare_held = held(&client, &bare, &seq, held_phase()).await;
    println!("  bare    {}", bare_held.line());
    let service_held = held(&client, &service, &seq, held_phase()).await;
    println!("  service {}", service_held.line());

    println!(
        "maximum throughput, {WORKERS} concurrent clients, {} s each:",
        max_phase().as_secs()
    );
    let bare_max = max_throughput(&client, &bare, &seq).await;
    println!("  bare    {bare_max:.0} req/s");
    let service_max = max_throughput(&client, &service, &seq).await;
    println!("  service {service_max:.0} req/s");

    let throughput = service_max / bare_max;
    let p50 = service_held.p50 / bare_held.p50;
    let p99 = service_held.p99 / bare_held.p99;
    println!(
        "throughput ratio (service / bare): {throughput:.2}  (goal ≥ 0.30: {})",
        verdict(throughput >= 0.30)
    );
    println!("p50 ratio at {RATE} req/s: {p50:.2}");
    println!(
        "p99 ratio at {RATE} req/s: {p99:.2}  (goal ≤ 3: {})",
        verdict(p99 <= 3.0)
    );

    let (idle, loaded, peak) = serve_rss(&client, &bare, &roster, dir.path(), &seq).await;
    println!(
        "tiaochu serve RSS: idle {} (goal ≤ 30 MB: {}), after {} s at {RATE} req/s {}, peak {}",
        mb(idle),
        verdict(idle <= 30 * 1024),
        rss_load_phase().as_secs(),
        mb(loaded),
        mb(peak)
    );
    println!(
        "this bench process (client + service + bare endpoint) RSS now: {}",
        mb(rss(std::process::id()).0)
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

/// `nproc` and the CPU model, from `/proc`.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} CPUs, {model}")
}

/// The shipped roster plus one liaison of 区人社局 with a staff id, so the applications the
/// load sends open cases.
fn roster_file(dir: &Path) -> std::path::PathBuf {
    let shipped = Roster::load(Path::new("config/roster.toml")).expect("shipped roster");
    let mut people = shipped.people().to_vec();
    people.push(Person::new(
        "压测联络员",
        "区人社局",
        "科员",
        vec![Role::Liaison],
        LIAISON,
        "",
    ));
    let path = dir.join("roster.toml");
    std::fs::write(
        &path,
        Roster::from_parts(shipped.units().to_vec(), people).to_toml(),
    )
    .expect("write roster");
    path
}

/// The bare endpoint: answers every request 200 with a body that also satisfies the service's
/// outbound calls (token and sends), so it doubles as the DingTalk the service replies to.
async fn start_bare() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind bare");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = axum::Router::new().fallback(|| async {
        (
            [("content-type", "application/json")],
            r#"{"errcode":0,"errmsg":"ok","accessToken":"bench-token","expireIn":7200,"processQueryKey":"bench"}"#,
        )
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    base
}

fn settings(db: &Path, roster: &Path, bare: &str) -> Settings {
    let mut settings = Settings::load_with_env(None, Vec::new()).expect("default settings");
    settings.store.path = db.to_path_buf();
    settings.roster.path = roster.to_path_buf();
    settings.dingtalk.mode = DingtalkMode::Http;
    settings.dingtalk.app_secret = Secret::new(SECRET);
    settings.dingtalk.app_key = "bench-app-key".into();
    settings.dingtalk.robot_code = "bench-robot".into();
    settings.dingtalk.api_base = bare.to_string();
    settings.dingtalk.oapi_base = bare.to_string();
    settings
}

async fn start_service(db: &Path, roster: &Path, bare: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind service");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let app = App::build(settings(db, roster, bare), listener, clock).expect("build app");
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped());
    base
}

/// A signed robot callback: an application with a fresh ticket number and message id.
fn request(client: &reqwest::Client, base: &str, n: u64) -> reqwest::RequestBuilder {
    let now = jiff::Timestamp::now().as_millisecond();
    let text = format!(
        "工单编号：DH2099{n:09}\n工单标题：压测工单\n首接单位：区人社局\n已采取措施：已联系当事人核实情况。\n办理难点：涉及多个部门，一家无法办理。\n需协调部门及事由：区住建局核查项目审批。\n请示分管领导相关情况：分管领导已同意。"
    );
    let body = serde_json::json!({
        "msgtype": "text", "msgId": format!("bench-{n}"), "createAt": now,
        "conversationType": "1", "conversationId": "cid-bench",
        "senderStaffId": LIAISON, "senderNick": "压测联络员", "text": {"content": text},
    })
    .to_string();
    let timestamp = now.to_string();
    let sign = callback_sign(&timestamp, SECRET);
    client
        .post(format!("{base}/dingtalk/robot"))
        .header("content-type", "application/json; charset=utf-8")
        .header("timestamp", timestamp)
        .header("sign", sign)
        .body(body)
}

/// Latencies of a held-rate run, in milliseconds.
struct Held {
    sent: usize,
    failed: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Held {
    fn line(&self) -> String {
        format!(
            "{} requests, {} failed; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.sent, self.failed, self.p50, self.p99, self.max
        )
    }
}

/// Sends [`RATE`] requests a second for `duration`, each at its scheduled instant whether or
/// not earlier ones were answered.
async fn held(client: &reqwest::Client, base: &str, seq: &AtomicU64, duration: Duration) -> Held {
    let period = Duration::from_secs(1) / u32::try_from(RATE).expect("rate");
    let total = u32::try_from(duration.as_millis() / period.as_millis()).expect("count");
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + period * i;
        tokio::time::sleep_until(scheduled).await;
        let request = request(client, base, seq.fetch_add(1, Ordering::Relaxed));
        tasks.push(tokio::spawn(async move {
            let ok = request.send().await.is_ok_and(|r| r.status().is_success());
            (ok, scheduled.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failed = 0;
    for task in tasks {
        let (ok, latency) = task.await.expect("request task");
        if !ok {
            failed += 1;
        }
        latencies.push(latency.as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Held {
        sent: latencies.len(),
        failed,
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// Requests answered 200 per second by [`WORKERS`] clients sending back to back for [`MAX_FULL`].
async fn max_throughput(client: &reqwest::Client, base: &str, seq: &Arc<AtomicU64>) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (client, base, seq, done, stop) = (
                client.clone(),
                base.to_string(),
                Arc::clone(seq),
                Arc::clone(&done),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let ok = request(&client, &base, seq.fetch_add(1, Ordering::Relaxed))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(max_phase()).await;
    stop.store(true, Ordering::Relaxed);
    let answered = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    for w in workers {
        w.await.expect("worker");
    }
    answered as f64 / elapsed.as_secs_f64()
}

/// (VmRSS, VmHWM) of a process, in KiB.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Kills the child when the bench ends, however it ends.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Idle RSS of `tiaochu serve` 5 s after start, its RSS after [`RSS_LOAD_FULL`] at [`RATE`], and its
/// peak; all KiB.
async fn serve_rss(
    client: &reqwest::Client,
    bare: &str,
    roster: &Path,
    dir: &Path,
    seq: &AtomicU64,
) -> (u64, u64, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tiaochu"))
        .arg("serve")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TIAOCHU_SERVER__LISTEN", "127.0.0.1:0")
        .env("TIAOCHU_STORE__PATH", dir.join("serve.db"))
        .env("TIAOCHU_ROSTER__PATH", roster)
        .env("TIAOCHU_DINGTALK__MODE", "http")
        .env("TIAOCHU_DINGTALK__APP_SECRET", SECRET)
        .env("TIAOCHU_DINGTALK__APP_KEY", "bench-app-key")
        .env("TIAOCHU_DINGTALK__ROBOT_CODE", "bench-robot")
        .env("TIAOCHU_DINGTALK__API_BASE", bare)
        .env("TIAOCHU_DINGTALK__OAPI_BASE", bare)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tiaochu serve");
    let stdout = child.stdout.take().expect("stdout");
    let serve = Serve(child);
    let pid = serve.0.id();
    // The first line names the address: `tiaochu 已启动，监听 http://127.0.0.1:PORT`.
    let address = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        first
    })
    .await
    .expect("read stdout");
    let base = address
        .split("http://")
        .nth(1)
        .map(|a| format!("http://{}", a.trim()))
        .unwrap_or_else(|| panic!("no address in {address:?}"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (idle, _) = rss(pid);
    let loaded = held(client, &base, seq, rss_load_phase()).await;
    assert_eq!(
        loaded.failed, 0,
        "tiaochu serve refused requests under load"
    );
    let (now, peak) = rss(pid);
    drop(serve);
    (idle, now, peak)
}
