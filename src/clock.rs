//! The only reader of the wall clock (DESIGN.md: time is injected). Everything that needs "now"
//! — signature windows, inbox receipt times, deadlines — asks a [`Clock`], so tests drive time
//! with a [`ManualClock`] instead of sleeping.

use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

/// A source of the current instant. Shared across tasks behind an `Arc<dyn Clock>`.
pub trait Clock: Send + Sync + 'static {
    /// The current instant (UTC).
    fn now(&self) -> Timestamp;
}

/// The operating system's clock; the one production uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to. Wrap it in an `Arc` and hand a clone (coerced to
/// `Arc<dyn Clock>`) to the code under test; the test keeps its own clone to move time.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock standing still at `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// A clock standing still at `ms` milliseconds since the Unix epoch.
    ///
    /// # Panics
    /// When `ms` is outside jiff's supported range (years -9999..=9999), which is a test bug.
    pub fn at_millis(ms: i64) -> ManualClock {
        ManualClock::new(Timestamp::from_millisecond(ms).expect("test instant within jiff's range"))
    }

    /// Moves the clock to `to` (backwards too: tests of skew need it).
    pub fn set(&self, to: Timestamp) {
        *self.lock() = to;
    }

    /// As [`ManualClock::set`], in milliseconds since the Unix epoch.
    ///
    /// # Panics
    /// When `ms` is outside jiff's supported range, which is a test bug.
    pub fn set_millis(&self, ms: i64) {
        self.set(Timestamp::from_millisecond(ms).expect("test instant within jiff's range"));
    }

    /// Moves the clock by `by` (negative moves it back).
    ///
    /// # Panics
    /// When the result leaves jiff's supported range, which is a test bug.
    pub fn advance(&self, by: SignedDuration) {
        let mut now = self.lock();
        *now = now
            .checked_add(by)
            .expect("manual clock moved outside jiff's range");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        // A Timestamp is plain data; a panic while it was locked cannot leave it half-written.
        self.now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_is_shared() {
        let clock = Arc::new(ManualClock::at_millis(1_700_000_000_000));
        let shared: Arc<dyn Clock> = clock.clone();
        assert_eq!(shared.now().as_millisecond(), 1_700_000_000_000);
        clock.advance(SignedDuration::from_secs(90));
        assert_eq!(shared.now().as_millisecond(), 1_700_000_090_000);
        clock.advance(SignedDuration::from_millis(-1));
        assert_eq!(shared.now().as_millisecond(), 1_700_000_089_999);
        clock.set_millis(5);
        assert_eq!(shared.now().as_millisecond(), 5);
    }

    #[test]
    fn system_clock_is_after_2025() {
        assert!(SystemClock.now().as_millisecond() > 1_735_689_600_000);
    }
}
