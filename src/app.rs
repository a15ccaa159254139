//! The running service: opens the store, wires the HTTP routes onto an already-bound listener
//! (so tests bind port 0 and read the address back), and stops gracefully when told. Signals are
//! not handled here: `tiaochu serve` turns ctrl-c into [`Shutdown::trigger`], tests call it
//! directly.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::Clock;
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
}

impl App {
    /// Opens (creating and migrating) the database at `[store] path` and prepares the routes.
    /// The robot callback is served only in `http` mode, which therefore requires `app_secret`.
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
        let store = Store::open(&settings.store.path)?;
        let router = router(AppState {
            store: store.clone(),
            callback_secret,
            clock,
        });
        Ok(App {
            address,
            listener,
            store,
            mode,
            shutdown: Shutdown::new(),
            router,
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

    /// Serves until the shutdown handle is triggered, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> Result<(), AppError> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(self.shutdown.wait())
            .await
            .map_err(AppError::Serve)
    }
}
