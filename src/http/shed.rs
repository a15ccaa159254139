//! Load shedding on the HTTP robot callback (issue 19): beyond `[inbox] max_backlog` messages
//! stored but not yet processed, a verified callback is answered 503 with `Retry-After`, and
//! nothing is stored, instead of acknowledging what the inbox could not work off within
//! minutes. Processing is bounded by the single writer (docs/throughput.md has the measured
//! rate); acknowledging is far cheaper, so without this a burst grows the backlog without bound.
//!
//! The backlog is counted with one indexed query at most every [`FRESH`] and shared by every
//! callback in between, so checking costs a callback nothing; the callbacks let through since the
//! count are added to it, so the limit holds between counts too. It can be overshot only by the
//! callbacks in flight while a count is taken. (Without that addition, at ten thousand callbacks
//! a second one interval's callbacks overshot a limit of 2,000 by half.)

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
    /// Callbacks let through since that count was asked for.
    admitted: AtomicU64,
    counted_at_ms: AtomicU64,
    /// One callback counts at a time; the others use the last count.
    counting: AtomicBool,
    epoch: Instant,
    /// [`FRESH`], but for tests.
    fresh: Duration,
}

impl BacklogGate {
    /// A gate that refuses at `max_backlog` waiting messages; None when shedding is off (0).
    pub fn new(store: Store, max_backlog: u64) -> Option<BacklogGate> {
        Self::counting_every(store, max_backlog, FRESH)
    }

    fn counting_every(store: Store, max_backlog: u64, fresh: Duration) -> Option<BacklogGate> {
        (max_backlog > 0).then(|| BacklogGate {
            inner: Arc::new(Inner {
                store,
                max: max_backlog,
                count: AtomicU64::new(0),
                admitted: AtomicU64::new(0),
                counted_at_ms: AtomicU64::new(u64::MAX),
                counting: AtomicBool::new(false),
                epoch: Instant::now(),
                fresh,
            }),
        })
    }

    /// The backlog when it is at or beyond the limit (the callback is to be refused); None
    /// when there is room — the callback then counts as let through — or when the count cannot
    /// be read (the write that follows then says whether the store works).
    pub async fn full(&self) -> Option<u64> {
        let inner = &self.inner;
        let now_ms = u64::try_from(inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let counted = inner.counted_at_ms.load(Ordering::Acquire);
        let stale = counted == u64::MAX
            || now_ms.saturating_sub(counted)
                >= u64::try_from(inner.fresh.as_millis()).unwrap_or(0);
        if stale && !inner.counting.swap(true, Ordering::AcqRel) {
            // Those let through before the count are in it once committed; those let through
            // while it runs may be counted twice, which errs on the side of refusing.
            let before = inner.admitted.load(Ordering::Acquire);
            let counted = inner.store.read(|r| r.inbox_pending_count()).await;
            match counted {
                Ok(n) => {
                    inner.count.store(n, Ordering::Release);
                    inner.admitted.fetch_sub(before, Ordering::AcqRel);
                    inner.counted_at_ms.store(now_ms, Ordering::Release);
                }
                Err(e) => tracing::warn!(error = %e, "cannot count the inbox backlog"),
            }
            inner.counting.store(false, Ordering::Release);
        }
        let backlog = inner.count.load(Ordering::Acquire) + inner.admitted.load(Ordering::Acquire);
        if backlog >= inner.max {
            return Some(backlog);
        }
        inner.admitted.fetch_add(1, Ordering::AcqRel);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn callbacks_let_through_between_two_counts_count_against_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        // Counted once a minute here, so the four callbacks surely share one count.
        let fresh = Duration::from_secs(60);
        let gate = BacklogGate::counting_every(store.clone(), 3, fresh).expect("a limit");
        // One count (an empty inbox) serves the interval: the callbacks let through meanwhile
        // are not in it, and still fill the limit.
        assert_eq!(gate.full().await, None);
        assert_eq!(gate.full().await, None);
        assert_eq!(gate.full().await, None);
        assert_eq!(
            gate.full().await,
            Some(3),
            "the fourth within one count is refused"
        );
        // A fresh count of the (still empty) inbox lets callbacks through again.
        let gate = BacklogGate::counting_every(store, 3, Duration::ZERO).expect("a limit");
        for _ in 0..5 {
            assert_eq!(gate.full().await, None, "counted afresh each time");
        }
    }
}
