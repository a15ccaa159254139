//! The HTTP connection loop: what `axum::serve` did, plus the limits it lacks (`[http]`).
//!
//! Every connection is in one of three phases, each with its own deadline: *idle* (no request
//! under way: just accepted, or kept alive after an answer) until a byte arrives, *head* (the
//! first byte of a request) until hyper has the complete headers, and *request* (complete
//! headers) until the answer's last byte is handed to hyper. A connection past its phase's
//! deadline is dropped, which closes the socket, so a silent socket, a slowloris client sending
//! its headers a byte at a time and a trickled body each hold a descriptor for a bounded time.
//! hyper's own `header_read_timeout` is not used: it starts when hyper waits for a request,
//! so it would also be the idle limit.
//!
//! Connections are capped in all and per peer address (an IPv6 peer counts by its /64, which one
//! subscriber usually holds whole). A connection over a cap is accepted and closed at once: left
//! in the kernel's backlog it would still hold the queue, and accepting it costs one descriptor
//! for a moment only.
//!
//! Graceful stop as before: on the stop signal the listener closes, idle connections close,
//! requests under way finish (within their request deadline) and [`serve`] returns when the
//! last connection is gone.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::metrics::{self, ConnectionLimit, ConnectionPhase};
use crate::settings::HttpSettings;

/// At most one warning about refused connections per this long: a flood must not flood the log.
const REFUSAL_WARNING_EVERY: Duration = Duration::from_secs(10);

/// The connection limits of `[http]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub request: Duration,
    pub idle: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

impl From<&HttpSettings> for Limits {
    fn from(s: &HttpSettings) -> Limits {
        Limits {
            header_read: s.header_read_timeout(),
            request: s.request_timeout(),
            idle: s.idle_timeout(),
            max_connections: s.max_connections,
            max_connections_per_ip: s.max_connections_per_ip,
        }
    }
}

impl Limits {
    fn of(&self, phase: ConnectionPhase) -> Duration {
        match phase {
            ConnectionPhase::Idle => self.idle,
            ConnectionPhase::Head => self.header_read,
            ConnectionPhase::Request => self.request,
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true (or its sender is gone), then stops
/// accepting and returns once every open connection has finished.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Slots::new(limits));
    // Each connection task holds a receiver; `closed()` resolves when the last one is dropped.
    let (close_tx, close_rx) = watch::channel(());
    let mut refusals = Refusals::default();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        match slots.take(peer.ip()) {
            Ok(slot) => {
                tokio::spawn(connection(
                    stream,
                    peer,
                    slot,
                    router.clone(),
                    limits,
                    stop.clone(),
                    close_rx.clone(),
                ));
            }
            Err(limit) => {
                drop(stream);
                metrics::global().connection_refused(limit);
                refusals.note(limit);
            }
        }
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
}

/// Resolves once `stop` is true or its sender is gone (the guard a `wait_for` returns is not
/// `Send`, so it must not live in a `select!`).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// One connection, from accept to close: hyper serves it while the watchdog keeps its deadline.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _close: watch::Receiver<()>,
) {
    let phase = Arc::new(PhaseWatch::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        phase: Arc::clone(&phase),
    });
    let service = Tracked {
        router: TowerToHyperService::new(router),
        phase: Arc::clone(&phase),
        peer,
    };
    let mut conn = pin!(
        http1::Builder::new()
            // Kept by the watchdog below, which tells idle from head (see the module notes).
            .header_read_timeout(None)
            .serve_connection(io, service)
    );
    let mut stopping = false;
    loop {
        let (current, deadline) = phase.deadline(&limits);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = tokio::time::sleep_until(deadline) => {
                // The phase may have moved on just now; only its own deadline closes it.
                if phase.deadline(&limits) == (current, deadline) {
                    metrics::global().connection_timed_out(current);
                    tracing::debug!(
                        peer = %peer.ip(),
                        phase = current.as_str(),
                        "connection timed out, closed"
                    );
                    break;
                }
            }
            () = phase.changed.notified() => {}
            () = stopped(&mut stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    drop(slot);
}

/// Where a connection is and since when, shared by its socket reads, its service calls and its
/// watchdog.
struct PhaseWatch {
    state: Mutex<(ConnectionPhase, Instant)>,
    /// Wakes the watchdog when the phase changes (a new deadline may be the sooner one).
    changed: Notify,
}

impl PhaseWatch {
    fn new() -> PhaseWatch {
        PhaseWatch {
            state: Mutex::new((ConnectionPhase::Idle, Instant::now())),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (ConnectionPhase, Instant)> {
        // Two plain values, always written together: a panic cannot leave them torn.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn deadline(&self, limits: &Limits) -> (ConnectionPhase, Instant) {
        let (phase, since) = *self.lock();
        (phase, since + limits.of(phase))
    }

    fn enter(&self, phase: ConnectionPhase) {
        *self.lock() = (phase, Instant::now());
        self.changed.notify_one();
    }

    /// Bytes came in: on an idle connection they start a request's head. Later bytes (the rest
    /// of the head, a body) move nothing.
    fn bytes_arrived(&self) {
        let mut state = self.lock();
        if state.0 == ConnectionPhase::Idle {
            *state = (ConnectionPhase::Head, Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }
}

/// The socket, telling its [`PhaseWatch`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    phase: Arc<PhaseWatch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.phase.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router as hyper calls it: each request puts the connection in the request phase until
/// its answer's body is done, and carries the peer address ([`ConnectInfo`]).
struct Tracked {
    router: TowerToHyperService<Router>,
    phase: Arc<PhaseWatch>,
    peer: SocketAddr,
}

type Answered = Pin<Box<dyn Future<Output = Result<Response<Answer>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<Answer>;
    type Error = Infallible;
    type Future = Answered;

    fn call(&self, mut request: Request<Incoming>) -> Answered {
        let in_flight = InFlight::start(Arc::clone(&self.phase));
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let answer = hyper::service::Service::call(&self.router, request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| Answer {
                body,
                in_flight: Some(in_flight),
            }))
        })
    }
}

/// A request under way; dropping it returns the connection to idle.
struct InFlight(Arc<PhaseWatch>);

impl InFlight {
    fn start(phase: Arc<PhaseWatch>) -> InFlight {
        phase.enter(ConnectionPhase::Request);
        InFlight(phase)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.enter(ConnectionPhase::Idle);
    }
}

/// An answer's body: the request stays under way (and under its deadline) until the body's end,
/// so a client that reads the answer slowly is bounded too.
struct Answer {
    body: Body,
    in_flight: Option<InFlight>,
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Open connections, in all and per peer.
struct Slots {
    limits: Limits,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

impl Slots {
    fn new(limits: Limits) -> Slots {
        Slots {
            limits,
            open: Mutex::new(Open::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // Counts updated together under the lock: a panic cannot leave them torn.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for a connection from `ip`, or the cap it would exceed.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, ConnectionLimit> {
        let peer = peer_key(ip);
        let mut open = self.lock();
        if open.total >= self.limits.max_connections {
            return Err(ConnectionLimit::Total);
        }
        let from_peer = open.by_peer.entry(peer).or_insert(0);
        if *from_peer >= self.limits.max_connections_per_ip {
            return Err(ConnectionLimit::PerIp);
        }
        *from_peer += 1;
        open.total += 1;
        metrics::global().connection_opened();
        Ok(Slot {
            slots: Arc::clone(self),
            peer,
        })
    }
}

/// One open connection's place; freed on drop.
struct Slot {
    slots: Arc<Slots>,
    peer: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // The map holds only peers with open connections, so it cannot grow without bound.
                open.by_peer.remove(&self.peer);
            }
        }
        metrics::global().connection_closed();
    }
}

/// The address a peer is counted under: IPv4 as is (an IPv4-mapped IPv6 address as its IPv4),
/// IPv6 by its /64.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The log's view of refused connections: one warning per [`REFUSAL_WARNING_EVERY`] at most,
/// with the count since the last one. `/metrics` has every refusal.
#[derive(Default)]
struct Refusals {
    last_warning: Option<Instant>,
    since: u64,
}

impl Refusals {
    fn note(&mut self, limit: ConnectionLimit) {
        self.since += 1;
        let due = self
            .last_warning
            .is_none_or(|at| at.elapsed() >= REFUSAL_WARNING_EVERY);
        if due {
            tracing::warn!(
                refused = self.since,
                limit = limit.as_str(),
                "connections over the [http] cap were closed at once"
            );
            self.last_warning = Some(Instant::now());
            self.since = 0;
        }
    }
}

/// A failed accept. A peer that gave up before we took it is nothing; anything else (out of
/// file descriptors) is logged and retried after a pause instead of spinning.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The process's open-file limit (the soft one), where Linux tells it.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Warns at start when `[http] max_connections` leaves too few descriptors under the file
/// limit: the database, DingTalk sends and the Stream socket need theirs even while every
/// connection slot is taken, so the cap should be at most half the limit.
pub fn warn_if_near_file_limit(max_connections: usize) {
    if let Some(limit) = open_file_limit()
        && u64::try_from(max_connections).unwrap_or(u64::MAX) > limit / 2
    {
        tracing::warn!(
            max_connections,
            open_file_limit = limit,
            "[http] max_connections is more than half the open-file limit: raise the limit \
             (LimitNOFILE in the systemd unit, ulimit -n) or lower the cap"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: usize) -> Limits {
        Limits {
            header_read: Duration::from_secs(1),
            request: Duration::from_secs(1),
            idle: Duration::from_secs(1),
            max_connections: total,
            max_connections_per_ip: per_ip,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn slots_cap_each_peer_and_the_total_and_come_back_when_closed() {
        let slots = Arc::new(Slots::new(limits(3, 2)));
        let a1 = slots.take(ip("10.0.0.1")).expect("first");
        let _a2 = slots.take(ip("10.0.0.1")).expect("second");
        assert!(matches!(
            slots.take(ip("10.0.0.1")),
            Err(ConnectionLimit::PerIp)
        ));
        let _b1 = slots.take(ip("10.0.0.2")).expect("another peer");
        assert!(matches!(
            slots.take(ip("10.0.0.3")),
            Err(ConnectionLimit::Total)
        ));
        drop(a1);
        let _c1 = slots.take(ip("10.0.0.3")).expect("a freed slot");
        assert_eq!(slots.lock().total, 3);
    }

    #[test]
    fn the_peer_map_forgets_peers_without_connections() {
        let slots = Arc::new(Slots::new(limits(10, 10)));
        let held: Vec<Slot> = (1..=5)
            .map(|i| slots.take(ip(&format!("10.0.0.{i}"))).expect("slot"))
            .collect();
        assert_eq!(slots.lock().by_peer.len(), 5);
        drop(held);
        let open = slots.lock();
        assert_eq!((open.total, open.by_peer.len()), (0, 0));
    }

    #[test]
    fn an_ipv6_peer_counts_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let slots = Arc::new(Slots::new(limits(10, 1)));
        let _a = slots.take(ip("2001:db8:1:2::1")).expect("first");
        assert!(matches!(
            slots.take(ip("2001:db8:1:2:ffff::9")),
            Err(ConnectionLimit::PerIp)
        ));
        let _b = slots.take(ip("2001:db8:1:3::1")).expect("another /64");
        let _c = slots.take(ip("192.0.2.7")).expect("ipv4");
        assert!(matches!(
            slots.take(ip("::ffff:192.0.2.7")),
            Err(ConnectionLimit::PerIp)
        ));
    }
}
