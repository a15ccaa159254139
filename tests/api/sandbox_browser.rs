//! Integration tests: the sandbox console. Over HTTP against the in-process app (sandbox mode,
//! manual clock): the routes, escaping, sending through the inbox and the clock panel waking the
//! scheduler. Then in a real browser: the built `tiaochu serve` (sandbox mode, a temporary
//! database, a free port, a roster with liaisons) driven by `tests/browser/sandbox_case.py`
//! (Selenium, headless Chromium) through a whole case; screenshots go to
//! `test-artifacts/browser/`.
//!
//! The browser test needs Debian's chromium and chromium-driver and Python `selenium` in
//! `target/conformance-venv` (all installed by `.ci/run`). Under `CI=true` a missing piece is a
//! failure; elsewhere the test says what is missing and skips.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tiaochu::app::App;
use tiaochu::clock::Clock;
use tiaochu::settings::DingtalkMode;

use crate::support::{TestApp, WORLD_START, spawn_app, spawn_app_at};

const APPLICATION: &str = "工单编号：DH2026110300017
工单标题：反映某建筑公司拖欠薪资的问题
首接单位：区人社局
已采取措施：已向涉事建筑企业取得联系，核实拖欠薪资的基本情况，企业方承认存在拖欠行为。
办理难点：涉诉企业承接区城建公司项目，工程款拨付与住建审批相关，区人社局一家无法办理。
需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。";

/// 区人社局's leader in the shipped roster: speaks for the unit, so may submit.
const LEADER: &str = "local:区人社局:任燕";
const INSPECTOR: &str = "local:区12345热线:孟艳秋";

/// The in-process service in sandbox mode, its clock standing at Monday 2026-11-02 09:00.
/// `sb.address`, `sb.client`, `sb.clock`: the app's.
struct Sandbox(TestApp);

impl std::ops::Deref for Sandbox {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.0
    }
}

impl Sandbox {
    async fn start() -> Sandbox {
        let monday: jiff::Timestamp = WORLD_START.parse().expect("instant");
        Sandbox(
            spawn_app_at(monday.as_millisecond(), |s| {
                s.dingtalk.mode = DingtalkMode::Sandbox;
            })
            .await,
        )
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("GET")
    }

    async fn post(&self, path: &str, body: Value) -> (reqwest::StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.address))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = response.status();
        (status, response.json().await.expect("JSON answer"))
    }

    async fn chat(&self, person: &str, version: &str) -> Value {
        let response = self
            .client
            .get(format!("{}/sandbox/chat", self.address))
            .query(&[("as", person), ("v", version)])
            .send()
            .await
            .expect("GET chat");
        assert_eq!(response.status(), 200);
        response.json().await.expect("chat JSON")
    }

    /// Polls `person`'s chat until its HTML contains `text` (the workers run on their own).
    async fn until_chat_has(&self, person: &str, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let html = self.chat(person, "").await["html"]
                .as_str()
                .expect("html")
                .to_string();
            if html.contains(text) {
                return html;
            }
            assert!(
                Instant::now() < deadline,
                "{person} never saw {text:?}; chat:\n{html}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

#[tokio::test]
async fn the_console_sends_through_the_inbox_and_shows_replies_and_cards() {
    let sb = Sandbox::start().await;

    let page = sb.get("/sandbox").await;
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .expect("CSP")
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.expect("body");
    let hotline = html.find("区12345热线").expect("hotline listed");
    let first_unit = html.find("区人社局").expect("区人社局 listed");
    assert!(hotline < first_unit, "hotline staff first");
    assert!(
        html.contains("/sandbox?as=local%3A"),
        "ids are percent-encoded"
    );
    let js = sb.get("/sandbox/app.js").await;
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/javascript")
    );

    let (status, body) = sb
        .post("/sandbox/send", json!({"as": "nobody", "text": "帮助"}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("名单中没有此人")
    );
    let (status, _) = sb
        .post("/sandbox/send", json!({"as": LEADER, "text": "  "}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = sb.post("/sandbox/send", json!({"text": "帮助"})).await;
    assert_eq!(status, 400, "a body without `as` is refused");

    let (status, body) = sb
        .post("/sandbox/send", json!({"as": LEADER, "text": APPLICATION}))
        .await;
    assert_eq!(status, 200, "{body}");
    let leader = sb.until_chat_has(LEADER, "申请已登记").await;
    assert!(
        leader.contains("工单标题：反映某建筑公司拖欠薪资的问题"),
        "the sender sees what they sent: {leader}"
    );
    let inspector = sb
        .until_chat_has(
            INSPECTOR,
            r#"data-cmd="审核 DH2026110300017" data-fill="0""#,
        )
        .await;
    assert!(inspector.contains(r#"class="card""#), "{inspector}");

    // Markup is shown as text.
    sb.post(
        "/sandbox/send",
        json!({"as": LEADER, "text": "<script>alert(1)</script>"}),
    )
    .await;
    let leader = sb.until_chat_has(LEADER, "&#60;script&#62;alert(1)").await;
    assert!(!leader.contains("<script>"), "{leader}");
    // The robot's answer to it, so that nothing more is on its way when the version is read.
    sb.until_chat_has(LEADER, "没有看懂").await;

    // A page at the current version gets no HTML.
    let current = sb.chat(LEADER, "").await;
    let version = current["version"].as_str().expect("version");
    let again = sb.chat(LEADER, version).await;
    assert!(again["html"].is_null(), "{again}");
    assert_eq!(again["clock"]["now"], "2026-11-02 09:00（周一）");
    assert_eq!(again["clock"]["working"], true);
    let unknown = sb.get("/sandbox/chat?as=nobody").await;
    assert_eq!(unknown.status(), 404, "unknown people have no chat");
}

#[tokio::test]
async fn the_clock_panel_moves_time_and_the_breach_appears_at_once() {
    let sb = Sandbox::start().await;
    sb.post("/sandbox/send", json!({"as": LEADER, "text": APPLICATION}))
        .await;
    sb.until_chat_has(INSPECTOR, "开始审核").await;

    let (status, body) = sb
        .post("/sandbox/clock", json!({"unit": "to_working", "amount": 0}))
        .await;
    assert_eq!(status, 400, "already working time: {body}");

    let (status, body) = sb
        .post(
            "/sandbox/clock",
            json!({"unit": "working_days", "amount": 1}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["clock"]["now"], "2026-11-03 09:00（周二）");
    assert!(
        body["clock"]["moved"]
            .as_str()
            .expect("moved")
            .contains("已拨快 1 天"),
        "{body}"
    );
    assert_eq!(
        sb.clock.now(),
        "2026-11-03T09:00:00+08:00"
            .parse::<jiff::Timestamp>()
            .expect("instant")
    );
    // The review should have started within 1 working hour (五(一)): breached, and the
    // scheduler, woken by the move, says so well before its one-minute nap would end.
    sb.until_chat_has(INSPECTOR, "已超过期限").await;

    let (status, body) = sb
        .post("/sandbox/clock", json!({"unit": "hours", "amount": -1}))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = sb
        .post("/sandbox/clock", json!({"unit": "fortnights", "amount": 1}))
        .await;
    assert_eq!(status, 400, "{body}");
}

/// The sandbox runs on real time plus the panel's moves; a restart keeps the moves, so the clock
/// never falls back behind what was recorded under it.
#[tokio::test]
async fn a_restart_keeps_the_moved_sandbox_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = |clock: Arc<tiaochu::clock::OffsetClock>| {
        let db = dir.path().join("sandbox.db");
        async move {
            let mut settings = crate::support::default_settings();
            settings.store.path = db;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let shared: Arc<dyn Clock> = clock;
            let app = App::build(settings, listener, shared).expect("build");
            let address = format!("http://{}", app.address());
            let shutdown = app.shutdown_handle();
            (address, shutdown, tokio::spawn(app.run_until_stopped()))
        }
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let first = Arc::new(tiaochu::clock::OffsetClock::new());
    let (address, shutdown, server) = start(Arc::clone(&first)).await;
    for hours in [3, 2] {
        let response = client
            .post(format!("{address}/sandbox/clock"))
            .json(&json!({"unit": "hours", "amount": hours}))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), 200);
    }
    assert_eq!(first.offset(), jiff::SignedDuration::from_hours(5));
    shutdown.trigger();
    server.await.expect("join").expect("stopped");

    let second = Arc::new(tiaochu::clock::OffsetClock::new());
    let (address, shutdown, server) = start(Arc::clone(&second)).await;
    assert_eq!(
        second.offset(),
        jiff::SignedDuration::from_hours(5),
        "the restarted sandbox runs 5 hours ahead again"
    );
    let chat: Value = client
        .get(format!("{address}/sandbox/chat?as={LEADER}"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let moved = chat["clock"]["moved"].as_str().expect("moved");
    assert!(
        moved.contains("已拨快 5 小时"),
        "the panel says so: {moved}"
    );
    shutdown.trigger();
    server.await.expect("join").expect("stopped");
}

#[tokio::test]
async fn there_is_no_sandbox_outside_sandbox_mode() {
    let app = spawn_app(|_| {}).await;
    for path in ["/sandbox", "/sandbox/chat?as=x", "/sandbox/app.js"] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 404, "{path}");
    }
    let response = app
        .client
        .post(format!("{}/sandbox/clock", app.address))
        .json(&json!({"unit": "hours", "amount": 1}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 404);
    app.shutdown.trigger();
}

// ---- The real browser ----

/// What the browser test needs, or why it cannot run.
struct Browser {
    python: PathBuf,
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn find_browser(root: &Path) -> Result<Browser, String> {
    let path = |var: &str, default: &Path| {
        std::env::var_os(var).map_or_else(|| default.to_path_buf(), PathBuf::from)
    };
    let python = path(
        "TIAOCHU_BROWSER_PYTHON",
        &root.join("target/conformance-venv/bin/python"),
    );
    let chromium = path("CHROMIUM", Path::new("/usr/bin/chromium"));
    let chromedriver = path("CHROMEDRIVER", Path::new("/usr/bin/chromedriver"));
    for (what, p, install) in [
        (
            "Chromium",
            &chromium,
            "apt-get install -y chromium chromium-driver",
        ),
        (
            "ChromeDriver",
            &chromedriver,
            "apt-get install -y chromium chromium-driver",
        ),
        (
            "Python venv",
            &python,
            "python3 -m venv target/conformance-venv",
        ),
    ] {
        if !p.exists() {
            return Err(format!("{what} not found at {} ({install})", p.display()));
        }
    }
    let selenium = Command::new(&python)
        .args(["-c", "import selenium"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !selenium.status.success() {
        return Err(format!(
            "Python selenium missing in {} (target/conformance-venv/bin/pip install selenium==4.51.0)",
            python.display()
        ));
    }
    Ok(Browser {
        python,
        chromium,
        chromedriver,
    })
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nobody listens on right now (the server binds it a moment later).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The shipped roster plus a liaison for each unit of the case (the shipped one has none).
fn roster_with_liaisons(root: &Path) -> String {
    let shipped = std::fs::read_to_string(root.join("config/roster.toml")).expect("roster");
    let liaisons = [
        ("王联络", "区人社局", "rs-liaison", "13800000001"),
        ("赵联络", "区住建局", "zj-liaison", "13800000002"),
        // No staff_id: a `local:` sandbox id, as an admin who has not filled it in yet leaves.
        ("钱联络", "区城市管理局", "", "13800000003"),
    ];
    let mut out = shipped;
    for (name, unit, staff_id, phone) in liaisons {
        out.push_str(&format!(
            "\n[[person]]\nname = \"{name}\"\nunit = \"{unit}\"\ntitle = \"{unit}联络员\"\nroles = [\"liaison\"]\nstaff_id = \"{staff_id}\"\nphone = \"{phone}\"\n"
        ));
    }
    out
}

/// The shipped roster plus two staff members of 区住建局 without a role, for its leader to
/// choose a liaison from (the shipped roster lists only leaders there).
fn roster_with_staff(root: &Path) -> String {
    let mut out = std::fs::read_to_string(root.join("config/roster.toml")).expect("roster");
    for (name, title) in [("赵建华", "办公室股长"), ("孙丽", "建管股科员")] {
        out.push_str(&format!(
            "\n[[person]]\nname = \"{name}\"\nunit = \"区住建局\"\ntitle = \"{title}\"\nroles = []\n"
        ));
    }
    out
}

#[test]
fn a_whole_case_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    in_headless_chromium(
        "a_whole_case_in_headless_chromium",
        "sandbox_case.py",
        &roster_with_liaisons(root),
        "test-artifacts/browser",
        8,
    );
}

/// Similar past cases on the inspector's review card at phone width (issue 18); its screenshot
/// `02-inspector-sees-similar-cases.png` is docs/sandbox-similar.png.
#[test]
fn similar_cases_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    in_headless_chromium(
        "similar_cases_in_headless_chromium",
        "similar_case.py",
        &roster_with_liaisons(root),
        "test-artifacts/browser-similar",
        3,
    );
}

/// The onboarding flow at phone width; its screenshots are docs/onboarding-*.png.
#[test]
fn onboarding_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    in_headless_chromium(
        "onboarding_in_headless_chromium",
        "onboarding_case.py",
        &roster_with_staff(root),
        "test-artifacts/browser-onboarding",
        4,
    );
}

/// Runs `tests/browser/<script>` against the built `tiaochu serve` (sandbox mode) on `roster`;
/// screenshots go to `artifacts` (under the repository), at least `min_shots` of them.
fn in_headless_chromium(
    test: &str,
    script: &str,
    roster_text: &str,
    artifacts: &str,
    min_shots: usize,
) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser = match find_browser(root) {
        Ok(b) => b,
        Err(why) => {
            crate::support::skip_or_fail(test, &why);
            return;
        }
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let roster = dir.path().join("roster.toml");
    std::fs::write(&roster, roster_text).expect("write roster");
    let port = free_port();
    let config = dir.path().join("sandbox.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\npath = {:?}\n[roster]\npath = {:?}\n[dingtalk]\nmode = \"sandbox\"\n",
            dir.path().join("sandbox.db").display().to_string(),
            roster.display().to_string(),
        ),
    )
    .expect("write config");

    let mut command = crate::support::cli();
    command
        .args(["--config", config.to_str().expect("utf-8 path"), "serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut server = Server(command.spawn().expect("start tiaochu serve"));
    let stdout = server.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = format!("http://127.0.0.1:{port}/sandbox");
    let printed = lines
        .by_ref()
        .take(10)
        .map_while(Result::ok)
        .find(|l| l.contains("沙盒控制台"))
        .expect("serve prints the sandbox address");
    assert!(printed.contains(&url), "{printed}");
    // Keep reading so a full pipe never blocks the server.
    std::thread::spawn(move || for _ in lines {});

    let artifacts = root.join(artifacts);
    let _ = std::fs::remove_dir_all(&artifacts);
    let mut script = Command::new(&browser.python)
        .arg(root.join("tests/browser").join(script))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&artifacts)
        .env("CHROMIUM", &browser.chromium)
        .env("CHROMEDRIVER", &browser.chromedriver)
        // Selenium must use the driver it is given and never look for one online.
        .env("SE_OFFLINE", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the browser script");
    let deadline = Instant::now() + Duration::from_secs(300);
    while script.try_wait().expect("script status").is_none() {
        if Instant::now() > deadline {
            let _ = script.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = script.wait_with_output().expect("script output");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the browser case failed (screenshots in {}):\n{report}",
        artifacts.display()
    );
    assert!(report.contains("every step passed"), "{report}");
    let shots = std::fs::read_dir(&artifacts)
        .expect("artifacts")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
        })
        .count();
    assert!(
        shots >= min_shots,
        "screenshots of every step, found {shots}"
    );
    drop(server);
}
