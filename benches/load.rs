//! Load evidence (issue 8): the robot webhook path of the real service against a bare axum
//! endpoint compiled into the same binary, measured in one run on one `tiaochu serve` process.
//!
//! The bench spawns ONE `tiaochu serve` child — the binary cargo builds for this bench, with the
//! `bench` feature this bench requires — in `http` mode on a temporary database, its DingTalk
//! (token and sends) pointed at a catch-all sink in this process. That child answers both:
//!
//! - `POST /bench/bare` (src/http/bench.rs): reads the body, answers 200 `{}` — a bare axum
//!   endpoint on the same listener, router, middleware and body limit;
//! - `POST /dingtalk/robot`: signature check, dedupe, durable commit of the inbox row
//!   (`synchronous=FULL`) before the 200, with the inbox worker parsing, deciding and queueing
//!   outbox rows behind it in the same process.
//!
//! The same client sends the same signed callbacks (each a new application) to both:
//!
//! 1. the child's resident memory 5 s after start, before any load (idle);
//! 2. a held 200 requests/s for [`HELD_FULL`] each (open loop: latency is measured from each
//!    request's scheduled start, so a stall is not hidden by sending less) → p50 and p99 ratios,
//!    and the child's resident memory right after;
//! 3. as many requests as [`WORKERS`] concurrent clients get answered in [`MAX_FULL`] each → the
//!    throughput ratio; then the child's peak resident memory (`VmHWM`) over the whole run.
//!
//! Before each measured bare phase the bench waits until the child's inbox and outbox are empty
//! (its `/metrics` gauges), so the worker's leftovers from the webhook never slow the baseline.
//! The service's maximum-throughput phase comes last: the backlog it leaves is reported, not
//! waited for. The child logs to a file at `info`, as deployed, unless this bench's `RUST_LOG`
//! says otherwise.
//!
//! Run with `cargo bench --features bench --bench load` (the full form); prints the figures and
//! the goals they are measured against (throughput ≥ 0.30× bare, p99 ≤ 3× bare at 200 req/s,
//! idle RSS ≤ 30 MB). `-- --short` runs every phase for a fifth of the time: `.ci/run` uses it
//! so the whole path is exercised on every change; its figures are noisier.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tiaochu::dingtalk::sign::callback_sign;
use tiaochu::roster::{Person, Role, Roster};

const SECRET: &str = "bench-app-secret";
const RATE: u64 = 200;
const HELD_FULL: Duration = Duration::from_secs(20);
const MAX_FULL: Duration = Duration::from_secs(10);
/// How long the child sits untouched before its idle memory is read.
const IDLE: Duration = Duration::from_secs(5);
/// Per endpoint, before anything is measured: connections, page cache, the token fetch behind
/// the first reply.
const WARM_UP: Duration = Duration::from_secs(2);
/// The longest the bench waits for the child's worker to empty the inbox and outbox.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);
const WORKERS: usize = 64;
const LIAISON: &str = "u-bench-liaison";
const BARE: &str = "/bench/bare";
const ROBOT: &str = "/dingtalk/robot";

static SHORT: OnceLock<bool> = OnceLock::new();

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
    let sink = start_sink().await;
    let serve = spawn_serve(&sink, &roster, dir.path()).await;
    let base = serve.base.clone();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(WORKERS)
        .build()
        .expect("client");
    let seq = Arc::new(AtomicU64::new(0));
    println!("machine: {}", machine());
    println!(
        "one `tiaochu serve` process (pid {}, this bench's binary, built with --features bench) answers both, same listener and layers:",
        serve.pid
    );
    println!(
        "  bare    POST {BARE}: a bare axum endpoint compiled into the same binary, in the same process (reads the body, answers 200)"
    );
    println!(
        "  service POST {ROBOT}: verify, dedupe, durable commit; the inbox worker parses, decides, queues the outbox"
    );
    println!(
        "  same client, same signed bodies; DingTalk is a catch-all sink in the bench process"
    );
    println!(
        "  its log level: {} (RUST_LOG of this bench, else the shipped default), to a file",
        log_level()
    );

    tokio::time::sleep(IDLE).await;
    let (idle, _) = rss(serve.pid);

    held(&client, &base, BARE, &seq, WARM_UP).await;
    held(&client, &base, ROBOT, &seq, WARM_UP).await;
    drain(&client, &base).await;

    println!(
        "held {RATE} req/s for {} s each (open loop):",
        held_phase().as_secs()
    );
    let bare_held = held(&client, &base, BARE, &seq, held_phase()).await;
    println!("  bare    {}", bare_held.line());
    let service_held = held(&client, &base, ROBOT, &seq, held_phase()).await;
    let (after_held, _) = rss(serve.pid);
    println!("  service {}", service_held.line());
    let held_backlog = backlog(&client, &base).await;
    let waited = drain(&client, &base).await;
    println!(
        "  service inbox backlog at the end: {held_backlog} messages; inbox and outbox empty {:.1} s later",
        waited.as_secs_f64()
    );
    assert_eq!(
        (bare_held.failed, service_held.failed),
        (0, 0),
        "tiaochu serve refused requests at {RATE} req/s"
    );

    println!(
        "maximum throughput, {WORKERS} concurrent clients, {} s each:",
        max_phase().as_secs()
    );
    let bare_max = max_throughput(&client, &base, BARE, &seq).await;
    println!("  bare    {}", bare_max.line());
    let service_max = max_throughput(&client, &base, ROBOT, &seq).await;
    println!("  service {}", service_max.line());
    let left = backlog(&client, &base).await;
    println!(
        "  service inbox backlog at the end: {left} of {} acknowledged messages still to process (not waited for)",
        service_max.answered
    );
    let (_, peak) = rss(serve.pid);

    let throughput = service_max.rate / bare_max.rate;
    let p50 = service_held.p50 / bare_held.p50;
    let p99 = service_held.p99 / bare_held.p99;
    println!(
        "throughput ratio (service / bare, same process): {throughput:.2}  (goal ≥ 0.30: {})",
        verdict(throughput >= 0.30)
    );
    println!("p50 ratio at {RATE} req/s: {p50:.2}");
    println!(
        "p99 ratio at {RATE} req/s: {p99:.2}  (goal ≤ 3: {})",
        verdict(p99 <= 3.0)
    );
    println!(
        "tiaochu serve RSS: idle {} (goal ≤ 30 MB: {}), after the held {RATE} req/s phases {}, peak (VmHWM) {}",
        mb(idle),
        verdict(idle <= 30 * 1024),
        mb(after_held),
        mb(peak)
    );
    drop(serve);
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
fn roster_file(dir: &Path) -> PathBuf {
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

/// The DingTalk the child talks to: answers every request 200 with a body that satisfies its
/// outbound calls (token and sends).
async fn start_sink() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind sink");
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

/// The running child; killed when the bench ends, however it ends.
struct Serve {
    child: Child,
    pid: u32,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tiaochu serve` in `http` mode on a database in `dir`, with its DingTalk at `sink` and
/// its log at [`log_level`] in `dir/serve.log`; returns once it has said where it listens.
async fn spawn_serve(sink: &str, roster: &Path, dir: &Path) -> Serve {
    let log_path = dir.join("serve.log");
    let log = std::fs::File::create(&log_path).expect("create serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tiaochu"))
        .arg("serve")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TIAOCHU_SERVER__LISTEN", "127.0.0.1:0")
        .env("TIAOCHU_STORE__PATH", dir.join("serve.db"))
        .env("TIAOCHU_ROSTER__PATH", roster)
        .env("TIAOCHU_DINGTALK__MODE", "http")
        // One liaison sends every callback: the per-sender flood limit is off so that each one
        // takes the whole path (parse, decide, queue) instead of the cheap throttled one.
        .env("TIAOCHU_INBOX__PER_SENDER_PER_MINUTE", "0")
        .env("TIAOCHU_DINGTALK__APP_SECRET", SECRET)
        .env("TIAOCHU_DINGTALK__APP_KEY", "bench-app-key")
        .env("TIAOCHU_DINGTALK__ROBOT_CODE", "bench-robot")
        .env("TIAOCHU_DINGTALK__API_BASE", sink)
        .env("TIAOCHU_DINGTALK__OAPI_BASE", sink)
        // One client address opens every connection (64 workers, scrapes, open-loop bursts), as
        // a reverse proxy would: the per-address cap must not be what is measured.
        .env("TIAOCHU_HTTP__MAX_CONNECTIONS_PER_IP", "512")
        .env("RUST_LOG", log_level())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn tiaochu serve");
    let stdout = child.stdout.take().expect("stdout");
    let pid = child.id();
    // The first line names the address: `tiaochu 已启动，监听 http://127.0.0.1:PORT`.
    let first = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        first
    })
    .await
    .expect("read stdout");
    let mut serve = Serve {
        child,
        pid,
        base: String::new(),
    };
    let Some(address) = first.split("http://").nth(1) else {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("tiaochu serve printed no address ({first:?}); its log:\n{log}");
    };
    serve.base = format!("http://{}", address.trim());
    serve
}

/// The child's log filter: this bench's `RUST_LOG`, else `info`, what `tiaochu serve` logs at
/// when deployed — the per-request log line is part of the webhook path being measured.
fn log_level() -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string())
}

/// The last callback timestamp signed: each request gets its own millisecond (now, or one past
/// the previous), because the service refuses a (timestamp, sign) pair that comes with a second
/// message as a replay.
static LAST_SIGNED_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn unique_timestamp_ms() -> i64 {
    use std::sync::atomic::Ordering;
    let now = jiff::Timestamp::now().as_millisecond();
    let previous = LAST_SIGNED_MS
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(previous + 1)
}

/// A signed robot callback posted to `path`: an application with a fresh ticket number and
/// message id. Both endpoints get exactly this request.
fn request(client: &reqwest::Client, base: &str, path: &str, n: u64) -> reqwest::RequestBuilder {
    let now = unique_timestamp_ms();
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
        .post(format!("{base}{path}"))
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

/// Sends [`RATE`] requests a second to `path` for `duration`, each at its scheduled instant
/// whether or not earlier ones were answered.
async fn held(
    client: &reqwest::Client,
    base: &str,
    path: &'static str,
    seq: &AtomicU64,
    duration: Duration,
) -> Held {
    let period = Duration::from_secs(1) / u32::try_from(RATE).expect("rate");
    let total = u32::try_from(duration.as_millis() / period.as_millis()).expect("count");
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + period * i;
        tokio::time::sleep_until(scheduled).await;
        let request = request(client, base, path, seq.fetch_add(1, Ordering::Relaxed));
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

/// A maximum-throughput run: requests answered 200, those that were not, and the answered ones
/// per second.
struct Max {
    answered: u64,
    failed: u64,
    rate: f64,
}

impl Max {
    fn line(&self) -> String {
        format!(
            "{:.0} req/s ({} answered 200, {} failed)",
            self.rate, self.answered, self.failed
        )
    }
}

/// [`WORKERS`] clients sending to `path` back to back for [`MAX_FULL`].
async fn max_throughput(
    client: &reqwest::Client,
    base: &str,
    path: &'static str,
    seq: &Arc<AtomicU64>,
) -> Max {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (client, base, seq, done, failed, stop) = (
                client.clone(),
                base.to_string(),
                Arc::clone(seq),
                Arc::clone(&done),
                Arc::clone(&failed),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let ok = request(&client, &base, path, seq.fetch_add(1, Ordering::Relaxed))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    let counter = if ok { &done } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
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
    Max {
        answered,
        failed: failed.load(Ordering::Relaxed),
        rate: answered as f64 / elapsed.as_secs_f64(),
    }
}

/// The child's `tiaochu_inbox_pending` and `tiaochu_outbox_pending` gauges, from `/metrics`.
async fn queues(client: &reqwest::Client, base: &str) -> (u64, u64) {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("/metrics body");
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    (
        gauge("tiaochu_inbox_pending") as u64,
        gauge("tiaochu_outbox_pending") as u64,
    )
}

/// Inbound messages acknowledged but not yet processed by the child's worker.
async fn backlog(client: &reqwest::Client, base: &str) -> u64 {
    queues(client, base).await.0
}

/// Waits until the child's inbox and outbox are both empty; how long that took. Gives up after
/// [`DRAIN_LIMIT`], saying so, since what follows is then measured against a busy worker.
async fn drain(client: &reqwest::Client, base: &str) -> Duration {
    let start = Instant::now();
    loop {
        let (inbox, outbox) = queues(client, base).await;
        if inbox == 0 && outbox == 0 {
            return start.elapsed();
        }
        if start.elapsed() > DRAIN_LIMIT {
            println!(
                "  (worker still busy after {} s: inbox {inbox}, outbox {outbox}; the next phase runs beside it)",
                DRAIN_LIMIT.as_secs()
            );
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
