//! The running service: opens the store, loads the roster and the calendar, wires the HTTP
//! routes onto an already-bound listener (so tests bind port 0 and read the address back), runs
//! the workers — inbox processor, timer scheduler, outbox sender and, in `stream` mode, the
//! Stream client — and stops gracefully when told. Signals are
//! not handled here: `tiaochu serve` turns ctrl-c and SIGTERM into [`Shutdown::trigger`], tests
//! call it directly. Connections are served by [`crate::http::serve`], under the `[http]`
//! timeouts and caps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::calendar::CalendarError;
use crate::card_secrets::CardSecrets;
use crate::clock::Clock;
use crate::dingtalk::api::{DingtalkClient, Timeouts};
use crate::dingtalk::inbound::{CallbackKey, CallbackKeyError};
use crate::dingtalk::stream::{Directory, InboxHandler, StreamClient, StreamState};
use crate::dispatch::{Dispatch, card_callbacks_over_http};
use crate::engine::Engine;
use crate::http::dashboard::DashboardState;
use crate::http::sandbox::SandboxState;
use crate::http::serve::{self, Limits};
use crate::http::shed::BacklogGate;
use crate::http::{AppState, CardCallbackRoute, router};
use crate::inbox::CardStreamHandler;
use crate::inbox::InboxProcessor;
use crate::outbox::{self, RateLimits, SandboxSender, Sender};
use crate::roster::{Role, Roster, RosterError};
use crate::scheduler;
use crate::settings::{DingtalkMode, ReportSettings, Settings, sandbox_exposure};
use crate::store::{ServiceLock, Store, StoreError};

/// The inbox worker wakes when a committed transaction stored an inbound message
/// ([`Store::inbox_changed`]); it also looks this often, as a safety net only.
const INBOX_SAFETY_POLL: Duration = Duration::from_secs(1);

/// How long the inbox worker waits after a failed step before it tries again (wakes do not
/// shorten it, so a failure under load is not retried in a spin).
const INBOX_RETRY: Duration = Duration::from_millis(200);

/// Why the service could not start. Chinese, because the admin reads it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Roster(#[from] RosterError),
    #[error("节假日数据有误：{0}")]
    Calendar(#[from] CalendarError),
    #[error(
        "钉钉模式为 http，但未配置 [dingtalk] app_secret（可用环境变量 TIAOCHU_DINGTALK__APP_SECRET 设置）"
    )]
    MissingAppSecret,
    #[error(
        "钉钉模式为 stream，但未配置 [dingtalk] app_key 或 app_secret（可用环境变量 TIAOCHU_DINGTALK__APP_KEY、TIAOCHU_DINGTALK__APP_SECRET 设置）"
    )]
    MissingStreamCredentials,
    #[error(transparent)]
    CallbackKey(#[from] CallbackKeyError),
    #[error("无法创建访问钉钉的 HTTP 客户端：{0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("无法读取监听地址：{0}")]
    Listener(#[source] std::io::Error),
    #[error("{0}")]
    SandboxExposed(String),
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
}

/// The service, built and ready to run.
pub struct App {
    address: SocketAddr,
    listener: TcpListener,
    /// One service per database, held until [`App::run_until_stopped`] returns.
    lock: ServiceLock,
    store: Store,
    mode: DingtalkMode,
    shutdown: Shutdown,
    router: axum::Router,
    /// The Stream client and the state it publishes to `/healthz`; only in `stream` mode.
    stream: Option<(StreamClient, watch::Sender<StreamState>)>,
    engine: Engine,
    sender: Arc<dyn Sender>,
    clock: Arc<dyn Clock>,
    /// Moves the scheduler when the clock jumps (the sandbox clock panel).
    clock_moved: Arc<watch::Sender<u64>>,
    /// When the monthly report is posted (`[report]`).
    report: ReportSettings,
    /// `[dashboard] base_url`, for the 看板 login links.
    dashboard_url: String,
    /// `[inbox] per_sender_per_minute`.
    per_sender_per_minute: u32,
    /// `[outbox] sends_per_second`.
    sends_per_second: u32,
    /// `[http]`: connection timeouts and caps.
    limits: Limits,
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
        let callback_key = CallbackKey::from_setting(&settings.dingtalk.callback_aes_key)?;
        let address = listener.local_addr().map_err(AppError::Listener)?;
        // Principle 9: a 看板 link must reach this service.
        let dashboard_url = effective_dashboard_url(&settings.dashboard.base_url, address);
        if let Some(refusal) = sandbox_exposure(&settings, address.ip()) {
            return Err(AppError::SandboxExposed(refusal));
        }
        if mode == DingtalkMode::Sandbox && !address.ip().to_canonical().is_loopback() {
            tracing::warn!(
                %address,
                "SANDBOX MODE ON A NETWORK ADDRESS ([sandbox] allow_remote = true): the console has \
                 no login, anyone who reaches it acts as anyone on the roster; \
                 沙盒控制台没有登录，能访问它的任何人都能以任何人的身份操作"
            );
        }
        if mode == DingtalkMode::Stream
            && (settings.dingtalk.app_key.is_empty() || settings.dingtalk.app_secret.is_empty())
        {
            return Err(AppError::MissingStreamCredentials);
        }
        let lock = ServiceLock::acquire(&settings.store.path)?;
        let store = Store::open(&settings.store.path)?;
        crate::casebook::catch_up_blocking(&store)?;
        // Generated at the first start on this database and kept in it ever after.
        let card_secrets = CardSecrets::load_or_create(&store, clock.now())?;
        let roster = Arc::new(Roster::load(&settings.roster.path)?);
        let calendar = Arc::new(settings.load_calendar()?);
        // The sandbox clock panel's moves survive a restart (see store/sandbox.rs).
        let sandbox_offset = match mode {
            DingtalkMode::Sandbox => store.read_blocking(|r| r.sandbox_offset())?,
            DingtalkMode::Http | DingtalkMode::Stream => jiff::SignedDuration::ZERO,
        };
        if sandbox_offset.is_positive() {
            clock
                .advance_by(sandbox_offset)
                .map_err(|e| StoreError::BadData(format!("沙盒时钟无法恢复：{e}")))?;
        }
        let clock_moved = Arc::new(watch::Sender::new(0));
        // The console reads the same store and clock the workers use, so it shows exactly what
        // they do.
        let engine = Engine::new(
            store.clone(),
            Arc::clone(&roster),
            Arc::clone(&calendar),
            settings.sla.clone(),
            Dispatch::from_settings(&settings.dingtalk, card_secrets.clone()),
        )
        // The hotline's digest goes to its notice group when the group robot is configured,
        // else to the hotline head.
        .with_group_digest(!settings.dingtalk.group_webhook.is_empty())
        .with_leader_confirmation(settings.workflow.require_leader_confirmation);
        // Roster changes made in DingTalk before this start are in force again.
        engine
            .reload_roster_blocking()
            .map_err(|e| AppError::Store(StoreError::BadData(e.to_string())))?;
        let sandbox = (mode == DingtalkMode::Sandbox).then(|| {
            let in_force = engine.clone();
            SandboxState::new(
                store.clone(),
                Arc::new(move || in_force.roster()),
                Arc::clone(&calendar),
                Arc::clone(&clock),
                Arc::clone(&clock_moved),
            )
            .with_moved(sandbox_offset)
            .with_public_hosts(&settings.dashboard.base_url, address)
        });
        let sender: Arc<dyn Sender> = match mode {
            DingtalkMode::Sandbox => Arc::new(SandboxSender),
            DingtalkMode::Http | DingtalkMode::Stream => Arc::new(DingtalkClient::new(
                &settings.dingtalk,
                Timeouts::default()
                    .http_client()
                    .map_err(AppError::HttpClient)?,
                Arc::clone(&clock),
            )),
        };
        let (stream, stream_state) = match mode {
            DingtalkMode::Stream => {
                let http = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(15))
                    .build()
                    .map_err(AppError::HttpClient)?;
                // Card callbacks are decided before their ACK, which carries the card update.
                // Department changes are looked up in the address book as they arrive.
                let in_force = engine.clone();
                let directory = Directory::new(
                    Arc::new(DingtalkClient::new(
                        &settings.dingtalk,
                        Timeouts::default()
                            .http_client()
                            .map_err(AppError::HttpClient)?,
                        Arc::clone(&clock),
                    )),
                    Arc::new(move || in_force.roster()),
                );
                let handler = Arc::new(CardStreamHandler::new(
                    InboxHandler::new(store.clone(), Arc::clone(&clock)).with_directory(directory),
                    InboxProcessor::new(engine.clone()).with_dashboard_url(&dashboard_url),
                    Arc::clone(&clock),
                ));
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
            callback_key,
            clock: Arc::clone(&clock),
            stream: stream_state,
            card_callbacks: card_callbacks_over_http(&settings.dingtalk).then(|| {
                CardCallbackRoute {
                    processor: InboxProcessor::new(engine.clone())
                        .with_dashboard_url(&dashboard_url),
                    secrets: card_secrets.clone(),
                }
            }),
            sandbox,
            dashboard: DashboardState::new(engine.clone(), Arc::clone(&clock), &dashboard_url),
            backlog: BacklogGate::new(store.clone(), settings.inbox.max_backlog),
        });
        Ok(App {
            address,
            listener,
            lock,
            store,
            mode,
            shutdown: Shutdown::new(),
            router,
            stream,
            engine,
            sender,
            clock,
            clock_moved,
            report: settings.report.clone(),
            dashboard_url,
            per_sender_per_minute: settings.inbox.per_sender_per_minute,
            sends_per_second: settings.outbox.sends_per_second,
            limits: Limits::from(&settings.http),
        })
    }

    /// The engine every worker decides through.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Tells the scheduler the clock moved (so timers that became due fire now, not at the
    /// next regular check).
    pub fn clock_moved_handle(&self) -> Arc<watch::Sender<u64>> {
        Arc::clone(&self.clock_moved)
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
        let lock = self.lock;
        // Under the lock, a lease in the outbox was left by a process that died mid-send; its
        // rows go out now instead of after the lease (at-least-once, as any retry).
        match self.store.write(|tx| tx.release_outbox_leases()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "released outbox leases left by a stopped process"),
            Err(e) => tracing::error!(error = %e, "could not release stale outbox leases"),
        }
        let stream = self
            .stream
            .map(|(client, state)| tokio::spawn(client.run(self.shutdown.subscribe(), state)));
        let workers = [
            tokio::spawn(inbox_loop(
                InboxProcessor::new(self.engine.clone())
                    .with_dashboard_url(&self.dashboard_url)
                    .with_sender_limit(self.per_sender_per_minute),
                self.store.inbox_changed(),
                Arc::clone(&self.clock),
                self.shutdown.subscribe(),
            )),
            tokio::spawn(scheduler::run(
                self.engine.clone(),
                Arc::clone(&self.clock),
                self.clock_moved.subscribe(),
                self.shutdown.subscribe(),
            )),
            // 五(四) 月统计: the previous month's report on the first working day at 09:00.
            tokio::spawn(crate::report::run(
                self.engine.clone(),
                Arc::clone(&self.clock),
                self.report,
                self.shutdown.subscribe(),
            )),
            tokio::spawn(outbox::run(
                self.store.clone(),
                self.sender,
                Arc::clone(&self.clock),
                live_admins(self.engine.clone()),
                RateLimits::with_budget(self.sends_per_second),
                self.shutdown.subscribe(),
            )),
        ];
        serve::warn_if_near_file_limit(self.limits.max_connections);
        serve::serve(
            self.listener,
            self.router,
            self.limits,
            self.shutdown.subscribe(),
        )
        .await;
        // The server returns only once the shutdown was triggered, which stops the Stream client
        // and the workers too; wait for them.
        if let Some(task) = stream
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "stream client task failed");
        }
        for task in workers {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "worker task failed");
            }
        }
        drop(lock);
        Ok(())
    }
}

/// The admins of the roster in force, read at each outbox step: bindings and roster changes made
/// in DingTalk after start-up count at once.
fn live_admins(engine: Engine) -> outbox::Admins {
    Arc::new(move || {
        engine
            .roster()
            .people_with_role(Role::Admin)
            .map(|p| p.id().to_string())
            .collect()
    })
}

/// Processes stored inbound messages as they arrive: woken by every commit that stores one
/// (`arrived`), and again at once while a step found work, since more may wait behind a full
/// batch. The outbox needs no nudge: the commits that queue replies wake it.
async fn inbox_loop(
    processor: InboxProcessor,
    mut arrived: watch::Receiver<u64>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        // Messages stored from here on wake the wait below, even while this step runs.
        arrived.borrow_and_update();
        match processor.process_pending(clock.now()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(processed = n, "inbound messages processed");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "processing inbound messages failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(INBOX_RETRY) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(INBOX_SAFETY_POLL) => {}
            _ = arrived.changed() => {}
            _ = stop.changed() => {}
        }
    }
}

/// Where 看板 login links point: `[dashboard] base_url` when it was configured; the shipped
/// default (`http://127.0.0.1:8080`) names no real deployment, so then the address the service
/// actually listens on (loopback for an unspecified address, which a local browser reaches).
fn effective_dashboard_url(base_url: &str, listen: SocketAddr) -> String {
    if base_url.trim_end_matches('/') != crate::inbox::DEFAULT_DASHBOARD_URL {
        return base_url.to_string();
    }
    let ip = listen.ip().to_canonical();
    let host = if ip.is_unspecified() {
        "127.0.0.1".to_string()
    } else if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    format!("http://{host}:{}", listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_links_follow_the_listen_address_unless_configured() {
        let listen: SocketAddr = "0.0.0.0:9123".parse().expect("addr");
        assert_eq!(
            effective_dashboard_url("http://127.0.0.1:8080", listen),
            "http://127.0.0.1:9123"
        );
        let local: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        assert_eq!(
            effective_dashboard_url("http://127.0.0.1:8080/", local),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            effective_dashboard_url("https://tiaochu.example.cn", listen),
            "https://tiaochu.example.cn"
        );
    }
}
