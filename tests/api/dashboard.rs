//! Integration tests: the web dashboard (`/dashboard`). Over HTTP against the in-process service
//! (sandbox mode, manual clock, one registered case): nothing without a session, the 看板 link
//! sent 1:1 and usable once within 10 minutes, the session cookie's flags and 8-hour life, every
//! page and the xlsx with a session. Then in headless Chromium (`tests/browser/dashboard_case.py`):
//! logging in through the link in the sandbox chat, the overview and a case timeline, with
//! screenshots in `test-artifacts/dashboard/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use serde_json::json;
use tiaochu::clock::Clock;
use tiaochu::settings::DingtalkMode;

use crate::support::{TestApp, WORLD_START, spawn_app, spawn_app_at};

const APPLICATION: &str = "工单编号：DH2026110300017
工单标题：反映某建筑公司拖欠薪资的问题（联系电话13912345678）
首接单位：区人社局
已采取措施：已向涉事建筑企业取得联系，核实拖欠薪资的基本情况，企业方承认存在拖欠行为。
办理难点：涉诉企业承接区城建公司项目，工程款拨付与住建审批相关，区人社局一家无法办理。
需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。";

const TICKET: &str = "DH2026110300017";
/// 区人社局's leader in the shipped roster: may submit, may not read the dashboard.
const LEADER: &str = "local:区人社局:任燕";
/// An inspector of the hotline: may read the dashboard.
const INSPECTOR: &str = "local:区12345热线:孟艳秋";

/// The in-process service in sandbox mode, its clock at Monday 2026-11-02 09:00, with the
/// application above registered. `d.address`, `d.store`, `d.clock`, `d.shutdown`: the app's.
struct Dash {
    app: TestApp,
    /// Follows no redirect, so a test sees where a page sends the browser.
    client: reqwest::Client,
    case_no: String,
}

impl std::ops::Deref for Dash {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Dash {
    async fn start() -> Dash {
        let monday: jiff::Timestamp = WORLD_START.parse().expect("instant");
        let app = spawn_app_at(monday.as_millisecond(), |s| {
            s.dingtalk.mode = DingtalkMode::Sandbox;
        })
        .await;
        let mut dash = Dash {
            app,
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            case_no: String::new(),
        };
        dash.say(LEADER, APPLICATION).await;
        dash.case_no = dash.until_case().await;
        dash
    }

    async fn say(&self, person: &str, text: &str) {
        let response = self
            .client
            .post(format!("{}/sandbox/send", self.address))
            .json(&json!({"as": person, "text": text}))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
    }

    async fn until_case(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let rows = self
                .store
                .read(|r| r.case_by_ticket(&crate::support::ticket_no(TICKET)))
                .await
                .expect("read");
            if let Some(row) = rows.first() {
                return row.case_no.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "the application was never registered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `person`'s sandbox chat until `matches` finds something in it.
    async fn until_chat<T>(&self, person: &str, matches: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let chat: serde_json::Value = self
                .client
                .get(format!("{}/sandbox/chat", self.address))
                .query(&[("as", person), ("v", "")])
                .send()
                .await
                .expect("chat")
                .json()
                .await
                .expect("chat JSON");
            let html = chat["html"].as_str().unwrap_or_default().to_string();
            if let Some(found) = matches(&html) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{person}'s chat never matched:\n{html}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends 看板 as `person` and returns the token of the link the robot answers with, the
    /// `n`-th link in that chat (1-based).
    async fn link_token(&self, person: &str, n: usize) -> String {
        self.say(person, "看板").await;
        let re = regex::Regex::new(r"/dashboard/login\?token=([0-9a-f]{64})").expect("regex");
        self.until_chat(person, |html| {
            re.captures_iter(html).nth(n - 1).map(|c| c[1].to_string())
        })
        .await
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.address));
        if let Some(c) = cookie {
            request = request.header("cookie", c);
        }
        request.send().await.expect("GET")
    }

    async fn login(&self, token: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/dashboard/login", self.address))
            .form(&[("token", token)])
            .send()
            .await
            .expect("POST login")
    }

    /// Logs in with `token` and returns the `name=value` of the session cookie.
    async fn session(&self, token: &str) -> String {
        let response = self.login(token).await;
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/dashboard");
        let set = response.headers()["set-cookie"]
            .to_str()
            .expect("cookie text")
            .to_string();
        set.split(';').next().expect("name=value").to_string()
    }
}

impl Drop for Dash {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

const PAGES: [&str; 6] = [
    "/dashboard",
    "/dashboard/units",
    "/dashboard/cases",
    "/dashboard/cases/TC-2026-0001",
    "/dashboard/cases?unit=%E5%8C%BA%E4%BA%BA%E7%A4%BE%E5%B1%80",
    "/dashboard/report.xlsx?month=2026-11",
];

#[tokio::test]
async fn without_a_session_every_page_is_refused_and_shows_no_case_data() {
    let d = Dash::start().await;
    for cookie in [
        None,
        Some("tiaochu_dashboard=0000000000000000000000000000000000000000000000000000000000000000"),
    ] {
        for path in PAGES {
            let response = d.get(path, cookie).await;
            assert_eq!(response.status(), 401, "{path} with {cookie:?}");
            let text = response.text().await.expect("body");
            assert!(
                text.contains("请在钉钉中向机器人发送“看板”获取登录链接"),
                "{path}: {text}"
            );
            assert!(
                !text.contains(TICKET) && !text.contains("拖欠薪资"),
                "{path}"
            );
        }
    }
}

#[tokio::test]
async fn the_link_logs_in_once_and_the_session_shows_every_page() {
    let d = Dash::start().await;
    let token = d.link_token(INSPECTOR, 1).await;

    // Opening the link only shows the button: a link preview spends nothing.
    let page = d
        .get(&format!("/dashboard/login?token={token}"), None)
        .await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("body").contains(r#"id="login""#));

    let response = d.login(&token).await;
    assert_eq!(response.status(), 303);
    let set = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=28800",
    ] {
        assert!(set.contains(flag), "{set} lacks {flag}");
    }
    assert!(!set.contains("Secure"), "plain http base_url: {set}");
    let cookie = set.split(';').next().expect("name=value").to_string();
    assert_eq!(cookie.len(), "tiaochu_dashboard=".len() + 64, "{cookie}");

    // Single use.
    assert_eq!(d.login(&token).await.status(), 401);

    let overview = d.get("/dashboard", Some(&cookie)).await;
    assert_eq!(overview.status(), 200);
    let csp = overview.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = overview.text().await.expect("body");
    for part in [
        "2026年11月 概览",
        "chart-rates",
        "chart-trend",
        "chart-response",
        "办结率",
        "目标 ≥ 90%",
        // One application registered this month.
        "<b>1</b><span>申请登记</span>",
        "2026年11月 申请 1",
        "孟艳秋（区12345热线）",
    ] {
        assert!(html.contains(part), "overview lacks {part}:\n{html}");
    }

    let cases = d.get("/dashboard/cases", Some(&cookie)).await;
    assert_eq!(cases.status(), 200);
    let html = cases.text().await.expect("body");
    assert!(html.contains(&d.case_no) && html.contains(TICKET), "{html}");
    // Phone numbers are masked on the list as in every message.
    assert!(!html.contains("13912345678"), "{html}");
    for (query, shown) in [
        ("state=submitted", true),
        ("state=closed", false),
        ("unit=%E5%8C%BA%E4%BA%BA%E7%A4%BE%E5%B1%80", true),
        ("unit=%E5%8C%BA%E6%B0%91%E6%94%BF%E5%B1%80", false),
        ("month=2026-11", true),
        ("month=2026-10", false),
        ("green=1", false),
        ("green=0", true),
    ] {
        let html = d
            .get(&format!("/dashboard/cases?{query}"), Some(&cookie))
            .await
            .text()
            .await
            .expect("body");
        assert_eq!(html.contains(TICKET), shown, "{query}");
    }

    let timeline = d
        .get(&format!("/dashboard/cases/{}", d.case_no), Some(&cookie))
        .await;
    assert_eq!(timeline.status(), 200);
    let html = timeline.text().await.expect("body");
    for part in ["办理经过", "提交申请", "任燕（区人社局）", "期限"] {
        assert!(html.contains(part), "timeline lacks {part}:\n{html}");
    }
    assert_eq!(
        d.get("/dashboard/cases/TC-2099-9999", Some(&cookie))
            .await
            .status(),
        404
    );

    let units = d
        .get("/dashboard/units?sort=submitted&desc=1", Some(&cookie))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        units.contains("<td>1</td>") && units.contains("区人社局"),
        "{units}"
    );
    assert!(units.contains("申请 ▼"), "{units}");

    let xlsx = d
        .get("/dashboard/report.xlsx?month=2026-11", Some(&cookie))
        .await;
    assert_eq!(xlsx.status(), 200);
    assert!(
        xlsx.headers()["content-disposition"]
            .to_str()
            .expect("disposition")
            .contains("tiaochu-report-2026-11.xlsx")
    );
    let bytes = xlsx.bytes().await.expect("bytes");
    assert!(bytes.starts_with(b"PK"), "an xlsx is a zip");
    assert_eq!(
        d.get("/dashboard/report.xlsx?month=11月", Some(&cookie))
            .await
            .status(),
        400
    );

    // Logging out ends the session.
    let out = d
        .client
        .post(format!("{}/dashboard/logout", d.address))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 303);
    assert_eq!(d.get("/dashboard", Some(&cookie)).await.status(), 401);
}

#[tokio::test]
async fn links_expire_after_ten_minutes_and_sessions_after_eight_hours() {
    let d = Dash::start().await;
    let first = d.link_token(INSPECTOR, 1).await;
    let cookie = d.session(&first).await;
    let second = d.link_token(INSPECTOR, 2).await;
    d.clock
        .advance_by(SignedDuration::from_mins(10))
        .expect("advance");
    assert_eq!(d.login(&second).await.status(), 401, "expired link");
    assert_eq!(d.get("/dashboard", Some(&cookie)).await.status(), 200);
    d.clock
        .advance_by(SignedDuration::from_mins(8 * 60 - 10))
        .expect("advance");
    assert_eq!(d.get("/dashboard", Some(&cookie)).await.status(), 401);
}

#[tokio::test]
async fn only_viewers_get_a_link_and_it_never_goes_to_a_group() {
    let d = Dash::start().await;
    d.say(LEADER, "看板").await;
    let refusal = d
        .until_chat(LEADER, |html| {
            html.contains("数据看板仅供").then(|| html.to_string())
        })
        .await;
    assert!(!refusal.contains("token="), "{refusal}");
    // The stored token is a hash: the link's token is not in the database.
    let token = d.link_token(INSPECTOR, 1).await;
    let stored: Vec<String> = d
        .store
        .read(|r| -> Result<_, tiaochu::store::StoreError> {
            let mut out = Vec::new();
            for id in 1.. {
                match r.outbox(id)? {
                    Some(row) => out.push(String::from_utf8_lossy(&row.payload).to_string()),
                    None => break,
                }
            }
            Ok(out)
        })
        .await
        .expect("outbox");
    let link_rows: Vec<&String> = stored.iter().filter(|p| p.contains(&token)).collect();
    assert_eq!(link_rows.len(), 1, "one 1:1 message carries the link");
    assert!(link_rows[0].contains(INSPECTOR), "{}", link_rows[0]);
}

#[tokio::test]
async fn there_is_a_dashboard_in_http_mode_too() {
    let app = spawn_app(|_| {}).await;
    let response = reqwest::Client::new()
        .get(format!("{}/dashboard", app.address))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 401);
}

// ---- In a real browser ----

fn python(root: &Path) -> PathBuf {
    std::env::var_os("PYTHON").map_or_else(
        || root.join("target/conformance-venv/bin/python"),
        PathBuf::from,
    )
}

/// Why the browser test cannot run here, if it cannot.
fn browser_missing(root: &Path) -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    for p in [chromium, driver] {
        if !Path::new(&p).exists() {
            return Some(format!(
                "{p} missing (apt-get install -y chromium chromium-driver)"
            ));
        }
    }
    let python = python(root);
    let selenium = Command::new(&python)
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    (!selenium).then(|| format!("Python selenium missing in {}", python.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(why) = browser_missing(root) {
        crate::support::skip_or_fail("the_dashboard_in_headless_chromium", &why);
        return;
    }
    let d = Dash::start().await;
    let artifacts = root.join("test-artifacts/dashboard");
    let _ = std::fs::remove_dir_all(&artifacts);
    let mut command = Command::new(python(root));
    command
        .arg(root.join("tests/browser/dashboard_case.py"))
        .arg(&d.address)
        .arg(&artifacts)
        .arg(INSPECTOR)
        .arg(&d.case_no)
        .env("SE_OFFLINE", "true");
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::task::spawn_blocking(move || command.output()),
    )
    .await
    .expect("the browser case finishes within 5 minutes")
    .expect("join")
    .expect("run the browser script");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.contains("every step passed"),
        "the dashboard browser case failed (screenshots in {}):\n{report}",
        artifacts.display()
    );
    for shot in ["overview", "timeline"] {
        let found = std::fs::read_dir(&artifacts)
            .expect("artifacts")
            .filter_map(Result::ok)
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!("-{shot}.png"))
            });
        assert!(found, "no {shot} screenshot in {}", artifacts.display());
    }
}

/// 五(五): the case history in the dashboard — the 案例 search over typical and closed cases,
/// and each case page's similar past cases — for viewers only.
#[tokio::test]
async fn case_search_and_similar_cases_show_the_history_to_viewers_only() {
    let d = Dash::start().await;
    // The registered case, closed as independent handling and marked typical.
    d.say(INSPECTOR, &format!("审核 {TICKET}")).await;
    d.say(
        INSPECTOR,
        &format!("独立 {TICKET} 依据《保障农民工工资支付条例》由人社局责令限期支付"),
    )
    .await;
    d.say(
        INSPECTOR,
        &format!("典型 {TICKET} 人社局依法责令限期支付，三日结清"),
    )
    .await;
    let later = APPLICATION
        .replace(TICKET, "DH2026110500023")
        .replace("反映某建筑公司拖欠薪资的问题", "反映工地拖欠工人工资的问题");
    d.say(LEADER, &later).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (typical, second) = d
            .store
            .read(|r| -> Result<_, tiaochu::store::StoreError> {
                let first = r
                    .case_by_ticket(&crate::support::ticket_no(TICKET))?
                    .remove(0);
                Ok((
                    first.data_json.contains("三日结清"),
                    r.case_by_ticket(&crate::support::ticket_no("DH2026110500023"))?
                        .first()
                        .map(|c| c.case_no.clone()),
                ))
            })
            .await
            .expect("read");
        if typical && second.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the cases never got there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for path in [
        "/dashboard/similar?q=%E6%AC%A0%E8%96%AA",
        "/dashboard/similar",
    ] {
        let response = d.get(path, None).await;
        assert_eq!(response.status(), 401, "{path}");
        assert!(!response.text().await.expect("body").contains(TICKET));
    }

    let token = d.link_token(INSPECTOR, 1).await;
    let cookie = d.session(&token).await;
    let search = d
        .get(
            "/dashboard/similar?q=%E6%8B%96%E6%AC%A0%E8%96%AA%E8%B5%84",
            Some(&cookie),
        )
        .await;
    assert_eq!(search.status(), 200);
    let html = search.text().await.expect("body");
    assert!(html.contains(r#"id="found""#), "{html}");
    assert!(
        html.contains("TC-2026-0001") && html.contains("三日结清"),
        "{html}"
    );
    assert!(
        !html.contains("DH2026110500023"),
        "open cases are not searched: {html}"
    );
    assert!(!html.contains("13912345678"), "phones masked: {html}");

    let page = d
        .get("/dashboard/cases/TC-2026-0002", Some(&cookie))
        .await
        .text()
        .await
        .expect("body");
    let section = &page[page.find(r#"id="similar""#).expect("similar section")..];
    assert!(
        section.contains("TC-2026-0001") && section.contains("独立办理"),
        "{section}"
    );
}
