//! Load shedding on the HTTP robot callback (issue 19): beyond `[inbox] max_backlog` messages
//! stored but not yet processed, a verified callback is answered 503 with `Retry-After`, and
//! nothing is stored, instead of acknowledging what the inbox could not work off within
//! minutes. Processing is bounded by the single writer (docs/throughput.md has the measured
//! rate); acknowledging is far cheaper, so without this a burst grows the backlog without bound.
//!
//! The backlog is counted with one indexed query at most every [`FRESH`] and shared by every
//! callback in between, so checking costs a callback nothing; the limit can be overshot by the
//! callbacks of one such interval, which is what a limit in the thousands is for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::store::Store;

/// How old a backlog count may be before a callback asks for a new one.
pub const FRESH: Duration = Duration::from_millis(100);

/// What a shed callback asks DingTalk to wait, in seconds.
pub const RETRY_AFTER_SECS: u64 = 30;

/// The limit and the last count. Cheap to clone.
#[derive(Clone)]
pub struct BacklogGate {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    max: u64,
    /// The last count, and when it was taken (ms since `epoch`; u64::MAX before the first).
    count: AtomicU64,
    counted_at_ms: AtomicU64,
    /// One callback counts at a time; the others use the last count.
    counting: AtomicBool,
    epoch: Instant,
}

impl BacklogGate {
    /// A gate that refuses at `max_backlog` waiting messages; None when shedding is off (0).
    pub fn new(store: Store, max_backlog: u64) -> Option<BacklogGate> {
        (max_backlog > 0).then(|| BacklogGate {
            inner: Arc::new(Inner {
                store,
                max: max_backlog,
                count: AtomicU64::new(0),
                counted_at_ms: AtomicU64::new(u64::MAX),
                counting: AtomicBool::new(false),
                epoch: Instant::now(),
            }),
        })
    }

    /// The backlog when it is at or beyond the limit (the callback is to be refused); None
    /// when there is room, or when the count cannot be read (the write that follows then
    /// says whether the store works).
    pub async fn full(&self) -> Option<u64> {
        let inner = &self.inner;
        let now_ms = u64::try_from(inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let counted = inner.counted_at_ms.load(Ordering::Acquire);
        let stale = counted == u64::MAX
            || now_ms.saturating_sub(counted) >= u64::try_from(FRESH.as_millis()).unwrap_or(0);
        if stale && !inner.counting.swap(true, Ordering::AcqRel) {
            let counted = inner.store.read(|r| r.inbox_pending_count()).await;
            match counted {
                Ok(n) => {
                    inner.count.store(n, Ordering::Release);
                    inner.counted_at_ms.store(now_ms, Ordering::Release);
                }
                Err(e) => tracing::warn!(error = %e, "cannot count the inbox backlog"),
            }
            inner.counting.store(false, Ordering::Release);
        }
        let backlog = inner.count.load(Ordering::Acquire);
        (backlog >= inner.max).then_some(backlog)
    }
}
