//! The sandbox console (`/sandbox`, sandbox mode only): a local page that stands in for DingTalk
//! so the whole service can be tried in a browser. It is a transport, not a second
//! implementation: what a person types goes into the inbox exactly like a DingTalk robot message
//! (source `sandbox`), and what the service sends them is read back from the outbox rows on the
//! `sandbox` channel. A card update is a new row with the same card key, shown in place of the
//! earlier one, as DingTalk updates a card.
//!
//! The clock panel moves the service's clock forward (only clocks built to be moved accept it,
//! see [`Clock::advance_by`]) and wakes the scheduler, so reminders, breaches and escalations
//! appear at once.
//!
//! Pages are rendered on the server with every text escaped; the one script and the style sheet
//! are embedded files, and the Content-Security-Policy forbids inline script, so a message that
//! carries markup shows as text. There is no login: the routes exist only in sandbox mode, which
//! refuses to start on a non-loopback address unless `[sandbox] allow_remote` says so
//! ([`crate::settings::sandbox_exposure`]), and every request must name a loopback host or a
//! configured one in its `Host` header, so a page on another site cannot reach the console by
//! pointing its own name at 127.0.0.1 (DNS rebinding). The two POST routes take JSON bodies only,
//! which another site's page cannot send without a CORS preflight this server never grants.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Mutex, watch};

use crate::calendar::Calendar;
use crate::clock::{AdvanceError, Clock};
use crate::dingtalk::inbound::RobotMessage;
use crate::messages::help::is_for;
use crate::parse::command::{Verb, syntax};
use crate::roster::{Person, Role, Roster, RosterInForce, UnitKind};
use crate::store::{InboxRow, NewInbound, OutboxRow, Store, StoreError};

/// The inbox `source` of sandbox messages and the outbox channel of what the sandbox shows.
const SOURCE: &str = "sandbox";
const CHANNEL: &str = "sandbox";

/// The largest message the page may send, in bytes (an application is a few KiB).
const SEND_BODY_LIMIT: usize = 64 * 1024;

/// The longest single move of the clock panel: a year, in minutes. Farther is never needed to
/// watch a deadline and only risks leaving the calendar's loaded years.
const MAX_MOVE_MINUTES: i64 = 366 * 24 * 60;

/// At most this many working days in one move (about a year of them).
const MAX_MOVE_WORKING_DAYS: i64 = 250;

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

/// Refuses (403) a request whose `Host` is neither loopback nor one of `public_hosts`, before
/// anything reads or changes state: a browser that reached us through a name an attacker's DNS
/// points at 127.0.0.1 sends that name.
async fn host_guard(
    State(public_hosts): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    if host_allowed(request.headers(), &public_hosts) {
        next.run(request).await
    } else {
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "禁止访问：沙盒控制台只接受本机地址（127.0.0.1、localhost）或配置的访问地址（[dashboard] base_url）",
        )
            .into_response()
    }
}

/// One `Host` header naming loopback (`127.0.0.1`, `localhost`, `[::1]`, any port) or one of
/// `public_hosts`.
fn host_allowed(headers: &HeaderMap, public_hosts: &[String]) -> bool {
    let mut values = headers.get_all(header::HOST).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Some(host) = value.to_str().ok().and_then(host_name) else {
        return false;
    };
    host == "localhost"
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || public_hosts.contains(&host)
}

/// The host of a `Host` header value (`name`, `name:port`, `[v6]`, `[v6]:port`), normalised;
/// None when it is not of that shape.
fn host_name(value: &str) -> Option<String> {
    let value = value.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || port_suffix(after)) {
            return None;
        }
        inside
    } else {
        match value.split_once(':') {
            Some((name, port)) if port_suffix(&format!(":{port}")) => name,
            Some(_) => return None,
            None => value,
        }
    };
    (!host.is_empty()).then(|| normal_host(host))
}

fn port_suffix(text: &str) -> bool {
    text.strip_prefix(':')
        .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// Lowercase, without IPv6 brackets or a trailing dot, so `Example.GOV.cn.` matches.
fn normal_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
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
        }
    }
}

impl IntoResponse for SandboxError {
    fn into_response(self) -> Response {
        if let SandboxError::Store(e) = &self {
            tracing::error!(error = %e, "sandbox request failed in the store");
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
async fn page(State(state): State<SandboxState>, Query(q): Query<PageQuery>) -> Response {
    let roster = (state.roster)();
    let html = match q.person.as_deref().map(|id| (id, roster.person(id))) {
        None => pick_page(&roster, None),
        Some((id, None)) => pick_page(&roster, Some(id)),
        Some((_, Some(person))) => chat_page(person, &roster),
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
    response
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
    let html = (version != q.v).then(|| {
        let items = log.chats.get(&q.person).map_or(&[][..], |c| &c.items[..]);
        render_chat(items, &state.calendar)
    });
    drop(log);
    Ok(axum::Json(json!({
        "version": version,
        "html": html,
        "clock": clock_status(&state),
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
        SANDBOX_ORIGIN_KEY: origin,
    })
    .to_string()
}

/// The sandbox message field naming the console's origin (`http://host:port`).
pub const SANDBOX_ORIGIN_KEY: &str = "sandboxOrigin";

/// `POST /sandbox/clock {unit, amount}`: moves the clock forward and wakes the scheduler;
/// returns the new `{clock}`.
async fn move_clock(
    State(state): State<SandboxState>,
    body: Result<axum::Json<MoveBody>, JsonRejection>,
) -> Result<axum::Json<serde_json::Value>, SandboxError> {
    let axum::Json(body) = body.map_err(|e| SandboxError::BadRequest(e.body_text()))?;
    let now = state.clock.now();
    let by = move_by(&state.calendar, now, &body.unit, body.amount)?;
    state.clock.advance_by(by)?;
    state.add_moved(by);
    // Kept, so a restart does not put the clock back behind what was recorded under it.
    if let Err(e) = state.store.write(move |tx| tx.add_sandbox_offset(by)).await {
        tracing::error!(error = %e, "the sandbox clock's offset was not saved");
    }
    // The scheduler sleeps until the next due timer by the old clock; this makes it look again.
    state.clock_moved.send_modify(|n| *n = n.wrapping_add(1));
    tracing::info!(minutes = by.as_mins(), "sandbox clock moved forward");
    Ok(axum::Json(json!({ "clock": clock_status(&state) })))
}

/// How far to move the clock from `now` for one panel request. `working_days` goes to the same
/// local time on the n-th working day after today (by the calendar, holidays and make-up days
/// included); `to_working` to the start of the next working period.
fn move_by(
    calendar: &Calendar,
    now: Timestamp,
    unit: &str,
    amount: i64,
) -> Result<SignedDuration, SandboxError> {
    let minutes_per = match unit {
        "minutes" => Some(1),
        "hours" => Some(60),
        "days" => Some(24 * 60),
        _ => None,
    };
    if let Some(per) = minutes_per {
        let minutes = amount.saturating_mul(per);
        if amount <= 0 || minutes > MAX_MOVE_MINUTES {
            return Err(SandboxError::BadRequest(
                "拨动时长须在 1 分钟到 366 天之间".to_string(),
            ));
        }
        return Ok(SignedDuration::from_mins(minutes));
    }
    match unit {
        "working_days" => {
            if !(1..=MAX_MOVE_WORKING_DAYS).contains(&amount) {
                return Err(SandboxError::BadRequest(format!(
                    "工作日数须在 1 到 {MAX_MOVE_WORKING_DAYS} 之间"
                )));
            }
            let n = u32::try_from(amount).map_err(|_| AdvanceError::OutOfRange)?;
            let local = calendar.time_zone().to_datetime(now);
            let due = calendar.add_working_days(local.date(), n).due;
            let target = due
                .to_datetime(local.time())
                .to_zoned(calendar.time_zone().clone())
                .map_err(|_| AdvanceError::OutOfRange)?
                .timestamp();
            Ok(target.duration_since(now))
        }
        "to_working" => {
            let next = calendar.next_working_time(now);
            if next <= now {
                return Err(SandboxError::AlreadyWorking);
            }
            Ok(next.duration_since(now))
        }
        other => Err(SandboxError::BadRequest(format!("未知的时间单位：{other}"))),
    }
}

/// `{now, working, label, moved}` for the clock panel.
fn clock_status(state: &SandboxState) -> serde_json::Value {
    let now = state.clock.now();
    let calendar = &state.calendar;
    let working = calendar.is_working_time(now);
    let label = if working {
        "工作时间".to_string()
    } else {
        match calendar.holiday_on(calendar.local_date(now)) {
            Some(h) => format!("非工作时间（{}）", h.name),
            None => "非工作时间".to_string(),
        }
    };
    let moved = state.moved();
    let moved = if moved.is_zero() {
        "时钟与真实时间一致。".to_string()
    } else {
        format!(
            "已拨快 {}（重启服务也保持；删掉数据库才回到真实时间）。",
            duration_text(moved)
        )
    };
    json!({
        "now": calendar.display(now),
        "working": working,
        "label": label,
        "moved": moved,
    })
}

/// `2 天 3 小时 5 分钟`, whole minutes.
fn duration_text(d: SignedDuration) -> String {
    let minutes = d.as_mins().max(0);
    let (days, hours, mins) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let mut out = Vec::new();
    if days > 0 {
        out.push(format!("{days} 天"));
    }
    if hours > 0 {
        out.push(format!("{hours} 小时"));
    }
    if mins > 0 || out.is_empty() {
        out.push(format!("{mins} 分钟"));
    }
    out.join(" ")
}

// ---- The conversations, read incrementally from the inbox and the outbox ----

/// Every person's sandbox chat, built from the rows read so far.
///
/// Rows are read by ascending id from where the last refresh stopped. This is complete because
/// both tables use SQLite rowids assigned by the one writer, one commit after another, and no
/// row is ever deleted: the committed ids are exactly 1..=max, and a row past the first missing
/// id is not committed yet.
#[derive(Debug, Default)]
struct Log {
    inbox_next: i64,
    outbox_next: i64,
    chats: HashMap<String, Chat>,
}

#[derive(Debug, Default)]
struct Chat {
    items: Vec<Item>,
    /// Card key → index in `items` of the card shown.
    cards: HashMap<String, usize>,
    /// Grows with every change, so a page knows when to redraw.
    changes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    /// When it was said or first sent; cards keep their first place when updated.
    at: Timestamp,
    /// Orders items at the same instant: a message before the replies it caused.
    rank: (u8, i64),
    body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    /// The person's own message to the robot.
    Said(String),
    /// A message from the robot (DingTalk markdown).
    Told(String),
    Card {
        card: SandboxCard,
        /// When the content shown last changed, if after `at`.
        updated: Option<Timestamp>,
    },
}

/// The `sandbox` outbox payload (dispatch's sandbox rows and the outbox's admin notices).
#[derive(Debug, Deserialize)]
struct SandboxPayload {
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    text: String,
    #[serde(default)]
    card: Option<SandboxCard>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct SandboxCard {
    key: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    markdown: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    buttons: Vec<SandboxButton>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct SandboxButton {
    #[serde(default)]
    label: String,
    #[serde(default)]
    command: String,
}

impl Log {
    /// Reads the rows committed since the last refresh.
    async fn refresh(&mut self, store: &Store) -> Result<(), StoreError> {
        let (inbox_from, outbox_from) = (self.inbox_next.max(1), self.outbox_next.max(1));
        let (inbox, outbox) = store
            .read(move |r| -> Result<_, StoreError> {
                let mut inbox = Vec::new();
                while let Some(row) = r.inbox(inbox_from + len(&inbox))? {
                    inbox.push(row);
                }
                let mut outbox = Vec::new();
                while let Some(row) = r.outbox(outbox_from + len(&outbox))? {
                    outbox.push(row);
                }
                Ok((inbox, outbox))
            })
            .await?;
        self.inbox_next = inbox_from + len(&inbox);
        self.outbox_next = outbox_from + len(&outbox);
        for row in &inbox {
            self.add_inbox(row);
        }
        for row in &outbox {
            self.add_outbox(row);
        }
        Ok(())
    }

    fn add_inbox(&mut self, row: &InboxRow) {
        if row.source != SOURCE {
            return;
        }
        let Ok(message) = RobotMessage::from_json(row.payload.as_bytes()) else {
            return;
        };
        let (Some(sender), Some(text)) = (message.sender_staff_id(), message.text()) else {
            return;
        };
        let chat = self.chats.entry(sender.to_string()).or_default();
        chat.items.push(Item {
            at: row.received_at,
            rank: (0, row.id),
            body: Body::Said(text),
        });
        chat.changes += 1;
    }

    fn add_outbox(&mut self, row: &OutboxRow) {
        if row.channel != CHANNEL {
            return;
        }
        let Ok(payload) = serde_json::from_slice::<SandboxPayload>(&row.payload) else {
            tracing::warn!(outbox = row.id, "sandbox row is not a sandbox payload");
            return;
        };
        // A sandbox row is never retried, so its next attempt is the instant it was queued.
        let at = row.next_attempt_at;
        for to in &payload.to {
            let chat = self.chats.entry(to.clone()).or_default();
            chat.changes += 1;
            let Some(card) = payload.card.clone() else {
                chat.items.push(Item {
                    at,
                    rank: (1, row.id),
                    body: Body::Told(payload.text.clone()),
                });
                continue;
            };
            match chat.cards.get(&card.key).copied() {
                Some(i) => {
                    chat.items[i].body = Body::Card {
                        card,
                        updated: Some(at),
                    }
                }
                None => {
                    chat.cards.insert(card.key.clone(), chat.items.len());
                    chat.items.push(Item {
                        at,
                        rank: (1, row.id),
                        body: Body::Card {
                            card,
                            updated: None,
                        },
                    });
                }
            }
        }
    }

    /// `<started>.<changes>`: the start instant makes a page loaded before a restart redraw,
    /// since the counts start over.
    fn version(&self, person: &str, started: Timestamp) -> String {
        let changes = self.chats.get(person).map_or(0, |c| c.changes);
        format!("{}.{changes}", started.as_millisecond())
    }
}

fn len<T>(v: &[T]) -> i64 {
    i64::try_from(v.len()).unwrap_or(i64::MAX)
}

// ---- HTML ----

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A person's page address.
fn person_href(id: &str) -> String {
    format!("/sandbox?as={}", utf8_percent_encode(id, NON_ALPHANUMERIC))
}

fn role_badges(person: &Person) -> String {
    let mut roles = person.roles.clone();
    roles.sort_by_key(|r| role_rank(*r));
    roles
        .iter()
        .map(|r| {
            format!(
                r#"<span class="badge {}">{}</span>"#,
                r.as_str(),
                escape(r.label())
            )
        })
        .collect()
}

/// Hotline roles first: they drive every case; then liaisons, who submit and answer; leaders.
fn role_rank(role: Role) -> u8 {
    match role {
        Role::Inspector => 0,
        Role::Supervisor => 1,
        Role::HotlineHead => 2,
        Role::CitySupervisor => 3,
        Role::Liaison => 4,
        Role::Leader => 5,
        Role::GroupLeader => 6,
        Role::Admin => 7,
    }
}

fn person_rank(person: &Person) -> u8 {
    person
        .roles
        .iter()
        .map(|r| role_rank(*r))
        .min()
        .unwrap_or(u8::MAX)
}

/// The roster grouped by unit: hotline units first, then units with a liaison (they can submit
/// and answer at once), then the rest in roster order; within a unit, people by their most
/// active role. Units without people are left out.
fn roster_groups(roster: &Roster) -> Vec<(String, Vec<&Person>)> {
    let mut units: Vec<String> = roster.units().iter().map(|u| u.name.clone()).collect();
    for p in roster.people() {
        if !units.contains(&p.unit) {
            units.push(p.unit.clone());
        }
    }
    let mut groups: Vec<(u8, usize, String, Vec<&Person>)> = units
        .into_iter()
        .enumerate()
        .filter_map(|(order, unit)| {
            let mut people: Vec<&Person> = roster.people_in_unit(&unit).collect();
            if people.is_empty() {
                return None;
            }
            people.sort_by_key(|p| person_rank(p));
            let hotline = roster
                .unit(&unit)
                .is_some_and(|u| u.kind == UnitKind::Hotline)
                || people
                    .iter()
                    .any(|p| person_rank(p) < role_rank(Role::Liaison));
            let rank = if hotline {
                0
            } else if people.iter().any(|p| p.has_role(Role::Liaison)) {
                1
            } else {
                2
            };
            Some((rank, order, unit, people))
        })
        .collect();
    groups.sort_by_key(|(rank, order, _, _)| (*rank, *order));
    groups
        .into_iter()
        .map(|(_, _, unit, people)| (unit, people))
        .collect()
}

fn head(title: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{}</title>
<link rel="stylesheet" href="/sandbox/app.css">
</head>
"#,
        escape(title)
    )
}

/// The roster to choose from; `unknown` is an id that was asked for but is not in it.
fn pick_page(roster: &Roster, unknown: Option<&str>) -> String {
    let mut units = String::new();
    for (unit, people) in roster_groups(roster) {
        let _ = write!(
            units,
            r#"<section class="unit"><h2>{}</h2><ul>"#,
            escape(&unit)
        );
        for p in people {
            let labels: Vec<&str> = p.roles.iter().map(|r| r.label()).collect();
            let search = format!("{} {} {} {}", p.name, p.unit, p.title, labels.join(" "));
            let _ = write!(
                units,
                r#"<li data-search="{}"><a class="person" href="{}"><b>{}</b>{}<span class="sub">{}</span></a></li>"#,
                escape(&search),
                escape(&person_href(p.id())),
                escape(&p.name),
                role_badges(p),
                escape(&p.title),
            );
        }
        units.push_str("</ul></section>");
    }
    let error = unknown.map_or(String::new(), |id| {
        format!(
            r#"<p class="error">{}</p>"#,
            escape(&SandboxError::UnknownPerson(id.to_string()).to_string())
        )
    });
    format!(
        r#"{head}<body data-page="pick">
<main class="pick">
<h1>调处沙盒 · 选择您的身份</h1>
<p class="intro">沙盒模式：不连接钉钉，消息经过与钉钉完全相同的收件箱、流程、发送队列和卡片代码。选择一位名单中的人，即进入他与“联合调处助手”机器人的单聊；可随时切换身份。</p>
{error}
<input id="search" type="search" placeholder="搜索姓名、单位、职务或角色（如 质检专员、联络员）" autocomplete="off">
{units}
<p id="none" class="empty" hidden>没有找到匹配的人</p>
</main>
<script src="/sandbox/app.js"></script>
</body>
</html>
"#,
        head = head("调处沙盒 · 选择身份"),
    )
}

/// The shortcuts a person's roles call for: the onboarding commands for the hotline head and
/// admins (`启动 名单`, `名单 进度`), and for a unit leader a chooser of the unit's people that
/// sends `设置联络员 姓名` — the sandbox has no DingTalk `@` to pick someone with.
fn role_shortcuts(person: &Person, roster: &Roster) -> String {
    let mut out = String::new();
    for verb in [Verb::StartOnboarding, Verb::OnboardingProgress] {
        if is_for(verb, &person.roles) {
            let word = syntax(verb).word;
            let _ = write!(
                out,
                r#"<button type="button" data-send="{w}">{w}</button>"#,
                w = escape(word)
            );
        }
    }
    if !person.has_role(Role::Leader) {
        return out;
    }
    let options: String = roster
        .people_in_unit(&person.unit)
        .filter(|p| !p.departed && !p.has_role(Role::Leader))
        .map(|p| {
            let mark = if p.has_role(Role::Liaison) {
                "（现联络员）"
            } else {
                ""
            };
            format!(
                r#"<option value="{}">{}{mark}</option>"#,
                escape(&p.name),
                escape(&p.name)
            )
        })
        .collect();
    if options.is_empty() {
        return out;
    }
    let _ = write!(
        out,
        r#"<form id="liaison-chooser" class="chooser"><label>联络员 <select name="name">{options}</select></label><button type="submit">设为联络员</button></form>"#
    );
    out
}

/// One person's chat with the robot; the messages arrive by polling.
fn chat_page(person: &Person, roster: &Roster) -> String {
    let labels: Vec<&str> = person.roles.iter().map(|r| r.label()).collect();
    let shortcuts = role_shortcuts(person, roster);
    format!(
        r#"{head}<body class="chat-page" data-page="chat" data-as="{id}">
<header class="top">
<a class="back" href="/sandbox">‹ 切换身份</a>
<div class="who"><b id="me">{name}</b><span>{unit} · {roles} · 与“联合调处助手”的单聊</span></div>
</header>
<details class="clock" id="clock">
<summary>服务时间 <span id="clock-now">…</span> <span id="clock-working"></span></summary>
<div class="clock-body">
<p id="clock-moved"></p>
<div class="row">
<button type="button" data-advance="hours" data-amount="1">+1 小时</button>
<button type="button" data-advance="working_days" data-amount="1">+1 工作日</button>
<button type="button" id="to-working" data-advance="to_working" data-amount="0" hidden>到下个工作时间</button>
</div>
<form id="clock-custom" class="row">
<label>拨快 <input name="amount" type="number" min="1" value="30"></label>
<select name="unit"><option value="minutes">分钟</option><option value="hours">小时</option><option value="days">天</option><option value="working_days">工作日</option></select>
<button type="submit">确定</button>
</form>
<p class="hint">时钟只能往后拨。拨动后，已到期的提醒、超期和升级通知会立即发出，出现在相关人员的聊天里。</p>
<p id="clock-error" class="error"></p>
</div>
</details>
<main id="chat" class="chat" aria-live="polite"><p class="empty">正在加载…</p></main>
<p class="note">沙盒只模拟与机器人的单聊；群聊（如热线工作群）暂未模拟。</p>
<footer class="composer">
<div class="quick"><button type="button" data-send="模板">模板</button><button type="button" data-send="帮助">帮助</button>{shortcuts}</div>
<form id="composer">
<textarea id="input" rows="2" placeholder="粘贴申请或输入命令（Enter 发送，Shift+Enter 换行）"></textarea>
<button type="submit">发送</button>
</form>
<p id="send-error" class="error"></p>
</footer>
<script src="/sandbox/app.js"></script>
</body>
</html>
"#,
        head = head(&format!("调处沙盒 · {}", person.name)),
        id = escape(person.id()),
        name = escape(&person.name),
        unit = escape(&person.unit),
        roles = escape(&labels.join("、")),
    )
}

/// The chat as HTML, oldest first.
fn render_chat(items: &[Item], calendar: &Calendar) -> String {
    if items.is_empty() {
        return r#"<p class="empty">还没有消息。粘贴一份申请，或点下方“帮助”看看能做什么。</p>"#
            .to_string();
    }
    let mut order: Vec<&Item> = items.iter().collect();
    order.sort_by_key(|i| (i.at, i.rank));
    let mut out = String::new();
    for item in order {
        let when = short_time(item.at, calendar);
        match &item.body {
            Body::Said(text) => {
                let _ = write!(
                    out,
                    r#"<div class="msg me"><div class="meta">我 · {when}</div><div class="bubble">{}</div></div>"#,
                    escape(text)
                );
            }
            Body::Told(text) => {
                let _ = write!(
                    out,
                    r#"<div class="msg bot"><div class="meta">联合调处助手 · {when}</div><div class="bubble md">{}</div></div>"#,
                    markdown(text)
                );
            }
            Body::Card { card, updated } => {
                let updated = updated.map_or(String::new(), |t| {
                    format!(" · 已更新 {}", short_time(t, calendar))
                });
                let _ = write!(
                    out,
                    r#"<div class="msg bot"><div class="meta">联合调处助手 · {when} · 卡片{updated}</div>{}</div>"#,
                    render_card(card)
                );
            }
        }
    }
    out
}

fn render_card(card: &SandboxCard) -> String {
    let buttons: String = card
        .buttons
        .iter()
        .map(|b| {
            format!(
                r#"<button type="button" class="card-btn" data-cmd="{}" data-fill="{}">{}</button>"#,
                escape(&b.command),
                u8::from(needs_arguments(&b.command)),
                escape(&b.label)
            )
        })
        .collect();
    format!(
        r#"<div class="card"><div class="card-title">{}</div><div class="card-body md">{}</div><div class="card-status">{}</div><div class="card-buttons">{buttons}</div></div>"#,
        escape(&card.title),
        markdown(&card.markdown),
        escape(&card.status),
    )
}

/// Whether a button's command has parts the person must write (`接受 DH… 联系人：姓名 …`):
/// anything after the command word and the ticket number. Such a command goes to the input box;
/// a bare `审核 DH…` is sent at once.
fn needs_arguments(command: &str) -> bool {
    command.split_whitespace().count() > 2
}

/// `11-02 09:05` in the calendar's zone.
fn short_time(t: Timestamp, calendar: &Calendar) -> String {
    calendar
        .time_zone()
        .to_datetime(t)
        .strftime("%m-%d %H:%M")
        .to_string()
}

/// The DingTalk markdown the service writes, as HTML: `#` headings, `- ` items, `> ` quotes,
/// `**bold**` and `` `code` ``; every line its own line, as DingTalk shows them. Text is escaped
/// before any tag is added. Code spans are commands: tapping one puts it in the input box.
fn markdown(text: &str) -> String {
    let mut out = String::new();
    let mut gap = false;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            gap = !out.is_empty();
            continue;
        }
        if gap {
            out.push_str(r#"<div class="gap"></div>"#);
            gap = false;
        }
        let heading = line.trim_start_matches('#');
        let (class, content) = if heading.len() < line.len() && heading.starts_with(' ') {
            ("h", heading.trim_start())
        } else if let Some(rest) = line.strip_prefix("- ") {
            ("li", rest)
        } else if let Some(rest) = line.strip_prefix("> ").or(line.strip_prefix('>')) {
            ("q", rest)
        } else {
            ("t", line)
        };
        let _ = write!(out, r#"<div class="{class}">{}</div>"#, inline(content));
    }
    out
}

/// `**bold**` and `` `code` `` inside one line; an unpaired marker stays as written. The escapes
/// the service writes around people's text (a backslash before punctuation, `&lt;`, `&amp;`, …)
/// show as the character they stand for, never as a marker; links and HTML are not rendered at
/// all, so everything is HTML-escaped on the way out.
fn inline(line: &str) -> String {
    let pieces = pieces(line);
    let mut out = String::new();
    let mut i = 0;
    while i < pieces.len() {
        if let Piece::Bold = pieces[i] {
            let close = pieces[i + 1..]
                .iter()
                .position(|p| matches!(p, Piece::Bold))
                .filter(|&n| n > 0);
            if let Some(n) = close {
                out.push_str("<strong>");
                for p in &pieces[i + 1..=i + n] {
                    render_piece(&mut out, p);
                }
                out.push_str("</strong>");
                i += n + 2;
                continue;
            }
        }
        render_piece(&mut out, &pieces[i]);
        i += 1;
    }
    out
}

/// One piece of a line: text as it shows, a command in a code span, or a `**`.
enum Piece {
    Text(String),
    Code(String),
    Bold,
}

fn render_piece(out: &mut String, piece: &Piece) {
    match piece {
        Piece::Text(text) => out.push_str(&escape(text)),
        Piece::Code(command) => {
            let _ = write!(
                out,
                r#"<code class="cmd" data-cmd="{0}">{0}</code>"#,
                escape(command)
            );
        }
        // An unpaired marker stays as written.
        Piece::Bold => out.push_str("**"),
    }
}

fn pieces(line: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = line;
    let flush = |text: &mut String, pieces: &mut Vec<Piece>| {
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(text)));
        }
    };
    while let Some(c) = rest.chars().next() {
        if c == '\\'
            && let Some(n) = rest[1..].chars().next().filter(char::is_ascii_punctuation)
        {
            text.push(n);
            rest = &rest[1 + n.len_utf8()..];
        } else if let Some((decoded, len)) = entity(rest) {
            text.push(decoded);
            rest = &rest[len..];
        } else if let Some(end) = (c == '`')
            .then(|| rest[1..].find('`'))
            .flatten()
            .filter(|&e| e > 0)
        {
            flush(&mut text, &mut pieces);
            pieces.push(Piece::Code(rest[1..=end].to_string()));
            rest = &rest[end + 2..];
        } else if let Some(after) = rest.strip_prefix("**") {
            flush(&mut text, &mut pieces);
            pieces.push(Piece::Bold);
            rest = after;
        } else {
            text.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    flush(&mut text, &mut pieces);
    pieces
}

/// The character an HTML entity at the start of `text` stands for, and the entity's length.
fn entity(text: &str) -> Option<(char, usize)> {
    let body = text.strip_prefix('&')?;
    let end = body.find(';').filter(|&e| e <= 8)?;
    let name = &body[..end];
    let c = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code).filter(|c| *c != '\0')?
        }
    };
    Some((c, end + 2))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::calendar::WorkingHours;

    fn calendar() -> Calendar {
        Calendar::load_dir(Path::new("config/calendar"), WorkingHours::default()).expect("calendar")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    #[test]
    fn escape_neutralises_markup_in_text_and_attributes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn markdown_renders_the_services_subset_and_escapes_everything_else() {
        let html = markdown(
            "#### 申请已登记\n\n案件 **TC-2026-0001**\n\n- 工单标题：<img src=x onerror=alert(1)>\n> 引用\n查看：`查询 DH2026110300017`",
        );
        assert_eq!(
            html,
            concat!(
                r#"<div class="h">申请已登记</div><div class="gap"></div>"#,
                r#"<div class="t">案件 <strong>TC-2026-0001</strong></div><div class="gap"></div>"#,
                r#"<div class="li">工单标题：&lt;img src=x onerror=alert(1)&gt;</div>"#,
                r#"<div class="q">引用</div>"#,
                r#"<div class="t">查看：<code class="cmd" data-cmd="查询 DH2026110300017">查询 DH2026110300017</code></div>"#,
            )
        );
    }

    #[test]
    fn peoples_text_shows_as_written_and_never_as_a_link_or_tag() {
        let hostile = "# [点我](dtmd://dingtalkclient/sendMessage?content=x) ![](http://t.example/p.gif) <a href=\"http://x\">a</a> **粗** `码` &lt; \\";
        let written = crate::messages::escape::md_text(hostile);
        let html = markdown(&format!("- 异议理由：{written}\n> {written}"));
        assert!(
            !html.contains("<a")
                && !html.contains("<img")
                && !html.contains("<strong")
                && !html.contains("<code"),
            "{html}"
        );
        let shown = escape(hostile);
        assert_eq!(
            html,
            format!(r#"<div class="li">异议理由：{shown}</div><div class="q">{shown}</div>"#)
        );
        // Even written by hand, a link or an image is not rendered as one.
        assert_eq!(
            inline("[a](http://x) ![](http://y)"),
            "[a](http://x) ![](http://y)"
        );
    }

    #[test]
    fn unpaired_markers_stay_as_text() {
        assert_eq!(inline("a ** b"), "a ** b");
        assert_eq!(inline("`<b>"), "`&lt;b&gt;");
        assert_eq!(inline("**x** and **"), "<strong>x</strong> and **");
        assert_eq!(
            inline("x `\"` y"),
            r#"x <code class="cmd" data-cmd="&quot;">&quot;</code> y"#
        );
    }

    #[test]
    fn commands_with_parts_to_write_go_to_the_input_box() {
        assert!(!needs_arguments("审核 DH2026110300017"));
        assert!(needs_arguments(
            "接受 DH2026110300017 联系人：姓名 职务：职务 电话：手机号 协助：现场核查、政策解释"
        ));
        assert!(needs_arguments(
            "联合 DH2026110300017 区住建局：协同方向及重点"
        ));
        assert!(needs_arguments("异议 DH2026110300017 异议理由"));
    }

    #[test]
    fn a_card_escapes_its_buttons_and_marks_which_need_writing() {
        let card = SandboxCard {
            key: "case:1:review".into(),
            title: "联合调处申请 <DH1>".into(),
            markdown: "- x".into(),
            status: "孟艳秋 开始审核".into(),
            buttons: vec![
                SandboxButton {
                    label: "开始审核".into(),
                    command: "审核 DH1".into(),
                },
                SandboxButton {
                    label: "接受\"协办\"".into(),
                    command: "接受 DH1 联系人：姓名".into(),
                },
            ],
        };
        let html = render_card(&card);
        assert!(html.contains("联合调处申请 &lt;DH1&gt;"), "{html}");
        assert!(
            html.contains(r#"data-cmd="审核 DH1" data-fill="0">开始审核</button>"#),
            "{html}"
        );
        assert!(
            html.contains(
                r#"data-cmd="接受 DH1 联系人：姓名" data-fill="1">接受&quot;协办&quot;</button>"#
            ),
            "{html}"
        );
    }

    #[test]
    fn a_card_update_replaces_the_card_in_place() {
        let mut log = Log::default();
        let row = |id: i64, ms: i64, payload: serde_json::Value| OutboxRow {
            id,
            idem_key: format!("k{id}"),
            channel: CHANNEL.into(),
            target: "a".into(),
            payload: payload.to_string().into_bytes(),
            state: crate::store::OutboxState::Sent,
            attempts: 1,
            next_attempt_at: Timestamp::from_millisecond(ms).expect("ms"),
            lease_until: None,
            last_error: None,
            sent_at: None,
            response: None,
            dead_at: None,
        };
        let card = |status: &str| json!({"to": ["a"], "title": "t", "text": "x", "card": {"key": "c1", "title": "卡片", "markdown": "m", "status": status, "buttons": []}});
        log.add_outbox(&row(1, 1_000, card("")));
        log.add_outbox(&row(
            2,
            2_000,
            json!({"to": ["a", "b"], "title": "t", "text": "通知", "card": null}),
        ));
        log.add_outbox(&row(3, 3_000, card("已审核")));
        let a = &log.chats["a"];
        assert_eq!(a.items.len(), 2, "the update took the card's place");
        assert_eq!(a.changes, 3);
        match &a.items[0].body {
            Body::Card { card, updated } => {
                assert_eq!(card.status, "已审核");
                assert_eq!(updated.map(|t| t.as_millisecond()), Some(3_000));
            }
            other => panic!("expected the card first: {other:?}"),
        }
        assert_eq!(a.items[0].at.as_millisecond(), 1_000);
        assert_eq!(
            log.chats["b"].items.len(),
            1,
            "a notice reaches everyone in `to`"
        );
        let mut other = row(4, 4_000, card("z"));
        other.channel = "robot_batch".into();
        log.add_outbox(&other);
        assert_eq!(
            log.chats["a"].changes, 3,
            "other channels are not the sandbox's"
        );
    }

    #[test]
    fn a_working_day_moves_to_the_same_time_on_the_next_working_day() {
        let cal = calendar();
        // Friday 2026-10-09 10:00 (a make-up working day follows on Saturday 10-10).
        let now = at("2026-10-09T10:00:00+08:00");
        let by = move_by(&cal, now, "working_days", 1).expect("move");
        assert_eq!(now + by, at("2026-10-10T10:00:00+08:00"));
        // Before the National Day holiday (10-01 to 10-07): from 09-30 the next is 10-08.
        let now = at("2026-09-30T16:20:00+08:00");
        let by = move_by(&cal, now, "working_days", 1).expect("move");
        assert_eq!(now + by, at("2026-10-08T16:20:00+08:00"));
        assert!(cal.is_working_time(now + by));
    }

    #[test]
    fn plain_moves_and_the_jump_to_working_time() {
        let cal = calendar();
        let saturday_night = at("2026-11-07T22:00:00+08:00");
        assert_eq!(
            move_by(&cal, saturday_night, "hours", 2).expect("move"),
            SignedDuration::from_hours(2)
        );
        let by = move_by(&cal, saturday_night, "to_working", 0).expect("move");
        assert_eq!(saturday_night + by, at("2026-11-09T08:30:00+08:00"));
        let monday = at("2026-11-09T09:00:00+08:00");
        assert!(matches!(
            move_by(&cal, monday, "to_working", 0),
            Err(SandboxError::AlreadyWorking)
        ));
        for (unit, amount) in [("hours", 0), ("minutes", -5), ("days", 367), ("weeks", 1)] {
            assert!(
                matches!(
                    move_by(&cal, monday, unit, amount),
                    Err(SandboxError::BadRequest(_))
                ),
                "{unit} {amount}"
            );
        }
        assert!(move_by(&cal, monday, "working_days", 251).is_err());
    }

    #[test]
    fn durations_read_in_days_hours_and_minutes() {
        assert_eq!(duration_text(SignedDuration::from_mins(0)), "0 分钟");
        assert_eq!(
            duration_text(SignedDuration::from_mins(61)),
            "1 小时 1 分钟"
        );
        assert_eq!(
            duration_text(SignedDuration::from_mins(1440 * 2 + 180)),
            "2 天 3 小时"
        );
    }

    #[test]
    fn the_roster_lists_hotline_staff_first_then_units_with_liaisons() {
        let shipped = Roster::load(Path::new("config/roster.toml")).expect("roster");
        let mut people = shipped.people().to_vec();
        people.push(Person::new(
            "赵联络",
            "区住建局",
            "股长",
            vec![Role::Liaison],
            "zj-liaison",
            "",
        ));
        let roster = Roster::from_parts(shipped.units().to_vec(), people);
        let groups = roster_groups(&roster);
        assert_eq!(groups[0].0, "区12345热线");
        assert_eq!(groups[0].1[0].name, "孟艳秋", "inspectors before the head");
        let zj = groups
            .iter()
            .position(|(u, _)| u == "区住建局")
            .expect("区住建局 listed");
        assert!(
            groups[1..zj].iter().all(|(u, _)| u.contains("热线")),
            "only hotline units before the unit with a liaison: {:?}",
            groups.iter().map(|(u, _)| u).collect::<Vec<_>>()
        );
        assert_eq!(
            groups[zj].1[0].name, "赵联络",
            "the liaison before the leader"
        );
        let listed: usize = groups.iter().map(|(_, p)| p.len()).sum();
        assert_eq!(listed, roster.people().len(), "everyone is listed once");
    }

    #[test]
    fn pages_escape_names_and_encode_ids_in_links() {
        let roster = Roster::from_parts(
            Vec::new(),
            vec![Person::new(
                "<b>某</b>",
                "区\"测试\"局",
                "科员",
                vec![Role::Liaison],
                "",
                "",
            )],
        );
        let html = pick_page(&roster, Some("<x>"));
        assert!(!html.contains("<b>某"), "{html}");
        assert!(html.contains("&lt;b&gt;某&lt;/b&gt;"));
        assert!(html.contains("名单中没有此人（&lt;x&gt;）"));
        assert!(
            html.contains(r#"href="/sandbox?as=local%3A%E5%8C%BA%22"#),
            "the id is percent-encoded: {html}"
        );
        let chat = chat_page(&roster.people()[0], &roster);
        assert!(chat.contains(r#"data-as="local:区&quot;测试&quot;局:&lt;b&gt;某&lt;/b&gt;""#));
        assert!(!chat.contains("<script>"), "no inline script");
    }

    #[test]
    fn leaders_choose_a_liaison_and_the_head_has_the_onboarding_shortcuts() {
        let unit = "区\"测试\"局";
        let roster = Roster::from_parts(
            vec![],
            vec![
                Person::new("领导", unit, "", vec![Role::Leader], "", ""),
                Person::new("<b>某</b>", unit, "", vec![], "", ""),
                Person::new("联络", unit, "", vec![Role::Liaison], "", ""),
                Person::new("主任", "区12345热线", "", vec![Role::HotlineHead], "", ""),
            ],
        );
        let leader = chat_page(&roster.people()[0], &roster);
        assert!(leader.contains(r#"id="liaison-chooser""#), "{leader}");
        assert!(
            leader.contains(
                r#"<option value="&lt;b&gt;某&lt;/b&gt;">&lt;b&gt;某&lt;/b&gt;</option>"#
            ),
            "names are escaped: {leader}"
        );
        assert!(leader.contains("联络（现联络员）"), "{leader}");
        assert!(
            !leader.contains(r#"<option value="领导""#),
            "not the leader themself"
        );
        assert!(!leader.contains("启动 名单"), "{leader}");
        let head = chat_page(&roster.people()[3], &roster);
        assert!(head.contains(r#"data-send="启动 名单""#), "{head}");
        assert!(head.contains(r#"data-send="名单 进度""#), "{head}");
        assert!(!head.contains("liaison-chooser"), "{head}");
    }

    #[test]
    fn the_host_header_must_name_loopback_or_a_configured_host() {
        let allowed = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(header::HOST, HeaderValue::from_str(v).expect("value"));
            }
            host_allowed(&headers, &["tiaochu.example.gov.cn".to_string()])
        };
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "[::1]",
            "tiaochu.example.gov.cn",
            "Tiaochu.Example.gov.cn.:443",
        ] {
            assert!(allowed(&[ok]), "{ok} is allowed");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "127.0.0.1:80:80",
            "[::1]x",
            "10.0.0.5:8080",
            "",
        ] {
            assert!(!allowed(&[refused]), "{refused} is refused");
        }
        assert!(!allowed(&[]), "no Host at all");
        assert!(!allowed(&["127.0.0.1", "evil.example"]), "two Host headers");
    }
}
