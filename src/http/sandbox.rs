//! The sandbox console (`/sandbox`, sandbox mode only): a local page that stands in for DingTalk
//! so the whole service can be tried in a browser. It is a transport, not a second
//! implementation: what a person types goes into the inbox exactly like a DingTalk robot message
//! (source `sandbox`), and what the service sends them is read back from the outbox rows on the
//! `sandbox` channel ([`log`]).
//!
//! This module holds the routes and their handlers. Beside it: [`log`] (the chat log model),
//! [`markdown`] (the robot's markdown read into lines), [`pages`] (what each page shows; the
//! HTML is in `templates/sandbox/`), [`clock`] (the clock panel: it moves the service's clock
//! forward and wakes the scheduler, so reminders, breaches and escalations appear at once) and
//! [`host`] (the `Host` guard).
//!
//! Pages are rendered on the server from templates that escape every value; the one script and
//! the style sheet are embedded files, and the Content-Security-Policy forbids inline script, so
//! a message that carries markup shows as text. There is no login: the routes exist only in
//! sandbox mode, which refuses to start on a non-loopback address unless `[sandbox]
//! allow_remote` says so ([`crate::settings::sandbox_exposure`]), and every request must name a
//! loopback host or a configured one in its `Host` header ([`host`]). The two POST routes take
//! JSON bodies only, which another site's page cannot send without a CORS preflight this server
//! never grants.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Mutex, watch};

use super::render::{RenderError, render};
use crate::calendar::Calendar;
use crate::clock::{AdvanceError, Clock};
use crate::roster::{Person, RosterInForce};
use crate::store::{NewInbound, Store, StoreError};

mod clock;
mod host;
mod log;
mod markdown;
mod pages;

use host::{host_guard, host_name, normal_host};
use log::Log;
use pages::{ChatLog, ChatPage, PickPage};

/// The inbox `source` of sandbox messages and the outbox channel of what the sandbox shows.
const SOURCE: &str = "sandbox";
const CHANNEL: &str = "sandbox";

/// The largest message the page may send, in bytes (an application is a few KiB).
const SEND_BODY_LIMIT: usize = 64 * 1024;

const APP_JS: &str = include_str!("sandbox/app.js");
const APP_CSS: &str = include_str!("sandbox/app.css");

/// No inline script or style, no foreign origin: escaped text cannot become active content.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What the sandbox routes share. Cheap to clone.
#[derive(Clone)]
pub struct SandboxState {
    store: Store,
    /// The roster in force (the engine's, so a liaison named in chat shows at once), read per
    /// request.
    roster: RosterInForce,
    calendar: Arc<Calendar>,
    clock: Arc<dyn Clock>,
    clock_moved: Arc<watch::Sender<u64>>,
    /// How far the panel has moved the clock ahead of real time (this run and earlier ones).
    moved: Arc<std::sync::Mutex<SignedDuration>>,
    /// Part of each message id, so two messages sent in the same millisecond stay distinct.
    sent: Arc<AtomicU64>,
    log: Arc<Mutex<Log>>,
    /// When this state was made (service start), by the service clock.
    started: Timestamp,
    /// Hosts besides loopback that requests may name (lowercase, no port, IPv6 without
    /// brackets): `[dashboard] base_url`'s and the listen address's.
    public_hosts: Arc<Vec<String>>,
}

impl SandboxState {
    /// `clock_moved` is the scheduler's wake-up (`App::clock_moved_handle`): each move bumps it.
    pub fn new(
        store: Store,
        roster: RosterInForce,
        calendar: Arc<Calendar>,
        clock: Arc<dyn Clock>,
        clock_moved: Arc<watch::Sender<u64>>,
    ) -> SandboxState {
        SandboxState {
            store,
            roster,
            calendar,
            clock_moved,
            moved: Arc::new(std::sync::Mutex::new(SignedDuration::ZERO)),
            sent: Arc::new(AtomicU64::new(0)),
            log: Arc::new(Mutex::new(Log::default())),
            started: clock.now(),
            clock,
            public_hosts: Arc::new(Vec::new()),
        }
    }

    /// Accepts requests naming `base_url`'s host or the listen address besides loopback ones.
    pub fn with_public_hosts(mut self, base_url: &str, listen: SocketAddr) -> SandboxState {
        let mut hosts = Vec::new();
        if let Some(host) = reqwest::Url::parse(base_url)
            .ok()
            .and_then(|url| url.host_str().map(normal_host))
        {
            hosts.push(host);
        }
        if !listen.ip().is_unspecified() {
            hosts.push(normal_host(&listen.ip().to_string()));
        }
        self.public_hosts = Arc::new(hosts);
        self
    }

    fn moved(&self) -> SignedDuration {
        *self
            .moved
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the panel's count of how far the clock is ahead at `moved` (what an earlier run
    /// had moved it, restored from the store).
    pub fn with_moved(self, moved: SignedDuration) -> SandboxState {
        self.add_moved(moved);
        self
    }

    fn add_moved(&self, by: SignedDuration) {
        let mut moved = self
            .moved
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *moved = moved.saturating_add(by);
    }
}

/// The sandbox routes under `/sandbox`, for any outer router state.
pub(super) fn routes<S>(state: SandboxState) -> Router<S> {
    Router::new()
        .route("/sandbox", get(page))
        .route("/sandbox/app.js", get(script))
        .route("/sandbox/app.css", get(style))
        .route("/sandbox/chat", get(chat))
        .route(
            "/sandbox/send",
            post(send).layer(DefaultBodyLimit::max(SEND_BODY_LIMIT)),
        )
        .route("/sandbox/clock", post(move_clock))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.public_hosts),
            host_guard,
        ))
        .with_state(state)
}

/// Every way a sandbox request fails; the text is Chinese and shown on the page.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("名单中没有此人（{0}），请回到身份选择页重新选择")]
    UnknownPerson(String),
    #[error("消息为空")]
    EmptyText,
    #[error("请求格式不正确：{0}")]
    BadRequest(String),
    #[error("{0}")]
    Clock(#[from] AdvanceError),
    #[error("已在工作时间内，无需跳到下个工作时间")]
    AlreadyWorking,
    #[error("服务暂时无法读写数据库，请稍后重试")]
    Store(#[from] StoreError),
    #[error("页面生成失败，请稍后重试")]
    Render(#[from] RenderError),
}

impl SandboxError {
    fn status(&self) -> StatusCode {
        match self {
            SandboxError::UnknownPerson(_) => StatusCode::NOT_FOUND,
            SandboxError::EmptyText
            | SandboxError::BadRequest(_)
            | SandboxError::Clock(_)
            | SandboxError::AlreadyWorking => StatusCode::BAD_REQUEST,
            SandboxError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            SandboxError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for SandboxError {
    fn into_response(self) -> Response {
        match &self {
            SandboxError::Store(e) => {
                tracing::error!(error = %e, "sandbox request failed in the store");
            }
            SandboxError::Render(e) => tracing::error!(error = %e, "sandbox chat failed to render"),
            _ => {}
        }
        (
            self.status(),
            axum::Json(json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    #[serde(rename = "as")]
    person: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChatQuery {
    #[serde(rename = "as")]
    person: String,
    /// The version the page shows; the chat is sent again only when it changed.
    #[serde(default)]
    v: String,
}

#[derive(Debug, Deserialize)]
struct SendBody {
    #[serde(rename = "as")]
    person: String,
    text: String,
}

#[derive(Debug, Deserialize)]
struct MoveBody {
    /// `minutes`, `hours`, `days`, `working_days` or `to_working` (amount ignored).
    unit: String,
    #[serde(default)]
    amount: i64,
}

/// `GET /sandbox`: the roster to choose from, or with `?as=<id>` that person's chat.
async fn page(
    State(state): State<SandboxState>,
    Query(q): Query<PageQuery>,
) -> Result<Response, RenderError> {
    let roster = (state.roster)();
    let html = match q.person.as_deref().map(|id| (id, roster.person(id))) {
        None => render(&PickPage::new(&roster, None))?,
        Some((id, None)) => render(&PickPage::new(&roster, Some(id)))?,
        Some((_, Some(person))) => render(&ChatPage::new(person, &roster))?,
    };
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
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Embedded in the binary: a new build is a new server start, so a short cache is
            // enough and never shows a stale script for long.
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        body,
    )
}

/// `GET /sandbox/chat?as=<id>&v=<version>`: `{version, html, clock}`; `html` is null when the
/// chat is still at version `v`.
async fn chat(
    State(state): State<SandboxState>,
    Query(q): Query<ChatQuery>,
) -> Result<axum::Json<serde_json::Value>, SandboxError> {
    if (state.roster)().person(&q.person).is_none() {
        return Err(SandboxError::UnknownPerson(q.person));
    }
    let mut log = state.log.lock().await;
    log.refresh(&state.store).await?;
    let version = log.version(&q.person, state.started);
    let html = if version == q.v {
        None
    } else {
        let items = log.chats.get(&q.person).map_or(&[][..], |c| &c.items[..]);
        Some(render(&ChatLog::new(items, &state.calendar))?)
    };
    drop(log);
    Ok(axum::Json(json!({
        "version": version,
        "html": html,
        "clock": clock::status(&state),
    })))
}

/// `POST /sandbox/send {as, text}`: stores the text in the inbox as a robot message from that
/// person in a 1:1 chat and returns at once; the inbox processor answers as for DingTalk.
async fn send(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    body: Result<axum::Json<SendBody>, JsonRejection>,
) -> Result<axum::Json<serde_json::Value>, SandboxError> {
    let axum::Json(body) = body.map_err(|e| SandboxError::BadRequest(e.body_text()))?;
    let roster = (state.roster)();
    let person = roster
        .person(&body.person)
        .ok_or_else(|| SandboxError::UnknownPerson(body.person.clone()))?;
    if body.text.trim().is_empty() {
        return Err(SandboxError::EmptyText);
    }
    let now = state.clock.now();
    let n = state.sent.fetch_add(1, Ordering::Relaxed);
    let msg_id = format!("sandbox-{}-{n}", now.as_millisecond());
    // The host this console was reached on (the guard allowed it), so a 看板 link sent back
    // opens where the browser already is (principle 9).
    let origin = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|v| host_name(v).is_some())
        .map(|v| format!("http://{}", v.trim()));
    let payload = robot_message(person, &msg_id, &body.text, now, origin.as_deref());
    let key = msg_id.clone();
    let inserted = state
        .store
        .write(move |tx| {
            tx.insert_inbox(&NewInbound {
                source: SOURCE,
                message_id: &key,
                received_at: now,
                payload: &payload,
            })
        })
        .await?;
    tracing::info!(msg_id = %msg_id, inbox_id = inserted.id(), "sandbox message stored");
    Ok(axum::Json(json!({ "inbox_id": inserted.id() })))
}

/// The DingTalk robot message (1:1 chat, text) the person would have sent; the sender's
/// `senderStaffId` is their roster id, as DingTalk's would be their staff id.
fn robot_message(
    person: &Person,
    msg_id: &str,
    text: &str,
    now: Timestamp,
    origin: Option<&str>,
) -> String {
    json!({
        "msgtype": "text",
        "text": { "content": text },
        "msgId": msg_id,
        "conversationType": "1",
        "conversationId": format!("sandbox:{}", person.id()),
        "senderStaffId": person.id(),
        "senderNick": person.name,
        "createAt": now.as_millisecond(),
        "robotCode": SOURCE,
        // Not DingTalk's: where the sandbox console was reached, for 看板 links.
        crate::inbox::SANDBOX_ORIGIN_KEY: origin,
    })
    .to_string()
}

/// `POST /sandbox/clock {unit, amount}`: moves the clock forward and wakes the scheduler;
/// returns the new `{clock}`.
async fn move_clock(
    State(state): State<SandboxState>,
    body: Result<axum::Json<MoveBody>, JsonRejection>,
) -> Result<axum::Json<serde_json::Value>, SandboxError> {
    let axum::Json(body) = body.map_err(|e| SandboxError::BadRequest(e.body_text()))?;
    let now = state.clock.now();
    let by = clock::move_by(&state.calendar, now, &body.unit, body.amount)?;
    state.clock.advance_by(by)?;
    state.add_moved(by);
    // Kept, so a restart does not put the clock back behind what was recorded under it.
    if let Err(e) = state.store.write(move |tx| tx.add_sandbox_offset(by)).await {
        tracing::error!(error = %e, "the sandbox clock's offset was not saved");
    }
    // The scheduler sleeps until the next due timer by the old clock; this makes it look again.
    state.clock_moved.send_modify(|n| *n = n.wrapping_add(1));
    tracing::info!(minutes = by.as_mins(), "sandbox clock moved forward");
    Ok(axum::Json(json!({ "clock": clock::status(&state) })))
}
