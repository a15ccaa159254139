//! The running service: opens the store, wires the HTTP routes onto an already-bound listener
//! (so tests bind port 0 and read the address back), and stops gracefully when told. Signals are
//! not handled here: `tiaochu serve` turns ctrl-c into [`Shutdown::trigger`], tests call it
//! directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::dingtalk::stream::{InboxHandler, StreamClient, StreamState};
use crate::http::{AppState, router};
use crate::settings::{DingtalkMode, Settings};
use crate::store::{Store, StoreError};

/// Why the service could not start. Chinese, because the admin reads it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "钉钉模式为 http，但未配置 [dingtalk] app_secret（可用环境变量 TIAOCHU_DINGTALK__APP_SECRET 设置）"
    )]
    MissingAppSecret,
    #[error(
        "钉钉模式为 stream，但未配置 [dingtalk] app_key 或 app_secret（可用环境变量 TIAOCHU_DINGTALK__APP_KEY、TIAOCHU_DINGTALK__APP_SECRET 设置）"
    )]
    MissingStreamCredentials,
    #[error("无法创建访问钉钉的 HTTP 客户端：{0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("无法读取监听地址：{0}")]
    Listener(#[source] std::io::Error),
    #[error("HTTP 服务异常退出：{0}")]
    Serve(#[source] std::io::Error),
}

/// A handle that stops a running [`App`]: in-flight requests finish, new ones are refused.
/// Cheap to clone; triggering twice is harmless.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Shutdown {
    fn new() -> Shutdown {
        Shutdown {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    async fn wait(self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// The service, built and ready to run.
pub struct App {
    address: SocketAddr,
    listener: TcpListener,
    store: Store,
    mode: DingtalkMode,
    shutdown: Shutdown,
    router: axum::Router,
    /// The Stream client and the state it publishes to `/healthz`; only in `stream` mode.
    stream: Option<(StreamClient, watch::Sender<StreamState>)>,
}

impl App {
    /// Opens (creating and migrating) the database at `[store] path` and prepares the routes.
    /// The robot callback is served only in `http` mode, which therefore requires `app_secret`;
    /// `stream` mode requires `app_key` and `app_secret` and runs the Stream client.
    pub fn build(
        settings: Settings,
        listener: TcpListener,
        clock: Arc<dyn Clock>,
    ) -> Result<App, AppError> {
        let mode = settings.dingtalk.mode;
        let callback_secret = match mode {
            DingtalkMode::Http if settings.dingtalk.app_secret.is_empty() => {
                return Err(AppError::MissingAppSecret);
            }
            DingtalkMode::Http => Some(settings.dingtalk.app_secret.clone()),
            // Sandbox has no DingTalk; in Stream mode DingTalk delivers over the WebSocket and
            // never calls the HTTP callback (the console allows one or the other).
            DingtalkMode::Sandbox | DingtalkMode::Stream => None,
        };
        let address = listener.local_addr().map_err(AppError::Listener)?;
        if mode == DingtalkMode::Stream
            && (settings.dingtalk.app_key.is_empty() || settings.dingtalk.app_secret.is_empty())
        {
            return Err(AppError::MissingStreamCredentials);
        }
        let store = Store::open(&settings.store.path)?;
        let (stream, stream_state) = match mode {
            DingtalkMode::Stream => {
                let http = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(15))
                    .build()
                    .map_err(AppError::HttpClient)?;
                let handler = Arc::new(InboxHandler::new(store.clone(), Arc::clone(&clock)));
                let client =
                    StreamClient::new(&settings.dingtalk, http, handler, Arc::clone(&clock));
                let (state_tx, state_rx) = watch::channel(StreamState::Connecting);
                (Some((client, state_tx)), state_rx)
            }
            DingtalkMode::Sandbox | DingtalkMode::Http => {
                (None, watch::channel(StreamState::NotConfigured).1)
            }
        };
        let router = router(AppState {
            store: store.clone(),
            callback_secret,
            clock,
            stream: stream_state,
        });
        Ok(App {
            address,
            listener,
            store,
            mode,
            shutdown: Shutdown::new(),
            router,
            stream,
        })
    }

    /// The address the listener is bound to (with the real port when bound to port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The store the service writes to; shares its writer thread.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How DingTalk reaches this service.
    pub fn mode(&self) -> DingtalkMode {
        self.mode
    }

    /// A handle that stops [`App::run_until_stopped`].
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves (and in `stream` mode keeps the Stream connection) until the shutdown handle is
    /// triggered, then lets in-flight requests and Stream handlers finish.
    pub async fn run_until_stopped(self) -> Result<(), AppError> {
        let stream = self
            .stream
            .map(|(client, state)| tokio::spawn(client.run(self.shutdown.subscribe(), state)));
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(self.shutdown.clone().wait())
            .await
            .map_err(AppError::Serve);
        // A server that failed must not leave the Stream client running.
        self.shutdown.trigger();
        if let Some(task) = stream
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "stream client task failed");
        }
        served
    }
}
