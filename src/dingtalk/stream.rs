//! DingTalk Stream mode (docs/dingtalk-protocol.md §2): an outbound WebSocket that receives robot
//! messages, card callbacks and organisation events (address book) behind NAT. This module owns
//! the connection life cycle; what a frame means is left to a [`FrameHandler`] (in production
//! [`InboxHandler`]: persist, then ACK).
//!
//! Shape, and why:
//! - Before every connect a fresh `POST {api_base}/v1.0/gateway/connections/open`: tickets are
//!   single use and live 90 s (§2.1).
//! - Per connection one read loop, one writer task owning the socket's sink, and worker tasks for
//!   the handlers. The read loop never awaits a handler, so SYSTEM pings are echoed and WebSocket
//!   pings sent even while the store is slow; every frame (ACKs included) leaves through the
//!   writer's queue.
//! - SYSTEM `disconnect` opens the next connection at once while the old socket is still read
//!   and acknowledged until the gateway closes it (make-before-break, as the Java SDK does), so
//!   no push in between is lost.
//! - Liveness: a WebSocket Ping after [`StreamConfig::ping_after_silence`] without any frame; no
//!   frame within [`StreamConfig::pong_deadline`] after it means the connection is dead.
//! - Reconnects back off exponentially with full jitter; the attempt count resets once a new
//!   connection delivers its first frame.
//! - A redelivered frame (same `messageId`) is handled once and acknowledged every time, with
//!   the same ACK `data` (which for a card callback is the card update).
//!
//! Logs name connection ids, frame ids and outcomes; never the client secret, the ticket or a
//! message body.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jiff::SignedDuration;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::clock::Clock;
use crate::settings::{DingtalkSettings, Secret};

mod dedupe;
mod frame;
mod handler;

use dedupe::{Dedupe, Seen};
use frame::{Frame, FrameKind, ack, callback_ack_data, event_ack_data};
pub use frame::{TOPIC_CARD_CALLBACK, TOPIC_ROBOT_MESSAGE};
pub use handler::{
    CONTACT_LEAVE, CONTACT_MODIFY, ContactEvent, Directory, EventFrame, FrameHandler, HandlerError,
    HandlerFuture, InboxHandler, SOURCE_CARD, SOURCE_EVENT, SOURCE_STREAM,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The `ua` sent to the gateway, in the SDKs' "name-lang/version" style.
const USER_AGENT: &str = concat!("tiaochu-rust/", env!("CARGO_PKG_VERSION"));

/// The largest text frame accepted (robot messages are a few KiB; 1 MiB leaves ample room).
const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// The longest gateway answer quoted in a log line.
const ANSWER_KEEP_CHARS: usize = 200;

/// Timings and limits. [`Default`] is production; tests shorten the durations.
#[derive(Debug, Clone, Copy)]
pub struct StreamConfig {
    /// Silence on a socket after which we send a WebSocket Ping.
    pub ping_after_silence: Duration,
    /// How long after that Ping any frame (a Pong at least) must arrive, else the socket is dead.
    pub pong_deadline: Duration,
    /// First reconnect delay ceiling; doubles per failed attempt.
    pub backoff_base: Duration,
    /// Largest reconnect delay ceiling.
    pub backoff_cap: Duration,
    /// Bound on the `open` call and on the WebSocket handshake, each.
    pub connect_timeout: Duration,
    /// How long a socket the gateway asked us to leave (`disconnect`) may stay open before we
    /// close it ourselves (the gateway closes it after ~10 s).
    pub drain_after_disconnect: Duration,
    /// How long, at shutdown, in-flight handlers get to finish and their ACKs to leave.
    pub shutdown_grace: Duration,
    /// Handlers running at once (all connections together).
    pub max_running: usize,
    /// Frames accepted but not yet acknowledged; beyond this a frame is left unacknowledged
    /// for the gateway to redeliver, so memory stays bounded under a flood.
    pub max_pending: usize,
    /// How long a frame id is remembered for redelivery detection (clock time).
    pub dedupe_ttl: Duration,
    /// How many frame ids are remembered.
    pub dedupe_capacity: usize,
    /// A number in `[0, 1]` scaling each reconnect delay (full jitter). Random in production;
    /// tests fix it to make delays exact.
    pub jitter: fn() -> f64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            ping_after_silence: Duration::from_secs(30),
            pong_deadline: Duration::from_secs(10),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            drain_after_disconnect: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            max_running: 32,
            max_pending: 1024,
            dedupe_ttl: Duration::from_secs(300),
            dedupe_capacity: 10_000,
            jitter: random_unit,
        }
    }
}

/// What `/healthz` reports about Stream mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// Not in Stream mode.
    NotConfigured,
    /// Stream mode, with no open socket right now.
    Connecting,
    /// At least one socket to the gateway is open.
    Connected,
}

impl StreamState {
    /// Every state's label with whether it is `self`, for the `tiaochu_stream_state` gauge.
    pub fn labels(self) -> [(&'static str, bool); 3] {
        [
            StreamState::NotConfigured,
            StreamState::Connecting,
            StreamState::Connected,
        ]
        .map(|s| (s.as_str(), s == self))
    }

    /// `"not_configured"`, `"connecting"` or `"connected"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::NotConfigured => "not_configured",
            StreamState::Connecting => "connecting",
            StreamState::Connected => "connected",
        }
    }
}

/// Why a connection attempt failed. Never carries the secret or the ticket.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("open request failed: {0}")]
    OpenTransport(#[source] reqwest::Error),
    #[error("open answered HTTP {status}: {answer}")]
    OpenRefused { status: u16, answer: String },
    #[error("open answer lacks endpoint or ticket")]
    OpenAnswer,
    #[error("WebSocket handshake failed: {0}")]
    Handshake(#[source] tokio_tungstenite::tungstenite::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

#[derive(Deserialize)]
struct OpenAnswer {
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    ticket: String,
}

/// The Stream client. Build it with [`StreamClient::new`], then [`StreamClient::run`] it.
pub struct StreamClient {
    open_url: String,
    client_id: String,
    client_secret: Secret,
    http: reqwest::Client,
    handler: Arc<dyn FrameHandler>,
    clock: Arc<dyn Clock>,
    config: StreamConfig,
}

impl std::fmt::Debug for StreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamClient")
            .field("open_url", &self.open_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What a connection tells the supervisor while it lives (its end is its task finishing).
enum Event {
    /// The first frame arrived: the gateway accepted us, so backoff starts over.
    FirstFrame(u64),
    /// The gateway sent `disconnect`: connect anew now, keep this one until it closes.
    GoAway(u64),
}

/// Shared by every connection of one client.
struct Shared {
    handler: Arc<dyn FrameHandler>,
    clock: Arc<dyn Clock>,
    dedupe: Mutex<Dedupe>,
    running: Arc<Semaphore>,
    pending: Arc<Semaphore>,
    config: StreamConfig,
}

impl Shared {
    fn dedupe(&self) -> MutexGuard<'_, Dedupe> {
        // Every critical section is a few map operations without panics in between; a poisoned
        // lock still holds a consistent map.
        self.dedupe
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl StreamClient {
    /// A client for the app `settings.app_key` / `app_secret`, opening connections at
    /// `settings.api_base`. `http` performs the `open` calls (its proxy and TLS settings apply).
    pub fn new(
        settings: &DingtalkSettings,
        http: reqwest::Client,
        handler: Arc<dyn FrameHandler>,
        clock: Arc<dyn Clock>,
    ) -> StreamClient {
        StreamClient {
            open_url: format!(
                "{}/v1.0/gateway/connections/open",
                settings.api_base.trim_end_matches('/')
            ),
            client_id: settings.app_key.clone(),
            client_secret: settings.app_secret.clone(),
            http,
            handler,
            clock,
            config: StreamConfig::default(),
        }
    }

    /// Replaces the timings and limits.
    pub fn with_config(mut self, config: StreamConfig) -> StreamClient {
        self.config = config;
        self
    }

    /// Keeps a connection to the gateway until `stop` turns true (or its sender is dropped),
    /// publishing [`StreamState::Connecting`] / [`StreamState::Connected`] on `state`. At stop,
    /// in-flight handlers get [`StreamConfig::shutdown_grace`] to finish and acknowledge.
    pub async fn run(self, mut stop: watch::Receiver<bool>, state: watch::Sender<StreamState>) {
        let config = self.config;
        let shared = Arc::new(Shared {
            handler: Arc::clone(&self.handler),
            clock: Arc::clone(&self.clock),
            dedupe: Mutex::new(Dedupe::new(
                SignedDuration::try_from(config.dedupe_ttl).unwrap_or(SignedDuration::MAX),
                config.dedupe_capacity,
            )),
            running: Arc::new(Semaphore::new(config.max_running.max(1))),
            pending: Arc::new(Semaphore::new(config.max_pending.max(1))),
            config,
        });
        let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
        let mut connections: JoinSet<u64> = JoinSet::new();
        // Task id → connection id, to know which connection a finished task was.
        let mut tasks: HashMap<tokio::task::Id, u64> = HashMap::new();
        // The connection new pushes are expected on; None while (re)connecting.
        let mut current: Option<u64> = None;
        let mut next_attempt = Some(Instant::now());
        let mut attempt: u32 = 0;
        let mut next_id: u64 = 0;
        state.send_replace(StreamState::Connecting);

        loop {
            if next_attempt.is_some_and(|at| at <= Instant::now()) {
                let outcome = tokio::select! {
                    outcome = self.connect() => outcome,
                    () = stopped(&mut stop) => break,
                };
                match outcome {
                    Ok(socket) => {
                        let id = next_id;
                        next_id += 1;
                        tracing::info!(connection = id, "stream connected");
                        if id > 0 {
                            crate::metrics::global().stream_reconnected();
                        }
                        let task = connections.spawn(connection(
                            id,
                            socket,
                            Arc::clone(&shared),
                            events_tx.clone(),
                            stop.clone(),
                        ));
                        tasks.insert(task.id(), id);
                        current = Some(id);
                        next_attempt = None;
                        state.send_replace(StreamState::Connected);
                    }
                    Err(e) => {
                        let delay = self.backoff(attempt);
                        attempt = attempt.saturating_add(1);
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "stream connect failed");
                        next_attempt = Some(Instant::now() + delay);
                    }
                }
                continue;
            }
            let wake = next_attempt.unwrap_or_else(far_future);
            tokio::select! {
                () = stopped(&mut stop) => break,
                Some(event) = events.recv() => match event {
                    Event::FirstFrame(id) if current == Some(id) => attempt = 0,
                    Event::FirstFrame(_) => {}
                    Event::GoAway(id) if current == Some(id) => {
                        tracing::info!(connection = id, "stream gateway sent disconnect; connecting anew before it closes");
                        current = None;
                        next_attempt = Some(Instant::now());
                    }
                    Event::GoAway(_) => {}
                },
                Some(ended) = connections.join_next_with_id() => {
                    let task = match ended {
                        Ok((task, _)) => task,
                        Err(e) => {
                            // A panicking connection is a bug; treat it like a dropped socket.
                            tracing::error!(error = %e, "stream connection task failed");
                            e.id()
                        }
                    };
                    let id = tasks.remove(&task);
                    if id.is_some() && id == current {
                        current = None;
                        let delay = self.backoff(attempt);
                        attempt = attempt.saturating_add(1);
                        tracing::info!(retry_in_ms = delay.as_millis() as u64, "stream reconnecting");
                        next_attempt = Some(Instant::now() + delay);
                    }
                    if tasks.is_empty() {
                        state.send_replace(StreamState::Connecting);
                    }
                }
                () = sleep_until(wake), if next_attempt.is_some() => {}
            }
        }

        // Each connection saw the stop too and is closing; give their handlers the grace.
        let grace = config.shutdown_grace + Duration::from_secs(1);
        if timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            connections.shutdown().await;
        }
        state.send_replace(StreamState::Connecting);
        tracing::info!("stream client stopped");
    }

    /// A fresh ticket, then the WebSocket handshake; both bounded by `connect_timeout`.
    async fn connect(&self) -> Result<Socket, ConnectError> {
        let limit = self.config.connect_timeout;
        let (endpoint, ticket) = timeout(limit, self.open())
            .await
            .map_err(|_| ConnectError::Timeout(limit))??;
        let separator = if endpoint.contains('?') { '&' } else { '?' };
        let url = format!(
            "{endpoint}{separator}ticket={}",
            utf8_percent_encode(&ticket, NON_ALPHANUMERIC)
        );
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME_BYTES))
            .max_frame_size(Some(MAX_FRAME_BYTES));
        let (socket, _) = timeout(
            limit,
            tokio_tungstenite::connect_async_with_config(url, Some(ws_config), false),
        )
        .await
        .map_err(|_| ConnectError::Timeout(limit))?
        .map_err(ConnectError::Handshake)?;
        Ok(socket)
    }

    /// `POST …/gateway/connections/open` (§2.1): the endpoint and a single-use ticket.
    async fn open(&self) -> Result<(String, String), ConnectError> {
        let body = json!({
            "clientId": self.client_id,
            "clientSecret": self.client_secret.expose(),
            "subscriptions": [
                {"type": "CALLBACK", "topic": TOPIC_ROBOT_MESSAGE},
                {"type": "CALLBACK", "topic": TOPIC_CARD_CALLBACK},
                // Address-book events (user_leave_org): the types are chosen in the console.
                {"type": "EVENT", "topic": "*"},
            ],
            "ua": USER_AGENT,
        });
        let response = self
            .http
            .post(&self.open_url)
            // Without Accept the gateway may answer XML (Node SDK).
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| ConnectError::OpenTransport(e.without_url()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ConnectError::OpenTransport(e.without_url()))?;
        if !status.is_success() {
            return Err(ConnectError::OpenRefused {
                status: status.as_u16(),
                answer: text.chars().take(ANSWER_KEEP_CHARS).collect(),
            });
        }
        let answer: OpenAnswer =
            serde_json::from_str(&text).map_err(|_| ConnectError::OpenAnswer)?;
        if answer.endpoint.is_empty() || answer.ticket.is_empty() {
            return Err(ConnectError::OpenAnswer);
        }
        Ok((answer.endpoint, answer.ticket))
    }

    fn backoff(&self, attempt: u32) -> Duration {
        backoff_delay(
            self.config.backoff_base,
            self.config.backoff_cap,
            attempt,
            (self.config.jitter)(),
        )
    }
}

/// Full-jitter backoff: `unit` × min(`cap`, `base` · 2^`attempt`), `unit` clamped to `[0, 1]`.
pub fn backoff_delay(base: Duration, cap: Duration, attempt: u32, unit: f64) -> Duration {
    let ceiling = base
        .saturating_mul(2u32.saturating_pow(attempt.min(31)))
        .min(cap);
    let unit = if unit.is_nan() {
        1.0
    } else {
        unit.clamp(0.0, 1.0)
    };
    ceiling.mul_f64(unit)
}

/// A uniformly distributed number in `[0, 1)`. `RandomState` is seeded from the OS once per
/// thread and stepped on every call, which is all the randomness jitter needs.
fn random_unit() -> f64 {
    let bits = RandomState::new().hash_one(0u8);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// Resolves once `stop` is true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Why a connection ended.
#[derive(Debug)]
enum Ended {
    Stopped,
    ClosedByGateway,
    Failed(tokio_tungstenite::tungstenite::Error),
    NoPong,
    Drained,
}

/// One socket: reads frames, dispatches them, keeps the socket alive; returns its id when done.
async fn connection(
    id: u64,
    socket: Socket,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    let config = shared.config;
    let (sink, mut stream) = socket.split();
    let (out, out_rx) = mpsc::unbounded_channel::<Message>();
    let mut writer = tokio::spawn(write_loop(id, sink, out_rx));
    let mut last_seen = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    let mut first_frame = true;
    let mut drain_until: Option<Instant> = None;

    let ended = loop {
        let liveness = match ping_sent {
            Some(sent) => sent + config.pong_deadline,
            None => last_seen + config.ping_after_silence,
        };
        let wake = drain_until.map_or(liveness, |d| d.min(liveness));
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break Ended::Stopped,
            next = stream.next() => {
                let message = match next {
                    None => break Ended::ClosedByGateway,
                    Some(Err(e)) => break Ended::Failed(e),
                    Some(Ok(message)) => message,
                };
                last_seen = Instant::now();
                ping_sent = None;
                match message {
                    Message::Text(text) => {
                        if first_frame {
                            first_frame = false;
                            let _ = events.send(Event::FirstFrame(id));
                        }
                        if on_text(id, text.as_str(), &shared, &out) {
                            drain_until.get_or_insert(Instant::now() + config.drain_after_disconnect);
                            let _ = events.send(Event::GoAway(id));
                        }
                    }
                    Message::Close(_) => break Ended::ClosedByGateway,
                    // Pongs only prove liveness; tungstenite answers Pings itself.
                    Message::Ping(_) | Message::Pong(_) | Message::Binary(_) | Message::Frame(_) => {}
                }
            }
            () = sleep_until(wake) => {
                let now = Instant::now();
                if drain_until.is_some_and(|d| d <= now) {
                    break Ended::Drained;
                }
                if ping_sent.is_some() {
                    break Ended::NoPong;
                }
                ping_sent = Some(now);
                let _ = out.send(Message::Ping(Default::default()));
            }
        }
    };

    match &ended {
        Ended::Stopped => tracing::info!(connection = id, "stream connection closing: shutdown"),
        Ended::ClosedByGateway => {
            tracing::info!(connection = id, "stream connection closed by the gateway")
        }
        Ended::Failed(e) => tracing::warn!(connection = id, error = %e, "stream connection failed"),
        Ended::NoPong => tracing::warn!(
            connection = id,
            "stream connection silent past the pong deadline; dropping it"
        ),
        Ended::Drained => tracing::info!(
            connection = id,
            "stream connection closed after disconnect grace"
        ),
    }
    drop(stream);
    // The writer ends once every sender is gone: ours now, the workers' when they finish.
    drop(out);
    match ended {
        Ended::Stopped | Ended::Drained => {
            if timeout(config.shutdown_grace, &mut writer).await.is_err() {
                writer.abort();
            }
        }
        // The socket is gone: ACKs still queued cannot reach the gateway, which redelivers.
        Ended::ClosedByGateway | Ended::Failed(_) | Ended::NoPong => writer.abort(),
    }
    id
}

/// Owns the socket's sink: sends everything queued, then a Close frame once the queue closes.
async fn write_loop(
    id: u64,
    mut sink: futures_util::stream::SplitSink<Socket, Message>,
    mut queue: mpsc::UnboundedReceiver<Message>,
) {
    while let Some(message) = queue.recv().await {
        if let Err(e) = sink.send(message).await {
            tracing::warn!(connection = id, error = %e, "stream write failed");
            return;
        }
    }
    let _ = sink.close().await;
}

/// Handles one text frame from the read loop without awaiting anything. Returns true for a
/// `disconnect`.
fn on_text(
    id: u64,
    text: &str,
    shared: &Arc<Shared>,
    out: &mpsc::UnboundedSender<Message>,
) -> bool {
    let frame = match Frame::parse(text) {
        Ok(frame) => frame,
        Err(e) => {
            tracing::warn!(connection = id, error = %e, "stream frame ignored");
            return false;
        }
    };
    let message_id = frame.headers.message_id.as_str();
    let send = |text: String| {
        let _ = out.send(Message::text(text));
    };
    match frame.kind() {
        FrameKind::Ping => send(ack(message_id, 200, "OK", &frame.data)),
        FrameKind::Disconnect => {
            // Not required by the gateway, harmless, and what every SDK does.
            send(ack(message_id, 200, "OK", &frame.data));
            return true;
        }
        FrameKind::OtherSystem => {
            tracing::debug!(connection = id, topic = %frame.headers.topic, "stream system frame");
        }
        FrameKind::Unsubscribed => {
            tracing::warn!(connection = id, message_id, topic = %frame.headers.topic, "stream frame for a topic we did not subscribe to");
            send(ack(message_id, 404, "topic not subscribed", "{}"));
        }
        FrameKind::RobotMessage | FrameKind::CardCallback | FrameKind::Event => {
            dispatch(id, frame, shared, out)
        }
    }
    false
}

/// Hands a CALLBACK frame to a worker, or answers a redelivery from what the first copy got.
fn dispatch(id: u64, frame: Frame, shared: &Arc<Shared>, out: &mpsc::UnboundedSender<Message>) {
    let message_id = frame.headers.message_id.clone();
    let seen = shared.dedupe().check(&message_id, shared.clock.now());
    match seen {
        Seen::Done(data) => {
            tracing::info!(
                connection = id,
                message_id,
                "stream frame redelivered; acknowledged again"
            );
            let _ = out.send(Message::text(ack(&message_id, 200, "OK", &data)));
            return;
        }
        Seen::InFlight(mut first) => {
            // Answer this copy when the first one is handled; if it fails, neither is answered.
            let out = out.clone();
            tokio::spawn(async move {
                if let Ok(done) = first.wait_for(Option::is_some).await
                    && let Some(data) = done.as_ref()
                {
                    let _ = out.send(Message::text(ack(&message_id, 200, "OK", data)));
                }
            });
            return;
        }
        Seen::New => {}
    }
    let Ok(pending) = Arc::clone(&shared.pending).try_acquire_owned() else {
        shared.dedupe().forget(&message_id);
        tracing::warn!(
            connection = id,
            message_id,
            "too many stream frames in flight; left unacknowledged for redelivery"
        );
        return;
    };
    let shared = Arc::clone(shared);
    let out = out.clone();
    tokio::spawn(async move {
        let _pending = pending;
        // The semaphore is never closed, so acquiring only waits.
        let Ok(_running) = Arc::clone(&shared.running).acquire_owned().await else {
            return;
        };
        let handled = match frame.kind() {
            FrameKind::CardCallback => shared
                .handler
                .card_callback(&message_id, &frame.data)
                .await
                .map(|response| callback_ack_data(response.as_ref())),
            FrameKind::Event => {
                let event = EventFrame {
                    event_type: frame.headers.event_type.clone(),
                    event_id: frame.headers.event_id.clone(),
                    corp_id: frame.headers.event_corp_id.clone(),
                    born_time: frame.headers.event_born_time.clone(),
                    data: frame.data.clone(),
                };
                shared
                    .handler
                    .event(&message_id, &event)
                    .await
                    .map(|()| event_ack_data())
            }
            _ => shared
                .handler
                .robot_message(&message_id, &frame.data)
                .await
                .map(|()| callback_ack_data(None)),
        };
        match handled {
            Ok(data) => {
                shared.dedupe().done(&message_id, &data);
                let _ = out.send(Message::text(ack(&message_id, 200, "OK", &data)));
            }
            Err(e) => {
                shared.dedupe().forget(&message_id);
                tracing::warn!(connection = id, message_id, error = %e, "stream frame not acknowledged: handler failed; the gateway redelivers");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap_scaled_by_jitter() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        let full: Vec<u64> = (0..9)
            .map(|n| backoff_delay(base, cap, n, 1.0).as_secs())
            .collect();
        assert_eq!(full, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff_delay(base, cap, 3, 0.5), Duration::from_secs(4));
        assert_eq!(backoff_delay(base, cap, 3, 0.0), Duration::ZERO);
        assert_eq!(backoff_delay(base, cap, u32::MAX, 1.0), cap, "no overflow");
        assert_eq!(backoff_delay(base, cap, 0, 7.0), base, "unit is clamped");
        assert_eq!(backoff_delay(base, cap, 0, f64::NAN), base);
    }

    #[test]
    fn random_jitter_stays_in_the_unit_interval_and_varies() {
        let draws: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn state_names_are_what_healthz_reports() {
        assert_eq!(StreamState::NotConfigured.as_str(), "not_configured");
        assert_eq!(StreamState::Connecting.as_str(), "connecting");
        assert_eq!(StreamState::Connected.as_str(), "connected");
    }
}
