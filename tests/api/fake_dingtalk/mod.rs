//! A fake DingTalk OpenAPI server (axum on 127.0.0.1:0) for the outbound and going-live tests.
//! It is as strict as docs/dingtalk-protocol.md — nested JSON strings, string-only
//! cardParamMap, ≤ 20 users, signed custom-robot URLs, the token header — and answers a
//! malformed request with a DingTalk-style error AND records a violation, which tests assert is
//! empty. It records every request and every delivery (by the `[#key]` marker in the text, or
//! by outTrackId), so exactly-once can be counted, and injects faults: 5xx, throttling codes,
//! 429 with Retry-After, slow answers past the client timeout (accepted or not), expired
//! tokens, flow-controlled and invalid staff ids. With [`FakeDingtalk::enforce_waits`] it also
//! checks that the client waits as long as each throttling answer asked before repeating the
//! request (or, for the custom robot, before any send).
//!
//! Time is the test's [`ManualClock`]: token expiry, the custom robot's 20-a-minute window, the
//! waits and the signature window all read it. The Stream gateway is a separate fake
//! (`fake_stream.rs`, §2).
//!
//! One file per responsibility:
//! - this one: the public surface — constants, [`Fault`], [`Delivery`], [`Seen`], starting the
//!   server and its route table, settings pointing at it;
//! - [`record`]: what it remembers and the test's knobs (faults, address book, permissions);
//! - [`answer`]: what every route shares — recording, fault answers (§7), body and token
//!   checks (§3);
//! - [`robot_api`]: token, `batchSend`, group send, `msgParam` (§3.1, §4);
//! - [`cards`]: the card platform's create, update and create-only (§6.3);
//! - [`webhooks`]: `sessionWebhook` and the custom group robot (§1.5, §5);
//! - [`address_book`]: the going-live reads — address book and robot query (§3.2).

mod address_book;
mod answer;
mod cards;
mod record;
mod robot_api;
mod webhooks;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{post, put};
use jiff::{SignedDuration, Timestamp};
use tiaochu::clock::ManualClock;
use tiaochu::settings::{DingtalkMode, DingtalkSettings, Secret};

use address_book::{contact_search, department_get, robot_query, user_get};
use cards::{card_create, card_instance, card_update};
use record::{Inner, Shared};
use robot_api::{batch_send, group_send, token};
use webhooks::{custom_robot, session_reply};

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

    /// Starts the fake on a clock of its own standing at [`crate::support::START_MS`], for
    /// tests whose service runs on another clock (or none).
    pub async fn at_start() -> FakeDingtalk {
        FakeDingtalk::start(Arc::new(ManualClock::at_millis(crate::support::START_MS))).await
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
}
