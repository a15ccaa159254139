//! The web dashboard (`/dashboard`, every mode; issue 7, 五(四) 考核问责): the month's figures
//! against the targets with inline-SVG charts, the per-unit table, the case list with filters,
//! each case's timeline and the month's xlsx, for the hotline head, inspectors, supervisors,
//! group leaders and admins of the roster.
//!
//! Login is by one-time link only: the person sends 看板 to the robot and gets a link valid for
//! [`LINK_MINUTES`] minutes, usable once. Opening the link shows a button; pressing it (a
//! same-origin POST) spends the link and sets the session cookie. The extra step is deliberate:
//! a chat client that previews links must not spend them, and a `SameSite=Strict` cookie set in
//! a redirect chain that began in another site would not be sent on the first page.
//!
//! The login and logout POSTs are refused (403) when a browser says they come from another site,
//! and after [`guard::FAILURES_ALLOWED`] failed logins in [`guard::FAILURE_WINDOW_MINUTES`]
//! minutes a client must wait (429); see [`guard`].
//!
//! Every page and download except the login pages requires a session of a person who still has
//! one of the allowed roles; without one the answer is 401 with a page that says how to log in,
//! and no citizen data. Pages are rendered on the server with every text escaped, with no script
//! at all, under a CSP that forbids inline script and foreign origins.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::sandbox::escape;
use crate::calendar::Calendar;
use crate::clock::Clock;
use crate::engine::{Engine, EngineError, decode};
use crate::messages::notify::{Rendered, mask_phones};
use crate::messages::timeline::{TimelineEntry, render_query};
use crate::report::trend::{TrendMonth, response_times, trend};
use crate::report::{self, Counts, Period, Rate, Report, ReportError};
use crate::roster::{Person, Role};
use crate::store::{CaseFilter, EventRow, Store, StoreError, Tx, new_secret, secret_hash};
use crate::workflow::State as CaseState;

mod guard;

use guard::{FAILURE_WINDOW_MINUTES, FAILURES_ALLOWED};
mod similar;

/// How long a login link works after it is sent, in minutes.
pub const LINK_MINUTES: i64 = 10;

/// How long a session lasts after login, in hours.
pub const SESSION_HOURS: i64 = 8;

/// The roles that may read the dashboard (issue 7: hotline head, inspectors, supervisors and
/// group leaders; admins run the service): those who may read the statistics.
pub const VIEWER_ROLES: [Role; 5] = crate::workflow::STATISTICS_ROLES;

/// The session cookie's name.
const COOKIE: &str = "tiaochu_dashboard";

/// At most this many cases in one list page (newest first).
const CASE_LIST_LIMIT: usize = 500;

const APP_CSS: &str = include_str!("dashboard/app.css");

/// No script at all, no inline style, no foreign origin.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What the login page tells a visitor without a session.
pub const LOGIN_HINT: &str = "请在钉钉中向机器人发送“看板”获取登录链接";

/// The workflow states, in workflow order, for the case filter.
const STATES: [CaseState; 10] = CaseState::ALL;

/// Whether `person` may read the dashboard.
pub fn may_view(person: &Person) -> bool {
    VIEWER_ROLES.iter().any(|r| person.has_role(*r))
}

/// The 看板 reply: for a viewer, stores a new one-time link in `tx` and returns the message
/// carrying it (`{base_url}/dashboard/login?token=…`, valid [`LINK_MINUTES`] minutes); for anyone
/// else, a refusal naming who may log in. Only the token's hash is stored.
pub fn login_reply(
    tx: &Tx<'_>,
    person: &Person,
    base_url: &str,
    calendar: &Calendar,
    now: Timestamp,
) -> Result<Rendered, StoreError> {
    if !may_view(person) {
        let roles: Vec<&str> = VIEWER_ROLES.iter().map(|r| r.label()).collect();
        return Ok(Rendered {
            title: "无法登录数据看板".to_string(),
            markdown: format!(
                "数据看板仅供{}使用。如需查看，请联系区12345热线管理员。",
                roles.join("、")
            ),
        });
    }
    let token = new_secret()?;
    let expires = now + SignedDuration::from_mins(LINK_MINUTES);
    tx.insert_login_token(&secret_hash(&token), person.id(), now, expires)?;
    let link = format!(
        "{}/dashboard/login?token={token}",
        base_url.trim_end_matches('/')
    );
    Ok(Rendered {
        title: "数据看板登录链接".to_string(),
        markdown: format!(
            "#### 数据看板登录链接\n\n{link}\n\n链接 {LINK_MINUTES} 分钟内有效（至 {}），仅可使用一次；请勿转发。登录后 {SESSION_HOURS} 小时内无需再次登录。",
            calendar.display(expires)
        ),
    })
}

/// What the dashboard routes share. Cheap to clone.
#[derive(Clone)]
pub struct DashboardState {
    /// Its store, calendar and the roster in force (changes made in DingTalk included).
    engine: Engine,
    clock: Arc<dyn Clock>,
    /// Mark the cookie `Secure` (the service is reached over https).
    secure_cookie: bool,
    /// `[dashboard] base_url`: a form posted from its origin is our own.
    base_url: Arc<str>,
    /// Failed logins per client.
    logins: Arc<guard::LoginLimiter>,
}

impl DashboardState {
    /// `base_url` is `[dashboard] base_url`; an `https` one makes the session cookie `Secure`.
    pub fn new(engine: Engine, clock: Arc<dyn Clock>, base_url: &str) -> DashboardState {
        DashboardState {
            engine,
            clock,
            secure_cookie: base_url.trim().starts_with("https://"),
            base_url: Arc::from(base_url.trim()),
            logins: Arc::new(guard::LoginLimiter::new()),
        }
    }

    fn store(&self) -> &Store {
        self.engine.store()
    }

    fn calendar(&self) -> &Calendar {
        self.engine.calendar()
    }
}

/// The dashboard routes under `/dashboard`, for any outer router state.
pub(super) fn routes<S>(state: DashboardState) -> Router<S> {
    Router::new()
        .route("/dashboard", get(overview))
        .route("/dashboard/app.css", get(style))
        .route("/dashboard/login", get(login_page).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/units", get(units))
        .route("/dashboard/cases", get(cases))
        .route("/dashboard/cases/{case_no}", get(case_page))
        .route("/dashboard/similar", get(similar::search))
        .route("/dashboard/report.xlsx", get(xlsx))
        .with_state(state)
}

/// Every way a dashboard request fails; each becomes a Chinese page.
#[derive(Debug, thiserror::Error)]
enum DashboardError {
    #[error("{LOGIN_HINT}")]
    NotLoggedIn,
    #[error("登录链接无效、已过期或已使用。{LOGIN_HINT}")]
    BadLink,
    #[error("该请求来自其他网站，已拒绝。请直接打开机器人发来的登录链接，在本站页面上操作。")]
    CrossSite,
    #[error(
        "登录失败次数过多（{FAILURE_WINDOW_MINUTES} 分钟内 {FAILURES_ALLOWED} 次），请于 {retry_at_shown} 后再试；请确认使用的是机器人最新发来的登录链接。"
    )]
    TooManyFailures {
        retry_at_shown: String,
        retry_after_secs: i64,
    },
    #[error("月份格式应为 2026-11")]
    BadMonth,
    #[error("未找到案件 {0}")]
    NoCase(String),
    #[error("服务暂时无法读取数据，请稍后重试")]
    Store(#[from] StoreError),
    #[error("服务暂时无法生成报表，请稍后重试")]
    Report(#[from] ReportError),
    #[error("案件数据无法读取，请联系管理员")]
    Engine(#[from] EngineError),
}

impl DashboardError {
    fn status(&self) -> StatusCode {
        match self {
            DashboardError::NotLoggedIn | DashboardError::BadLink => StatusCode::UNAUTHORIZED,
            DashboardError::CrossSite => StatusCode::FORBIDDEN,
            DashboardError::TooManyFailures { .. } => StatusCode::TOO_MANY_REQUESTS,
            DashboardError::BadMonth => StatusCode::BAD_REQUEST,
            DashboardError::NoCase(_) => StatusCode::NOT_FOUND,
            DashboardError::Store(_) | DashboardError::Report(_) | DashboardError::Engine(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        if matches!(
            self,
            DashboardError::Store(_) | DashboardError::Report(_) | DashboardError::Engine(_)
        ) {
            tracing::error!(error = ?self, "dashboard request failed");
        }
        let status = self.status();
        let retry_after = match &self {
            DashboardError::TooManyFailures {
                retry_after_secs, ..
            } => HeaderValue::from_str(&(*retry_after_secs).max(1).to_string()).ok(),
            _ => None,
        };
        let body = format!(
            "<section class=\"notice\"><h1>{}</h1><p>{}</p></section>",
            if status == StatusCode::UNAUTHORIZED {
                "请先登录"
            } else {
                "无法显示"
            },
            escape(&self.to_string())
        );
        let mut response = page("数据看板", None, &body);
        *response.status_mut() = status;
        if let Some(value) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// The HTML page around `body`, with the navigation when someone is logged in.
fn page(title: &str, viewer: Option<&Person>, body: &str) -> Response {
    let nav = match viewer {
        Some(p) => format!(
            r#"<nav><a href="/dashboard">概览</a><a href="/dashboard/units">单位</a><a href="/dashboard/cases">案件</a><a href="/dashboard/similar">案例</a><span class="who">{}（{}）</span><form method="post" action="/dashboard/logout"><button type="submit">退出</button></form></nav>"#,
            escape(&p.name),
            escape(&p.unit)
        ),
        None => String::new(),
    };
    let html = format!(
        r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · 联合调处数据看板</title><link rel="stylesheet" href="/dashboard/app.css"></head>
<body><header><b>联合调处数据看板</b>{nav}</header><main>{body}</main></body></html>"#,
        escape(title)
    );
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Pages carry citizen data: never kept by the browser or a proxy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        APP_CSS,
    )
}

/// The session id in the request's cookies, if any.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The logged-in person: a live session whose person is still in the roster with a viewer role.
async fn viewer(state: &DashboardState, headers: &HeaderMap) -> Result<Person, DashboardError> {
    let hash = session_cookie(headers)
        .map(secret_hash)
        .ok_or(DashboardError::NotLoggedIn)?;
    let now = state.clock.now();
    let id = state
        .store()
        .read(move |r| r.session_person(&hash, now))
        .await?
        .ok_or(DashboardError::NotLoggedIn)?;
    state
        .engine
        .roster()
        .person(&id)
        .filter(|p| may_view(p))
        .cloned()
        .ok_or(DashboardError::NotLoggedIn)
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    #[serde(default)]
    token: String,
}

/// `GET /dashboard/login[?token=…]`: the button that spends the link, or how to get one. Looks
/// nothing up, so a preview of the link spends nothing.
async fn login_page(Query(q): Query<TokenForm>) -> Response {
    let token = q.token.trim();
    if token.is_empty() {
        let body = format!(
            "<section class=\"notice\"><h1>请先登录</h1><p>{}</p></section>",
            escape(LOGIN_HINT)
        );
        let mut response = page("登录", None, &body);
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    let body = format!(
        r#"<section class="notice"><h1>登录数据看板</h1><p>此链接仅可使用一次，{LINK_MINUTES} 分钟内有效。</p>
<form method="post" action="/dashboard/login"><input type="hidden" name="token" value="{}"><button type="submit" id="login">登录</button></form></section>"#,
        escape(token)
    );
    page("登录", None, &body)
}

/// Refuses a POST a browser says came from another site (login CSRF: a foreign page must not log
/// a browser into someone else's session, nor out of its own).
fn require_same_origin(state: &DashboardState, headers: &HeaderMap) -> Result<(), DashboardError> {
    guard::same_origin(headers, &state.base_url).map_err(|why| {
        tracing::warn!(?why, "cross-site dashboard POST refused");
        DashboardError::CrossSite
    })
}

/// `POST /dashboard/login` (form `token`): spends the link and starts a session. A client with
/// too many recent failures is refused before the token is looked at.
async fn login(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    extensions: Extensions,
    axum::Form(form): axum::Form<TokenForm>,
) -> Result<Response, DashboardError> {
    require_same_origin(&state, &headers)?;
    let now = state.clock.now();
    let client = guard::client(&extensions, &headers);
    if let Err(retry_at) = state.logins.check(client, now) {
        tracing::warn!(client = ?client, "dashboard login refused: too many failures");
        return Err(DashboardError::TooManyFailures {
            retry_at_shown: state.calendar().display(retry_at),
            retry_after_secs: retry_at.duration_since(now).as_secs(),
        });
    }
    let hash = secret_hash(form.token.trim());
    let session = new_secret()?;
    let session_hash = secret_hash(&session);
    let roster = state.engine.roster();
    let person = state
        .store()
        .write(move |tx| -> Result<_, StoreError> {
            let Some(id) = tx.redeem_login_token(&hash, now)? else {
                return Ok(None);
            };
            // Roles are checked again: the roster may have changed since the link was sent.
            let Some(person) = roster.person(&id).filter(|p| may_view(p)) else {
                return Ok(None);
            };
            tx.insert_session(
                &session_hash,
                &id,
                now,
                now + SignedDuration::from_hours(SESSION_HOURS),
            )?;
            Ok(Some(person.name.clone()))
        })
        .await?;
    let Some(person) = person else {
        state.logins.failed(client, now);
        return Err(DashboardError::BadLink);
    };
    state.logins.succeeded(client);
    tracing::info!(viewer = %person, "dashboard login");
    let cookie = format!(
        "{COOKIE}={session}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_HOURS * 3600,
        if state.secure_cookie { "; Secure" } else { "" }
    );
    let mut response = Redirect::to("/dashboard").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `POST /dashboard/logout`: ends the session and clears the cookie.
async fn logout(
    State(state): State<DashboardState>,
    headers: HeaderMap,
) -> Result<Response, DashboardError> {
    require_same_origin(&state, &headers)?;
    if let Some(hash) = session_cookie(&headers).map(secret_hash) {
        state
            .store()
            .write(move |tx| tx.delete_session(&hash))
            .await?;
    }
    let mut response = Redirect::to("/dashboard/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "tiaochu_dashboard=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
struct MonthQuery {
    #[serde(default)]
    month: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    desc: Option<String>,
}

/// `?month=2026-11`, or the current local month when empty.
fn month_of(text: &str, calendar: &Calendar, now: Timestamp) -> Result<(i16, i8), DashboardError> {
    if text.trim().is_empty() {
        let today = calendar.local_date(now);
        return Ok((today.year(), today.month()));
    }
    match Period::parse_month(text) {
        Some(Period::Month { year, month }) => Ok((year, month)),
        _ => Err(DashboardError::BadMonth),
    }
}

/// `GET /dashboard[?month=]`: the month against the targets, the 12-month trend and the units'
/// response times.
async fn overview(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(q): Query<MonthQuery>,
) -> Result<Response, DashboardError> {
    let person = viewer(&state, &headers).await?;
    let now = state.clock.now();
    let (year, month) = month_of(&q.month, state.calendar(), now)?;
    let engine = state.engine.clone();
    let (report, trend, response_times) = state
        .store()
        .read(move |r| -> Result<_, EngineError> {
            let period = Period::Month { year, month };
            let report = report::build(r, engine.calendar(), &period, now)?;
            let trend = trend(r, engine.calendar(), year, month)?;
            let times = response_times(r, engine.calendar(), &period)?;
            Ok((report, trend, times))
        })
        .await?;
    let key = report.period_key.clone();
    let mut body = format!(
        r#"<h1>{} 概览</h1><form class="filters" method="get" action="/dashboard"><label>月份 <input name="month" value="{}" placeholder="2026-11"></label><button type="submit">查看</button><a class="download" href="/dashboard/report.xlsx?month={}">下载本月报表（xlsx）</a></form>"#,
        escape(&report.period_label),
        escape(&key),
        escape(&key)
    );
    body.push_str(&summary_cards(&report.stats.overall));
    body.push_str("<h2>指标与目标</h2>");
    body.push_str(&rates_svg(&report.stats.overall));
    body.push_str("<h2>近 12 个月申请与办结</h2>");
    body.push_str(&trend_svg(&trend));
    body.push_str("<h2>各单位平均响应时长（工作小时）</h2>");
    body.push_str(&response_svg(&response_times));
    Ok(page("概览", Some(&person), &body))
}

fn summary_cards(c: &Counts) -> String {
    let items = [
        ("申请登记", c.submitted),
        ("协办请求", c.requests),
        ("办结", c.completed),
        ("超期未办结", c.handling_overdue),
        ("书面督办", c.supervisions),
        ("拒不配合", c.refusals),
    ];
    let mut out = String::from("<div class=\"cards\">");
    for (label, n) in items {
        let _ = write!(
            out,
            "<div class=\"card\"><b>{n}</b><span>{label}</span></div>"
        );
    }
    out.push_str("</div>");
    out
}

/// Horizontal bars of the three rates, each with its target marked.
fn rates_svg(c: &Counts) -> String {
    let targets = c.targets();
    let (w, row, left) = (360.0_f64, 34.0_f64, 70.0_f64);
    let bar = w - left - 10.0;
    let height = row * targets.len() as f64 + 6.0;
    let mut out = format!(
        r#"<svg class="chart" id="chart-rates" viewBox="0 0 {w} {height}" role="img" aria-label="办结率、响应率、满意率与目标"><title>办结率、响应率、满意率与目标</title>"#
    );
    for (i, t) in targets.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let share = t.actual.value().unwrap_or(0.0).clamp(0.0, 1.0);
        let class = match t.met {
            Some(true) => "ok",
            Some(false) => "bad",
            None => "none",
        };
        let target_x = left + bar * t.target_percent as f64 / 100.0;
        let _ = write!(
            out,
            r#"<text x="0" y="{ty}" class="label">{name}</text><rect x="{left}" y="{y}" width="{bar}" height="18" class="track"/><rect x="{left}" y="{y}" width="{fill:.1}" height="18" class="{class}"><title>{name}：{value}，目标 {target}（{verdict}）</title></rect><line x1="{target_x:.1}" x2="{target_x:.1}" y1="{y0}" y2="{y1}" class="target"/><text x="{left}" y="{vy}" class="value">{value} · 目标 {target} · {verdict}</text>"#,
            ty = y + 13.0,
            name = t.name,
            fill = bar * share,
            value = escape(&t.actual.display()),
            target = escape(&t.target_label()),
            verdict = t.verdict(),
            y0 = y - 2.0,
            y1 = y + 20.0,
            vy = y + 30.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// Paired monthly bars: applications (申请) and completions (办结).
fn trend_svg(months: &[TrendMonth]) -> String {
    let (w, h, bottom, top) = (360.0_f64, 180.0_f64, 24.0_f64, 16.0_f64);
    let max = months
        .iter()
        .map(|m| m.submitted.max(m.completed))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = w / months.len().max(1) as f64;
    let scale = (h - bottom - top) / max;
    let mut out = format!(
        r#"<svg class="chart" id="chart-trend" viewBox="0 0 {w} {h}" role="img" aria-label="近 12 个月申请与办结"><title>近 12 个月申请与办结</title><g class="legend"><rect x="0" y="0" width="10" height="10" class="submitted"/><text x="14" y="9">申请</text><rect x="50" y="0" width="10" height="10" class="completed"/><text x="64" y="9">办结</text></g>"#
    );
    for (i, m) in months.iter().enumerate() {
        let x = i as f64 * slot + slot * 0.15;
        let bw = slot * 0.35;
        let base = h - bottom;
        for (j, (n, class, label)) in [
            (m.submitted, "submitted", "申请"),
            (m.completed, "completed", "办结"),
        ]
        .into_iter()
        .enumerate()
        {
            let bh = n as f64 * scale;
            let _ = write!(
                out,
                r#"<rect x="{bx:.1}" y="{by:.1}" width="{bw:.1}" height="{bh:.1}" class="{class}"><title>{}年{}月 {label} {n}</title></rect>"#,
                m.year,
                m.month,
                bx = x + j as f64 * bw,
                by = base - bh,
            );
        }
        let _ = write!(
            out,
            r#"<text x="{tx:.1}" y="{ty}" class="axis">{}月</text>"#,
            m.month,
            tx = x,
            ty = h - 8.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// One bar per unit: mean working hours from request to answer, with the one-day (四(三)) line.
fn response_svg(times: &BTreeMap<String, (u64, i64)>) -> String {
    if times.is_empty() {
        return "<p class=\"empty\" id=\"chart-response\">本月没有协办答复。</p>".to_string();
    }
    let (w, row, left) = (360.0_f64, 24.0_f64, 110.0_f64);
    let bar = w - left - 40.0;
    let max = times.values().map(|(_, m)| *m).max().unwrap_or(0).max(60) as f64;
    let height = row * times.len() as f64 + 4.0;
    let mut out = format!(
        r#"<svg class="chart" id="chart-response" viewBox="0 0 {w} {height}" role="img" aria-label="各单位平均响应时长"><title>各单位平均响应时长</title>"#
    );
    for (i, (unit, (n, minutes))) in times.iter().enumerate() {
        let y = i as f64 * row + 2.0;
        let hours = *minutes as f64 / 60.0;
        let _ = write!(
            out,
            r#"<text x="0" y="{ty}" class="label">{u}</text><rect x="{left}" y="{y}" width="{bw:.1}" height="16" class="response"><title>{u}：平均 {hours:.1} 工作小时（{n} 次答复）</title></rect><text x="{vx:.1}" y="{ty}" class="value">{hours:.1}</text>"#,
            ty = y + 12.0,
            u = escape(unit),
            bw = bar * (*minutes as f64 / max).max(0.0),
            vx = left + bar * (*minutes as f64 / max).max(0.0) + 4.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// The columns of the unit table: query key, header, value.
type Column = (&'static str, &'static str, fn(&Counts) -> String);

const UNIT_COLUMNS: [Column; 9] = [
    ("submitted", "申请", |c| c.submitted.to_string()),
    ("requests", "协办请求", |c| c.requests.to_string()),
    ("on_time", "按时答复", |c| {
        c.answered_on_time.to_string()
    }),
    ("refusals", "拒不配合", |c| c.refusals.to_string()),
    ("supervisions", "书面督办", |c| {
        c.supervisions.to_string()
    }),
    ("completed", "办结", |c| c.completed.to_string()),
    ("response_rate", "响应率", |c| {
        rate_cell(c.response_rate())
    }),
    ("completion_rate", "办结率", |c| {
        rate_cell(c.completion_rate())
    }),
    ("satisfaction_rate", "满意率", |c| {
        rate_cell(c.satisfaction_rate())
    }),
];

fn rate_cell(r: Rate) -> String {
    r.value()
        .map_or("—".to_string(), |v| format!("{:.1}%", v * 100.0))
}

/// The sort key of a unit row for column `key`; rates without data sort lowest.
fn sort_key(c: &Counts, key: &str) -> f64 {
    match key {
        "submitted" => c.submitted as f64,
        "requests" => c.requests as f64,
        "on_time" => c.answered_on_time as f64,
        "refusals" => c.refusals as f64,
        "supervisions" => c.supervisions as f64,
        "completed" => c.completed as f64,
        "response_rate" => c.response_rate().value().unwrap_or(-1.0),
        "completion_rate" => c.completion_rate().value().unwrap_or(-1.0),
        "satisfaction_rate" => c.satisfaction_rate().value().unwrap_or(-1.0),
        _ => 0.0,
    }
}

/// `GET /dashboard/units?month=&sort=<column>&desc=1`: the month's figures per unit, sortable by
/// any column (by name otherwise).
async fn units(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(q): Query<MonthQuery>,
) -> Result<Response, DashboardError> {
    let person = viewer(&state, &headers).await?;
    let now = state.clock.now();
    let (year, month) = month_of(&q.month, state.calendar(), now)?;
    let engine = state.engine.clone();
    let report: Report = state
        .store()
        .read(move |r| report::build(r, engine.calendar(), &Period::Month { year, month }, now))
        .await?;
    let desc = q.desc.as_deref().is_some_and(|d| !d.is_empty() && d != "0");
    let mut rows: Vec<(&String, &Counts)> = report.stats.units.iter().collect();
    if UNIT_COLUMNS.iter().any(|(k, _, _)| *k == q.sort) {
        rows.sort_by(|a, b| {
            sort_key(a.1, &q.sort)
                .total_cmp(&sort_key(b.1, &q.sort))
                .then_with(|| a.0.cmp(b.0))
        });
    }
    if desc {
        rows.reverse();
    }
    let key = &report.period_key;
    let mut body = format!(
        r#"<h1>{} 各单位</h1><form class="filters" method="get" action="/dashboard/units"><label>月份 <input name="month" value="{}"></label><button type="submit">查看</button></form><p class="hint">点击表头排序，再次点击倒序。</p><div class="scroll"><table id="units"><thead><tr>"#,
        escape(&report.period_label),
        escape(key)
    );
    let header_link = |sort: &str, label: &str| {
        let next_desc = q.sort == sort && !desc;
        let mark = match (q.sort == sort, desc) {
            (true, false) => " ▲",
            (true, true) => " ▼",
            (false, _) => "",
        };
        format!(
            r#"<th><a href="/dashboard/units?month={}&amp;sort={sort}{}">{label}{mark}</a></th>"#,
            escape(key),
            if next_desc { "&amp;desc=1" } else { "" }
        )
    };
    body.push_str(&header_link("unit", "单位"));
    for (k, label, _) in UNIT_COLUMNS {
        body.push_str(&header_link(k, label));
    }
    body.push_str("</tr></thead><tbody>");
    for (unit, c) in &rows {
        let _ = write!(
            body,
            r#"<tr><td><a href="/dashboard/cases?unit={}&amp;month={}">{}</a></td>"#,
            enc(unit),
            escape(key),
            escape(unit)
        );
        for (_, _, value) in UNIT_COLUMNS {
            let _ = write!(body, "<td>{}</td>", escape(&value(c)));
        }
        body.push_str("</tr>");
    }
    if rows.is_empty() {
        body.push_str(r#"<tr><td colspan="10" class="empty">本月没有统计数据。</td></tr>"#);
    }
    body.push_str("</tbody></table></div>");
    Ok(page("各单位", Some(&person), &body))
}

fn enc(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

#[derive(Debug, Default, Deserialize)]
struct CaseQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    month: String,
    /// `1` green channel only, `0` ordinary only, empty any.
    #[serde(default)]
    green: String,
}

/// `GET /dashboard/cases?state=&unit=&month=&green=`: the matching cases, newest first.
async fn cases(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(q): Query<CaseQuery>,
) -> Result<Response, DashboardError> {
    let person = viewer(&state, &headers).await?;
    let registered = if q.month.trim().is_empty() {
        None
    } else {
        let (year, month) = month_of(&q.month, state.calendar(), state.clock.now())?;
        Some(Period::Month { year, month }.bounds(state.calendar().time_zone()))
    };
    let filter = CaseFilter {
        state: STATES
            .iter()
            .find(|s| state_key(**s) == q.state)
            .map(|s| state_key(*s)),
        unit: Some(q.unit.trim().to_string()).filter(|u| !u.is_empty()),
        registered,
        green: match q.green.as_str() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        },
    };
    let rows = state
        .store()
        .read(move |r| -> Result<_, StoreError> {
            let mut rows = Vec::new();
            for id in r.filtered_case_ids(&filter, CASE_LIST_LIMIT)? {
                if let Some(row) = r.case(id)? {
                    rows.push(row);
                }
            }
            Ok(rows)
        })
        .await?;
    let mut body = String::from(
        r#"<h1>案件</h1><form class="filters" method="get" action="/dashboard/cases"><label>状态 <select name="state"><option value="">全部</option>"#,
    );
    for s in STATES {
        let key = state_key(s);
        let _ = write!(
            body,
            r#"<option value="{key}"{}>{}</option>"#,
            if key == q.state { " selected" } else { "" },
            s.label()
        );
    }
    body.push_str(
        r#"</select></label><label>单位 <select name="unit"><option value="">全部</option>"#,
    );
    for u in state.engine.roster().units() {
        let _ = write!(
            body,
            r#"<option value="{0}"{1}>{0}</option>"#,
            escape(&u.name),
            if u.name == q.unit { " selected" } else { "" }
        );
    }
    let _ = write!(
        body,
        r#"</select></label><label>登记月份 <input name="month" value="{}" placeholder="2026-11"></label><label>绿色通道 <select name="green"><option value="">全部</option><option value="1"{}>仅绿色通道</option><option value="0"{}>仅普通</option></select></label><button type="submit">筛选</button></form>"#,
        escape(&q.month),
        if q.green == "1" { " selected" } else { "" },
        if q.green == "0" { " selected" } else { "" }
    );
    let _ = write!(
        body,
        r#"<p class="hint">共 {} 件{}</p><div class="scroll"><table id="cases"><thead><tr><th>案件</th><th>工单编号</th><th>工单标题</th><th>首接单位</th><th>状态</th><th>登记时间</th></tr></thead><tbody>"#,
        rows.len(),
        if rows.len() >= CASE_LIST_LIMIT {
            format!("（仅显示最近 {CASE_LIST_LIMIT} 件，请缩小筛选范围）")
        } else {
            String::new()
        }
    );
    for row in &rows {
        let case = decode(row)?;
        let _ = write!(
            body,
            r#"<tr><td><a href="/dashboard/cases/{}">{}</a>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            enc(&row.case_no),
            escape(&row.case_no),
            if case.green_channel {
                r#" <span class="green">绿色通道</span>"#
            } else {
                ""
            },
            escape(&row.ticket_no),
            escape(&mask_phones(&case.application.title)),
            escape(&row.first_unit),
            case.state.label(),
            escape(&state.calendar().display(row.created_at))
        );
    }
    if rows.is_empty() {
        body.push_str(r#"<tr><td colspan="6" class="empty">没有符合条件的案件。</td></tr>"#);
    }
    body.push_str("</tbody></table></div>");
    Ok(page("案件", Some(&person), &body))
}

/// The stored (snake_case) name of a state.
fn state_key(s: CaseState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `GET /dashboard/cases/{case_no}`: the case's timeline and clocks, as the 查询 reply shows them.
async fn case_page(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Path(case_no): Path<String>,
) -> Result<Response, DashboardError> {
    let person = viewer(&state, &headers).await?;
    let wanted = case_no.clone();
    let found = state
        .store()
        .read(move |r| -> Result<_, StoreError> {
            let Some(row) = r.case_by_no(&wanted)? else {
                return Ok(None);
            };
            let events = r.events_for_case(row.id)?;
            Ok(Some((row, events)))
        })
        .await?;
    let Some((row, events)) = found else {
        return Err(DashboardError::NoCase(case_no));
    };
    let case = decode(&row)?;
    let text = render_query(
        &case,
        &timeline_entries(&events),
        &state.engine.roster(),
        state.calendar(),
    );
    let mut body = format!(
        r#"<p><a href="/dashboard/cases">‹ 返回案件列表</a></p><h1>案件 {}</h1><pre id="timeline" class="timeline">{}</pre>"#,
        escape(&row.case_no),
        escape(&text)
    );
    body.push_str(&similar::case_section(&state, row.id, case).await?);
    Ok(page(&row.case_no, Some(&person), &body))
}

/// The audit rows as timeline entries (oldest first).
fn timeline_entries(rows: &[EventRow]) -> Vec<TimelineEntry> {
    rows.iter().map(TimelineEntry::from_row).collect()
}

/// `GET /dashboard/report.xlsx?month=2026-11`: the month's report workbook.
async fn xlsx(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(q): Query<MonthQuery>,
) -> Result<Response, DashboardError> {
    viewer(&state, &headers).await?;
    let now = state.clock.now();
    let (year, month) = month_of(&q.month, state.calendar(), now)?;
    let engine = state.engine.clone();
    let period = Period::Month { year, month };
    let report = state
        .store()
        .read(move |r| report::build(r, engine.calendar(), &period, now))
        .await?;
    let bytes = report::xlsx::workbook(&report, state.calendar())
        .map_err(|e| DashboardError::Report(ReportError::Xlsx(e)))?;
    let name = format!("tiaochu-report-{}.xlsx", period.key());
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                ),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tiaochu_dashboard=abc ; b=2"),
        );
        assert_eq!(session_cookie(&h), Some("abc"));
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn state_keys_are_the_stored_names() {
        assert_eq!(state_key(CaseState::JointHandling), "joint_handling");
        assert_eq!(state_key(CaseState::Closed), "closed");
    }

    #[test]
    fn charts_escape_unit_names_and_show_targets() {
        let mut times = BTreeMap::new();
        times.insert("<区>".to_string(), (2, 90));
        let svg = response_svg(&times);
        assert!(svg.contains("&lt;区&gt;"), "{svg}");
        assert!(svg.contains("1.5 工作小时（2 次答复）"), "{svg}");
        let c = Counts {
            completed: 1,
            completed_on_time: 1,
            completion_due: 2,
            ..Counts::default()
        };
        let rates = rates_svg(&c);
        assert!(
            rates.contains("办结率：50.0%（1/2），目标 100%（未达标）"),
            "{rates}"
        );
    }
}
