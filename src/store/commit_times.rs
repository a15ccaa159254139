//! How long the writer's synced commits take to be on the disk, how many commits did without,
//! and how many `fsync`s put them there. A synced commit is timed from its start until the sync
//! thread's `fsync` that covers it returns (src/store/sync.rs), mostly that `fsync`, and every
//! acknowledgement waits for one, so a slow or contended disk shows here before anywhere else
//! (`/metrics`: `tiaochu_store_commit_seconds`; docs/throughput.md). The others (decisions, the
//! outbox's records) are only counted (`tiaochu_store_deferred_commits_total`): mixed into the
//! histogram, their quick commits would hide the disk's stalls from its percentiles.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds of the commit-duration buckets, in seconds (`+Inf` is implied): a commit on a
/// quiet disk takes 1–3 ms; tens of milliseconds are the disk stalling.
pub const COMMIT_BUCKETS: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The synced commits so far, as a histogram, and the count of the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitHistogram {
    /// Commits at or below each [`COMMIT_BUCKETS`] bound (not cumulative).
    pub buckets: [u64; COMMIT_BUCKETS.len()],
    pub count: u64,
    pub sum_seconds: f64,
    /// Commits without an `fsync` of their own (`synchronous=NORMAL`), not in the buckets: on
    /// the disk with the next synced one.
    pub deferred: u64,
    /// `fsync`s of the WAL by the sync thread; one covers every commit before it, so under load
    /// there are fewer of them than synced commits.
    pub syncs: u64,
}

impl CommitHistogram {
    /// Commits slower than `seconds` (which should be one of the [`COMMIT_BUCKETS`] bounds).
    pub fn slower_than(&self, seconds: f64) -> u64 {
        let within: u64 = COMMIT_BUCKETS
            .iter()
            .zip(self.buckets)
            .filter(|(bound, _)| **bound <= seconds)
            .map(|(_, n)| n)
            .sum();
        self.count - within
    }
}

/// Written by the writer thread after each commit without an `fsync` and by the sync thread
/// after each `fsync`, read by any handle.
#[derive(Debug, Default)]
pub(super) struct CommitTimes(Mutex<CommitHistogram>);

impl CommitTimes {
    /// A synced commit that took `took` from its start until the `fsync` covering it returned.
    pub(super) fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut h = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = COMMIT_BUCKETS.iter().position(|bound| seconds <= *bound) {
            h.buckets[i] += 1;
        }
        h.count += 1;
        h.sum_seconds += seconds;
    }

    /// A commit without an `fsync` of its own: counted, not timed.
    pub(super) fn count_deferred(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .deferred += 1;
    }

    pub(super) fn observe_sync(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).syncs += 1;
    }

    pub(super) fn get(&self) -> CommitHistogram {
        // Plain numbers: a panic while it was held cannot leave it inconsistent.
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_counted_in_their_bucket_and_slower_ones_are_told_apart() {
        let times = CommitTimes::default();
        for ms in [1, 2, 3, 40, 120, 2_000] {
            times.observe(Duration::from_millis(ms));
        }
        times.count_deferred();
        let h = times.get();
        assert_eq!(
            h.count, 6,
            "a commit without an fsync is not in the histogram"
        );
        assert_eq!(h.deferred, 1);
        assert_eq!(h.buckets[0], 1, "1 ms is within the first bound");
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[2], 1);
        assert_eq!(h.buckets[5], 1, "40 ms is within 50 ms");
        assert_eq!(h.buckets[7], 1, "120 ms is within 250 ms");
        assert_eq!(h.slower_than(0.025), 3);
        assert_eq!(h.slower_than(0.1), 2);
        assert_eq!(
            h.slower_than(1.0),
            1,
            "over the last bound counts only in the total"
        );
        assert!((h.sum_seconds - 2.166).abs() < 1e-9);
    }
}
