//! The crash test (issues 3 and 8): the real `tiaochu serve` binary in `http` mode, fed a steady
//! stream of signed robot callbacks — complete applications with distinct tickets, 审核 commands,
//! queries, help and chit-chat — is killed with SIGKILL at seeded-random moments and restarted
//! on the same database and port, while timers come due. Afterwards: every acknowledged msgId is
//! in the inbox, every inbox row finished exactly once with the outcome its message calls for,
//! each application made exactly one case (one `submitted` event) and each 审核 one `claimed`
//! event, every timer that came due fired exactly once (never left pending, never cancelled),
//! every outbox row was sent and reached the fake DingTalk, and `PRAGMA integrity_check` is ok
//! after every kill and at the end.
//!
//! Timers: the service's calendar makes every minute working time (`[hours] 00:00-24:00` and,
//! written into the test's directory, holiday files for the years before, of and after today
//! with every weekend day a make-up working day), so deadlines are wall-clock arithmetic on any
//! date. The kill moments are planned up front (random gaps after each planned restart). Before
//! the first child start the service runs in-process on the same database and config with a
//! manual clock and registers two seeded cases per kill, back-dated so that their review-start
//! deadlines (`[sla] review_start_working_hours = 1`) come due in the kill phase: one at a random
//! moment of the gap before a kill (a kill may catch its firing half done), one just after the
//! kill (it comes due while the child is down). Their half-time reminders are then long past and
//! go out as catch-up at the first child start. The crash traffic never sends 审核 for a seeded
//! ticket, so those clocks run to their breach. Per seeded case: exactly one `breach` event for
//! the review-start clock, its deadline exactly one hour after the submission, the half-time
//! reminder sent as catch-up (or folded into a catch-up breach); for every case no (clock, phase)
//! reminded or breached twice; every timer due in the kill phase fired within 10 s of its time,
//! or of the restart when it came due while the child was down. The timers' messages go through
//! the same delivered-exactly-once check as the rest.
//!
//! Outbound is at-least-once by design (docs/architecture.md): a kill after DingTalk took a batchSend but
//! before the row was marked sent makes the next process send it again (it holds the database's
//! service lock, so it releases the dead process's leases at start rather than wait them out).
//! So while the child is dead the test records which rows it had in flight (leased, pending);
//! a second delivery is accepted only for such a row, card creates must reach the fake exactly
//! once (the outTrackId makes a resend harmless), and everything else exactly once.
//!
//! Short form (`cargo test`, what `.ci/run` runs): 10 kills and 20 seeded cases, about 30 s.
//! Full form: `TIAOCHU_CRASH_KILLS=100 cargo test --test api crash -- --nocapture`, 100 kills and
//! 200 seeded cases, about 5 minutes (the kill phase and the seeded cases scale with the kills).
//! Counts are printed (run with `--nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use tiaochu::app::App;
use tiaochu::clock::{Clock, ManualClock, SystemClock};
use tiaochu::dingtalk::payload::BatchSend;
use tiaochu::dingtalk::sign::callback_sign;
use tiaochu::inbox::InboxProcessor;
use tiaochu::outbox::LEASE;
use tiaochu::roster::{Person, Role, Roster};
use tiaochu::settings::Settings;
use tiaochu::workflow::ClockKind;

use crate::fake_dingtalk::{
    APP_KEY, APP_SECRET, Delivery, FakeDingtalk, Fault, ROBOT_CODE, TEMPLATE_ID,
};

/// Kills in the short form; `TIAOCHU_CRASH_KILLS` sets another number (the full form is 100).
const DEFAULT_KILLS: usize = 10;
/// A start of the child (the first, or after a kill) is planned to answer `/healthz` within this;
/// the kill moments are planned with it, so that they can be aimed at.
const START_MS: i64 = 400;
/// Whatever the plan, a kill comes at least this long after the previous start answered.
const MIN_UP_MS: i64 = 500;
/// One seeded breach per kill is due this long after the kill: inside the outage, which lasts
/// at least the 100 ms the test waits before it restarts the child.
const AFTER_KILL_MS: i64 = 50;
/// A timer due in the kill phase fires at most this long after its time, or after the restart
/// when it came due while the child was down; the scheduler's idle check is once a minute.
const MAX_LATE_MS: i64 = 10_000;
/// The zone of `[hours]` (the shipped default): the calendar's years are counted in it.
const ZONE: &str = "Asia/Shanghai";
/// The first child starts this long after the seeding begins, plus [`SEED_MS_EACH`] per seeded
/// case: time for the seed service to start, register the cases and send what they caused
/// (measured: 1.1 s for 20 cases and for 200, most of it the outbox's 1 s idle poll).
const SEED_LEAD_MS: i64 = 1_500;
/// See [`SEED_LEAD_MS`].
const SEED_MS_EACH: i64 = 20;
/// Seeds the kill moments (and, +1, the message mix).
const SEED: u64 = 0x5449_414f_4348_5531;
/// Pause between two acknowledged callbacks: about 15 a second.
const PACE: Duration = Duration::from_millis(50);
/// Each kill is planned this long (uniform) after the previous start's planned answer
/// ([`START_MS`]); ten of them take 19–29 s in all.
const GAP_MS: std::ops::Range<u64> = 1_500..2_500;

/// Answered instead of the first sends after every start, so that retried rows (persisted
/// with their backoff) are pending when the next kill comes; all retryable (§7).
const FAULTS_PER_START: [Fault; 3] = [
    Fault::Status(503),
    Fault::TooMany { retry_after: 1 },
    Fault::Throttle,
];

const APPLICANT: &str = "u-crash-liaison";
const INSPECTOR: &str = "u-crash-inspector";

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The shipped roster, everyone reachable (a staff id each), plus the applicant liaison; the
/// first inspector gets a known id.
fn roster_file(dir: &Path) -> PathBuf {
    let shipped = Roster::load(Path::new("config/roster.toml")).expect("roster");
    let mut inspector_named = false;
    let mut people: Vec<Person> = shipped
        .people()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let id = if p.has_role(Role::Inspector) && !inspector_named {
                inspector_named = true;
                INSPECTOR.to_string()
            } else if p.staff_id.is_empty() {
                format!("u-crash-{i}")
            } else {
                p.staff_id.clone()
            };
            Person::new(&p.name, &p.unit, &p.title, p.roles.clone(), &id, &p.phone)
        })
        .collect();
    assert!(inspector_named, "the shipped roster has an inspector");
    people.push(Person::new(
        "王联络",
        "区人社局",
        "科员",
        vec![Role::Liaison],
        APPLICANT,
        "13800000001",
    ));
    let path = dir.join("roster.toml");
    std::fs::write(
        &path,
        Roster::from_parts(shipped.units().to_vec(), people).to_toml(),
    )
    .expect("write roster");
    path
}

fn application(ticket: &str, n: usize) -> String {
    format!(
        "工单编号：{ticket}
工单标题：反映某建筑公司拖欠薪资的问题（第 {n} 件）
首接单位：区人社局
已采取措施：已向涉事建筑企业取得联系，核实拖欠薪资的基本情况，企业方承认存在拖欠行为。
办理难点：涉诉企业承接区城建公司项目，工程款拨付与住建审批相关，区人社局一家无法办理。
需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。"
    )
}

/// What a callback is, and so which inbox outcome it must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Application,
    Claim,
    Query,
    Help,
    ChitChat,
}

impl Kind {
    fn outcome(self) -> &'static str {
        match self {
            Kind::Application | Kind::Claim => "applied",
            Kind::Query | Kind::Help | Kind::ChitChat => "answered",
        }
    }
}

#[derive(Debug, Clone)]
struct Sent {
    msg_id: String,
    kind: Kind,
    ticket: Option<String>,
}

/// What the sender did; read by the test after it stopped.
#[derive(Default)]
struct Traffic {
    /// Acknowledged callbacks (200), in order.
    acked: Vec<Sent>,
    /// Attempts that got no 200 (connection refused or reset while the server was down).
    failed_attempts: usize,
    /// Non-200 statuses seen, by code (a 401 here would be a signing bug).
    statuses: BTreeMap<u16, usize>,
}

/// Whether the ticket's application has been registered (its case exists), so that 审核 comes
/// after it. Card updates may still overtake their card's create (a create waiting for a retry,
/// or held by a killed process's lease): the outbox retries those until the card exists.
fn registered(db: &Path, ticket: &str) -> bool {
    open_db(db)
        .query_row(
            "SELECT count(*) FROM cases WHERE ticket_no = ?1",
            [ticket],
            |r| r.get::<_, i64>(0),
        )
        .expect("cases")
        > 0
}

/// The next message: applications create tickets; 审核 only for an acknowledged, unclaimed
/// one whose application is registered (so the application is ahead of it in the inbox); queries
/// for any acknowledged one.
fn next_message(
    rng: &mut Rng,
    n: usize,
    tickets: &mut usize,
    acked_tickets: &[String],
    unclaimed: &mut Vec<String>,
    db: &Path,
) -> (Sent, &'static str, String) {
    let roll = rng.below(100);
    let msg_id = format!("crash-msg-{n:05}");
    let sent = |kind, ticket: Option<String>| Sent {
        msg_id: msg_id.clone(),
        kind,
        ticket,
    };
    if roll < 40 || acked_tickets.is_empty() {
        *tickets += 1;
        let ticket = format!("DH20261103{:05}", *tickets);
        let text = application(&ticket, *tickets);
        return (sent(Kind::Application, Some(ticket)), APPLICANT, text);
    }
    if roll < 60
        && let Some(i) = unclaimed.iter().position(|t| registered(db, t))
    {
        let ticket = unclaimed.remove(i);
        let text = format!("审核 {ticket}");
        return (sent(Kind::Claim, Some(ticket)), INSPECTOR, text);
    }
    if roll < 75 {
        let ticket = acked_tickets[rng.below(acked_tickets.len() as u64) as usize].clone();
        let text = format!("查询 {ticket}");
        return (sent(Kind::Query, Some(ticket)), APPLICANT, text);
    }
    if roll < 85 {
        return (sent(Kind::Help, None), INSPECTOR, "帮助".to_string());
    }
    let from = if rng.below(2) == 0 {
        APPLICANT
    } else {
        INSPECTOR
    };
    (sent(Kind::ChitChat, None), from, "你好，在吗？".to_string())
}

/// Signs and posts one robot callback from `from`, stamped `at_ms` (the receiving service's
/// now); its status, or None when the server could not be reached.
async fn post_callback(
    http: &reqwest::Client,
    base: &str,
    msg_id: &str,
    from: &str,
    text: &str,
    at_ms: i64,
) -> Option<u16> {
    let body = crate::support::robot_text(msg_id, from, &format!(" {text}"), at_ms)
        .with("robotCode", ROBOT_CODE);
    let timestamp = at_ms.to_string();
    http.post(format!("{base}/dingtalk/robot"))
        .header("content-type", "application/json; charset=utf-8")
        .header("timestamp", &timestamp)
        .header("sign", callback_sign(&timestamp, APP_SECRET))
        .body(body.to_string())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("client")
}

/// Posts signed callbacks one after another until `stop`; a callback that gets no 200 is sent
/// again with the same msgId (as DingTalk would redeliver) until it is acknowledged.
async fn send_traffic(
    base: String,
    db: PathBuf,
    stop: Arc<AtomicBool>,
    traffic: Arc<Mutex<Traffic>>,
) {
    let http = http_client();
    let mut rng = Rng(SEED.wrapping_add(1));
    let (mut tickets, mut acked_tickets, mut unclaimed) = (0, Vec::new(), Vec::new());
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let (sent, from, text) = next_message(
            &mut rng,
            n,
            &mut tickets,
            &acked_tickets,
            &mut unclaimed,
            &db,
        );
        loop {
            let now = SystemClock.now().as_millisecond();
            let status = post_callback(&http, &base, &sent.msg_id, from, &text, now).await;
            {
                let mut t = traffic.lock().expect("traffic lock");
                if status == Some(200) {
                    t.acked.push(sent.clone());
                } else {
                    t.failed_attempts += 1;
                    if let Some(code) = status {
                        *t.statuses.entry(code).or_default() += 1;
                    }
                }
            }
            if status == Some(200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let (Kind::Application, Some(ticket)) = (sent.kind, &sent.ticket) {
            acked_tickets.push(ticket.clone());
            unclaimed.push(ticket.clone());
        }
        tokio::time::sleep(PACE).await;
    }
}

/// The child server and what restarts it.
struct Server {
    child: Child,
    /// The child's scratch working directory, kept while it runs.
    _cwd: crate::support::Cli,
    config: PathBuf,
    log: PathBuf,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn spawn_child(config: &Path, log: &Path) -> (Child, crate::support::Cli) {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let err = out.try_clone().expect("log file");
    let mut command = crate::support::cli();
    command
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // A few senders send the whole traffic at full speed: the per-sender flood limit would
    // answer most of it with the cheap throttled path, and this test is about every kind of
    // message surviving a kill.
    command.env("TIAOCHU_INBOX__PER_SENDER_PER_MINUTE", "0");
    let child = command.spawn().expect("start tiaochu serve");
    (child, command)
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl Server {
    /// Starts the server and waits for `/healthz`; a start that fails (the port not yet free
    /// after a kill) is retried.
    async fn start(config: PathBuf, log: PathBuf, base: String) -> Server {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (mut child, cwd) = spawn_child(&config, &log);
            loop {
                if child.try_wait().expect("child status").is_some() {
                    break;
                }
                let healthy = http
                    .get(format!("{base}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if healthy {
                    return Server {
                        child,
                        _cwd: cwd,
                        config,
                        log,
                        base,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the server did not come up:\n{}", log_tail(&log));
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert!(
                Instant::now() < deadline,
                "the server kept failing to start:\n{}",
                log_tail(&log)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), and reaps the process.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    async fn restart(self) -> Server {
        Server::start(self.config, self.log, self.base).await
    }
}

fn open_db(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open database");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    conn
}

fn integrity(path: &Path) -> String {
    open_db(path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

/// What DingTalk (the fake) records for one delivery: route, user or space, the card's
/// outTrackId (empty for messages, whose text is their identity), and the text.
type Sig = (String, Option<String>, String, String);

fn delivery_sig(d: &Delivery) -> Sig {
    let key = if d.route.starts_with("card_") {
        d.key.clone()
    } else {
        String::new()
    };
    (d.route.to_string(), d.user.clone(), key, d.text.clone())
}

/// The deliveries the fake records when it accepts this outbox row (mirrors its routes).
fn row_sigs(channel: &str, payload: &[u8]) -> Vec<Sig> {
    match channel {
        "robot_batch" => {
            let body = BatchSend::from_slice(payload).expect("batchSend body");
            let param: serde_json::Map<String, Value> =
                serde_json::from_str(&body.msg_param).expect("msgParam");
            let text = ["title", "text", "content"]
                .iter()
                .filter_map(|k| param.get(*k).and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n");
            body.user_ids
                .iter()
                .map(|u| {
                    (
                        "batch_send".into(),
                        Some(u.clone()),
                        String::new(),
                        text.clone(),
                    )
                })
                .collect()
        }
        "card_create" | "card_update" => {
            let body: Value = serde_json::from_slice(payload).expect("card body");
            let out = body["outTrackId"].as_str().expect("outTrackId").to_string();
            let space = body["openSpaceId"]
                .as_str()
                .and_then(|s| s.strip_prefix("dtv1.card//"))
                .and_then(|s| s.split_once('.'))
                .map(|(_, id)| id.to_string());
            let text = body["cardData"]["cardParamMap"].to_string();
            vec![(channel.to_string(), space, out, text)]
        }
        other => panic!("this setup sends no {other} rows"),
    }
}

/// Rows the killed process had claimed and not finished: `(row id, lease) → signatures`.
fn in_flight(db: &Path, now_ms: i64) -> BTreeMap<(i64, i64), Vec<Sig>> {
    let conn = open_db(db);
    let mut stmt = conn
        .prepare(
            "SELECT id, lease_until, channel, payload FROM outbox
             WHERE state = 'pending' AND lease_until > ?1",
        )
        .expect("prepare");
    stmt.query_map([now_ms], |r| {
        let channel: String = r.get(2)?;
        let payload: Vec<u8> = r.get(3)?;
        Ok(((r.get(0)?, r.get(1)?), row_sigs(&channel, &payload)))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// Stored messages not yet processed, and outbound rows not yet sent.
fn backlog(db: &Path) -> (i64, i64) {
    open_db(db)
        .query_row(
            "SELECT (SELECT count(*) FROM inbox WHERE finished_at IS NULL),
                    (SELECT count(*) FROM outbox WHERE state = 'pending')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("backlog")
}

fn count<T: Ord, I: IntoIterator<Item = T>>(items: I) -> BTreeMap<T, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_default() += 1;
    }
    m
}

/// `TIAOCHU_CRASH_KILLS`, else [`DEFAULT_KILLS`].
fn kills() -> usize {
    match std::env::var("TIAOCHU_CRASH_KILLS") {
        Err(_) => DEFAULT_KILLS,
        Ok(text) => text
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("TIAOCHU_CRASH_KILLS={text:?}: expected a positive number")),
    }
}

/// Writes `dir/calendar/cn-<year>.json` for the year before, of and after `year`, each with every
/// Saturday and Sunday a make-up working day and no day off: with `[hours] 00:00-24:00` every
/// minute is working time. Returns the directory.
fn always_working_calendar(dir: &Path, year: i16) -> PathBuf {
    let calendar = dir.join("calendar");
    std::fs::create_dir(&calendar).expect("calendar dir");
    for y in [year - 1, year, year + 1] {
        let mut weekend = Vec::new();
        let mut day = Date::new(y, 1, 1).expect("1 January");
        while day.year() == y {
            if matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
                weekend.push(day.to_string());
            }
            day = day.tomorrow().expect("a next day");
        }
        let file = json!({
            "year": y,
            "source": "崩溃测试：每天都是工作日（周六、周日均为调休上班日）",
            "off_days": [],
            "makeup_workdays": weekend,
        });
        std::fs::write(
            calendar.join(format!("cn-{y}.json")),
            serde_json::to_string_pretty(&file).expect("json"),
        )
        .expect("write a calendar year");
    }
    calendar
}

/// Registers the seeded cases before the first child start: the service runs in-process on the
/// same database and config with a manual clock, and application `i` (from the liaison) is
/// received at `breaches[i]` less the review-start clock's length, so that its breach comes due
/// at `breaches[i]`. Returns the tickets once the service has processed and sent everything.
async fn seed_cases(config: &Path, db: &Path, breaches: &[i64]) -> Vec<String> {
    let settings = Settings::load_with_env(Some(config), Vec::new()).expect("settings");
    let review_ms = i64::from(settings.sla.review_start_working_hours) * 3_600_000;
    let first = breaches.first().copied().expect("at least one seeded case");
    let clock = Arc::new(ManualClock::at_millis(first - review_ms));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let shared: Arc<dyn Clock> = clock.clone();
    let app = App::build(settings, listener, shared).expect("build the seed service");
    let base = format!("http://{}", app.address());
    let processor = InboxProcessor::new(app.engine().clone());
    let shutdown = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    let http = http_client();
    let mut tickets = Vec::new();
    for (i, breach) in breaches.iter().enumerate() {
        let at = breach - review_ms;
        clock.set_millis(at);
        let ticket = format!("DH20261104{:05}", i + 1);
        let msg_id = format!("crash-seed-{i:05}");
        let text = application(&ticket, i + 1);
        let status = post_callback(&http, &base, &msg_id, APPLICANT, &text, at).await;
        assert_eq!(status, Some(200), "seeded application {ticket}");
        // Processed now, at `at`: the worker's next poll might come after the clock moved on.
        processor
            .process_pending(Timestamp::from_millisecond(at).expect("instant"))
            .await
            .expect("process the seeded application");
        tickets.push(ticket);
    }
    // Everything sent before the stop, so no row is left under this process's lease.
    let limit = Instant::now() + Duration::from_secs(30);
    loop {
        let (unfinished, pending) = backlog(db);
        if unfinished == 0 && pending == 0 {
            break;
        }
        assert!(
            Instant::now() < limit,
            "seed service not quiet: {unfinished} messages unprocessed, {pending} rows unsent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.trigger();
    server
        .await
        .expect("seed service task")
        .expect("seed service stopped cleanly");
    tickets
}

/// Pending timers due at `now_ms`.
fn overdue_timers(db: &Path, now_ms: i64) -> i64 {
    open_db(db)
        .query_row(
            "SELECT count(*) FROM timers WHERE state = 'pending' AND due_at <= ?1",
            [now_ms],
            |r| r.get(0),
        )
        .expect("overdue timers")
}

/// One timer as the store has it.
struct TimerFact {
    key: String,
    /// The ticket of the timer's case; None for a system timer.
    ticket: Option<String>,
    due_at: i64,
    state: String,
    fired_at: Option<i64>,
}

fn timers(conn: &rusqlite::Connection) -> Vec<TimerFact> {
    conn.prepare(
        "SELECT t.key, c.ticket_no, t.due_at, t.state, t.fired_at
         FROM timers t LEFT JOIN cases c ON c.id = t.case_id",
    )
    .expect("prepare")
    .query_map([], |r| {
        Ok(TimerFact {
            key: r.get(0)?,
            ticket: r.get(1)?,
            due_at: r.get(2)?,
            state: r.get(3)?,
            fired_at: r.get(4)?,
        })
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("timers")
}

/// `(ticket, kind, at, data)` of every submission, reminder and breach.
fn clock_events(conn: &rusqlite::Connection) -> Vec<(String, String, i64, Value)> {
    conn.prepare(
        "SELECT c.ticket_no, e.kind, e.at, e.data_json FROM events e JOIN cases c ON e.case_id = c.id
         WHERE e.kind IN ('submitted', 'reminder_sent', 'breach') ORDER BY e.id",
    )
    .expect("prepare")
    .query_map([], |r| {
        let data: String = r.get(3)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            serde_json::from_str(&data).expect("event data"),
        ))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("events")
}

fn now_ms() -> i64 {
    SystemClock.now().as_millisecond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_with_timers_due_loses_and_repeats_nothing() {
    let started = Instant::now();
    let kills = kills();
    let mut rng = Rng(SEED);
    let gaps: Vec<u64> = (0..kills)
        .map(|_| GAP_MS.start + rng.below(GAP_MS.end - GAP_MS.start))
        .collect();
    // The fake's clock is today's: it checks token expiry against it.
    let fake = FakeDingtalk::start(Arc::new(ManualClock::at_millis(now_ms()))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("tiaochu.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let zone = TimeZone::get(ZONE).expect("bundled zone");
    let year = SystemClock.now().to_zoned(zone).year();
    let config = json!({
        "server": {"listen": format!("127.0.0.1:{port}")},
        "store": {"path": db},
        "roster": {"path": roster_file(dir.path())},
        "calendar": {"dir": always_working_calendar(dir.path(), year)},
        "hours": {"periods": ["00:00-24:00"], "time_zone": ZONE},
        "dingtalk": {
            "mode": "http", "api_base": fake.base, "oapi_base": fake.base,
            "app_key": APP_KEY, "app_secret": APP_SECRET, "robot_code": ROBOT_CODE,
            "card_template_id": TEMPLATE_ID,
        },
    });
    let config_path = dir.path().join("tiaochu.toml");
    std::fs::write(&config_path, toml::to_string(&config).expect("toml")).expect("config");
    let log = dir.path().join("server.log");
    File::create(&log).expect("log");

    // The plan: kill `k` at `kill_at[k]`, its gap after the planned answer of the previous
    // start. Two seeded breaches per kill: one at a random moment of the gap before it (a kill
    // may catch its firing half done), one just after it (it comes due while the child is
    // down). The seeding must be done by `planned_start`.
    let seeds = 2 * kills;
    let planned_start = now_ms() + SEED_LEAD_MS + SEED_MS_EACH * seeds as i64;
    let kill_at: Vec<i64> = gaps
        .iter()
        .scan(planned_start, |at, gap| {
            *at += START_MS + i64::try_from(*gap).expect("gap");
            Some(*at)
        })
        .collect();
    let mut spread = Rng(SEED.wrapping_add(2));
    let breaches: Vec<i64> = kill_at
        .iter()
        .zip(&gaps)
        .flat_map(|(kill, gap)| {
            let before = 1 + i64::try_from(spread.below(*gap)).expect("gap");
            [kill - before, kill + AFTER_KILL_MS]
        })
        .collect();
    let seeded = seed_cases(&config_path, &db, &breaches).await;
    let seeding = started.elapsed();
    let early = planned_start - now_ms();
    if early > 0 {
        tokio::time::sleep(Duration::from_millis(early.unsigned_abs())).await;
    }

    let mut server = Server::start(config_path, log.clone(), base.clone()).await;
    let phase_start = now_ms();
    fake.fail_next(&FAULTS_PER_START);
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let sender = tokio::spawn(send_traffic(
        base.clone(),
        db.clone(),
        Arc::clone(&stop),
        Arc::clone(&traffic),
    ));

    let mut allowance: BTreeMap<(i64, i64), Vec<Sig>> = BTreeMap::new();
    // What each kill interrupted: stored but unprocessed messages, unsent rows.
    let (mut unprocessed_at_kills, mut unsent_at_kills) = (0, 0);
    // (kill instant, back up): when the service was down.
    let mut outages: Vec<(i64, i64)> = Vec::new();
    let mut up_at = phase_start;
    for (i, planned) in kill_at.iter().enumerate() {
        let kill = i + 1;
        let wait = (*planned).max(up_at + MIN_UP_MS) - now_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
        }
        let killed_at = now_ms();
        server.kill();
        // Requests the child had already written reach the fake's handlers regardless.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(integrity(&db), "ok", "integrity_check after kill {kill}");
        let held = in_flight(&db, now_ms());
        let held_now = held.len();
        allowance.extend(held);
        let (unfinished, pending) = backlog(&db);
        let due = overdue_timers(&db, now_ms());
        unprocessed_at_kills += unfinished;
        unsent_at_kills += pending;
        server = server.restart().await;
        let gap = killed_at - up_at;
        up_at = now_ms();
        outages.push((killed_at, up_at));
        println!(
            "crash test: kill {kill} after {gap} ms up ({} ms late): {unfinished} messages \
             unprocessed, {pending} rows unsent ({held_now} in flight), {due} timers due; back \
             up in {} ms",
            killed_at - planned,
            up_at - killed_at
        );
        fake.fail_next(&FAULTS_PER_START);
    }
    let phase_end = now_ms();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    sender.await.expect("sender");

    // Quiet: every message processed, nothing left to send, no timer overdue. The last start
    // released the dead processes' leases; one lease and a margin bound the wait regardless.
    let settle_started = Instant::now();
    let settle_limit = Duration::from_secs(LEASE.as_secs().unsigned_abs() + 15);
    let quiet_at = loop {
        let now = now_ms();
        let (unfinished, pending) = backlog(&db);
        let overdue = overdue_timers(&db, now);
        if unfinished == 0 && pending == 0 && overdue == 0 {
            break now;
        }
        assert!(
            settle_started.elapsed() < settle_limit,
            "not quiet after {settle_limit:?}: {unfinished} messages unprocessed, {pending} \
             outbound pending, {overdue} timers overdue\n{}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let settled = settle_started.elapsed();
    // A clean stop (ctrl-c path) must work after all that.
    let interrupted = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(interrupted.success());
    let mut waited = 0;
    let exit = loop {
        if let Some(status) = server.child.try_wait().expect("child status") {
            break status;
        }
        waited += 1;
        assert!(waited < 200, "no clean stop within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "clean stop: {exit:?}\n{}", log_tail(&log));
    assert_eq!(integrity(&db), "ok", "integrity_check at the end");

    let traffic = std::mem::take(&mut *traffic.lock().expect("traffic lock"));
    assert!(
        traffic.statuses.is_empty(),
        "only connection failures may go unanswered, not statuses: {:?}",
        traffic.statuses
    );
    let conn = open_db(&db);

    // Every acknowledged message is stored once and finished once, as its kind requires; the
    // seeded applications too.
    let inbox: BTreeMap<String, (Option<String>, Option<i64>)> = conn
        .prepare("SELECT message_id, outcome, finished_at FROM inbox WHERE source = 'robot'")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("inbox");
    let total_inbox: i64 = conn
        .query_row("SELECT count(*) FROM inbox", [], |r| r.get(0))
        .expect("count");
    assert_eq!(
        total_inbox as usize,
        traffic.acked.len() + seeds,
        "one inbox row per acknowledged message, no more"
    );
    for sent in &traffic.acked {
        let (outcome, finished) = inbox
            .get(&sent.msg_id)
            .unwrap_or_else(|| panic!("acknowledged {} is not in the inbox", sent.msg_id));
        assert!(finished.is_some(), "{} unfinished", sent.msg_id);
        assert_eq!(
            outcome.as_deref(),
            Some(sent.kind.outcome()),
            "{} ({:?} {:?})",
            sent.msg_id,
            sent.kind,
            sent.ticket
        );
    }
    for i in 0..seeds {
        let id = format!("crash-seed-{i:05}");
        let (outcome, _) = inbox.get(&id).expect("seeded message stored");
        assert_eq!(outcome.as_deref(), Some("applied"), "{id}");
    }

    // One case per application, submitted once; each 审核 claimed once, no seeded case claimed.
    let tickets: Vec<&String> = traffic
        .acked
        .iter()
        .filter(|s| s.kind == Kind::Application)
        .filter_map(|s| s.ticket.as_ref())
        .chain(&seeded)
        .collect();
    let claimed: BTreeSet<&String> = traffic
        .acked
        .iter()
        .filter(|s| s.kind == Kind::Claim)
        .filter_map(|s| s.ticket.as_ref())
        .collect();
    assert!(seeded.iter().all(|t| !claimed.contains(t)));
    let cases: BTreeMap<String, usize> = conn
        .prepare("SELECT ticket_no, count(*) FROM cases GROUP BY ticket_no")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("cases");
    let events: BTreeMap<(String, String), usize> = conn
        .prepare(
            "SELECT c.ticket_no, e.kind, count(*) FROM events e JOIN cases c ON e.case_id = c.id
             GROUP BY c.ticket_no, e.kind",
        )
        .expect("prepare")
        .query_map([], |r| {
            Ok(((r.get(0)?, r.get(1)?), r.get::<_, i64>(2)? as usize))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("events");
    assert_eq!(cases.len(), tickets.len(), "one case per application");
    for ticket in &tickets {
        assert_eq!(cases.get(*ticket), Some(&1), "cases for {ticket}");
        let events_of = |kind: &str| {
            events
                .get(&((*ticket).clone(), kind.to_string()))
                .copied()
                .unwrap_or(0)
        };
        assert_eq!(events_of("submitted"), 1, "{ticket} submitted once");
        let claims = usize::from(claimed.contains(ticket));
        assert_eq!(
            events_of("claimed"),
            claims,
            "{ticket} claimed {claims} time(s)"
        );
    }

    // Timers: everything due by the quiet moment fired, once, not before its time.
    let timers = timers(&conn);
    for t in timers.iter().filter(|t| t.due_at <= quiet_at) {
        assert_eq!(t.state, "fired", "timer {} due at {}", t.key, t.due_at);
        let fired = t.fired_at.expect("fired_at of a fired timer");
        assert!(fired >= t.due_at, "timer {} fired before its time", t.key);
    }
    let fired: Vec<&TimerFact> = timers.iter().filter(|t| t.state == "fired").collect();
    // The restart after which a timer due at `at` could fire, when the child was down then.
    let back_up = |at: i64| {
        outages
            .iter()
            .find(|(k, up)| (*k..=*up).contains(&at))
            .map(|(_, up)| *up)
    };
    let before_kill = |at: i64| outages.iter().any(|(k, _)| (k - 1_000..*k).contains(&at));
    let due_down = fired.iter().filter(|t| back_up(t.due_at).is_some()).count();
    let due_before_kill = fired.iter().filter(|t| before_kill(t.due_at)).count();
    // The scheduler wakes at each due time, and a start fires what is due at once: a timer due
    // in the kill phase fires within seconds of its time or of the restart, never at the next
    // one-minute check. (The catch-ups of the first start are late by design.)
    let mut latest = 0;
    for t in fired.iter().filter(|t| t.due_at >= phase_start) {
        let could = back_up(t.due_at).unwrap_or(t.due_at);
        let late = t.fired_at.expect("fired_at") - could;
        assert!(late <= MAX_LATE_MS, "timer {} fired {late} ms late", t.key);
        latest = latest.max(late);
    }

    // Per (case, clock, phase) at most one reminder or breach; per seeded case one breach of
    // the review-start clock, one hour after the submission, and its half-time reminder sent
    // as catch-up (or folded into a catch-up breach).
    let clock_events = clock_events(&conn);
    let mut per_phase: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (ticket, kind, _, data) in &clock_events {
        let phase = match kind.as_str() {
            "breach" => "due",
            "reminder_sent" => data["phase"].as_str().expect("reminder phase"),
            _ => continue,
        };
        let clock = data["clock"].as_str().expect("clock id").to_string();
        *per_phase
            .entry((ticket.clone(), clock, phase.to_string()))
            .or_default() += 1;
    }
    let repeated: Vec<_> = per_phase.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "reminded or breached twice: {repeated:?}"
    );
    let seeded_set: BTreeSet<&String> = seeded.iter().collect();
    let (mut due_in_phase, mut caught_up) = (0, 0);
    for ticket in &seeded {
        let of = |kind: &'static str| {
            clock_events
                .iter()
                .filter(move |(t, k, _, _)| t == ticket && k == kind)
        };
        let submitted = of("submitted").next().expect("submitted").2;
        let review = |e: &&(String, String, i64, Value)| e.3["clock"] == "review_start";
        let breaches: Vec<_> = of("breach").filter(review).collect();
        assert_eq!(breaches.len(), 1, "{ticket}: one review-start breach");
        let due = timers
            .iter()
            .find(|t| t.ticket.as_ref() == Some(ticket) && t.key.ends_with("/review_start/due"))
            .unwrap_or_else(|| panic!("{ticket}: no review-start due timer"));
        assert_eq!(
            due.due_at,
            submitted + 3_600_000,
            "{ticket}: every minute is working time, so the hour is wall-clock"
        );
        if (phase_start..=phase_end).contains(&due.due_at) {
            due_in_phase += 1;
        }
        let half: Vec<&Value> = of("reminder_sent").filter(review).map(|e| &e.3).collect();
        let folded = breaches[0].3["skipped_in_catch_up"]
            .as_array()
            .is_some_and(|s| s.iter().any(|p| p == "half"));
        match half.as_slice() {
            [data] if data["phase"] == "half" && data.get("late_minutes").is_some() => {
                caught_up += 1;
            }
            [] if folded => {}
            other => panic!("{ticket}: half-time reminders {other:?}, folded {folded}"),
        }
    }
    // The seeding was planned to end before the kill phase; if it overran, breaches came due
    // before the first child start and fired as catch-up instead.
    assert!(
        due_in_phase * 2 >= seeds,
        "only {due_in_phase} of {seeds} seeded breaches came due in the kill phase"
    );
    // One seeded breach per kill was aimed just after it; a start slower than planned makes the
    // kill late and that breach come due before it instead.
    assert!(
        due_down * 2 >= kills,
        "only {due_down} timers came due while the child was down, {kills} were aimed there"
    );

    // Outbound: nothing dead, everything sent; the fake saw each sent row exactly once,
    // or twice when the row was in flight at a kill; card creates exactly once.
    let dead: Vec<(String, Option<String>)> = conn
        .prepare("SELECT idem_key, last_error FROM outbox WHERE state = 'dead'")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("dead");
    assert!(dead.is_empty(), "dead letters: {dead:#?}");
    let sent_rows: Vec<(String, Vec<u8>)> = conn
        .prepare("SELECT channel, payload FROM outbox WHERE state = 'sent'")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("sent");
    let expected = count(sent_rows.iter().flat_map(|(c, p)| row_sigs(c, p)));
    let deliveries = fake.deliveries();
    let delivered = count(deliveries.iter().map(delivery_sig));
    let allowed = count(allowance.values().flatten().cloned());
    let mut resent = 0;
    let every: BTreeSet<&Sig> = expected.keys().chain(delivered.keys()).collect();
    for sig in every {
        let want = expected.get(sig).copied().unwrap_or(0);
        let got = delivered.get(sig).copied().unwrap_or(0);
        let may_repeat = if sig.0 == "card_create" {
            0
        } else {
            allowed.get(sig).copied().unwrap_or(0)
        };
        assert!(
            want <= got && got <= want + may_repeat,
            "{sig:?}: {want} sent rows, {got} deliveries, {may_repeat} in flight at a kill"
        );
        resent += got - want;
    }
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());

    // And the applicant got exactly one receipt per ticket (a resend only if in flight).
    for ticket in &tickets {
        let receipts = deliveries
            .iter()
            .filter(|d| {
                d.route == "batch_send"
                    && d.user.as_deref() == Some(APPLICANT)
                    && d.text.starts_with("申请已登记")
                    && d.text.contains(ticket.as_str())
            })
            .collect::<Vec<_>>();
        let may_repeat = receipts
            .first()
            .map_or(0, |d| allowed.get(&delivery_sig(d)).copied().unwrap_or(0));
        assert!(
            !receipts.is_empty() && receipts.len() <= 1 + may_repeat,
            "{ticket}: {} receipts",
            receipts.len()
        );
    }
    // Each scheduler pass ends with a digest for the hotline; the firing queues its digest
    // lines in its own transaction, so a kill between a firing and its pass's digest must not
    // leave a seeded breach out of every delivered digest.
    let label = ClockKind::ReviewStart.label();
    let undigested = seeded_set
        .iter()
        .filter(|ticket| {
            let line = format!("工单 {ticket} · {label}：已超期");
            !deliveries
                .iter()
                .any(|d| d.text.contains("期限提醒汇总") && d.text.contains(&line))
        })
        .count();
    assert_eq!(
        undigested, 0,
        "seeded breaches missing from every delivered digest"
    );

    let by_route = count(deliveries.iter().map(|d| d.route));
    let faults = fake.requests().iter().filter(|r| r.fault.is_some()).count();
    let applications = tickets.len() - seeds;
    println!(
        "crash test: {kills} SIGKILLs over {:.1} s; {} callbacks acknowledged ({applications} \
         applications, {} claims), {} attempts refused while down; the kills interrupted \
         {unprocessed_at_kills} stored but unprocessed messages and {unsent_at_kills} unsent \
         outbox rows; {} cases",
        (phase_end - phase_start) as f64 / 1000.0,
        traffic.acked.len(),
        claimed.len(),
        traffic.failed_attempts,
        cases.len(),
    );
    println!(
        "crash test: timers: {seeds} seeded cases (ready {:.1} s after the test began), \
         {due_in_phase} of their breaches due in the kill phase, {caught_up} half-time reminders \
         sent as catch-up at the first start; {} timers fired in all, {due_down} of them due \
         while the child was down and {due_before_kill} within 1 s before a kill; those due in \
         the kill phase fired at most {latest} ms after their time (or the restart); \
         {undigested} seeded breaches missing from every digest",
        seeding.as_secs_f64(),
        fired.len(),
    );
    println!(
        "crash test: outbound: {} rows sent; {faults} sends answered with a fault and retried; \
         fake deliveries {by_route:?}; {} rows in flight at a kill, {resent} delivered twice; \
         quiet {:.1} s after the last restart; total {:.1} s",
        sent_rows.len(),
        allowance.len(),
        settled.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
}
