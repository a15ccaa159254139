//! Load evidence (issue 8): the robot webhook path of the real service against a bare axum
//! endpoint compiled into the same binary, measured in one run on one `tiaochu serve` process.
//!
//! The bench spawns ONE `tiaochu serve` child — the binary cargo builds for this bench, with the
//! `bench` feature this bench requires — in `http` mode on a temporary database, its DingTalk
//! (token and sends) pointed at a catch-all sink in this process. That child answers both:
//!
//! - `POST /bench/bare` (src/http/bench.rs): reads the body, answers 200 `{}` — a bare axum
//!   endpoint on the same listener, router, middleware and body limit;
//! - `POST /dingtalk/robot`: signature check, dedupe, durable commit of the inbox row (`fsync`ed
//!   before the 200), with the inbox worker parsing, deciding and queueing outbox rows behind it
//!   in the same process.
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
//! Then the whole path, from callback to DingTalk (issues 15 and 19), each figure measured at
//! the sink's receipt of the send (the sink answers at once; it notes when each send arrived
//! and which application's ticket number it names):
//!
//! 4. callback-to-send latency p50/p99 at a held 20 and 200 applications/s (the 200/s figure
//!    is the held service phase above; goal p99 ≤ 50 ms at 20/s);
//! 5. 200 applications posted at once: how long until their last answer reached the sink
//!    (goal ≤ 3 s) and the outbox's drain rate meanwhile (goal ≥ 200 messages/s; this child
//!    runs with the per-API budget lifted, `[outbox] sends_per_second` = [`LIFTED`]);
//! 6. a quiet person's reply while the liaison floods [`FLOOD`] applications at 200/s
//!    (goal ≤ 1 s);
//! 7. in the maximum-throughput phase, the decisions per second the inbox worker commits while
//!    acknowledgements saturate the writer (this child does not shed: `max_backlog` = 0).
//!
//! A second `tiaochu serve` child, with the default-style settings the figures are about,
//! gives the last two: the outbox's drain rate per API under a budget of [`BUDGET`] sends a
//! second (goal: the budget, not more), and [`WORKERS`] clients at full speed against a
//! `max_backlog` of [`SHED_AT`]: the largest backlog seen, the callbacks shed (503) and the
//! decisions per second (goal: the backlog stays bounded).
//!
//! Before each measured bare phase the bench waits until the child's inbox and outbox are empty
//! (its `/metrics` gauges), so the worker's leftovers from the webhook never slow the baseline.
//! The service's maximum-throughput phase comes last: the backlog it leaves is reported, not
//! waited for. The child logs to a file at `info`, as deployed, unless this bench's `RUST_LOG`
//! says otherwise.
//!
//! Run with `cargo bench --features bench --bench load` (the full form); prints the figures and
//! the goals they are measured against (throughput ≥ 0.30× bare, p99 ≤ 3× bare at 200 req/s,
//! idle RSS ≤ 30 MB, and those of 4–7 above). `-- --short` runs every phase for a fifth of the time: `.ci/run` uses it
//! so the whole path is exercised on every change; its figures are noisier.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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
/// A second person, who sends one message while the liaison floods.
const QUIET: &str = "u-bench-quiet";
/// The first child's per-API budget: lifted, so the outbox's own speed is measured.
const LIFTED: u32 = 1_000_000;
/// The second child's per-API budget, sends a second.
const BUDGET: u32 = 50;
/// The second child's `[inbox] max_backlog`.
const SHED_AT: u64 = 2_000;
/// Applications posted at once for the drain figure (goal: answered within 3 s).
const BURST: usize = 200;
/// Applications the liaison floods while the quiet person asks.
const FLOOD: u64 = 1_000;
/// The held rate of the low-rate latency phase.
const LOW_RATE: u64 = 20;
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
    let (sink, log) = start_sink().await;
    let serve_dir = dir.path().join("lifted");
    std::fs::create_dir_all(&serve_dir).expect("child dir");
    let serve = spawn_serve(
        &sink,
        &roster,
        &serve_dir,
        &[
            ("TIAOCHU_OUTBOX__SENDS_PER_SECOND", LIFTED.to_string()),
            ("TIAOCHU_INBOX__MAX_BACKLOG", "0".to_string()),
        ],
    )
    .await;
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

    held(&client, &base, BARE, &seq, RATE, WARM_UP).await;
    held(&client, &base, ROBOT, &seq, RATE, WARM_UP).await;
    drain(&client, &base).await;

    println!(
        "held {RATE} req/s for {} s each (open loop):",
        held_phase().as_secs()
    );
    let bare_held = held(&client, &base, BARE, &seq, RATE, held_phase()).await;
    println!("  bare    {}", bare_held.line());
    let commits_before = commits(&client, &base).await;
    let service_held = held(&client, &base, ROBOT, &seq, RATE, held_phase()).await;
    let (after_held, _) = rss(serve.pid);
    println!("  service {}", service_held.line());
    let during = commits(&client, &base).await.since(&commits_before);
    println!(
        "  service commits meanwhile: {} synced (the acknowledgements in them wait for an fsync of the WAL; {} fsyncs) and {} without; {} synced over 25 ms from commit to disk, {} over 100 ms: the disk's stalls, which the bare endpoint never meets",
        during.count, during.syncs, during.deferred, during.over_25_ms, during.over_100_ms
    );
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
        "whole path, callback to the sink's receipt of the send (outbox budget lifted to {LIFTED}/s):"
    );
    let at_high = send_latency(&log, &service_held.starts);
    let low = held(&client, &base, ROBOT, &seq, LOW_RATE, held_phase() / 2).await;
    drain(&client, &base).await;
    let at_low = send_latency(&log, &low.starts);
    println!(
        "  callback-to-send at {LOW_RATE}/s ({} applications): {}  (goal p99 ≤ 50 ms: {})",
        low.sent,
        at_low.line(),
        verdict(at_low.missing == 0 && at_low.p99 <= 50.0)
    );
    println!(
        "  callback-to-send at {RATE}/s (the held service phase above, {} applications): {}",
        service_held.sent,
        at_high.line()
    );
    let burst_figures = burst_drain(&client, &base, &seq, &log, BURST).await;
    println!(
        "  {BURST} applications posted at once: {} sends, the last {:.2} s after the first post (goal ≤ 3 s: {}); drain rate {:.0} messages/s (goal ≥ 200/s: {})",
        burst_figures.sends,
        burst_figures.last_after.as_secs_f64(),
        verdict(burst_figures.last_after <= Duration::from_secs(3)),
        burst_figures.rate,
        verdict(burst_figures.rate >= 200.0)
    );
    let quiet = quiet_reply(&client, &base, &seq, &log).await;
    match quiet {
        Some(latency) => println!(
            "  a quiet person's reply while the liaison floods {} applications at {RATE}/s: {:.0} ms (goal ≤ 1 s: {})",
            flood_count(),
            latency.as_secs_f64() * 1000.0,
            verdict(latency <= Duration::from_secs(1))
        ),
        None => println!(
            "  a quiet person's reply while the liaison floods: none within 30 s (goal ≤ 1 s: NOT met)"
        ),
    }
    drain(&client, &base).await;

    println!(
        "maximum throughput, {WORKERS} concurrent clients, {} s each:",
        max_phase().as_secs()
    );
    let bare_max = max_throughput(&client, &base, BARE, &seq).await;
    println!("  bare    {}", bare_max.line());
    let before = backlog(&client, &base).await;
    let commits_before = commits(&client, &base).await;
    let service_max = max_throughput(&client, &base, ROBOT, &seq).await;
    println!("  service {}", service_max.line());
    let during = commits(&client, &base).await.since(&commits_before);
    let left = backlog(&client, &base).await;
    println!(
        "  service commits meanwhile: {} synced ({:.1} acknowledgements each, {:.2} ms each on average from commit to disk, {:.1} per fsync) and {} without",
        during.count,
        service_max.answered as f64 / during.count.max(1) as f64,
        during.seconds * 1000.0 / during.count.max(1) as f64,
        during.count as f64 / during.syncs.max(1) as f64,
        during.deferred
    );
    println!(
        "  service inbox backlog at the end: {left} of {} acknowledged messages still to process (not waited for)",
        service_max.answered
    );
    let decided = (service_max.answered + before).saturating_sub(left);
    println!(
        "  decisions committed meanwhile by the inbox worker (no shedding in this child): {decided}, {:.0}/s while {:.0} acknowledgements/s were committed",
        decided as f64 / service_max.elapsed.as_secs_f64(),
        service_max.rate
    );
    let (_, peak) = rss(serve.pid);
    drop(serve);

    // The second child: a budget, and shedding.
    let limited_dir = dir.path().join("limited");
    std::fs::create_dir_all(&limited_dir).expect("child dir");
    let limited = spawn_serve(
        &sink,
        &roster,
        &limited_dir,
        &[
            ("TIAOCHU_OUTBOX__SENDS_PER_SECOND", BUDGET.to_string()),
            ("TIAOCHU_INBOX__MAX_BACKLOG", SHED_AT.to_string()),
        ],
    )
    .await;
    let limited_base = limited.base.clone();
    held(&client, &limited_base, ROBOT, &seq, LOW_RATE, WARM_UP).await;
    drain(&client, &limited_base).await;
    println!(
        "second child: `[outbox] sends_per_second` = {BUDGET}, `[inbox] max_backlog` = {SHED_AT}:"
    );
    // The same number in both forms: the figure needs more sends on an API than one second's
    // budget, and the short form's fifth would not have them.
    let budgeted = budget_drain(&client, &limited_base, &seq, &log, BURST).await;
    if budgeted.is_empty() {
        println!(
            "  outbox under the budget: no API got more than {BUDGET} sends from {BURST} applications (NOT measured)"
        );
    }
    for (path, rate, sends, busiest) in &budgeted {
        let busiest = *busiest as u64;
        let budget = u64::from(BUDGET);
        println!(
            "  outbox on {path}: {sends} sends, at most {busiest} in any one second at the sink (goal: exactly the budget, {BUDGET} — not more, and not less than 90 % of it: {}); mean {rate:.1}/s from first to last",
            verdict(busiest <= budget && busiest * 10 >= budget * 9)
        );
    }
    let shed = saturate(&client, &limited_base, &seq).await;
    println!(
        "  {WORKERS} clients at full speed for {} s: {} acknowledged, {} shed (503 + Retry-After), {} other failures; largest inbox backlog seen {} (goal: bounded near {SHED_AT}: {}); {:.0} decisions/s",
        max_phase().as_secs(),
        shed.answered,
        shed.shed,
        shed.failed,
        shed.largest,
        verdict(shed.largest <= SHED_AT + SHED_AT / 2),
        shed.decided as f64 / shed.elapsed.as_secs_f64()
    );
    drop(limited);

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
    people.push(Person::new(
        "压测安静者",
        "长安镇",
        "科员",
        vec![Role::Liaison],
        QUIET,
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

/// What the sink received, as it arrived.
#[derive(Default)]
struct SinkLog {
    /// Every send (token fetches aside): when, and to which path.
    sends: Vec<(Instant, String)>,
    /// The first send naming each bench application's ticket number, by its sequence number.
    first_by_ticket: HashMap<u64, Instant>,
    /// Sends to [`QUIET`].
    to_quiet: Vec<Instant>,
}

type Log = Arc<Mutex<SinkLog>>;

fn log_of(log: &Log) -> std::sync::MutexGuard<'_, SinkLog> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// The bench application number in a send's body: the digits after `DH2099`.
fn ticket_in(body: &str) -> Option<u64> {
    let at = body.find("DH2099")? + "DH2099".len();
    body.get(at..at + 9)?.parse().ok()
}

/// The DingTalk the child talks to: answers every request 200 at once with a body that
/// satisfies its outbound calls (token and sends), noting each send in the returned log.
async fn start_sink() -> (String, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind sink");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let log: Log = Arc::default();
    let seen = Arc::clone(&log);
    let router = axum::Router::new().fallback(
        move |uri: axum::http::Uri, body: axum::body::Bytes| {
            let seen = Arc::clone(&seen);
            async move {
                let at = Instant::now();
                let path = uri.path().to_string();
                if !path.contains("accessToken") && !path.contains("gettoken") {
                    let text = String::from_utf8_lossy(&body);
                    let mut log = log_of(&seen);
                    if let Some(n) = ticket_in(&text) {
                        log.first_by_ticket.entry(n).or_insert(at);
                    }
                    if text.contains(QUIET) {
                        log.to_quiet.push(at);
                    }
                    log.sends.push((at, path));
                }
                (
                    [("content-type", "application/json")],
                    r#"{"errcode":0,"errmsg":"ok","accessToken":"bench-token","expireIn":7200,"processQueryKey":"bench"}"#,
                )
            }
        },
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, log)
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
async fn spawn_serve(sink: &str, roster: &Path, dir: &Path, extra: &[(&str, String)]) -> Serve {
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
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
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

/// The last callback timestamp signed: each request gets its own millisecond, because the
/// service refuses a (timestamp, sign) pair that comes with a second message as a replay.
static LAST_SIGNED_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// How far in the past the reserved milliseconds start. The service accepts a timestamp up to
/// an hour old and only five minutes ahead, and a run reserves hundreds of thousands of them
/// (the shedding phase alone some 250,000: four minutes), so a clock that starts at "now" ran
/// past the five minutes and the last phase's callbacks were refused as forged. Starting 50
/// minutes back leaves 55 minutes of milliseconds.
const SIGNED_BEHIND_MS: i64 = 50 * 60 * 1000;

fn unique_timestamp_ms() -> i64 {
    use std::sync::atomic::Ordering;
    let floor = jiff::Timestamp::now().as_millisecond() - SIGNED_BEHIND_MS;
    let previous = LAST_SIGNED_MS
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(floor.max(last + 1))
        })
        .unwrap_or(floor);
    floor.max(previous + 1)
}

/// A signed robot callback posted to `path`: an application with a fresh ticket number and
/// message id. Both endpoints get this request (signed with the plain clock for bare; see [`signed`]).
fn request(client: &reqwest::Client, base: &str, path: &str, n: u64) -> reqwest::RequestBuilder {
    let text = format!(
        "工单编号：DH2099{n:09}\n工单标题：压测工单\n首接单位：区人社局\n已采取措施：已联系当事人核实情况。\n办理难点：涉及多个部门，一家无法办理。\n需协调部门及事由：区住建局核查项目审批。\n请示分管领导相关情况：分管领导已同意。"
    );
    signed(client, base, path, n, LIAISON, &text)
}

/// A signed robot callback from `sender` saying `text`, message id `bench-<n>`.
fn signed(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    n: u64,
    sender: &str,
    text: &str,
) -> reqwest::RequestBuilder {
    // Only the service remembers (timestamp, sign) pairs. Reserving a millisecond for every bare
    // request too would run the clock of the signatures ahead of the real one by the bare
    // phase's count (35,000 req/s for 10 s is six minutes) and past the service's five-minute
    // bound on future timestamps, so every service request after it would be refused.
    let now = if path == BARE {
        jiff::Timestamp::now().as_millisecond()
    } else {
        unique_timestamp_ms()
    };
    let body = serde_json::json!({
        "msgtype": "text", "msgId": format!("bench-{n}"), "createAt": now,
        "conversationType": "1", "conversationId": "cid-bench",
        "senderStaffId": sender, "senderNick": "压测", "text": {"content": text},
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
    /// Each request's sequence number and scheduled start.
    starts: Vec<(u64, Instant)>,
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

/// Sends `rate` requests a second to `path` for `duration`, each at its scheduled instant
/// whether or not earlier ones were answered.
async fn held(
    client: &reqwest::Client,
    base: &str,
    path: &'static str,
    seq: &AtomicU64,
    rate: u64,
    duration: Duration,
) -> Held {
    let period = Duration::from_secs(1) / u32::try_from(rate).expect("rate");
    let total = u32::try_from(duration.as_millis() / period.as_millis()).expect("count");
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    let mut starts = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + period * i;
        tokio::time::sleep_until(scheduled).await;
        let n = seq.fetch_add(1, Ordering::Relaxed);
        starts.push((n, scheduled.into_std()));
        let request = request(client, base, path, n);
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
        starts,
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
    elapsed: Duration,
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
        elapsed,
    }
}

/// `full`, or a fifth of it with `--short`.
fn phase_count(full: usize) -> usize {
    let short = phase(Duration::from_secs(5)) < Duration::from_secs(5);
    if short { full / 5 } else { full }
}

fn flood_count() -> u64 {
    phase_count(usize::try_from(FLOOD).unwrap_or(1_000)) as u64
}

/// Callback-to-send latencies of the applications started at `starts`: from each scheduled
/// start to the sink's first receipt of a send naming its ticket number.
struct SendLatency {
    p50: f64,
    p99: f64,
    /// Applications no send named (yet).
    missing: usize,
}

impl SendLatency {
    fn line(&self) -> String {
        format!(
            "p50 {:.1} ms, p99 {:.1} ms{}",
            self.p50,
            self.p99,
            if self.missing > 0 {
                format!(" ({} applications with no send seen)", self.missing)
            } else {
                String::new()
            }
        )
    }
}

fn send_latency(log: &Log, starts: &[(u64, Instant)]) -> SendLatency {
    let log = log_of(log);
    let mut latencies: Vec<f64> = Vec::with_capacity(starts.len());
    let mut missing = 0;
    for (n, start) in starts {
        match log.first_by_ticket.get(n) {
            Some(at) => latencies.push(at.saturating_duration_since(*start).as_secs_f64() * 1000.0),
            None => missing += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if latencies.is_empty() {
            f64::NAN
        } else {
            latencies[((latencies.len() - 1) as f64 * q).round() as usize]
        }
    };
    SendLatency {
        p50: at(0.50),
        p99: at(0.99),
        missing,
    }
}

/// Posts `count` applications at once (every request in flight together) and waits for all
/// the answers to the callbacks.
async fn post_at_once(client: &reqwest::Client, base: &str, seq: &AtomicU64, count: usize) {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let request = request(client, base, ROBOT, seq.fetch_add(1, Ordering::Relaxed));
            tokio::spawn(async move { request.send().await.is_ok_and(|r| r.status().is_success()) })
        })
        .collect();
    for task in tasks {
        assert!(task.await.expect("post"), "an application was refused");
    }
}

/// The sends the sink received since index `from` of its log, after the child drained.
fn sends_since(log: &Log, from: usize) -> Vec<(Instant, String)> {
    log_of(log).sends[from..].to_vec()
}

struct Burst {
    sends: usize,
    /// From the first post to the sink's last receipt.
    last_after: Duration,
    /// Sends per second between the sink's first and last receipt.
    rate: f64,
}

/// [`BURST`] applications at once: when the last answer reached the sink and how fast the
/// outbox drained.
async fn burst_drain(
    client: &reqwest::Client,
    base: &str,
    seq: &AtomicU64,
    log: &Log,
    count: usize,
) -> Burst {
    let from = log_of(log).sends.len();
    let start = Instant::now();
    post_at_once(client, base, seq, count).await;
    drain(client, base).await;
    let sends = sends_since(log, from);
    let first = sends.first().map_or(start, |s| s.0);
    let last = sends.last().map_or(start, |s| s.0);
    let span = last.saturating_duration_since(first).as_secs_f64();
    Burst {
        sends: sends.len(),
        last_after: last.saturating_duration_since(start),
        rate: if span > 0.0 {
            sends.len() as f64 / span
        } else {
            0.0
        },
    }
}

/// The liaison floods [`FLOOD`] applications at [`RATE`]/s; halfway, [`QUIET`] asks for help.
/// How long until the sink received the answer to the quiet person.
async fn quiet_reply(
    client: &reqwest::Client,
    base: &str,
    seq: &Arc<AtomicU64>,
    log: &Log,
) -> Option<Duration> {
    let flood = Duration::from_millis(flood_count() * 1000 / RATE);
    let flooding = {
        let (client, base, seq) = (client.clone(), base.to_string(), Arc::clone(seq));
        tokio::spawn(async move { held(&client, &base, ROBOT, &seq, RATE, flood).await })
    };
    tokio::time::sleep(flood / 2).await;
    let asked = Instant::now();
    let n = seq.fetch_add(1, Ordering::Relaxed);
    let answered = signed(client, base, ROBOT, n, QUIET, "帮助")
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    assert!(answered, "the quiet person's message was refused");
    let deadline = asked + Duration::from_secs(30);
    let reply = loop {
        let seen = log_of(log).to_quiet.iter().copied().find(|t| *t >= asked);
        if let Some(at) = seen {
            break Some(at.saturating_duration_since(asked));
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    flooding.await.expect("flood");
    reply
}

/// `count` applications at once against a budgeted child; per API path with more sends than one
/// second's budget, the sends per second between its first and last send, how many, and the most
/// inside any one second.
async fn budget_drain(
    client: &reqwest::Client,
    base: &str,
    seq: &AtomicU64,
    log: &Log,
    count: usize,
) -> Vec<(String, f64, usize, usize)> {
    let from = log_of(log).sends.len();
    post_at_once(client, base, seq, count).await;
    drain(client, base).await;
    let mut by_path: HashMap<String, Vec<Instant>> = HashMap::new();
    for (at, path) in sends_since(log, from) {
        by_path.entry(path).or_default().push(at);
    }
    let mut rates: Vec<(String, f64, usize, usize)> = by_path
        .into_iter()
        .filter(|(_, times)| times.len() > usize::try_from(BUDGET).unwrap_or(50))
        .map(|(path, times)| {
            let first = times.iter().min().copied().unwrap_or_else(Instant::now);
            let last = times.iter().max().copied().unwrap_or(first);
            // n sends over the span between the first and the last: n − 1 intervals.
            let span = last.saturating_duration_since(first).as_secs_f64();
            let rate = if span > 0.0 {
                (times.len() - 1) as f64 / span
            } else {
                0.0
            };
            let mut sorted = times.clone();
            sorted.sort();
            // The most sends the sink saw inside any one second.
            let busiest = (0..sorted.len())
                .map(|i| {
                    sorted[i..]
                        .iter()
                        .take_while(|t| {
                            t.saturating_duration_since(sorted[i]) < Duration::from_secs(1)
                        })
                        .count()
                })
                .max()
                .unwrap_or(0);
            (path, rate, times.len(), busiest)
        })
        .collect();
    rates.sort_by(|a, b| a.0.cmp(&b.0));
    rates
}

struct Saturation {
    answered: u64,
    shed: u64,
    failed: u64,
    largest: u64,
    decided: u64,
    elapsed: Duration,
}

/// [`WORKERS`] clients at full speed against a shedding child, its backlog read meanwhile.
async fn saturate(client: &reqwest::Client, base: &str, seq: &Arc<AtomicU64>) -> Saturation {
    let answered = Arc::new(AtomicU64::new(0));
    let shed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let before = backlog(client, base).await;
    let start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (client, base, seq) = (client.clone(), base.to_string(), Arc::clone(seq));
            let (answered, shed, failed, stop) = (
                Arc::clone(&answered),
                Arc::clone(&shed),
                Arc::clone(&failed),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    let status = request(&client, &base, ROBOT, n)
                        .send()
                        .await
                        .map(|r| r.status().as_u16());
                    let counter = match status {
                        Ok(200) => &answered,
                        Ok(503) => &shed,
                        _ => &failed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut largest = before;
    while start.elapsed() < max_phase() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        largest = largest.max(backlog(client, base).await);
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    for w in workers {
        w.await.expect("worker");
    }
    let left = backlog(client, base).await;
    largest = largest.max(left);
    let answered = answered.load(Ordering::Relaxed);
    Saturation {
        answered,
        shed: shed.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        largest,
        decided: (answered + before).saturating_sub(left),
        elapsed,
    }
}

/// The child's `tiaochu_inbox_pending` and `tiaochu_outbox_pending` gauges, from `/metrics`.
async fn queues(client: &reqwest::Client, base: &str) -> (u64, u64) {
    let text = metrics_text(client, base).await;
    (
        sample(&text, "tiaochu_inbox_pending") as u64,
        sample(&text, "tiaochu_outbox_pending") as u64,
    )
}

/// The child's commits so far (`tiaochu_store_commit_seconds` in `/metrics`).
#[derive(Debug, Clone, Copy)]
struct Commits {
    /// Synced commits, the histogram's.
    count: u64,
    /// Commits without an fsync, not in `count` (`tiaochu_store_deferred_commits_total`).
    deferred: u64,
    /// fsyncs of the WAL by the sync thread (`tiaochu_store_syncs_total`).
    syncs: u64,
    /// Synced commits' times from commit to disk, all together (they overlap: the writer
    /// commits the next round while the last one's fsync runs).
    seconds: f64,
    over_25_ms: u64,
    over_100_ms: u64,
}

impl Commits {
    /// The commits made since `earlier`.
    fn since(&self, earlier: &Commits) -> Commits {
        Commits {
            count: self.count - earlier.count,
            deferred: self.deferred - earlier.deferred,
            syncs: self.syncs - earlier.syncs,
            seconds: self.seconds - earlier.seconds,
            over_25_ms: self.over_25_ms - earlier.over_25_ms,
            over_100_ms: self.over_100_ms - earlier.over_100_ms,
        }
    }
}

async fn commits(client: &reqwest::Client, base: &str) -> Commits {
    let text = metrics_text(client, base).await;
    let count = sample(&text, "tiaochu_store_commit_seconds_count") as u64;
    let within = |le: &str| {
        sample(
            &text,
            &format!("tiaochu_store_commit_seconds_bucket{{le=\"{le}\"}}"),
        ) as u64
    };
    Commits {
        count,
        deferred: sample(&text, "tiaochu_store_deferred_commits_total") as u64,
        syncs: sample(&text, "tiaochu_store_syncs_total") as u64,
        seconds: sample(&text, "tiaochu_store_commit_seconds_sum"),
        over_25_ms: count - within("0.025"),
        over_100_ms: count - within("0.1"),
    }
}

/// The child's `/metrics` exposition.
async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("/metrics body")
}

/// The value of the sample `name` (its name and labels exactly) in an exposition.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
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
