//! The crash test (issue 3): the real `tiaochu serve` binary in `http` mode, fed a steady stream
//! of signed robot callbacks — complete applications with distinct tickets, 审核 commands,
//! queries, help and chit-chat — is killed with SIGKILL at 10 seeded-random moments and
//! restarted on the same database and port. Afterwards: every acknowledged msgId is in the
//! inbox, every inbox row finished exactly once with the outcome its message calls for, each
//! application made exactly one case (one `submitted` event) and each 审核 one `claimed`
//! event, every outbox row was sent and reached the fake DingTalk, and
//! `PRAGMA integrity_check` is ok after every kill and at the end.
//!
//! Outbound is at-least-once by design (DESIGN.md): a kill after DingTalk took a batchSend but
//! before the row was marked sent makes the next process send it again once its lease ends.
//! So while the child is dead the test records which rows it had in flight (leased, pending);
//! a second delivery is accepted only for such a row, card creates must reach the fake exactly
//! once (the outTrackId makes a resend harmless), and everything else exactly once. Counts are
//! printed (run with `--nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tiaochu::clock::{Clock, ManualClock, SystemClock};
use tiaochu::dingtalk::payload::BatchSend;
use tiaochu::dingtalk::sign::callback_sign;
use tiaochu::outbox::LEASE;
use tiaochu::roster::{Person, Role, Roster};

use crate::fake_dingtalk::{
    APP_KEY, APP_SECRET, Delivery, FakeDingtalk, Fault, ROBOT_CODE, TEMPLATE_ID,
};

const KILLS: usize = 10;
/// Seeds the kill moments (and, +1, the message mix).
const SEED: u64 = 0x5449_414f_4348_5531;
/// Pause between two acknowledged callbacks: about 15 a second.
const PACE: Duration = Duration::from_millis(50);
/// Each kill comes this long (uniform) after the previous restart answered its health check;
/// ten of them take 15–25 s in all.
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

/// Posts signed callbacks one after another until `stop`; a callback that gets no 200 is sent
/// again with the same msgId (as DingTalk would redeliver) until it is acknowledged.
async fn send_traffic(
    base: String,
    db: PathBuf,
    stop: Arc<AtomicBool>,
    traffic: Arc<Mutex<Traffic>>,
) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("client");
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
            let body = json!({
                "msgtype": "text", "msgId": sent.msg_id, "createAt": now,
                "conversationType": "1", "conversationId": format!("cid-{from}"),
                "senderStaffId": from, "senderNick": from, "robotCode": ROBOT_CODE,
                "text": {"content": format!(" {text}")},
            });
            let timestamp = now.to_string();
            let answer = http
                .post(format!("{base}/dingtalk/robot"))
                .header("content-type", "application/json; charset=utf-8")
                .header("timestamp", &timestamp)
                .header("sign", callback_sign(&timestamp, APP_SECRET))
                .body(body.to_string())
                .send()
                .await;
            let status = answer.as_ref().map(|r| r.status().as_u16()).ok();
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

fn spawn_child(config: &Path, log: &Path) -> Child {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let err = out.try_clone().expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_tiaochu"));
    command
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        // The fake is on loopback: no proxy may capture the child's requests to it.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        // The developer's own settings and proxies must not reach the child.
        if key_text.starts_with("TIAOCHU_") || key_text.to_ascii_lowercase().ends_with("_proxy") {
            command.env_remove(&key);
        }
    }
    command.spawn().expect("start tiaochu serve")
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
            let mut child = spawn_child(&config, &log);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_ten_random_moments_loses_and_repeats_nothing() {
    let started = Instant::now();
    // The fake's clock is today's: it checks token expiry against it.
    let fake = FakeDingtalk::start(Arc::new(ManualClock::at_millis(
        SystemClock.now().as_millisecond(),
    )))
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("tiaochu.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = json!({
        "server": {"listen": format!("127.0.0.1:{port}")},
        "store": {"path": db},
        "roster": {"path": roster_file(dir.path())},
        "calendar": {"dir": manifest.join("config/calendar")},
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

    let mut server = Server::start(config_path, log.clone(), base.clone()).await;
    fake.fail_next(&FAULTS_PER_START);
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let sender = tokio::spawn(send_traffic(
        base.clone(),
        db.clone(),
        Arc::clone(&stop),
        Arc::clone(&traffic),
    ));

    let mut rng = Rng(SEED);
    let mut allowance: BTreeMap<(i64, i64), Vec<Sig>> = BTreeMap::new();
    // What each kill interrupted: stored but unprocessed messages, unsent rows.
    let (mut unprocessed_at_kills, mut unsent_at_kills) = (0, 0);
    let traffic_started = Instant::now();
    for kill in 1..=KILLS {
        let gap = GAP_MS.start + rng.below(GAP_MS.end - GAP_MS.start);
        tokio::time::sleep(Duration::from_millis(gap)).await;
        server.kill();
        // Requests the child had already written reach the fake's handlers regardless.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(integrity(&db), "ok", "integrity_check after kill {kill}");
        allowance.extend(in_flight(&db, SystemClock.now().as_millisecond()));
        let (unfinished, pending) = backlog(&db);
        unprocessed_at_kills += unfinished;
        unsent_at_kills += pending;
        println!(
            "crash test: kill {kill} after {gap} ms: {unfinished} messages unprocessed, {pending} \
             rows unsent, {} in flight",
            allowance.len()
        );
        server = server.restart().await;
        fake.fail_next(&FAULTS_PER_START);
    }
    let killing = traffic_started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    sender.await.expect("sender");

    // Quiet: every message processed, nothing left to send. A row a killed process held
    // waits out its lease, so the wait is bounded by one lease and a margin.
    let settle_started = Instant::now();
    let settle_limit = Duration::from_secs(LEASE.as_secs().unsigned_abs() + 15);
    loop {
        let (unfinished, pending) = backlog(&db);
        if unfinished == 0 && pending == 0 {
            break;
        }
        assert!(
            settle_started.elapsed() < settle_limit,
            "not quiet after {settle_limit:?}: {unfinished} messages unprocessed, {pending} \
             outbound pending\n{}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let settled = settle_started.elapsed();
    println!(
        "crash test: quiet {:.1} s after the last restart",
        settled.as_secs_f64()
    );
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

    // Every acknowledged message is stored once and finished once, as its kind requires.
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
        traffic.acked.len(),
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

    // One case per application, submitted once; each 审核 claimed once.
    let tickets: Vec<&String> = traffic
        .acked
        .iter()
        .filter(|s| s.kind == Kind::Application)
        .filter_map(|s| s.ticket.as_ref())
        .collect();
    let claimed: BTreeSet<&String> = traffic
        .acked
        .iter()
        .filter(|s| s.kind == Kind::Claim)
        .filter_map(|s| s.ticket.as_ref())
        .collect();
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

    let by_route = count(deliveries.iter().map(|d| d.route));
    let faults = fake.requests().iter().filter(|r| r.fault.is_some()).count();
    println!(
        "crash test: {KILLS} SIGKILLs over {:.1} s; {} callbacks acknowledged ({} applications, \
         {} claims), {} attempts refused while down; the kills interrupted {} stored but unprocessed messages \
         and {} unsent outbox rows; {} cases; {} outbox rows sent; {faults} \
         sends answered with a fault and retried; fake deliveries {by_route:?}; {} rows in flight at a kill, {resent} delivered twice; \
         quiet {:.1} s after the last restart; total {:.1} s",
        killing.as_secs_f64(),
        traffic.acked.len(),
        tickets.len(),
        claimed.len(),
        traffic.failed_attempts,
        unprocessed_at_kills,
        unsent_at_kills,
        cases.len(),
        sent_rows.len(),
        allowance.len(),
        settled.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
}
