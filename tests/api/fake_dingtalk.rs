//! A fake DingTalk OpenAPI server (axum on 127.0.0.1:0) for the outbound tests: token,
//! batchSend, groupSend, sessionWebhook, createAndDeliver, card update and the signed custom
//! robot (docs/dingtalk-protocol.md §3–§6). It is as strict as the reference — nested JSON
//! strings, string-only cardParamMap, ≤ 20 users, signed custom-robot URLs, the token header —
//! and answers a malformed request with a DingTalk-style error AND records a violation, which
//! tests assert is empty. It records every request and every delivery (by the `[#key]` marker
//! in the text, or by outTrackId), so exactly-once can be counted, and injects faults: 5xx,
//! throttling codes, 429 with Retry-After, slow answers past the client timeout (accepted or
//! not), expired tokens, flow-controlled and invalid staff ids. With
//! [`FakeDingtalk::enforce_waits`] it also checks that the client waits as long as each
//! throttling answer asked before repeating the request (or, for the custom robot, before any
//! send).
//!
//! Time is the test's [`ManualClock`]: token expiry, the custom robot's 20-a-minute window, the
//! waits and the signature window all read it.
//!
//! For going live it also serves the read-only calls (`roster sync`, `check-config --online`):
//! an address book — `contact/users/search` (new API, token header) and `topapi/v2/user/get`,
//! `topapi/v2/department/get` (old API, `?access_token=`) — the robot query
//! `robot/plugins/query` and the undelivered card create `POST /v1.0/card/instances`. Any of
//! their permissions can be withheld ([`FakeDingtalk::deny_permission`]); the refusal has
//! DingTalk's shape: HTTP 403 `Forbidden.AccessDenied.AccessTokenPermissionDenied` on the new
//! API, `errcode` 88 with `subcode=60011` and `requiredScopes` on the old one (a captured live
//! answer's text).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tiaochu::clock::{Clock, ManualClock};
use tiaochu::dingtalk::sign::custom_robot_sign;
use tiaochu::settings::{DingtalkMode, DingtalkSettings, Secret};

pub const APP_KEY: &str = "dingfakeappkey";
pub const APP_SECRET: &str = "fake-app-secret";
pub const ROBOT_CODE: &str = "dingfakerobot";
pub const TEMPLATE_ID: &str = "11111111-2222-3333-4444-555555555555.schema";
pub const HOOK_TOKEN: &str = "fake-hook-token";
pub const HOOK_SECRET: &str = "SECfakehooksecret0123456789";
/// The organisation's root department (always `dept_id` 1) and its name.
pub const ROOT_DEPT: i64 = 1;
pub const ORG_NAME: &str = "甘州区";

/// Throttling errcodes the webhooks (custom robot, sessionWebhook, both on oapi) answer in an
/// HTTP 200 body: the robot's 20-a-minute codes (§5.3) and the old API's QPS codes (§7).
pub const WEBHOOK_THROTTLE_ERRCODES: [i64; 5] = [130101, 410100, 90002, 90018, 90019];

/// New-API throttling answers (HTTP status, code): the per-app QPS limit (§7) and the codes
/// clients treat as robot-send rate limits (§4.3, [R]; the status is not documented, 400 is
/// what the other invalid-request codes use). The robot-send codes only on the robot send
/// routes.
pub const API_THROTTLES: [(u16, &str); 5] = [
    (403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"),
    (400, "send.too.fast"),
    (400, "too.many.group"),
    (400, "too.many.people"),
    (400, "send.byToken.tooFast"),
];

/// A fault the fake answers instead of doing the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// This HTTP status with an error body (500, 503, …).
    Status(u16),
    /// The route's throttling answer: 130101/410100 for webhooks, a QPS-limit code for the API.
    Throttle,
    /// This throttling errcode in an HTTP 200 body (webhook routes; see
    /// [`WEBHOOK_THROTTLE_ERRCODES`]).
    Errcode(i64),
    /// A new-API throttling answer (see [`API_THROTTLES`]).
    ApiThrottle { status: u16, code: &'static str },
    /// 429 with `Retry-After: <secs>`.
    TooMany { retry_after: u64 },
    /// Waits past the client timeout, then answers 503 without delivering.
    Slow,
    /// Does the work, then answers past the client timeout: accepted, but the answer is lost.
    /// A card create's retry meets its own outTrackId (§7: a duplicate create fails), so the
    /// card is not delivered twice. batchSend, group send, sessionWebhook and the custom robot
    /// carry no id DingTalk could match a retry by (§4.1, §4.2, §5.2), so their retry delivers
    /// again; such deliveries have [`Delivery::acked`] false.
    SlowAfterDeliver,
}

impl Fault {
    /// The shortest wait the reference asks of the client after this answer on `route`, before
    /// the same request (and, for the custom robot, any send) may come again: Retry-After for
    /// 429, ≥ 60 s for the robot's 20-a-minute codes (§5.3), ≥ 1 s for QPS limits (§7). None
    /// for answers that ask no wait.
    pub fn asked_wait(&self, route: &str) -> Option<SignedDuration> {
        let secs = match *self {
            Fault::TooMany { retry_after } => i64::try_from(retry_after).unwrap_or(i64::MAX),
            Fault::Throttle if matches!(route, "custom_robot" | "session_reply") => 60,
            Fault::Errcode(130101 | 410100) => 60,
            Fault::Throttle | Fault::Errcode(_) | Fault::ApiThrottle { .. } => 1,
            Fault::Status(_) | Fault::Slow | Fault::SlowAfterDeliver => return None,
        };
        Some(SignedDuration::from_secs(secs))
    }
}

/// One message that reached a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub route: &'static str,
    /// The `[#key]` marker of the text, or the card's outTrackId.
    pub key: String,
    /// The user (batchSend), the card's space id, or None for group messages.
    pub user: Option<String>,
    pub at: Timestamp,
    /// The message text as DingTalk would show it (title + text, or content).
    pub text: String,
    /// [`request_ident`] of the request that delivered it.
    pub ident: u64,
    /// False when the client never saw the answer ([`Fault::SlowAfterDeliver`]).
    pub acked: bool,
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub route: &'static str,
    /// 0 when the fake deliberately answered too late for the client.
    pub status: u16,
    /// The fault injected into this answer, if any.
    pub fault: Option<Fault>,
    /// [`request_ident`] of the request body.
    pub ident: u64,
    /// When it arrived (the test's clock).
    pub at: Timestamp,
}

/// Identifies a request by its body (FNV-1a 64): a retried outbox row sends the same bytes, so
/// the fake can tell a retry from a new message.
pub fn request_ident(body: &[u8]) -> u64 {
    body.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64: one well-mixed value per input, so each draw depends only on what is hashed in.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, Timestamp>,
    token_calls: usize,
    token_delay: Duration,
    requests: Vec<Seen>,
    violations: Vec<String>,
    deliveries: Vec<Delivery>,
    fail_next: VecDeque<Fault>,
    /// Faults for the next token fetches (the token route takes no other queued fault).
    fail_next_token: VecDeque<Fault>,
    fail_p: f64,
    seed: u64,
    /// How often each request body was drawn for, so a retry draws afresh.
    drawn: HashMap<u64, u64>,
    draws: usize,
    slow: Duration,
    flow_control_once: HashSet<String>,
    invalid: HashSet<String>,
    bad_groups: HashSet<String>,
    undeliverable: HashSet<String>,
    cards: HashSet<String>,
    robot_sends: Vec<Timestamp>,
    seq: u64,
    enforce_waits: bool,
    /// Request ident → (when throttled, not again before).
    owed: HashMap<u64, (Timestamp, Timestamp)>,
    /// Each time the custom robot was throttled: no send after .0 and before .1.
    robot_blocked: Vec<(Timestamp, Timestamp)>,
    waits_asked: usize,
    /// The address book: members by userId order of adding, departments by id.
    members: Vec<Member>,
    departments: HashMap<i64, (String, Option<i64>)>,
    /// Permissions the app has not been granted (scope names).
    denied: HashSet<String>,
    /// Card templates published in this organisation.
    templates: HashSet<String>,
    /// outTrackIds of cards created without a space (delivered to nobody).
    undelivered: Vec<String>,
}

/// A member of the fake organisation's address book.
#[derive(Debug, Clone)]
struct Member {
    user_id: String,
    name: String,
    title: String,
    dept_ids: Vec<i64>,
}

impl Inner {
    fn fault(&mut self, route: &'static str, ident: u64) -> Option<Fault> {
        if let Some(f) = self.fail_next.pop_front() {
            return Some(f);
        }
        self.random_fault(route, ident)
    }

    /// Fails with probability `fail_p`, from a value that depends only on the seed, the
    /// request body and how many times that body came before — not on the order concurrent
    /// requests arrive in. Six kinds, one sixth each.
    fn random_fault(&mut self, route: &'static str, ident: u64) -> Option<Fault> {
        if self.fail_p <= 0.0 {
            return None;
        }
        let nth = self.drawn.entry(ident).or_insert(0);
        let n = *nth;
        *nth += 1;
        self.draws += 1;
        let r = mix(self.seed ^ mix(ident ^ mix(n)));
        let u = (r >> 11) as f64 / (1u64 << 53) as f64;
        if u >= self.fail_p {
            return None;
        }
        let pick = mix(r);
        let choose = (pick >> 8) as usize;
        Some(match pick % 6 {
            0 => Fault::Status(500),
            1 => Fault::Status(503),
            2 if matches!(route, "custom_robot" | "session_reply") => {
                Fault::Errcode(WEBHOOK_THROTTLE_ERRCODES[choose % WEBHOOK_THROTTLE_ERRCODES.len()])
            }
            2 => {
                let robot_send = matches!(route, "batch_send" | "group_send");
                let (status, code) = if robot_send {
                    API_THROTTLES[choose % API_THROTTLES.len()]
                } else {
                    API_THROTTLES[0]
                };
                Fault::ApiThrottle { status, code }
            }
            3 => Fault::TooMany {
                retry_after: 1 + (choose % 20) as u64,
            },
            4 => Fault::Slow,
            _ => Fault::SlowAfterDeliver,
        })
    }
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    clock: Arc<ManualClock>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running fake; dropping it stops the server.
pub struct FakeDingtalk {
    pub base: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDingtalk {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeDingtalk {
    /// Starts the fake on a free port, on the time of `clock`.
    pub async fn start(clock: Arc<ManualClock>) -> FakeDingtalk {
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner {
                slow: Duration::from_millis(1000),
                departments: HashMap::from([(ROOT_DEPT, (ORG_NAME.to_string(), None))]),
                templates: HashSet::from([TEMPLATE_ID.to_string()]),
                ..Inner::default()
            })),
            clock,
        };
        let app = Router::new()
            .route("/v1.0/oauth2/accessToken", post(token))
            .route("/v1.0/robot/oToMessages/batchSend", post(batch_send))
            .route("/v1.0/robot/groupMessages/send", post(group_send))
            .route("/v1.0/card/instances/createAndDeliver", post(card_create))
            .route("/v1.0/card/instances", put(card_update).post(card_instance))
            .route("/v1.0/contact/users/search", post(contact_search))
            .route("/topapi/v2/user/get", post(user_get))
            .route("/topapi/v2/department/get", post(department_get))
            .route("/v1.0/robot/plugins/query", post(robot_query))
            .route("/robot/sendBySession", post(session_reply))
            .route("/robot/send", post(custom_robot))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake serves");
        });
        FakeDingtalk { base, shared, task }
    }

    /// `[dingtalk]` settings pointing at this fake (api and oapi on the same base).
    pub fn settings(&self) -> DingtalkSettings {
        DingtalkSettings {
            mode: DingtalkMode::Stream,
            api_base: self.base.clone(),
            oapi_base: self.base.clone(),
            app_key: APP_KEY.into(),
            app_secret: Secret::new(APP_SECRET),
            robot_code: ROBOT_CODE.into(),
            card_template_id: TEMPLATE_ID.into(),
            card_callback_route_key: String::new(),
            group_webhook: Secret::new(format!(
                "{}/robot/send?access_token={HOOK_TOKEN}",
                self.base
            )),
            group_secret: Secret::new(HOOK_SECRET),
            callback_aes_key: Secret::default(),
        }
    }

    /// A sessionWebhook URL this fake accepts.
    pub fn session_url(&self, session: &str) -> String {
        format!("{}/robot/sendBySession?session={session}", self.base)
    }

    /// Moves the fake's clock (signatures and token expiry are checked against it) with the
    /// service's.
    pub fn set_now(&self, at: Timestamp) {
        self.shared.clock.set(at);
    }

    pub fn token_calls(&self) -> usize {
        self.shared.lock().token_calls
    }
    /// Makes the token endpoint slow, so concurrent fetches would overlap without single flight.
    pub fn set_token_delay(&self, d: Duration) {
        self.shared.lock().token_delay = d;
    }
    /// Every token issued so far stops working (as after a secret reset).
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.clear();
    }
    pub fn fail_next(&self, faults: &[Fault]) {
        self.shared.lock().fail_next.extend(faults.iter().copied());
    }
    /// Fails the next token fetches with `faults`, in order.
    pub fn fail_next_token(&self, faults: &[Fault]) {
        self.shared
            .lock()
            .fail_next_token
            .extend(faults.iter().copied());
    }
    /// Fails every answer — token included — with probability `p`: HTTP 500, 503, a
    /// throttling code of the route ([`WEBHOOK_THROTTLE_ERRCODES`], [`API_THROTTLES`]), 429
    /// with Retry-After 1–20 s, slow and not accepted, slow but accepted; one sixth each. Each
    /// draw depends only on `seed`, the request body and how often that body came before, so
    /// a run's faults do not depend on the order concurrent requests arrive in.
    pub fn fail_fraction(&self, p: f64, seed: u64) {
        let mut s = self.shared.lock();
        s.fail_p = p;
        s.seed = seed;
    }
    /// How many answers were drawn for by [`FakeDingtalk::fail_fraction`].
    pub fn fault_draws(&self) -> usize {
        self.shared.lock().draws
    }
    /// From now on a request that repeats a throttled one before the wait its answer asked
    /// ([`Fault::asked_wait`]) is a violation, and so is any custom-robot send after a throttled
    /// custom-robot answer and before its wait ends (sends started at the same instant were
    /// already under way). Token fetches are exempt: they are no outbox row.
    pub fn enforce_waits(&self) {
        self.shared.lock().enforce_waits = true;
    }
    /// How many throttling answers asked for a wait while [`FakeDingtalk::enforce_waits`] was on.
    pub fn waits_asked(&self) -> usize {
        self.shared.lock().waits_asked
    }
    /// How long a slow answer takes (must exceed the client's timeout).
    pub fn set_slow(&self, d: Duration) {
        self.shared.lock().slow = d;
    }
    /// These users are flow-controlled on their next batchSend (once each).
    pub fn flow_control_once(&self, users: &[&str]) {
        self.shared
            .lock()
            .flow_control_once
            .extend(users.iter().map(|u| u.to_string()));
    }
    /// These users are never reachable (`invalidStaffIdList`).
    pub fn invalid_users(&self, users: &[&str]) {
        self.shared
            .lock()
            .invalid
            .extend(users.iter().map(|u| u.to_string()));
    }
    /// Group sends to these conversations fail permanently (robot not in the group).
    pub fn bad_groups(&self, cids: &[&str]) {
        self.shared
            .lock()
            .bad_groups
            .extend(cids.iter().map(|u| u.to_string()));
    }
    /// Card deliveries to these space ids fail in `deliverResults`.
    pub fn undeliverable(&self, space_ids: &[&str]) {
        self.shared
            .lock()
            .undeliverable
            .extend(space_ids.iter().map(|u| u.to_string()));
    }
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.lock().requests.clone()
    }
    /// Every custom-robot request's arrival time.
    pub fn robot_sends(&self) -> Vec<Timestamp> {
        self.shared.lock().robot_sends.clone()
    }
    /// Adds a department of the address book under `parent` (the root is [`ROOT_DEPT`]).
    pub fn add_department(&self, dept_id: i64, name: &str, parent: i64) {
        self.shared
            .lock()
            .departments
            .insert(dept_id, (name.to_string(), Some(parent)));
    }
    /// Adds a member of the organisation sitting in `dept_ids`.
    pub fn add_member(&self, user_id: &str, name: &str, title: &str, dept_ids: &[i64]) {
        self.shared.lock().members.push(Member {
            user_id: user_id.to_string(),
            name: name.to_string(),
            title: title.to_string(),
            dept_ids: dept_ids.to_vec(),
        });
    }
    /// The app lacks this permission from now on (e.g. `qyapi_get_member`).
    pub fn deny_permission(&self, scope: &str) {
        self.shared.lock().denied.insert(scope.to_string());
    }
    /// The outTrackIds of cards created without delivering them to anyone.
    pub fn undelivered_cards(&self) -> Vec<String> {
        self.shared.lock().undelivered.clone()
    }
}

// ---- answers ----

fn api_error(status: u16, code: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({"code": code, "message": message, "requestid": "fake-req"})),
    )
        .into_response()
}

fn errcode(code: i64, msg: &str) -> Response {
    axum::Json(json!({"errcode": code, "errmsg": msg})).into_response()
}

fn ok_json(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// One request being answered: its route, which request it is, and whether its answer will
/// be lost.
struct Req {
    shared: Shared,
    route: &'static str,
    ident: u64,
    /// The work is done but the answer comes after the client gave up
    /// ([`Fault::SlowAfterDeliver`]).
    lost: bool,
}

impl Req {
    fn new(shared: &Shared, route: &'static str, body: &[u8]) -> Req {
        Req {
            shared: shared.clone(),
            route,
            ident: request_ident(body),
            lost: false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    fn push_seen(&self, status: u16, fault: Option<Fault>) {
        let seen = Seen {
            route: self.route,
            status,
            fault,
            ident: self.ident,
            at: self.now(),
        };
        self.lock().requests.push(seen);
    }

    /// Records the answer; a lost one was recorded (status 0) when its fault was drawn.
    fn record(&self, status: u16) {
        if !self.lost {
            self.push_seen(status, None);
        }
    }

    fn deliver(&self, key: String, user: Option<String>, text: String) {
        let delivery = Delivery {
            route: self.route,
            key,
            user,
            at: self.now(),
            text,
            ident: self.ident,
            acked: !self.lost,
        };
        self.lock().deliveries.push(delivery);
    }

    /// Records a strictness violation and answers it as DingTalk would (new API style).
    fn reject(&self, what: String, code: &str) -> Response {
        self.violation(&what);
        api_error(400, code, &what)
    }

    fn violation(&self, what: &str) {
        let line = format!("{}: {what}", self.route);
        self.lock().violations.push(line);
    }

    /// With [`FakeDingtalk::enforce_waits`]: this request must not come before a wait an
    /// earlier answer asked for.
    fn check_waits(&self) {
        let now = self.now();
        let mut early = Vec::new();
        {
            let s = self.lock();
            if !s.enforce_waits || self.route == "token" {
                return;
            }
            if let Some((at, until)) = s.owed.get(&self.ident)
                && now < *until
            {
                early.push(format!(
                    "{at} 的限流应答要求等到 {until}，{now} 又收到同一请求"
                ));
            }
            if self.route == "custom_robot"
                && let Some((at, until)) = s
                    .robot_blocked
                    .iter()
                    .find(|(at, until)| *at < now && now < *until)
            {
                early.push(format!(
                    "自定义机器人在 {at} 被限流至 {until}，{now} 又收到发送"
                ));
            }
        }
        for e in early {
            self.violation(&e);
        }
    }

    /// Notes the wait a throttling answer asks for (see [`Req::check_waits`]).
    fn owe_wait(&self, fault: Fault) {
        let Some(wait) = fault.asked_wait(self.route) else {
            return;
        };
        let now = self.now();
        let mut s = self.lock();
        if !s.enforce_waits || self.route == "token" {
            return;
        }
        s.waits_asked += 1;
        let until = now + wait;
        s.owed.insert(self.ident, (now, until));
        if self.route == "custom_robot" {
            s.robot_blocked.push((now, until));
        }
    }

    /// Draws a fault — `queued` routes take [`FakeDingtalk::fail_next`] faults first — and
    /// answers it. None: do the work, and if the fault was [`Fault::SlowAfterDeliver`] lose the
    /// answer ([`Req::finish`]).
    async fn fault(&mut self, queued: bool) -> Option<Response> {
        self.check_waits();
        let fault = {
            let mut s = self.lock();
            if queued {
                s.fault(self.route, self.ident)
            } else {
                s.random_fault(self.route, self.ident)
            }
        }?;
        if fault == Fault::SlowAfterDeliver {
            self.push_seen(0, Some(fault));
            self.lost = true;
            return None;
        }
        Some(self.fault_answer(fault).await)
    }

    /// How DingTalk answers `fault` on this route.
    async fn fault_answer(&self, fault: Fault) -> Response {
        let webhook = matches!(self.route, "session_reply" | "custom_robot");
        let answer = match fault {
            Fault::Status(s) => api_error(s, "ServiceUnavailable", "系统繁忙"),
            Fault::Throttle if webhook => {
                if self.route == "custom_robot" {
                    errcode(130101, "send too fast, exceed 20 times per minute")
                } else {
                    errcode(410100, "发送速度太快而限流")
                }
            }
            Fault::Throttle => api_error(
                403,
                "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
                "调用频率超限",
            ),
            Fault::Errcode(code) => {
                let msg = match code {
                    130101 => "send too fast, exceed 20 times per minute",
                    410100 => "发送速度太快而限流",
                    _ => "接口调用超过限制",
                };
                errcode(code, msg)
            }
            Fault::ApiThrottle { status, code } => api_error(status, code, "调用频率超限"),
            Fault::TooMany { retry_after } => {
                let mut r = api_error(429, "Throttling", "too many requests");
                r.headers_mut().insert(
                    "retry-after",
                    retry_after.to_string().parse().expect("header value"),
                );
                r
            }
            Fault::Slow | Fault::SlowAfterDeliver => {
                self.push_seen(0, Some(fault));
                let slow = self.lock().slow;
                tokio::time::sleep(slow).await;
                return api_error(503, "ServiceUnavailable", "超时");
            }
        };
        self.push_seen(answer.status().as_u16(), Some(fault));
        self.owe_wait(fault);
        answer
    }

    /// Hands out `answer`; a lost one only after the client's timeout.
    async fn finish(&self, answer: Response) -> Response {
        if self.lost {
            let slow = self.lock().slow;
            tokio::time::sleep(slow).await;
        }
        answer
    }
}

fn json_body(
    req: &Req,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<serde_json::Map<String, Value>, Box<Response>> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(Box::new(req.reject(
            format!("Content-Type 应为 application/json，实际 {ct:?}"),
            "param.invalid",
        )));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Box::new(
            req.reject("请求体不是 JSON 对象".into(), "param.invalid"),
        )),
    }
}

/// Keys must be exactly `required` plus any of `optional`.
fn check_keys(
    m: &serde_json::Map<String, Value>,
    required: &[&str],
    optional: &[&str],
) -> Result<(), String> {
    for k in required {
        if !m.contains_key(*k) {
            return Err(format!("缺少字段 {k}"));
        }
    }
    for k in m.keys() {
        if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) {
            return Err(format!("未知字段 {k}"));
        }
    }
    Ok(())
}

/// Checks the token header; `Err` is the answer. A missing header is a violation, an unknown or
/// expired token is DingTalk's ordinary 401.
fn check_token(req: &Req, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(token) = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
    else {
        let r = req.reject(
            "缺少 x-acs-dingtalk-access-token 请求头".into(),
            "MissingAuthentication",
        );
        req.record(400);
        return Err(Box::new(r));
    };
    let now = req.now();
    let valid = req
        .lock()
        .tokens
        .get(token)
        .is_some_and(|expiry| now < *expiry);
    if valid {
        Ok(())
    } else {
        req.record(401);
        Err(Box::new(api_error(
            401,
            "InvalidAuthentication",
            "不合法的access_token",
        )))
    }
}

fn is_unreserved_or_escape(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || b"-._~".contains(&c) => i += 1,
            _ => return false,
        }
    }
    true
}

fn check_button_url(url: &str) -> Result<(), String> {
    if let Some(content) = url.strip_prefix("dtmd://dingtalkclient/sendMessage?content=") {
        if content.is_empty() || !is_unreserved_or_escape(content) {
            return Err(format!("dtmd 链接的 content 未正确编码：{url}"));
        }
        let decoded = percent_encoding::percent_decode_str(content).decode_utf8();
        if decoded.map_or(true, |d| d.trim().is_empty()) {
            return Err(format!("dtmd 链接的 content 不是有效的 UTF-8 文本：{url}"));
        }
        Ok(())
    } else if url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("按钮链接无效：{url}"))
    }
}

/// §4.3: msgParam is a JSON string of an object with exactly the msgKey's fields, all strings.
fn check_msg_param(
    msg_key: &Value,
    msg_param: &Value,
) -> Result<serde_json::Map<String, Value>, String> {
    let Some(key) = msg_key.as_str() else {
        return Err("msgKey 不是字符串".into());
    };
    let Some(raw) = msg_param.as_str() else {
        return Err("msgParam 应为 JSON 字符串而不是对象".into());
    };
    let Ok(Value::Object(param)) = serde_json::from_str::<Value>(raw) else {
        return Err("msgParam 不是 JSON 对象的文本".into());
    };
    let mut fields: Vec<String> = match key {
        "sampleText" => vec!["content".into()],
        "sampleMarkdown" => vec!["title".into(), "text".into()],
        "sampleActionCard" => ["title", "text", "singleTitle", "singleURL"]
            .map(String::from)
            .to_vec(),
        k if k.starts_with("sampleActionCard") => {
            let n: usize = k["sampleActionCard".len()..]
                .parse()
                .map_err(|_| format!("msgKey 无效：{k}"))?;
            if !(2..=5).contains(&n) {
                return Err(format!("msgKey 无效：{k}"));
            }
            let mut f = vec!["title".to_string(), "text".to_string()];
            for i in 1..=n {
                f.push(format!("actionTitle{i}"));
                f.push(format!("actionURL{i}"));
            }
            f
        }
        other => return Err(format!("msgKey 无效：{other}")),
    };
    fields.sort();
    let mut got: Vec<String> = param.keys().cloned().collect();
    got.sort();
    if got != fields {
        return Err(format!("{key} 的参数应为 {fields:?}，实际 {got:?}"));
    }
    for (k, v) in &param {
        let Some(s) = v.as_str() else {
            return Err(format!("msgParam.{k} 不是字符串"));
        };
        if k.starts_with("actionURL") || k == "singleURL" {
            check_button_url(s)?;
        }
    }
    Ok(param)
}

fn marker(text: &str) -> String {
    text.find("[#")
        .and_then(|start| {
            let rest = &text[start + 2..];
            rest.find(']').map(|end| rest[..end].to_string())
        })
        .unwrap_or_default()
}

fn param_text(param: &serde_json::Map<String, Value>) -> String {
    ["title", "text", "content"]
        .iter()
        .filter_map(|k| param.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

fn next_key(shared: &Shared) -> String {
    let mut s = shared.lock();
    s.seq += 1;
    format!("pqk-{}", s.seq)
}

// ---- routes ----

async fn token(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = Req::new(&shared, "token", &body);
    let delay = req.lock().token_delay;
    tokio::time::sleep(delay).await;
    req.lock().token_calls += 1;
    // The token's own queue, then the random mix: queued message faults are meant for the
    // message the test sends next.
    let queued = req.lock().fail_next_token.pop_front();
    if let Some(fault) = queued {
        return req.fault_answer(fault).await;
    }
    if let Some(answer) = req.fault(false).await {
        return answer;
    }
    let answer = token_work(&req, &headers, &body);
    req.finish(answer).await
}

fn token_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(&m, &["appKey", "appSecret"], &[]) {
        return req.reject(e, "param.invalid");
    }
    if m["appKey"] != APP_KEY || m["appSecret"] != APP_SECRET {
        req.record(400);
        return api_error(400, "invalidClientIdOrSecret", "无效的 appKey 或 appSecret");
    }
    let expiry = req.now() + SignedDuration::from_secs(7200);
    let value = {
        let mut s = req.lock();
        s.seq += 1;
        let value = format!("tok-{}", s.seq);
        s.tokens.insert(value.clone(), expiry);
        value
    };
    req.record(200);
    ok_json(json!({"accessToken": value, "expireIn": 7200}))
}

async fn batch_send(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = Req::new(&shared, "batch_send", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = batch_send_work(&req, &headers, &body);
    req.finish(answer).await
}

fn batch_send_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(&m, &["robotCode", "userIds", "msgKey", "msgParam"], &[]) {
        return req.reject(e, "param.invalid");
    }
    if m["robotCode"] != ROBOT_CODE {
        return req.reject("robotCode 不符".into(), "invalidParameter.robotCode.auth");
    }
    let Some(users) = m["userIds"].as_array().and_then(|a| {
        a.iter()
            .map(|u| u.as_str().filter(|s| !s.is_empty()).map(str::to_string))
            .collect::<Option<Vec<String>>>()
    }) else {
        return req.reject(
            "userIds 不是字符串数组".into(),
            "invalidParameter.userIds.invalid",
        );
    };
    if users.is_empty() {
        return req.reject("userIds 为空".into(), "invalidParameter.userIds.empty");
    }
    if users.len() > 20 {
        return req.reject(
            format!("userIds 超过 20 个（{}）", users.len()),
            "invalidParameter.userIds.overMax",
        );
    }
    let param = match check_msg_param(&m["msgKey"], &m["msgParam"]) {
        Ok(p) => p,
        Err(e) => return req.reject(e, "invalidParameter.msgParam.invalid"),
    };
    let text = param_text(&param);
    let key = marker(&text);
    let (mut invalid, mut flow, mut reached) = (Vec::new(), Vec::new(), Vec::new());
    {
        let mut s = req.lock();
        for user in &users {
            if s.invalid.contains(user) {
                invalid.push(user.clone());
            } else if s.flow_control_once.remove(user) {
                flow.push(user.clone());
            } else {
                reached.push(user.clone());
            }
        }
    }
    for user in reached {
        req.deliver(key.clone(), Some(user), text.clone());
    }
    req.record(200);
    ok_json(
        json!({"processQueryKey": next_key(&req.shared), "invalidStaffIdList": invalid,
                   "flowControlledStaffIdList": flow, "filteredStaffIdList": []}),
    )
}

async fn group_send(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = Req::new(&shared, "group_send", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = group_send_work(&req, &headers, &body);
    req.finish(answer).await
}

fn group_send_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(
        &m,
        &["robotCode", "openConversationId", "msgKey", "msgParam"],
        &["coolAppCode"],
    ) {
        return req.reject(e, "param.invalid");
    }
    if m["robotCode"] != ROBOT_CODE {
        return req.reject("robotCode 不符".into(), "invalidParameter.robotCode.auth");
    }
    if m["msgParam"].as_str().is_some_and(|p| p.len() > 15_000) {
        return req.reject(
            "msgParam 超过 15000 字节".into(),
            "invalidParameter.msgParam.invalid",
        );
    }
    let param = match check_msg_param(&m["msgKey"], &m["msgParam"]) {
        Ok(p) => p,
        Err(e) => return req.reject(e, "invalidParameter.msgParam.invalid"),
    };
    let cid = m["openConversationId"].as_str().unwrap_or("").to_string();
    if cid.is_empty() {
        return req.reject(
            "openConversationId 为空".into(),
            "invalidParameter.openConversationId.empty",
        );
    }
    if req.lock().bad_groups.contains(&cid) {
        req.record(400);
        return api_error(400, "robot.notInGroup", "机器人不在该群中");
    }
    let text = param_text(&param);
    req.deliver(marker(&text), None, text);
    req.record(200);
    ok_json(json!({"processQueryKey": next_key(&req.shared)}))
}

fn string_map(v: &Value, what: &str) -> Result<(), String> {
    let Some(m) = v.as_object() else {
        return Err(format!("{what} 不是对象"));
    };
    for (k, v) in m {
        if !v.is_string() {
            return Err(format!(
                "{what}.{k} 不是字符串（cardParamMap 只接受字符串）"
            ));
        }
    }
    Ok(())
}

fn check_card_create(
    m: &serde_json::Map<String, Value>,
) -> Result<(String, String), (String, &'static str)> {
    let p = |e: String| (e, "param.invalid");
    let space = m.get("openSpaceId").and_then(Value::as_str).unwrap_or("");
    let (space_type, space_id) = space
        .strip_prefix("dtv1.card//")
        .and_then(|s| s.split_once('.'))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| {
            (
                format!("openSpaceId 格式无效：{space}"),
                "param.openSpaceIdInvalid",
            )
        })?;
    let (space_model, deliver_model) = match space_type {
        "IM_GROUP" => ("imGroupOpenSpaceModel", "imGroupOpenDeliverModel"),
        "IM_ROBOT" => ("imRobotOpenSpaceModel", "imRobotOpenDeliverModel"),
        other => {
            return Err((
                format!("openSpaceId 类型无效：{other}"),
                "param.openSpaceIdInvalid",
            ));
        }
    };
    let callback_optional: &[&str] = match m.get("callbackType").and_then(Value::as_str) {
        Some("STREAM") => &[],
        Some("HTTP") => &["callbackRouteKey"],
        other => return Err(p(format!("callbackType 无效：{other:?}"))),
    };
    let mut optional = vec!["privateData"];
    optional.extend_from_slice(callback_optional);
    check_keys(
        m,
        &[
            "cardTemplateId",
            "outTrackId",
            "cardData",
            "callbackType",
            "openSpaceId",
            space_model,
            deliver_model,
            "userIdType",
        ],
        &optional,
    )
    .map_err(p)?;
    if callback_optional.contains(&"callbackRouteKey")
        && m.get("callbackRouteKey")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return Err(p("callbackType 为 HTTP 时缺少 callbackRouteKey".into()));
    }
    if !m["cardTemplateId"]
        .as_str()
        .is_some_and(|t| t.ends_with(".schema"))
    {
        return Err(p("cardTemplateId 应为 <uuid>.schema".into()));
    }
    let out = m["outTrackId"].as_str().unwrap_or("").to_string();
    if out.is_empty() {
        return Err(("outTrackId 为空".into(), "card.outTraceIdEmpty"));
    }
    let Some(card_data) = m["cardData"].as_object() else {
        return Err(p("cardData 不是对象".into()));
    };
    check_keys(card_data, &["cardParamMap"], &["cardMediaIdParamMap"]).map_err(p)?;
    string_map(&card_data["cardParamMap"], "cardParamMap").map_err(p)?;
    if let Some(private) = m.get("privateData") {
        let Some(private) = private.as_object() else {
            return Err(p("privateData 不是对象".into()));
        };
        for (user, data) in private {
            string_map(
                &data["cardParamMap"],
                &format!("privateData.{user}.cardParamMap"),
            )
            .map_err(p)?;
        }
    }
    if m["userIdType"] != 1 {
        return Err(p("userIdType 应为 1".into()));
    }
    let deliver = &m[deliver_model];
    if deliver["robotCode"] != ROBOT_CODE {
        return Err(p(format!("{deliver_model}.robotCode 不符")));
    }
    if space_type == "IM_ROBOT" && deliver["spaceType"] != "IM_ROBOT" {
        return Err(p("imRobotOpenDeliverModel.spaceType 应为 IM_ROBOT".into()));
    }
    if !m[space_model].is_object() {
        return Err(p(format!("{space_model} 不是对象")));
    }
    Ok((out, space_id.to_string()))
}

async fn card_create(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = Req::new(&shared, "card_create", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = card_create_work(&req, &headers, &body);
    req.finish(answer).await
}

fn card_create_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let (out, space_id) = match check_card_create(&m) {
        Ok(v) => v,
        Err((e, code)) => return req.reject(e, code),
    };
    let (duplicate, undeliverable) = {
        let mut s = req.lock();
        (
            !s.cards.insert(out.clone()),
            s.undeliverable.contains(&space_id),
        )
    };
    if duplicate {
        req.record(400);
        return api_error(400, "card.outTrackIdDuplicated", "outTrackId 已存在");
    }
    let space_type = m["openSpaceId"]
        .as_str()
        .unwrap_or("")
        .split('.')
        .nth(1)
        .unwrap_or("")
        .to_string();
    if !undeliverable {
        req.deliver(
            out.clone(),
            Some(space_id.clone()),
            m["cardData"]["cardParamMap"].to_string(),
        );
    }
    req.record(200);
    ok_json(
        json!({"success": true, "result": {"outTrackId": out, "deliverResults": [
        {"spaceType": space_type, "spaceId": space_id, "success": !undeliverable,
         "errorMsg": if undeliverable { "用户不在应用可见范围" } else { "" }, "carrierId": "c1"}]}}),
    )
}

async fn card_update(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = Req::new(&shared, "card_update", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = card_update_work(&req, &headers, &body);
    req.finish(answer).await
}

fn card_update_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(
        &m,
        &["outTrackId", "cardData", "cardUpdateOptions", "userIdType"],
        &["privateData"],
    ) {
        return req.reject(e, "param.invalid");
    }
    if let Err(e) = string_map(&m["cardData"]["cardParamMap"], "cardParamMap") {
        return req.reject(e, "param.invalid");
    }
    if !m["cardUpdateOptions"]["updateCardDataByKey"].is_boolean() {
        return req.reject(
            "cardUpdateOptions.updateCardDataByKey 应为布尔值".into(),
            "param.invalid",
        );
    }
    let out = m["outTrackId"].as_str().unwrap_or("").to_string();
    if !req.lock().cards.contains(&out) {
        req.record(400);
        return api_error(400, "card.instanceNotExist", "卡片实例不存在");
    }
    req.deliver(out, None, m["cardData"]["cardParamMap"].to_string());
    req.record(200);
    ok_json(json!({"success": true, "result": true}))
}

/// The custom-robot body (§5.2): text, markdown, actionCard or link, with an optional `at`.
fn check_robot_body(m: &serde_json::Map<String, Value>) -> Result<String, String> {
    let kind = m.get("msgtype").and_then(Value::as_str).unwrap_or("");
    let (fields, text): (&[&str], String) = match kind {
        "text" => (
            &["content"],
            m["text"]["content"].as_str().unwrap_or("").to_string(),
        ),
        "markdown" => (
            &["title", "text"],
            format!(
                "{}\n{}",
                m["markdown"]["title"].as_str().unwrap_or(""),
                m["markdown"]["text"].as_str().unwrap_or("")
            ),
        ),
        other => return Err(format!("msgtype 不支持：{other:?}")),
    };
    check_keys(m, &["msgtype", kind], &["at"])?;
    let Some(inner) = m[kind].as_object() else {
        return Err(format!("{kind} 不是对象"));
    };
    check_keys(inner, fields, &[])?;
    for f in fields {
        if inner[*f].as_str().is_none_or(str::is_empty) {
            return Err(format!("{kind}.{f} 应为非空字符串"));
        }
    }
    if let Some(at) = m.get("at") {
        let Some(at) = at.as_object() else {
            return Err("at 不是对象".into());
        };
        check_keys(at, &[], &["atUserIds", "atMobiles", "isAtAll"])?;
        if let Some(ids) = at.get("atUserIds")
            && !ids
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string))
        {
            return Err("at.atUserIds 应为字符串数组".into());
        }
    }
    Ok(text)
}

fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

async fn session_reply(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "session_reply", &body);
    let pairs = query_pairs(&query);
    if headers.contains_key("x-acs-dingtalk-access-token")
        || pairs.iter().any(|(k, _)| k == "access_token")
    {
        let r = req.reject("sessionWebhook 不应带 access token".into(), "param.invalid");
        req.record(400);
        return r;
    }
    if !pairs.iter().any(|(k, v)| k == "session" && !v.is_empty()) {
        req.record(200);
        return errcode(300005, "session is not exist");
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = robot_message(&req, &headers, &body);
    req.finish(answer).await
}

/// The work of both webhooks once the URL passed: a valid body is delivered.
fn robot_message(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let text = match check_robot_body(&m) {
        Ok(t) => t,
        Err(e) => {
            req.violation(&e);
            req.record(200);
            return errcode(40035, &e);
        }
    };
    req.deliver(marker(&text), None, text);
    req.record(200);
    errcode(0, "ok")
}

async fn custom_robot(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "custom_robot", &body);
    let now = req.now();
    let pairs = query_pairs(&query);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let sign_ok = match (get("access_token"), get("timestamp"), get("sign")) {
        (Some(token), Some(ts), Some(sign)) if token == HOOK_TOKEN => match ts.parse::<i64>() {
            Ok(ms) if (now.as_millisecond() - ms).abs() <= 3_600_000 => {
                // The sign must arrive URL-encoded exactly as §5.1 computes it.
                sign == custom_robot_sign(ms, HOOK_SECRET)
            }
            _ => false,
        },
        _ => false,
    };
    if !sign_ok {
        req.violation(&format!("签名、时间戳或 access_token 无效（{query:?}）"));
        req.record(200);
        return errcode(310000, "sign not match");
    }
    // DingTalk counts every request against the robot's 20-a-minute limit.
    let over = {
        let mut s = req.lock();
        s.robot_sends.push(now);
        let window_start = now - SignedDuration::from_secs(60);
        s.robot_sends.iter().filter(|t| **t > window_start).count() > 20
    };
    if over {
        req.violation("一分钟内超过 20 条");
        req.record(200);
        return errcode(130101, "send too fast, exceed 20 times per minute");
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = robot_message(&req, &headers, &body);
    req.finish(answer).await
}

// ---- go-live reads: address book, robot query, undelivered card ----

/// Withholds the answer when the app lacks `scope`: new-API style (HTTP 403) or old-API style
/// (`errcode` 88 in a 200 body, the text of a captured live refusal).
fn permission_refused(req: &Req, scope: &str, old_api: bool) -> Option<Response> {
    if !req.lock().denied.contains(scope) {
        return None;
    }
    if old_api {
        req.record(200);
        return Some(ok_json(json!({
            "errcode": 88,
            "errmsg": format!(
                "ding talk error[subcode=60011,submsg=应用尚未开通所需的权限：[{scope}]，点击链接申请并开通即可：https://open-dev.dingtalk.com/appscope/apply?content={APP_KEY}%23{scope}, {{requiredScopes=[{scope}]}}]"
            ),
            "request_id": "fake-req",
        })));
    }
    req.record(403);
    Some(api_error(
        403,
        "Forbidden.AccessDenied.AccessTokenPermissionDenied",
        &format!("应用尚未开通所需的权限：[{scope}]"),
    ))
}

/// The old API's token check (§3.2): `?access_token=` with a token this fake issued. A missing
/// one is a violation; an unknown or expired one is DingTalk's `errcode` 40014 ([R]).
fn check_oapi_token(req: &Req, query: &Option<String>) -> Result<(), Box<Response>> {
    let pairs = query_pairs(query);
    let Some(token) = pairs
        .iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|v| !v.is_empty())
    else {
        req.violation("旧版接口缺少 access_token 查询参数");
        req.record(200);
        return Err(Box::new(errcode(40035, "缺少参数 access_token")));
    };
    let now = req.now();
    let valid = req
        .lock()
        .tokens
        .get(&token)
        .is_some_and(|expiry| now < *expiry);
    if valid {
        Ok(())
    } else {
        req.record(200);
        Err(Box::new(errcode(40014, "不合法的access_token")))
    }
}

fn as_index(v: &Value, what: &str) -> Result<u64, String> {
    v.as_u64().ok_or_else(|| format!("{what} 应为非负整数"))
}

async fn contact_search(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = Req::new(&shared, "contact_search", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(r) = permission_refused(&req, "qyapi_addresslist_search", false) {
        return r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = contact_search_work(&req, &headers, &body);
    req.finish(answer).await
}

fn contact_search_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    // `offset` is mandatory ([R]: "offset is mandatory" otherwise).
    if let Err(e) = check_keys(&m, &["queryWord", "offset", "size"], &["fullMatchField"]) {
        return req.reject(e, "invalidParameter");
    }
    let word = m["queryWord"].as_str().unwrap_or("").to_string();
    if word.is_empty() {
        return req.reject("queryWord 应为非空字符串".into(), "invalidParameter");
    }
    let (offset, size) = match (
        as_index(&m["offset"], "offset"),
        as_index(&m["size"], "size"),
    ) {
        (Ok(o), Ok(s)) if (1..=50).contains(&s) => (o as usize, s as usize),
        (Ok(_), Ok(s)) => {
            return req.reject(format!("size 应在 1–50 之间，实际 {s}"), "invalidParameter");
        }
        (Err(e), _) | (_, Err(e)) => return req.reject(e, "invalidParameter"),
    };
    let exact = match m.get("fullMatchField") {
        None => false,
        Some(v) if *v == 1 => true,
        Some(v) => {
            return req.reject(
                format!("fullMatchField 应为 1，实际 {v}"),
                "invalidParameter",
            );
        }
    };
    let hits: Vec<String> = req
        .lock()
        .members
        .iter()
        .filter(|u| {
            if exact {
                u.name == word
            } else {
                u.name.contains(&word)
            }
        })
        .map(|u| u.user_id.clone())
        .collect();
    let page: Vec<&String> = hits.iter().skip(offset).take(size).collect();
    req.record(200);
    ok_json(json!({
        "hasMore": offset + page.len() < hits.len(),
        "totalCount": hits.len(),
        "list": page,
    }))
}

async fn user_get(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "user_get", &body);
    if let Err(r) = check_oapi_token(&req, &query) {
        return *r;
    }
    if let Some(r) = permission_refused(&req, "qyapi_get_member", true) {
        return r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = user_get_work(&req, &headers, &body);
    req.finish(answer).await
}

fn check_language(req: &Req, m: &serde_json::Map<String, Value>) -> Option<Response> {
    match m.get("language").map(|v| v.as_str()) {
        None | Some(Some("zh_CN" | "en_US")) => None,
        Some(other) => {
            req.violation(&format!("language 无效：{other:?}"));
            req.record(200);
            Some(errcode(400002, "无效的参数"))
        }
    }
}

fn user_get_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(&m, &["userid"], &["language"]) {
        req.violation(&e);
        req.record(200);
        return errcode(400002, "无效的参数");
    }
    if let Some(r) = check_language(req, &m) {
        return r;
    }
    let id = m["userid"].as_str().unwrap_or("");
    let member = req.lock().members.iter().find(|u| u.user_id == id).cloned();
    req.record(200);
    match member {
        None => errcode(60121, "找不到该用户"),
        Some(u) => ok_json(json!({
            "errcode": 0,
            "errmsg": "ok",
            "result": {
                "userid": u.user_id,
                "unionid": format!("union-{}", u.user_id),
                "name": u.name,
                "title": u.title,
                "dept_id_list": u.dept_ids,
                "active": true,
            },
            "request_id": "fake-req",
        })),
    }
}

async fn department_get(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "department_get", &body);
    if let Err(r) = check_oapi_token(&req, &query) {
        return *r;
    }
    if let Some(r) = permission_refused(&req, "qyapi_get_department_list", true) {
        return r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = department_get_work(&req, &headers, &body);
    req.finish(answer).await
}

fn department_get_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(&m, &["dept_id"], &["language"]) {
        req.violation(&e);
        req.record(200);
        return errcode(400002, "无效的参数");
    }
    if let Some(r) = check_language(req, &m) {
        return r;
    }
    let Some(id) = m["dept_id"].as_i64() else {
        req.violation("dept_id 应为整数");
        req.record(200);
        return errcode(400002, "无效的参数");
    };
    let dept = req.lock().departments.get(&id).cloned();
    req.record(200);
    match dept {
        None => errcode(60003, "部门不存在"),
        Some((name, parent)) => {
            let mut result = json!({"dept_id": id, "name": name});
            if let Some(parent) = parent {
                result["parent_id"] = parent.into();
            }
            ok_json(
                json!({"errcode": 0, "errmsg": "ok", "result": result, "request_id": "fake-req"}),
            )
        }
    }
}

async fn robot_query(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = Req::new(&shared, "robot_query", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(r) = permission_refused(&req, "Robot.SingleChat.ReadWrite", false) {
        return r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let m = match json_body(&req, &headers, &body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(&m, &["robotCode"], &[]) {
        return req.reject(e, "param.invalid");
    }
    req.record(if m["robotCode"] == ROBOT_CODE {
        200
    } else {
        400
    });
    if m["robotCode"] != ROBOT_CODE {
        // The code for an unknown robot on this route is not documented; chatbot.notFound is
        // the one DingTalk's card APIs use for it (§6.1, [R]).
        return api_error(400, "chatbot.notFound", "机器人不存在");
    }
    ok_json(json!({"pluginInfoList": []}))
}

async fn card_instance(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = Req::new(&shared, "card_instance", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(r) = permission_refused(&req, "Card.Instance.Write", false) {
        return r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = card_instance_work(&req, &headers, &body);
    req.finish(answer).await
}

/// CreateCard (card_1_0 SDK): the create half of createAndDeliver, with no space unless one of
/// the space models is given — this fake takes none, so nothing is delivered.
fn card_instance_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let optional: &[&str] = match m.get("callbackType").and_then(Value::as_str) {
        Some("STREAM") => &[],
        Some("HTTP") => &["callbackRouteKey"],
        other => return req.reject(format!("callbackType 无效：{other:?}"), "param.invalid"),
    };
    if let Err(e) = check_keys(
        &m,
        &[
            "cardTemplateId",
            "outTrackId",
            "cardData",
            "callbackType",
            "userIdType",
        ],
        optional,
    ) {
        return req.reject(e, "param.invalid");
    }
    if optional.contains(&"callbackRouteKey")
        && m.get("callbackRouteKey")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return req.reject(
            "callbackType 为 HTTP 时缺少 callbackRouteKey".into(),
            "param.invalid",
        );
    }
    let template = m["cardTemplateId"].as_str().unwrap_or("").to_string();
    if !template.ends_with(".schema") {
        return req.reject("cardTemplateId 应为 <uuid>.schema".into(), "param.invalid");
    }
    let Some(card_data) = m["cardData"].as_object() else {
        return req.reject("cardData 不是对象".into(), "param.invalid");
    };
    if let Err(e) = check_keys(card_data, &["cardParamMap"], &[]) {
        return req.reject(e, "param.invalid");
    }
    if let Err(e) = string_map(&card_data["cardParamMap"], "cardParamMap") {
        return req.reject(e, "param.invalid");
    }
    if card_data["cardParamMap"]
        .as_object()
        .is_some_and(serde_json::Map::is_empty)
    {
        return req.reject("卡片公共数据为空".into(), "param.cardPublicDataEmpty");
    }
    if m["userIdType"] != 1 {
        return req.reject("userIdType 应为 1".into(), "param.invalid");
    }
    let out = m["outTrackId"].as_str().unwrap_or("").to_string();
    if out.is_empty() {
        return req.reject("outTrackId 为空".into(), "param.outTrackIdEmpty");
    }
    if !req.lock().templates.contains(&template) {
        req.record(400);
        // The exact code for an unknown template on CreateCard is not documented; this is the
        // one DingTalk's IM card API answers ([R]).
        return api_error(
            400,
            "invalidParameter.cardTemplate.notFound",
            "不存在的卡片模板",
        );
    }
    let duplicate = {
        let mut s = req.lock();
        let duplicate = !s.cards.insert(out.clone());
        if !duplicate {
            s.undelivered.push(out.clone());
        }
        duplicate
    };
    if duplicate {
        req.record(400);
        return api_error(400, "card.outTrackIdDuplicated", "outTrackId 已存在");
    }
    req.record(200);
    ok_json(json!({"success": true, "result": out}))
}
