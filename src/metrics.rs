//! The service's counters and their Prometheus text exposition (format 0.0.4), written by hand
//! because a handful of counters and one histogram do not need a metrics crate.
//!
//! Counters live in one process-wide [`Metrics`] ([`global`]): the places that count (the HTTP
//! latency middleware, the outbox worker, the Stream client) are far apart and a process runs one
//! service, so a static spares threading a handle through every constructor. Several services in
//! one process (the tests) therefore share the counters; counters only ever grow, so readers
//! compare before and after. Gauges derived from the store (inbox lag, outbox backlog, timers)
//! are not kept here: the store reads them at scrape time ([`crate::store::ReadTx::backlog`]),
//! so they cannot drift, and this module only formats the [`Backlog`] it returns.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::{Backlog, COMMIT_BUCKETS, CommitHistogram};

/// Upper bounds of the request latency buckets, in seconds (`+Inf` is implied).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A pending timer this long past its due time counts as overdue (pass it to
/// [`crate::store::ReadTx::backlog`]): the scheduler fires due timers within about a second, so
/// a minute behind means it is stuck or the store is.
pub const TIMER_OVERDUE_AFTER: Duration = Duration::from_secs(60);

/// Distinct DingTalk error codes kept as their own label; later new codes are counted under
/// `code="other"`, so a misbehaving peer cannot grow the exposition without bound.
pub const MAX_ERROR_CODES: usize = 64;

/// The `method` label takes these names; any other method (HTTP allows any token) is `other`.
pub const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

/// Distinct (route, method) label pairs at most. Routes are the router's patterns and methods a
/// fixed set, so this is never reached; it bounds the exposition even if a caller forgets that.
pub const MAX_REQUEST_SERIES: usize = 256;

/// Which connection cap closed a new connection at once (`[http]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionLimit {
    Total,
    PerIp,
}

impl ConnectionLimit {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionLimit::Total => "total",
            ConnectionLimit::PerIp => "per_ip",
        }
    }
}

/// Where a connection is (src/http/serve.rs): no request under way, a request's headers
/// arriving, or a request being read, handled and answered. Each has its `[http]` timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionPhase {
    Idle,
    Head,
    Request,
}

impl ConnectionPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionPhase::Idle => "idle",
            ConnectionPhase::Head => "header",
            ConnectionPhase::Request => "request",
        }
    }
}

/// The `method` label of a request method: its name when it is one of [`KNOWN_METHODS`], else
/// `other`, so made-up methods cannot grow the exposition.
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other")
}

/// Process-wide counters. All methods are cheap and never block for long (atomics, or a mutex
/// held for one map lookup).
#[derive(Debug)]
pub struct Metrics {
    stream_reconnects: AtomicU64,
    /// (kind, code) → count; kind is `retryable`, `throttled` or `permanent`.
    dingtalk_errors: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// (route, method) → latency histogram; the route is the matched pattern (or `other`) and
    /// the method one of [`KNOWN_METHODS`] (or `other`), so the key set is bounded by the router.
    requests: Mutex<BTreeMap<(String, &'static str), Histogram>>,
    connections_open: AtomicU64,
    /// By [`ConnectionLimit`]: total, per_ip.
    connections_refused: [AtomicU64; 2],
    /// By [`ConnectionPhase`]: idle, head, request.
    connections_timed_out: [AtomicU64; 3],
}

/// A latency histogram in Prometheus' cumulative form, counted per bucket on observe.
#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    /// Observations at or below each [`LATENCY_BUCKETS`] bound (not yet cumulative).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

static METRICS: Metrics = Metrics::new();

/// The process's counters.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub const fn new() -> Metrics {
        Metrics {
            stream_reconnects: AtomicU64::new(0),
            dingtalk_errors: Mutex::new(BTreeMap::new()),
            requests: Mutex::new(BTreeMap::new()),
            connections_open: AtomicU64::new(0),
            connections_refused: [AtomicU64::new(0), AtomicU64::new(0)],
            connections_timed_out: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// A connection was accepted into a slot.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection that had a slot is closed.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A new connection was closed at once because `limit` was reached.
    pub fn connection_refused(&self, limit: ConnectionLimit) {
        self.connections_refused[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections refused by `limit` so far.
    pub fn connections_refused(&self, limit: ConnectionLimit) -> u64 {
        self.connections_refused[limit as usize].load(Ordering::Relaxed)
    }

    /// A connection was closed because it stayed in `phase` past its timeout.
    pub fn connection_timed_out(&self, phase: ConnectionPhase) {
        self.connections_timed_out[phase as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections closed by the timeout of `phase` so far.
    pub fn connections_timed_out(&self, phase: ConnectionPhase) -> u64 {
        self.connections_timed_out[phase as usize].load(Ordering::Relaxed)
    }

    /// A Stream socket opened again after the first one (dropped, refused or rotated by the
    /// gateway's `disconnect`).
    pub fn stream_reconnected(&self) {
        self.stream_reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Reconnects since the process started.
    pub fn stream_reconnects(&self) -> u64 {
        self.stream_reconnects.load(Ordering::Relaxed)
    }

    /// One failed DingTalk send, counted by its outcome (`retryable`, `throttled`, `permanent`)
    /// and the code DingTalk answered (a label from a fixed alphabet, e.g.
    /// `crate::dingtalk::errors::ErrorCode::label`). Plain labels keep this module below the
    /// transport it counts.
    pub fn dingtalk_error(&self, kind: &'static str, code: String) {
        let mut errors = lock(&self.dingtalk_errors);
        let known = errors.contains_key(&(kind, code.clone()));
        let code = if known || errors.len() < MAX_ERROR_CODES {
            code
        } else {
            "other".to_string()
        };
        *errors.entry((kind, code)).or_insert(0) += 1;
    }

    /// Failed sends with this kind and code so far.
    pub fn dingtalk_errors(&self, kind: &str, code: &str) -> u64 {
        lock(&self.dingtalk_errors)
            .iter()
            .find(|((k, c), _)| *k == kind && c == code)
            .map_or(0, |(_, n)| *n)
    }

    /// One answered HTTP request: `route` is the matched route pattern (`/dingtalk/robot`), or
    /// `other` for a path no route serves; `method` is labelled by [`method_label`].
    pub fn observe_request(&self, route: &str, method: &str, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let method = method_label(method);
        let mut requests = lock(&self.requests);
        let known = requests.contains_key(&(route.to_string(), method));
        let route = if known || requests.len() < MAX_REQUEST_SERIES {
            route
        } else {
            "other"
        };
        let histogram = requests.entry((route.to_string(), method)).or_default();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.buckets[i] += 1;
        }
        histogram.count += 1;
        histogram.sum_seconds += seconds;
    }

    /// Requests answered on `route` with `method` so far.
    pub fn requests(&self, route: &str, method: &str) -> u64 {
        lock(&self.requests)
            .get(&(route.to_string(), method_label(method)))
            .map_or(0, |h| h.count)
    }

    /// The whole exposition. `store` is None when the store did not answer (then
    /// `tiaochu_store_up` is 0 and the store gauges are left out rather than reported as 0);
    /// `tiaochu_store_up` is 0 too while its writes fail (the gauges are then the last
    /// committed figures). `stream` lists every Stream connection state's label with whether it
    /// is the current one.
    ///
    /// `commits` are the writer's commit durations ([`crate::store::Store::commit_times`]).
    pub fn render(
        &self,
        store: Option<&Backlog>,
        commits: &CommitHistogram,
        stream: &[(&str, bool)],
    ) -> String {
        let mut out = String::with_capacity(4096);
        gauge(
            &mut out,
            "tiaochu_store_up",
            "1 when the database answered this scrape and its last write did not fail",
            u64::from(store.is_some_and(|g| !g.writes_failing)),
        );
        if let Some(g) = store {
            gauge(
                &mut out,
                "tiaochu_inbox_pending",
                "Inbound messages stored but not yet processed",
                g.inbox_pending,
            );
            gauge_f(
                &mut out,
                "tiaochu_inbox_oldest_pending_age_seconds",
                "Age of the oldest unprocessed inbound message (0 when none): the inbox lag",
                g.inbox_oldest_age.as_secs_f64(),
            );
            gauge(
                &mut out,
                "tiaochu_outbox_pending",
                "Outbound messages waiting to be sent (the backlog)",
                g.outbox_pending,
            );
            gauge(
                &mut out,
                "tiaochu_outbox_dead",
                "Dead letters: outbound messages given up on, waiting for an admin",
                g.outbox_dead,
            );
            gauge(
                &mut out,
                "tiaochu_timers_due",
                "Pending timers whose due time has passed",
                g.timers_due,
            );
            gauge(
                &mut out,
                "tiaochu_timers_overdue",
                "Pending timers more than 60 s past their due time (the scheduler is behind)",
                g.timers_overdue,
            );
            gauge(
                &mut out,
                "tiaochu_quarantined",
                "Inbound messages and timers quarantined after a failure a retry will not fix, waiting for an operator (tiaochu quarantine list)",
                g.quarantined,
            );
        }
        out.push_str(
            "# HELP tiaochu_store_commit_seconds Duration of the database writer's synced commits, from the commit's start until the fsync that covers it returned (mostly that fsync, which every acknowledgement waits for)\n",
        );
        out.push_str("# TYPE tiaochu_store_commit_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, n) in COMMIT_BUCKETS.iter().zip(commits.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "tiaochu_store_commit_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "tiaochu_store_commit_seconds_bucket{{le=\"+Inf\"}} {}",
            commits.count
        );
        let _ = writeln!(
            out,
            "tiaochu_store_commit_seconds_sum {}",
            commits.sum_seconds
        );
        let _ = writeln!(out, "tiaochu_store_commit_seconds_count {}", commits.count);
        out.push_str(
            "# HELP tiaochu_store_deferred_commits_total Commits of the database writer without an fsync of their own (decisions, the outbox's records), on the disk with the next synced one; not in tiaochu_store_commit_seconds\n",
        );
        out.push_str("# TYPE tiaochu_store_deferred_commits_total counter\n");
        let _ = writeln!(
            out,
            "tiaochu_store_deferred_commits_total {}",
            commits.deferred
        );
        out.push_str(
            "# HELP tiaochu_store_syncs_total fsyncs of the write-ahead log; each covers every commit before it, so under load there are fewer than synced commits\n",
        );
        out.push_str("# TYPE tiaochu_store_syncs_total counter\n");
        let _ = writeln!(out, "tiaochu_store_syncs_total {}", commits.syncs);
        out.push_str("# HELP tiaochu_stream_state DingTalk Stream connection state (1 for the current one)\n");
        out.push_str("# TYPE tiaochu_stream_state gauge\n");
        for (state, current) in stream {
            let _ = writeln!(
                out,
                "tiaochu_stream_state{{state=\"{state}\"}} {}",
                u8::from(*current)
            );
        }
        out.push_str(
            "# HELP tiaochu_stream_reconnects_total Stream sockets opened after the first one\n",
        );
        out.push_str("# TYPE tiaochu_stream_reconnects_total counter\n");
        let _ = writeln!(
            out,
            "tiaochu_stream_reconnects_total {}",
            self.stream_reconnects()
        );

        out.push_str(
            "# HELP tiaochu_dingtalk_errors_total Failed DingTalk sends by outcome and error code\n",
        );
        out.push_str("# TYPE tiaochu_dingtalk_errors_total counter\n");
        for ((kind, code), n) in lock(&self.dingtalk_errors).iter() {
            let _ = writeln!(
                out,
                "tiaochu_dingtalk_errors_total{{kind=\"{kind}\",code=\"{code}\"}} {n}"
            );
        }

        out.push_str("# HELP tiaochu_http_connections_open Open HTTP connections\n");
        out.push_str("# TYPE tiaochu_http_connections_open gauge\n");
        let _ = writeln!(
            out,
            "tiaochu_http_connections_open {}",
            self.connections_open.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP tiaochu_http_connections_refused_total New connections closed at once because an [http] cap was reached\n",
        );
        out.push_str("# TYPE tiaochu_http_connections_refused_total counter\n");
        for limit in [ConnectionLimit::Total, ConnectionLimit::PerIp] {
            let _ = writeln!(
                out,
                "tiaochu_http_connections_refused_total{{limit=\"{}\"}} {}",
                limit.as_str(),
                self.connections_refused(limit)
            );
        }
        out.push_str(
            "# HELP tiaochu_http_connections_timed_out_total Connections closed by an [http] timeout, by the phase they were in\n",
        );
        out.push_str("# TYPE tiaochu_http_connections_timed_out_total counter\n");
        for phase in [
            ConnectionPhase::Idle,
            ConnectionPhase::Head,
            ConnectionPhase::Request,
        ] {
            let _ = writeln!(
                out,
                "tiaochu_http_connections_timed_out_total{{phase=\"{}\"}} {}",
                phase.as_str(),
                self.connections_timed_out(phase)
            );
        }

        out.push_str(
            "# HELP tiaochu_http_request_duration_seconds HTTP request latency by route\n",
        );
        out.push_str("# TYPE tiaochu_http_request_duration_seconds histogram\n");
        for ((route, method), h) in lock(&self.requests).iter() {
            let labels = format!("route=\"{}\",method=\"{}\"", escape(route), escape(method));
            let mut cumulative = 0;
            for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "tiaochu_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "tiaochu_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "tiaochu_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum_seconds
            );
            let _ = writeln!(
                out,
                "tiaochu_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out
    }
}

/// Label values from the router are route patterns and method names; escaped anyway so the
/// exposition stays parseable whatever a future route is called.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

fn gauge_f(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain counters: a panic while one was held cannot leave it inconsistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_labels_are_bounded() {
        let m = Metrics::new();
        for i in 0..(MAX_ERROR_CODES + 10) {
            let code = i64::try_from(i).expect("small");
            m.dingtalk_error("permanent", code.to_string());
        }
        assert_eq!(m.dingtalk_errors("permanent", "0"), 1);
        assert_eq!(m.dingtalk_errors("permanent", "other"), 10);
        m.dingtalk_error("permanent", "0".to_string());
        assert_eq!(
            m.dingtalk_errors("permanent", "0"),
            2,
            "a known code keeps its label"
        );
    }

    #[test]
    fn request_labels_come_from_fixed_sets() {
        let m = Metrics::new();
        for method in ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"] {
            assert_eq!(method_label(method), method);
        }
        for made_up in ["FOO", "get", "G\"ET", "X".repeat(500).as_str()] {
            m.observe_request("other", made_up, Duration::from_millis(1));
        }
        assert_eq!(
            m.requests("other", "other"),
            4,
            "every made-up method is `other`"
        );
        for i in 0..(MAX_REQUEST_SERIES + 50) {
            m.observe_request(&format!("/r{i}"), "GET", Duration::from_millis(1));
        }
        assert_eq!(lock(&m.requests).len(), MAX_REQUEST_SERIES + 1);
        assert_eq!(
            m.requests("other", "GET"),
            51,
            "routes past the cap are `other`"
        );
    }

    #[test]
    fn the_histogram_is_cumulative_and_complete() {
        let m = Metrics::new();
        for ms in [0, 3, 3, 40, 7000] {
            m.observe_request("/dingtalk/robot", "POST", Duration::from_millis(ms));
        }
        assert_eq!(m.requests("/dingtalk/robot", "POST"), 5);
        let text = m.render(
            None,
            &CommitHistogram::default(),
            &[
                ("not_configured", true),
                ("connecting", false),
                ("connected", false),
            ],
        );
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.starts_with(needle))
                .unwrap_or_else(|| panic!("{needle} missing in\n{text}"))
                .rsplit(' ')
                .next()
                .expect("value")
                .to_string()
        };
        let labels = "route=\"/dingtalk/robot\",method=\"POST\"";
        let bucket = |le: &str| {
            line(&format!(
                "tiaochu_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}}"
            ))
        };
        assert_eq!(bucket("0.001"), "1");
        assert_eq!(bucket("0.005"), "3");
        assert_eq!(bucket("0.05"), "4");
        assert_eq!(bucket("5"), "4", "7 s is above the last bound");
        assert_eq!(bucket("+Inf"), "5");
        assert_eq!(
            line(&format!(
                "tiaochu_http_request_duration_seconds_count{{{labels}}}"
            )),
            "5"
        );
        assert_eq!(line("tiaochu_store_up"), "0");
        assert!(
            !text.contains("tiaochu_inbox_pending"),
            "no store, no store gauges"
        );
        assert_eq!(line("tiaochu_stream_state{state=\"not_configured\"}"), "1");
        assert_eq!(line("tiaochu_stream_state{state=\"connected\"}"), "0");
    }

    #[test]
    fn a_store_whose_writes_fail_is_down() {
        let m = Metrics::new();
        let up = |g: Backlog| {
            m.render(
                Some(&g),
                &CommitHistogram::default(),
                &[
                    ("not_configured", true),
                    ("connecting", false),
                    ("connected", false),
                ],
            )
            .lines()
            .find_map(|l| l.strip_prefix("tiaochu_store_up ").map(str::to_string))
            .expect("store_up line")
        };
        assert_eq!(up(Backlog::default()), "1");
        let failing = Backlog {
            writes_failing: true,
            outbox_pending: 3,
            ..Backlog::default()
        };
        assert_eq!(up(failing), "0");
        assert!(
            m.render(
                Some(&failing),
                &CommitHistogram::default(),
                &[
                    ("not_configured", true),
                    ("connecting", false),
                    ("connected", false)
                ]
            )
            .contains("tiaochu_outbox_pending 3\n"),
            "the last committed figures stay"
        );
    }

    #[test]
    fn every_sample_line_is_well_formed() {
        let m = Metrics::new();
        m.stream_reconnected();
        m.dingtalk_error("retryable", "timeout".to_string());
        m.observe_request("other", "GET", Duration::from_millis(1));
        let gauges = Backlog {
            inbox_pending: 2,
            inbox_oldest_age: Duration::from_millis(1500),
            ..Backlog::default()
        };
        let commits = CommitHistogram {
            buckets: [1, 0, 0, 0, 0, 2, 0, 0, 0, 0],
            count: 4,
            sum_seconds: 1.6,
            deferred: 3,
            syncs: 2,
        };
        let text = m.render(
            Some(&gauges),
            &commits,
            &[
                ("not_configured", false),
                ("connecting", false),
                ("connected", true),
            ],
        );
        let sample = regex::Regex::new(
            r#"^[a-z_]+(\{([a-z]+="[^"\\\n]*",)*[a-z]+="[^"\\\n]*"\})? -?[0-9.e+-]+$|^# (HELP|TYPE) "#,
        )
        .expect("regex");
        for l in text.lines() {
            assert!(sample.is_match(l), "malformed line {l:?} in\n{text}");
        }
        assert!(
            text.contains("tiaochu_inbox_oldest_pending_age_seconds 1.5\n"),
            "{text}"
        );
        assert!(
            text.contains("tiaochu_stream_reconnects_total 1\n"),
            "{text}"
        );
        for line in [
            "tiaochu_store_commit_seconds_bucket{le=\"0.001\"} 1\n",
            "tiaochu_store_commit_seconds_bucket{le=\"0.025\"} 1\n",
            "tiaochu_store_commit_seconds_bucket{le=\"0.05\"} 3\n",
            "tiaochu_store_commit_seconds_bucket{le=\"1\"} 3\n",
            "tiaochu_store_commit_seconds_bucket{le=\"+Inf\"} 4\n",
            "tiaochu_store_commit_seconds_count 4\n",
            "tiaochu_store_deferred_commits_total 3\n",
            "tiaochu_store_syncs_total 2\n",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(
            text.contains("kind=\"retryable\",code=\"timeout\"} 1\n"),
            "{text}"
        );
    }
}
