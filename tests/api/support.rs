//! Shared helpers of the integration tests. [`spawn_app`] boots the real server on 127.0.0.1:0
//! with a temporary database, DingTalk mode `http`, a known app secret and a manual clock, and the
//! returned [`TestApp`] signs and posts robot callbacks with reqwest. [`world`] builds the roster,
//! calendar and engine a test drives in-process, and [`robot_text`] the messages it sends.
//! [`cli`] runs the built binary in a scratch directory, and [`skip_or_fail`] is the one rule for
//! a cross-check that cannot run. [`hold_writer`] keeps every write waiting while a test looks.

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::header::{HeaderName, HeaderValue};
use tiaochu::app::{App, AppError, Shutdown};
use tiaochu::clock::{Clock, ManualClock};
use tiaochu::dingtalk::sign::callback_sign;
use tiaochu::settings::{DingtalkMode, Secret, Settings};
use tiaochu::store::{InboxRow, Store};

/// The store's writer held by a write that waits: nothing commits until [`HeldWriter::release`].
pub struct HeldWriter {
    release: std::sync::mpsc::Sender<()>,
    holder: std::thread::JoinHandle<Result<(), tiaochu::store::StoreError>>,
}

/// Holds `store`'s writer and returns once it is held, so every write submitted after this waits
/// behind it. A holder never released lets go after 30 s, so a failing test cannot hang.
pub fn hold_writer(store: &Store) -> HeldWriter {
    let (held_tx, held) = std::sync::mpsc::channel::<()>();
    let (release, go) = std::sync::mpsc::channel::<()>();
    let store = store.clone();
    let holder = std::thread::spawn(move || {
        store.write_blocking(move |_tx| -> Result<(), tiaochu::store::StoreError> {
            let _ = held_tx.send(());
            let _ = go.recv_timeout(std::time::Duration::from_secs(30));
            Ok(())
        })
    });
    held.recv().expect("the writer is held");
    HeldWriter { release, holder }
}

impl HeldWriter {
    /// Lets the writer go and waits until the holding write has committed.
    pub fn release(self) {
        let _ = self.release.send(());
        self.holder
            .join()
            .expect("holder thread")
            .expect("held write");
    }
}

/// The app secret every test app is configured with unless overridden.
pub const SECRET: &str = "test-app-secret-调处";

/// Where the manual clock starts: 2026-05-28T20:26:40Z, in milliseconds.
pub const START_MS: i64 = 1_780_000_000_000;

/// A running server and handles to look inside it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub db_path: PathBuf,
    /// The app secret the server verifies with (after overrides).
    pub secret: String,
    pub client: reqwest::Client,
    pub shutdown: Shutdown,
    /// Tells the scheduler the manual clock moved, so timers that became due fire at once.
    pub clock_moved: Arc<tokio::sync::watch::Sender<u64>>,
    pub server: tokio::task::JoinHandle<Result<(), AppError>>,
    /// Callbacks signed by [`TestApp::post_signed`] so far: each is signed a millisecond earlier
    /// than the one before, since a (timestamp, sign) pair carries one message only.
    pub signed: std::sync::atomic::AtomicI64,
    /// Keeps the database directory alive as long as the app.
    pub _tempdir: tempfile::TempDir,
}

/// Boots the real server. `overrides` edits the settings after the test defaults are applied.
pub async fn spawn_app(overrides: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_at(START_MS, overrides).await
}

/// [`spawn_app`] with the manual clock at `start_ms`. The dashboard's login links point at the
/// app's own address unless `overrides` says otherwise.
pub async fn spawn_app_at(start_ms: i64, overrides: impl FnOnce(&mut Settings)) -> TestApp {
    let tempdir = tempfile::tempdir().expect("tempdir");
    let db_path = tempdir.path().join("tiaochu.db");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let address = format!("http://{}", listener.local_addr().expect("bound address"));
    // Built-in defaults only: the developer's TIAOCHU_* variables must not leak into tests.
    let mut settings = default_settings();
    settings.store.path = db_path.clone();
    settings.dingtalk.mode = DingtalkMode::Http;
    settings.dingtalk.app_secret = Secret::new(SECRET);
    settings.dashboard.base_url = address.clone();
    overrides(&mut settings);
    let secret = settings.dingtalk.app_secret.expose().to_string();

    let clock = Arc::new(ManualClock::at_millis(start_ms));
    let shared: Arc<dyn Clock> = clock.clone();
    let app = App::build(settings, listener, shared).expect("build app");
    let store = app.store().clone();
    let shutdown = app.shutdown_handle();
    let clock_moved = app.clock_moved_handle();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        store,
        clock,
        db_path,
        secret,
        // No proxy: a developer's HTTP_PROXY must not capture requests to 127.0.0.1.
        client: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("reqwest client"),
        shutdown,
        clock_moved,
        server,
        signed: std::sync::atomic::AtomicI64::new(0),
        _tempdir: tempdir,
    }
}

/// A text robot message (§1.3 shape) with the given id and content.
pub fn robot_message(msg_id: &str, text: &str) -> String {
    robot_text(msg_id, "user001", text, START_MS)
        .with("conversationId", "cidTest==")
        .with("senderNick", "测试联络员")
        .without("robotCode")
        .to_string()
}

impl TestApp {
    /// The manual clock's current time in milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.clock.now().as_millisecond()
    }

    /// Posts `body` to the robot callback with exactly the given headers (repeats allowed).
    pub async fn post_robot(
        &self,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, HeaderValue)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/dingtalk/robot", self.address))
            .header("content-type", "application/json; charset=utf-8")
            .body(body);
        for (name, value) in headers {
            // RequestBuilder::header appends, so a name given twice is sent twice.
            let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
            request = request.header(name, value.clone());
        }
        request.send().await.expect("request reaches the server")
    }

    /// Posts `body` with `timestamp` and the `sign` DingTalk would compute for it.
    pub async fn post_signed_at(
        &self,
        body: impl Into<reqwest::Body>,
        timestamp: &str,
    ) -> reqwest::Response {
        let sign = callback_sign(timestamp, &self.secret);
        self.post_robot(body, &[("timestamp", hv(timestamp)), ("sign", hv(&sign))])
            .await
    }

    /// Posts `body` signed with the manual clock's current time, as DingTalk would: the n-th
    /// call signs n − 1 ms before it, so no two messages share a (timestamp, sign) pair even
    /// while the clock stands still (a shared pair is a replay, refused).
    pub async fn post_signed(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        let earlier = self
            .signed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let timestamp = (self.now_ms() - earlier).to_string();
        self.post_signed_at(body, &timestamp).await
    }

    /// Every inbox row, processed or not.
    pub async fn inbox(&self) -> Vec<InboxRow> {
        self.store
            .read(|r| r.all_inbox(100_000))
            .await
            .expect("read inbox")
    }

    /// `GET /healthz`: status and JSON body.
    pub async fn health(&self) -> (reqwest::StatusCode, serde_json::Value) {
        let response = self
            .client
            .get(format!("{}/healthz", self.address))
            .send()
            .await
            .expect("healthz reachable");
        let status = response.status();
        (status, response.json().await.expect("healthz JSON"))
    }
}

/// A header value from text that is known to be valid.
pub fn hv(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).expect("valid header value")
}

/// The Python interpreter for the conformance and reader tests: `TIAOCHU_CONFORMANCE_PYTHON`,
/// else the venv `.ci/run` creates (`target/conformance-venv`), else `python3` from PATH.
pub fn conformance_python() -> PathBuf {
    if let Some(python) = std::env::var_os("TIAOCHU_CONFORMANCE_PYTHON") {
        return python.into();
    }
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/conformance-venv/bin/python3");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Writes `dir/roster.toml`: the shipped roster with DingTalk staff ids given to the people
/// named in `staff_ids` (name → staff id) and `extra` people added. Returns the file's path.
pub fn write_roster(
    dir: &std::path::Path,
    staff_ids: &[(&str, &str)],
    extra: Vec<tiaochu::roster::Person>,
) -> PathBuf {
    use tiaochu::roster::{Person, Roster};
    let shipped = shipped_roster();
    let mut people: Vec<Person> = shipped
        .people()
        .iter()
        .map(
            |p| match staff_ids.iter().find(|(name, _)| *name == p.name) {
                Some((_, id)) => Person::new(&p.name, &p.unit, &p.title, p.roles.clone(), id, ""),
                None => p.clone(),
            },
        )
        .collect();
    people.extend(extra);
    let path = dir.join("roster.toml");
    std::fs::write(
        &path,
        Roster::from_parts(shipped.units().to_vec(), people).to_toml(),
    )
    .expect("write roster");
    path
}

/// The commands a rendered message suggests: the text of its code spans (`查询 DH…`), of its
/// “quoted” phrases (发送“帮助”) and of its buttons, where each starts with a command word.
pub fn suggested_commands(markdown: &str, buttons: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut spans = |open: char, close: char| {
        let mut rest = markdown;
        while let Some(start) = rest.find(open) {
            // An escaped backtick is people's text, not a code span.
            if open == '`' && rest[..start].ends_with('\\') {
                rest = &rest[start + open.len_utf8()..];
                continue;
            }
            let after = &rest[start + open.len_utf8()..];
            let Some(end) = after.find(close) else { break };
            out.push(after[..end].to_string());
            rest = &after[end + close.len_utf8()..];
        }
    };
    spans('`', '`');
    spans('“', '”');
    out.extend(buttons.iter().cloned());
    out.retain(|s| tiaochu::parse::command::verb_of(s).is_some());
    out
}

/// Principle 2 of the conversation: the suggestions in a message that its recipient, with
/// `roles`, is not allowed to send.
pub fn suggestions_not_for(
    markdown: &str,
    buttons: &[String],
    roles: &[tiaochu::roster::Role],
) -> Vec<String> {
    suggested_commands(markdown, buttons)
        .into_iter()
        .filter(|s| {
            tiaochu::parse::command::verb_of(s)
                .is_some_and(|v| !tiaochu::messages::help::is_for(v, roles))
        })
        .collect()
}

/// The repository root (`CARGO_MANIFEST_DIR`), for fixtures and the shipped `config/`.
pub fn repo_root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The built `tiaochu` command, run as an admin would but never on a developer's files. Its
/// working directory is a fresh scratch directory holding only a link to the repository's
/// `config/`: the shipped relative paths (`config/roster.toml`, `config/calendar`) resolve, and
/// the default `[store] path = "tiaochu.db"` lands in the scratch directory instead of the
/// checkout, where a developer's sandbox database lives. None of the developer's `TIAOCHU_*`
/// settings or proxies reach it. Every test runs the binary through this (the check is
/// `cli::every_spawn_of_the_binary_goes_through_the_scratch_directory`).
///
/// Dereferences to the [`Command`](std::process::Command); the scratch directory lives as long
/// as this value, so keep it in a variable while a spawned child runs.
pub struct Cli {
    command: std::process::Command,
    cwd: tempfile::TempDir,
}

pub fn cli() -> Cli {
    let cwd = tempfile::Builder::new()
        .prefix("tiaochu-cwd-")
        .tempdir()
        .expect("scratch working directory");
    std::os::unix::fs::symlink(repo_root().join("config"), cwd.path().join("config"))
        .expect("link config/ into the scratch directory");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tiaochu"));
    command.current_dir(cwd.path());
    for (key, _) in std::env::vars_os() {
        let text = key.to_string_lossy();
        if text.starts_with("TIAOCHU_") || text.to_ascii_lowercase().ends_with("_proxy") {
            command.env_remove(&key);
        }
    }
    // Fakes listen on loopback: no proxy may capture the child's requests to them.
    command
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    Cli { command, cwd }
}

impl Cli {
    /// The scratch working directory the command runs in.
    pub fn cwd(&self) -> &std::path::Path {
        self.cwd.path()
    }
}

impl std::ops::Deref for Cli {
    type Target = std::process::Command;
    fn deref(&self) -> &Self::Target {
        &self.command
    }
}

impl std::ops::DerefMut for Cli {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.command
    }
}

/// Whether this run is CI's (`.ci/run` sets `CI=true`), where a check that cannot run fails.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Where [`skip_or_fail`] records the checks a local run skipped; the `skipped` test target
/// (tests/skipped.rs), which cargo runs after this binary, prints the ones of the same
/// `cargo test` at the end of the run.
pub fn skipped_log() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("skipped-checks.tsv")
}

/// The one way a cross-check that needs something outside Rust (Python packages, Chromium)
/// gives up: under CI it fails, since `.ci/run` installs everything; on a developer's machine
/// it says why on stderr and records the skip, so the end of `cargo test` lists it.
pub fn skip_or_fail(test: &str, why: &str) {
    if under_ci() {
        panic!("{test} must run in CI, but {why}; .ci/run installs what it needs");
    }
    eprintln!("SKIPPED {test}: {why}");
    // The lines are keyed by the cargo process that ran the tests, so the summary shows this
    // run's skips only; a second `cargo test` at the same time appends its own.
    let cargo = std::os::unix::process::parent_id();
    let line = format!("{cargo}\t{test}\t{}\n", why.replace(['\t', '\n'], " "));
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skipped_log())
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    if let Err(e) = appended {
        eprintln!(
            "(could not record the skip in {}: {e})",
            skipped_log().display()
        );
    }
}

/// The shipped roster file, the base of every test roster.
pub fn shipped_roster() -> tiaochu::roster::Roster {
    tiaochu::roster::Roster::load(&repo_root().join("config/roster.toml")).expect("shipped roster")
}

/// The holiday files of `dir` in the default working hours.
pub fn calendar_in(dir: &std::path::Path) -> tiaochu::calendar::Calendar {
    tiaochu::calendar::Calendar::load_dir(dir, tiaochu::calendar::WorkingHours::default())
        .expect("calendar")
}

/// The built-in settings (the developer's TIAOCHU_* variables must not leak into tests) with the
/// outbound send budget lifted: a test clock stands still unless a test moves it, so a rolling
/// one-second window would never refill. The budget's own tests (outbound.rs) set one and move
/// the clock.
pub fn default_settings() -> Settings {
    let mut settings = Settings::load_with_env(None, Vec::new()).expect("default settings");
    settings.outbox.sends_per_second = u32::MAX;
    settings
}

/// The seed application of the mechanism's Attachment 2 (`001-seed-template.txt`) for `ticket`.
pub fn seed_application_text(ticket: &str) -> String {
    std::fs::read_to_string(repo_root().join("tests/fixtures/applications/001-seed-template.txt"))
        .expect("seed application")
        .replace("DH2026110300017", ticket)
}

/// `text` read by the robot's parser against `roster`; it must be a complete application.
pub fn complete_application(
    roster: &tiaochu::roster::Roster,
    text: &str,
) -> tiaochu::workflow::Application {
    let app = tiaochu::parse::parse_application(text, &tiaochu::parse::UnitMatcher::new(roster));
    assert!(app.ok, "{:?}", app.errors);
    registrable(roster, &app)
}

/// A case number as tests write them.
pub fn case_no(case_no: &str) -> tiaochu::domain::CaseNo {
    tiaochu::domain::CaseNo::parse(case_no).expect("a case number")
}

/// A ticket number as tests write them.
pub fn ticket_no(ticket: &str) -> tiaochu::domain::TicketNo {
    tiaochu::domain::TicketNo::parse(ticket).expect("a ticket number")
}

/// A person id as tests write them (`rs-liaison`, `local:区12345热线:孟艳秋`).
pub fn person_id(id: &str) -> tiaochu::domain::PersonId {
    tiaochu::domain::PersonId::parse(id).expect("a person id")
}

/// The shipped roster's member unit `name`, as the command parser would resolve it.
pub fn unit_named(name: &str) -> tiaochu::domain::UnitName {
    static UNITS: std::sync::LazyLock<tiaochu::parse::UnitMatcher> =
        std::sync::LazyLock::new(|| tiaochu::parse::UnitMatcher::new(&shipped_roster()));
    tiaochu::domain::UnitName::parse(name, &UNITS).expect("a member unit of the shipped roster")
}

/// `report` as the application the workflow registers, its units looked up in `roster`; it
/// must be complete.
pub fn registrable(
    roster: &tiaochu::roster::Roster,
    report: &tiaochu::parse::Application,
) -> tiaochu::workflow::Application {
    tiaochu::workflow::Application::from_report(report, &tiaochu::parse::UnitMatcher::new(roster))
        .expect("a complete application")
}

/// The liaisons most tests share, one for each unit of the seed application: 王联络 (区人社局, the
/// first unit), 赵联络 (区住建局) and 钱联络 (区城市管理局). See [`WorldBuilder::the_liaisons`].
pub const RS: &str = "rs-liaison";
pub const ZJ: &str = "zj-liaison";
pub const CG: &str = "cg-liaison";

/// Where a [`World`]'s clock starts unless told: Monday 2026-11-02, 09:00 in Ganzhou, a
/// working day.
pub const WORLD_START: &str = "2026-11-02T09:00:00+08:00";

/// One test world: a roster (the shipped one, or a test's own file, with the people and units a
/// test adds), a holiday calendar and settings — and, when built, a temporary database, the
/// engine on it, the inbox processor and a manual clock. Replaces the set-up each test module
/// used to repeat:
///
/// ```ignore
/// let mut w = world().the_liaisons().build();
/// w.say(RS, &seed_application_text("DH2026110300017")).await;
/// let rows = w.new_outbox();
/// ```
///
/// Tests of the pure core take [`WorldBuilder::core`] instead of building.
#[derive(Clone)]
pub struct WorldBuilder {
    /// A roster file's text to start from instead of the shipped roster.
    base: Option<String>,
    people: Vec<tiaochu::roster::Person>,
    units: Vec<tiaochu::roster::Unit>,
    reachable: bool,
    calendar_dir: PathBuf,
    settings: Settings,
    group_digest: bool,
    leader_confirmation: bool,
    start: jiff::Timestamp,
}

pub fn world() -> WorldBuilder {
    let mut settings = default_settings();
    settings.dingtalk.mode = DingtalkMode::Sandbox;
    WorldBuilder {
        base: None,
        people: Vec::new(),
        units: Vec::new(),
        reachable: false,
        calendar_dir: repo_root().join("config/calendar"),
        settings,
        group_digest: false,
        leader_confirmation: false,
        start: WORLD_START.parse().expect("world start"),
    }
}

impl WorldBuilder {
    /// Adds a liaison (title 科员, no phone) of `unit` with DingTalk id `id`.
    pub fn liaison(self, name: &str, unit: &str, id: &str) -> WorldBuilder {
        self.person(tiaochu::roster::Person::new(
            name,
            unit,
            "科员",
            vec![tiaochu::roster::Role::Liaison],
            id,
            "",
        ))
    }

    /// Adds [`RS`], [`ZJ`] and [`CG`]: 王联络 (区人社局 科员), 赵联络 (区住建局 股长) and 钱联络
    /// (区城市管理局 股长), with the phones 13800000001–3.
    pub fn the_liaisons(self) -> WorldBuilder {
        use tiaochu::roster::{Person, Role};
        [
            ("王联络", "区人社局", "科员", RS, "13800000001"),
            ("赵联络", "区住建局", "股长", ZJ, "13800000002"),
            ("钱联络", "区城市管理局", "股长", CG, "13800000003"),
        ]
        .into_iter()
        .fold(self, |w, (name, unit, title, id, phone)| {
            w.person(Person::new(
                name,
                unit,
                title,
                vec![Role::Liaison],
                id,
                phone,
            ))
        })
    }

    /// Adds anyone.
    pub fn person(mut self, person: tiaochu::roster::Person) -> WorldBuilder {
        self.people.push(person);
        self
    }

    /// Adds a unit to the base ones.
    pub fn unit(mut self, unit: tiaochu::roster::Unit) -> WorldBuilder {
        self.units.push(unit);
        self
    }

    /// Starts from this roster file's text instead of the shipped roster.
    pub fn roster_toml(mut self, toml: &str) -> WorldBuilder {
        self.base = Some(toml.to_string());
        self
    }

    /// Gives everyone of the base roster without a DingTalk id one (`dt000`, `dt001`, … by
    /// position): in the DingTalk modes nobody could be reached without one.
    pub fn reachable(mut self) -> WorldBuilder {
        self.reachable = true;
        self
    }

    /// Counts working days with the holiday files of `dir` instead of the shipped ones.
    pub fn calendar_dir(mut self, dir: &std::path::Path) -> WorldBuilder {
        self.calendar_dir = dir.to_path_buf();
        self
    }

    /// The DingTalk mode the engine renders messages for (sandbox by default).
    pub fn mode(mut self, mode: DingtalkMode) -> WorldBuilder {
        self.settings.dingtalk.mode = mode;
        self
    }

    /// Edits the settings ([`default_settings`] in sandbox mode to begin with), e.g. the
    /// `[dingtalk]` robot code or card template the engine's dispatch is built from.
    pub fn settings(mut self, edit: impl FnOnce(&mut Settings)) -> WorldBuilder {
        edit(&mut self.settings);
        self
    }

    /// Whether the hotline's digests go to the group (`Engine::with_group_digest`).
    pub fn group_digest(mut self, on: bool) -> WorldBuilder {
        self.group_digest = on;
        self
    }

    /// `[workflow] require_leader_confirmation`.
    pub fn leader_confirmation(mut self, on: bool) -> WorldBuilder {
        self.leader_confirmation = on;
        self
    }

    /// Where the world's clock starts ([`WORLD_START`] unless told): an RFC 3339 instant.
    pub fn start(mut self, at: &str) -> WorldBuilder {
        self.start = at.parse().expect("an RFC 3339 instant");
        self
    }

    /// The roster: the base with the added units and people.
    pub fn roster(&self) -> tiaochu::roster::Roster {
        let base = match &self.base {
            Some(toml) => {
                tiaochu::roster::Roster::from_toml_str(toml, "roster.toml").expect("test roster")
            }
            None => shipped_roster(),
        };
        let mut units = base.units().to_vec();
        units.extend(self.units.iter().cloned());
        let mut people: Vec<tiaochu::roster::Person> = base
            .people()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if !self.reachable || p.reachable() {
                    return p.clone();
                }
                tiaochu::roster::Person::new(
                    &p.name,
                    &p.unit,
                    &p.title,
                    p.roles.clone(),
                    &format!("dt{i:03}"),
                    &p.phone,
                )
            })
            .collect();
        people.extend(self.people.iter().cloned());
        tiaochu::roster::Roster::from_parts(units, people)
    }

    /// The pure core's inputs only (roster, calendar, clock lengths), for tests that call
    /// `workflow::transition` and the renderers directly.
    pub fn core(&self) -> Core {
        Core {
            roster: self.roster(),
            calendar: calendar_in(&self.calendar_dir),
            sla: self.settings.sla.clone(),
        }
    }

    /// A temporary database and the service on it, as a start builds it.
    pub fn build(self) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let roster = self.roster();
        let (store, engine, processor) = self.open(&dir.path().join("t.db"), &roster);
        World {
            calendar: calendar_in(&self.calendar_dir),
            settings: self.settings.clone(),
            clock: Arc::new(ManualClock::new(self.start)),
            dir,
            store,
            engine,
            processor,
            roster,
            builder: self,
            seq: 0,
            seen: 0,
        }
    }

    /// The store, engine and inbox processor on `db`, as a start builds them: the file roster
    /// with the changes stored in DingTalk laid over it.
    fn open(
        &self,
        db: &std::path::Path,
        roster: &tiaochu::roster::Roster,
    ) -> (
        Store,
        tiaochu::engine::Engine,
        tiaochu::inbox::InboxProcessor,
    ) {
        let store = Store::open(db).expect("store");
        let engine = tiaochu::engine::Engine::new(
            store.clone(),
            Arc::new(roster.clone()),
            Arc::new(calendar_in(&self.calendar_dir)),
            self.settings.sla.clone(),
            tiaochu::dispatch::Dispatch::from_settings(
                &self.settings.dingtalk,
                tiaochu::card_secrets::CardSecrets::ephemeral(),
            ),
        )
        .with_group_digest(self.group_digest)
        .with_leader_confirmation(self.leader_confirmation);
        engine.reload_roster_blocking().expect("stored roster");
        // Tests send many messages from one person at one frozen instant; the per-sender
        // limit has its own tests.
        let processor = tiaochu::inbox::InboxProcessor::new(engine.clone()).with_sender_limit(0);
        (store, engine, processor)
    }
}

/// What the pure workflow needs: see [`WorldBuilder::core`].
pub struct Core {
    pub roster: tiaochu::roster::Roster,
    pub calendar: tiaochu::calendar::Calendar,
    pub sla: tiaochu::settings::SlaSettings,
}

/// A built world: see [`WorldBuilder`]. Messages enter where every transport converges, the
/// inbox, under the source the mode's transport stores (`sandbox`, `robot` for signed HTTP
/// callbacks, `stream`); what the service sends is read back from the outbox.
pub struct World {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub engine: tiaochu::engine::Engine,
    pub processor: tiaochu::inbox::InboxProcessor,
    /// The roster the engine started with.
    pub roster: tiaochu::roster::Roster,
    pub calendar: tiaochu::calendar::Calendar,
    pub settings: Settings,
    /// The service's time; nothing moves it but the test.
    pub clock: Arc<ManualClock>,
    builder: WorldBuilder,
    /// Messages made by [`World::message`] so far.
    seq: u64,
    /// The newest outbox row [`World::new_outbox`] returned.
    seen: i64,
}

impl World {
    /// A restart: a new store handle, engine and processor on the same database, built as
    /// before; the clock and what was read stay.
    pub fn restart(&mut self) {
        let (store, engine, processor) = self
            .builder
            .open(&self.dir.path().join("t.db"), &self.roster);
        self.store = store;
        self.engine = engine;
        self.processor = processor;
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("t.db")
    }

    /// The seed application for `ticket`, parsed against this world's roster.
    pub fn seed_application(&self, ticket: &str) -> tiaochu::workflow::Application {
        complete_application(&self.roster, &seed_application_text(ticket))
    }

    pub fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    /// Moves the clock on; nothing fires until [`World::fire_due`].
    pub fn advance(&self, by: jiff::SignedDuration) {
        self.clock.advance(by);
    }

    /// The next message of this world (`msg-1`, `msg-2`, …), sent 1:1 by `from` now.
    pub fn message(&mut self, from: &str, text: &str) -> RobotText {
        self.seq += 1;
        robot_text(
            &format!("msg-{}", self.seq),
            from,
            text,
            self.now().as_millisecond(),
        )
    }

    /// The inbox source this world's transport stores people's messages under.
    pub fn source(&self) -> &'static str {
        match self.settings.dingtalk.mode {
            DingtalkMode::Sandbox => "sandbox",
            DingtalkMode::Http => "robot",
            DingtalkMode::Stream => "stream",
        }
    }

    /// Stores `message` in the inbox as received now, unprocessed; its inbox id.
    pub async fn deliver(&self, message: &RobotText) -> i64 {
        let message_id = message.msg_id().to_string();
        let payload = message.to_string();
        let (source, now) = (self.source(), self.now());
        self.store
            .write(move |tx| {
                tx.insert_inbox(&tiaochu::store::NewInbound {
                    source,
                    message_id: &message_id,
                    received_at: now,
                    payload: &payload,
                })
            })
            .await
            .expect("inbox")
            .id()
    }

    /// Processes the pending inbox now; how many rows.
    pub async fn process(&self) -> usize {
        self.processor
            .process_pending(self.now())
            .await
            .expect("process the inbox")
    }

    /// Delivers `message` and processes it, once.
    pub async fn send(&self, message: &RobotText) {
        self.deliver(message).await;
        assert_eq!(self.process().await, 1, "the message was processed once");
    }

    /// `from` sends `text` 1:1 now and it is processed.
    pub async fn say(&mut self, from: &str, text: &str) {
        let message = self.message(from, text);
        self.send(&message).await;
    }

    /// Runs the scheduler once now, as after a restart (what is late is told as late).
    pub async fn fire_due(&self) -> tiaochu::scheduler::FireReport {
        tiaochu::scheduler::fire_due(&self.engine, self.clock.as_ref())
            .await
            .expect("fire due timers")
    }

    /// Moves the clock on by `by` and fires what came due, as the sandbox clock panel does
    /// (what came due in the jump is punctual).
    pub async fn wait(&self, by: jiff::SignedDuration) -> tiaochu::scheduler::FireReport {
        self.advance(by);
        tiaochu::scheduler::fire_due_after_clock_move(&self.engine, self.clock.as_ref())
            .await
            .expect("fire due timers")
    }

    /// Every outbox row, oldest first.
    pub fn outbox(&self) -> Vec<tiaochu::store::OutboxRow> {
        let mut rows = self
            .store
            .read_blocking(|r| r.list_outbox(None, 100_000))
            .expect("outbox");
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// The outbox rows written since the last call, oldest first.
    pub fn new_outbox(&mut self) -> Vec<tiaochu::store::OutboxRow> {
        let seen = self.seen;
        let rows: Vec<_> = self.outbox().into_iter().filter(|r| r.id > seen).collect();
        if let Some(last) = rows.last() {
            self.seen = last.id;
        }
        rows
    }

    /// The case of `ticket` as stored (its first, if refiled).
    pub fn case(&self, ticket: &str) -> tiaochu::workflow::Case {
        let ticket = ticket.to_string();
        let rows = self
            .store
            .read_blocking(move |r| r.case_by_ticket(&crate::support::ticket_no(&ticket)))
            .expect("case");
        tiaochu::engine::decode(rows.first().expect("a case for the ticket")).expect("decode")
    }
}

/// A text robot message as DingTalk delivers it (protocol §1.3): a 1:1 chat by default, sent by
/// `from` (also its nick and conversation `cid-<from>`) through the robot `ding-robot`.
#[derive(Debug, Clone)]
pub struct RobotText(serde_json::Value);

pub fn robot_text(msg_id: &str, from: &str, text: &str, at_ms: i64) -> RobotText {
    RobotText(serde_json::json!({
        "msgtype": "text",
        "msgId": msg_id,
        "createAt": at_ms,
        "conversationType": "1",
        "conversationId": format!("cid-{from}"),
        "senderStaffId": from,
        "senderNick": from,
        "robotCode": "ding-robot",
        "text": { "content": text },
    }))
}

impl RobotText {
    /// The message's `msgId`.
    pub fn msg_id(&self) -> &str {
        self.0["msgId"].as_str().unwrap_or("")
    }

    /// Sets or replaces one field (`senderNick`, `robotCode`, `conversationId`, …).
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> RobotText {
        self.0[key] = value.into();
        self
    }

    /// Removes one field, for a message DingTalk sends without it.
    pub fn without(mut self, key: &str) -> RobotText {
        if let Some(fields) = self.0.as_object_mut() {
            fields.remove(key);
        }
        self
    }

    /// Sent in the group `conversation` with @robot and @ each of `mentioned` (staff ids), as
    /// DingTalk lists them in `atUsers`: the robot's own entry, without a staff id, first.
    pub fn in_group(mut self, conversation: &str, mentioned: &[&str]) -> RobotText {
        let mut at_users = vec![serde_json::json!({"dingtalkId": "$:LWCP_v1:$robot"})];
        at_users.extend(mentioned.iter().map(
            |id| serde_json::json!({"dingtalkId": format!("$:LWCP_v1:${id}"), "staffId": id}),
        ));
        self.0["conversationType"] = "2".into();
        self.0["conversationId"] = conversation.into();
        self.0["atUsers"] = at_users.into();
        self
    }
}

impl std::fmt::Display for RobotText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
