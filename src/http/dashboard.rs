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
//! one of the allowed roles: their handlers take a [`viewer::Viewer`], which refuses anyone else
//! with 401 and a page that says how to log in, and no citizen data. Pages are rendered on the
//! server from the templates in `templates/dashboard/`, which escape every value, with no script
//! at all, under a CSP that forbids inline script and foreign origins. The overview's charts are
//! worked out in [`charts`].

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::render::{RenderError, render};
use crate::calendar::Calendar;
use crate::clock::Clock;
pub use crate::dashboard_access::{
    LINK_MINUTES, SESSION_HOURS, VIEWER_ROLES, login_reply, may_view,
};
use crate::domain::CaseNo;
use crate::engine::{Engine, EngineError, decode};
use crate::messages::notify::mask_phones;
use crate::messages::timeline::{TimelineEntry, render_query};
use crate::report::trend::{response_times, trend};
use crate::report::{self, Counts, Period, Rate, Report, ReportError};
use crate::roster::Person;
use crate::store::{CaseFilter, EventRow, Store, StoreError, new_secret, secret_hash};
use crate::workflow::State as CaseState;

mod charts;
mod guard;
mod similar;
mod viewer;

use charts::{RatesChart, ResponseChart, TrendChart};
use guard::{FAILURE_WINDOW_MINUTES, FAILURES_ALLOWED};
use viewer::Viewer;

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
    #[error("页面生成失败，请稍后重试；如仍失败，请联系管理员")]
    Render(#[from] RenderError),
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
            DashboardError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        if matches!(
            self,
            DashboardError::Store(_)
                | DashboardError::Report(_)
                | DashboardError::Engine(_)
                | DashboardError::Render(_)
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
        let notice = Notice {
            viewer: None,
            title: "数据看板",
            heading: if status == StatusCode::UNAUTHORIZED {
                "请先登录"
            } else {
                "无法显示"
            },
            message: self.to_string(),
        };
        let mut response = match render(&notice) {
            Ok(html) => respond(html),
            Err(e) => return e.into_response(),
        };
        *response.status_mut() = status;
        if let Some(value) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// A page with the dashboard's headers.
fn respond(html: String) -> Response {
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

/// `template` rendered, with the dashboard's headers.
fn page(template: &impl Template) -> Result<Response, DashboardError> {
    Ok(respond(render(template)?))
}

/// A page that only says something (`templates/dashboard/notice.html`).
#[derive(Template)]
#[template(path = "dashboard/notice.html")]
struct Notice<'a> {
    viewer: Option<&'a Person>,
    title: &'a str,
    heading: &'a str,
    message: String,
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

#[derive(Debug, Deserialize)]
struct TokenForm {
    #[serde(default)]
    token: String,
}

/// The button that spends a login link (`templates/dashboard/login.html`).
#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage<'a> {
    viewer: Option<&'a Person>,
    token: &'a str,
    minutes: i64,
}

/// `GET /dashboard/login[?token=…]`: the button that spends the link, or how to get one. Looks
/// nothing up, so a preview of the link spends nothing.
async fn login_page(Query(q): Query<TokenForm>) -> Result<Response, DashboardError> {
    let token = q.token.trim();
    if token.is_empty() {
        let mut response = page(&Notice {
            viewer: None,
            title: "登录",
            heading: "请先登录",
            message: LOGIN_HINT.to_string(),
        })?;
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    }
    page(&LoginPage {
        viewer: None,
        token,
        minutes: LINK_MINUTES,
    })
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
    let mut response = Redirect::to("/dashboard").into_response();
    if let Some(cookie) = viewer::session_cookie(&session, state.secure_cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `POST /dashboard/logout`: ends the session and clears the cookie.
async fn logout(
    State(state): State<DashboardState>,
    headers: HeaderMap,
) -> Result<Response, DashboardError> {
    require_same_origin(&state, &headers)?;
    if let Some(hash) = viewer::session_id(&headers).map(|id| secret_hash(&id)) {
        state
            .store()
            .write(move |tx| tx.delete_session(&hash))
            .await?;
    }
    let mut response = Redirect::to("/dashboard/login").into_response();
    if let Some(cookie) = viewer::cleared_cookie(state.secure_cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
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
    Viewer(person): Viewer,
    State(state): State<DashboardState>,
    Query(q): Query<MonthQuery>,
) -> Result<Response, DashboardError> {
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
    let months: Vec<(i16, i8, u64, u64)> = trend
        .iter()
        .map(|m| (m.year, m.month, m.submitted, m.completed))
        .collect();
    page(&Overview {
        viewer: Some(&person),
        period_label: &report.period_label,
        month: &report.period_key,
        // The key is ours (`2026-11`): nothing in it needs encoding.
        xlsx_href: format!("/dashboard/report.xlsx?month={}", report.period_key),
        cards: summary_cards(&report.stats.overall),
        rates: RatesChart::new(&report.stats.overall),
        trend: TrendChart::new(&months),
        response: ResponseChart::new(&response_times),
    })
}

/// The month against the targets (`templates/dashboard/overview.html`).
#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct Overview<'a> {
    viewer: Option<&'a Person>,
    /// `2026年11月`.
    period_label: &'a str,
    /// `2026-11`.
    month: &'a str,
    xlsx_href: String,
    cards: [(&'static str, u64); 6],
    rates: RatesChart,
    trend: TrendChart,
    response: ResponseChart,
}

/// The overview's headline figures.
fn summary_cards(c: &Counts) -> [(&'static str, u64); 6] {
    [
        ("申请登记", c.submitted),
        ("协办请求", c.requests),
        ("办结", c.completed),
        ("超期未办结", c.handling_overdue),
        ("书面督办", c.supervisions),
        ("拒不配合", c.refusals),
    ]
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
    Viewer(person): Viewer,
    State(state): State<DashboardState>,
    Query(q): Query<MonthQuery>,
) -> Result<Response, DashboardError> {
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
    let column = |sort: &str, label: &'static str| {
        let next_desc = q.sort == sort && !desc;
        ColumnLink {
            href: format!(
                "/dashboard/units?month={key}&sort={sort}{}",
                if next_desc { "&desc=1" } else { "" }
            ),
            label,
            mark: match (q.sort == sort, desc) {
                (true, false) => " ▲",
                (true, true) => " ▼",
                (false, _) => "",
            },
        }
    };
    let mut columns = vec![column("unit", "单位")];
    columns.extend(UNIT_COLUMNS.iter().map(|(k, label, _)| column(k, label)));
    let rows = rows
        .iter()
        .map(|(unit, c)| UnitRow {
            href: format!("/dashboard/cases?unit={}&month={key}", enc(unit)),
            unit: unit.as_str(),
            cells: UNIT_COLUMNS.iter().map(|(_, _, value)| value(c)).collect(),
        })
        .collect();
    page(&UnitsPage {
        viewer: Some(&person),
        period_label: &report.period_label,
        month: key,
        columns,
        rows,
    })
}

/// The month's figures per unit (`templates/dashboard/units.html`).
#[derive(Template)]
#[template(path = "dashboard/units.html")]
struct UnitsPage<'a> {
    viewer: Option<&'a Person>,
    period_label: &'a str,
    month: &'a str,
    columns: Vec<ColumnLink>,
    rows: Vec<UnitRow<'a>>,
}

/// A column header: sorts by it, or the other way round when it already does.
struct ColumnLink {
    href: String,
    label: &'static str,
    /// ` ▲` or ` ▼` on the column sorted by.
    mark: &'static str,
}

struct UnitRow<'a> {
    unit: &'a str,
    /// The unit's cases of the month.
    href: String,
    cells: Vec<String>,
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
    Viewer(person): Viewer,
    State(state): State<DashboardState>,
    Query(q): Query<CaseQuery>,
) -> Result<Response, DashboardError> {
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
    let calendar = state.calendar();
    let list = rows
        .iter()
        .map(|row| {
            let case = decode(row)?;
            Ok(CaseRow {
                href: format!("/dashboard/cases/{}", enc(&row.case_no)),
                case_no: &row.case_no,
                green: case.green_channel,
                ticket_no: &row.ticket_no,
                title: mask_phones(&case.application.title),
                first_unit: &row.first_unit,
                state: case.state.label(),
                registered: calendar.display(row.created_at),
            })
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    let roster = state.engine.roster();
    page(&CasesPage {
        viewer: Some(&person),
        states: STATES
            .iter()
            .map(|s| {
                let key = state_key(*s);
                Choice {
                    selected: key == q.state,
                    value: key,
                    label: s.label().to_string(),
                }
            })
            .collect(),
        units: roster
            .units()
            .iter()
            .map(|u| Choice {
                value: u.name.clone(),
                label: u.name.clone(),
                selected: u.name == q.unit,
            })
            .collect(),
        month: &q.month,
        green: &q.green,
        truncated: list.len() >= CASE_LIST_LIMIT,
        limit: CASE_LIST_LIMIT,
        rows: list,
    })
}

/// The case list with its filters (`templates/dashboard/cases.html`).
#[derive(Template)]
#[template(path = "dashboard/cases.html")]
struct CasesPage<'a> {
    viewer: Option<&'a Person>,
    states: Vec<Choice>,
    units: Vec<Choice>,
    /// The filters as asked for, shown again.
    month: &'a str,
    green: &'a str,
    /// Whether the list stops at `limit`.
    truncated: bool,
    limit: usize,
    rows: Vec<CaseRow<'a>>,
}

/// One option of a filter.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

struct CaseRow<'a> {
    href: String,
    case_no: &'a str,
    green: bool,
    ticket_no: &'a str,
    /// With phone numbers masked, as in every message.
    title: String,
    first_unit: &'a str,
    state: &'static str,
    registered: String,
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
    Viewer(person): Viewer,
    State(state): State<DashboardState>,
    Path(case_no): Path<String>,
) -> Result<Response, DashboardError> {
    // A path that is no case number names no case, as an unknown number does.
    let wanted = CaseNo::parse(&case_no).ok();
    let found = state
        .store()
        .read(move |r| -> Result<_, StoreError> {
            let Some(wanted) = wanted else {
                return Ok(None);
            };
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
    let similar = similar::for_case(&state, row.id, case).await?;
    page(&CasePage {
        viewer: Some(&person),
        case_no: &row.case_no,
        timeline: text,
        rows: similar::rows(&similar),
    })
}

/// One case (`templates/dashboard/case.html`).
#[derive(Template)]
#[template(path = "dashboard/case.html")]
struct CasePage<'a> {
    viewer: Option<&'a Person>,
    case_no: &'a str,
    /// As the 查询 reply shows it.
    timeline: String,
    /// The past cases most like it.
    rows: Vec<similar::SimilarRow>,
}

/// The audit rows as timeline entries (oldest first).
fn timeline_entries(rows: &[EventRow]) -> Vec<TimelineEntry> {
    rows.iter().map(TimelineEntry::from_row).collect()
}

/// `GET /dashboard/report.xlsx?month=2026-11`: the month's report workbook.
async fn xlsx(
    _viewer: Viewer,
    State(state): State<DashboardState>,
    Query(q): Query<MonthQuery>,
) -> Result<Response, DashboardError> {
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
    use crate::roster::Role;

    #[test]
    fn state_keys_are_the_stored_names() {
        assert_eq!(state_key(CaseState::JointHandling), "joint_handling");
        assert_eq!(state_key(CaseState::Closed), "closed");
    }

    #[tokio::test]
    async fn a_page_that_fails_to_render_is_a_logged_500() {
        let error = DashboardError::from(RenderError::from(askama::Error::Fmt));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 16 * 1024)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("页面生成失败"), "{text}");
    }

    #[test]
    fn pages_escape_what_people_wrote() {
        let person = Person::new(
            "<b>某</b>",
            "区\"测试\"局",
            "",
            vec![Role::Inspector],
            "",
            "",
        );
        let html = render(&CasePage {
            viewer: Some(&person),
            case_no: "TC-1",
            timeline: "工单标题：<script>x</script>\n  第二行".into(),
            rows: Vec::new(),
        })
        .expect("render");
        assert!(
            html.contains(
                r#"<span class="who">&#60;b&#62;某&#60;/b&#62;（区&#34;测试&#34;局）</span>"#
            ),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<pre id="timeline" class="timeline">工单标题：&#60;script&#62;x&#60;/script&#62;
  第二行</pre>"#
            ),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("暂无相似的往期案例。"), "{html}");
        let login = render(&LoginPage {
            viewer: None,
            token: "\"><x>",
            minutes: LINK_MINUTES,
        })
        .expect("render");
        assert!(
            login.contains(r#"name="token" value="&#34;&#62;&#60;x&#62;""#),
            "{login}"
        );
        assert!(!login.contains("<nav>"), "no navigation without a viewer");
    }
}
