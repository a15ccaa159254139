//! The HTTP surface (axum): the DingTalk robot and card callbacks, the health check, and the two
//! web UIs ([`dashboard`], [`sandbox`]), whose pages are templates under `templates/` turned
//! into responses through `render`. This module is the only place errors become HTTP responses —
//! every callback handler returns [`HttpError`], whose status mapping is one exhaustive `match`;
//! the web UIs have their own error types that become Chinese pages.
//!
//! Nothing here logs a secret or a message body (the bodies carry citizens' phone numbers): logs
//! name the `msgId` and the outcome only.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::card_secrets::CardSecrets;
use crate::clock::Clock;
use crate::dingtalk::inbound::{CallbackKey, InboundError};
use crate::dingtalk::sign::SignError;
use crate::dingtalk::stream::StreamState;
use crate::inbox::InboxProcessor;
use crate::settings::Secret;
use crate::store::{Store, StoreError};

#[cfg(feature = "bench")]
mod bench;
mod card;
pub mod dashboard;
mod health;
mod home;
mod metrics;
mod render;
mod robot;
pub mod sandbox;
pub(crate) mod serve;
pub mod shed;

/// The largest robot callback body accepted, in bytes (64 KiB; §1.2 hardening).
pub const ROBOT_BODY_LIMIT: usize = 64 * 1024;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The app secret that signs robot callbacks; None when the callback is off (sandbox and
    /// Stream modes), and then the route does not exist.
    pub callback_secret: Option<Secret>,
    /// `[dingtalk] callback_aes_key`: robot callback bodies come encrypted and are opened with it.
    pub callback_key: Option<CallbackKey>,
    pub clock: Arc<dyn Clock>,
    /// The Stream connection state for `/healthz` (`NotConfigured` outside `stream` mode).
    pub stream: watch::Receiver<StreamState>,
    /// Processes card callbacks; set only when they arrive over HTTP
    /// ([`crate::dispatch::card_callbacks_over_http`]), and only then does
    /// `POST /dingtalk/card/<segment>` exist (in Stream mode they arrive over the socket, and
    /// ActionCard buttons send text commands).
    pub card_callbacks: Option<CardCallbackRoute>,
    /// The sandbox console; set only in `sandbox` mode, and only then do the `/sandbox` routes
    /// exist.
    pub sandbox: Option<sandbox::SandboxState>,
    /// The web dashboard (`/dashboard`), served in every mode.
    pub dashboard: dashboard::DashboardState,
    /// `[inbox] max_backlog`: the robot callback refuses (503) beyond it; None when off.
    pub backlog: Option<shed::BacklogGate>,
}

/// The HTTP card callback: who decides the taps, and the secrets that authenticate them.
#[derive(Clone)]
pub struct CardCallbackRoute {
    pub processor: InboxProcessor,
    pub secrets: CardSecrets,
}

/// The routes: `GET /` (a short page, or the sandbox console in sandbox mode) and `GET /healthz`
/// always, `POST /dingtalk/robot` only when a callback secret is
/// set and `POST /dingtalk/card/<segment>` only when card callbacks arrive over HTTP (otherwise
/// 404, as for any unknown path; a wrong segment is 404 too). Both callbacks take bodies of at most 64 KiB. The `/sandbox` console exists
/// only in sandbox mode. Built with the `bench` feature (never in release), `POST /bench/bare`
/// also exists, with the same body limit.
pub fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .route("/", get(home::home))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::metrics));
    if let Some(secret) = state.callback_secret.clone() {
        let forgetting = Arc::new(robot::Forgetting::default());
        let callback = move |State(state): State<Arc<AppState>>, request: Request| {
            robot::robot_callback(state, secret.clone(), Arc::clone(&forgetting), request)
        };
        app = app.route(
            "/dingtalk/robot",
            post(callback).layer(DefaultBodyLimit::max(ROBOT_BODY_LIMIT)),
        );
    }
    // Built with `--features bench` only: the bare baseline of the load bench (bench.rs).
    #[cfg(feature = "bench")]
    {
        app = app.route(
            "/bench/bare",
            post(bench::bare).layer(DefaultBodyLimit::max(ROBOT_BODY_LIMIT)),
        );
    }
    if let Some(route) = state.card_callbacks.clone() {
        let callback = move |State(state): State<Arc<AppState>>,
                             Path(segment): Path<String>,
                             request: Request| {
            card::card_callback(state, route.clone(), segment, request)
        };
        // The segment is a path parameter, not part of a literal route, so the matched route
        // that /metrics and the logs name never holds the secret.
        app = app.route(
            "/dingtalk/card/{segment}",
            post(callback).layer(DefaultBodyLimit::max(ROBOT_BODY_LIMIT)),
        );
    }
    if let Some(sandbox) = state.sandbox.clone() {
        app = app.merge(sandbox::routes(sandbox));
    }
    app = app.merge(dashboard::routes(state.dashboard.clone()));
    // Shared behind one Arc: axum hands every request its own copy of the state, and cloning
    // each field (the dashboard's engine among them) cost 1.5 % of the service's CPU under load.
    app.layer(axum::middleware::from_fn(metrics::track))
        .with_state(Arc::new(state))
}

/// Every way a request can fail. The response text is short Chinese and names no secret and no
/// part of the body.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("签名校验失败：{0}")]
    Unauthorized(#[from] SignError),
    #[error("缺少或重复的 {0} 请求头")]
    BadSignatureHeader(&'static str),
    #[error("请求体超过 64 KiB")]
    PayloadTooLarge,
    #[error("请求体读取失败")]
    BodyUnreadable,
    #[error("{0}")]
    NotRobotMessage(#[from] InboundError),
    #[error("不是卡片回调（缺少 outTrackId 或 userId）")]
    NotCardCallback,
    #[error("卡片不存在")]
    UnknownCard,
    #[error("地址不存在")]
    NotFound,
    #[error("这张卡片不是发给该用户的")]
    NotCardRecipient,
    #[error("服务暂时无法写入数据库，请稍后重试")]
    Store(#[from] StoreError),
    #[error("待处理消息过多（{backlog} 条），请稍后重试")]
    Overloaded { backlog: u64 },
}

/// The whole body of a callback, within its route's limit: too large → 413, unreadable → 400.
async fn read_body(request: Request, state: &AppState) -> Result<Bytes, HttpError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(e)
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                HttpError::PayloadTooLarge
            }
            _ => HttpError::BodyUnreadable,
        })
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            // DingTalk treats 401/403 as "rejected"; a missing or doubled header is a forged
            // request like any other, never a server error.
            HttpError::Unauthorized(_) | HttpError::BadSignatureHeader(_) => {
                StatusCode::UNAUTHORIZED
            }
            HttpError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::BodyUnreadable
            | HttpError::NotRobotMessage(_)
            | HttpError::NotCardCallback => StatusCode::BAD_REQUEST,
            HttpError::UnknownCard | HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::NotCardRecipient => StatusCode::FORBIDDEN,
            // Not acknowledged, so a redelivery can still land once the store is back.
            HttpError::Store(_) | HttpError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        // A wrong secret path answers exactly as a path that never existed.
        if matches!(self, HttpError::NotFound) {
            return status.into_response();
        }
        if let HttpError::Store(e) = &self {
            tracing::error!(error = %e, "request failed in the store");
        }
        let body = axum::Json(serde_json::json!({ "error": self.to_string() }));
        if let HttpError::Overloaded { .. } = &self {
            let wait = shed::RETRY_AFTER_SECS.to_string();
            return (status, [(axum::http::header::RETRY_AFTER, wait)], body).into_response();
        }
        (status, body).into_response()
    }
}
