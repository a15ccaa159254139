//! Callbacks, roles, storage and the dashboard (docs/security.md): reading cases and figures
//! one may not see, case numbers spent by refused applications, cross-site and guessed dashboard
//! logins, a store that cannot write, an emptied database file, a replayed callback signature
//! and the encrypted callback envelope.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use reqwest::StatusCode;
use tiaochu::clock::Clock;
use tiaochu::store::{Store, secret_hash};

use crate::conversation::{CG, Chat, INSPECTOR, RS, ZJ};
use crate::support::{TestApp, hv, spawn_app};

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
        .read(|r| {
            let cases = r.case_by_ticket(TICKET)?;
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

async fn post_login(
    app: &TestApp,
    token: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
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
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "after reset {i}");
    }
}
