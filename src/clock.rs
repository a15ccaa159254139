//! The only reader of the wall clock (docs/architecture.md: time is injected). Everything that needs "now"
//! — signature windows, inbox receipt times, deadlines — asks a [`Clock`], so tests drive time
//! with a [`ManualClock`] instead of sleeping. The sandbox runs on an [`OffsetClock`]: real time
//! plus an offset its clock panel moves forward, so reminders and breaches can be watched without
//! waiting for them.

use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

/// A source of the current instant. Shared across tasks behind an `Arc<dyn Clock>`.
pub trait Clock: Send + Sync + 'static {
    /// The current instant (UTC).
    fn now(&self) -> Timestamp;

    /// Moves the clock forward by `by` (strictly positive) and returns the new now. Only clocks
    /// meant to be moved (the sandbox's [`OffsetClock`], tests' [`ManualClock`]) can; the
    /// production clock refuses with [`AdvanceError::Fixed`].
    fn advance_by(&self, by: SignedDuration) -> Result<Timestamp, AdvanceError> {
        let _ = by;
        Err(AdvanceError::Fixed)
    }
}

/// Why a clock was not moved. Chinese, because the sandbox page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdvanceError {
    #[error("服务使用系统时间，不能调整")]
    Fixed,
    /// Time only moves forward: what was recorded must never lie in the future.
    #[error("只能向后拨动时钟（时长须大于零）")]
    NotForward,
    #[error("调整后的时间超出可表示的范围")]
    OutOfRange,
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

    fn advance_by(&self, by: SignedDuration) -> Result<Timestamp, AdvanceError> {
        if !by.is_positive() {
            return Err(AdvanceError::NotForward);
        }
        let mut now = self.lock();
        *now = now.checked_add(by).map_err(|_| AdvanceError::OutOfRange)?;
        Ok(*now)
    }
}

/// The operating system's clock plus an offset that only grows: the sandbox's clock, which its
/// clock panel moves forward by hours or working days. Starts with no offset, so a fresh sandbox
/// shows the real time.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset: Mutex<SignedDuration>,
}

impl OffsetClock {
    /// Real time, not yet moved.
    pub fn new() -> OffsetClock {
        OffsetClock::default()
    }

    /// How far ahead of the system clock this clock runs (zero or positive).
    pub fn offset(&self) -> SignedDuration {
        *self.lock()
    }

    /// Moves the clock forward by `by` (strictly positive); returns the new now.
    pub fn advance(&self, by: SignedDuration) -> Result<Timestamp, AdvanceError> {
        if !by.is_positive() {
            return Err(AdvanceError::NotForward);
        }
        let mut offset = self.lock();
        let moved = offset.checked_add(by).ok_or(AdvanceError::OutOfRange)?;
        let now = Timestamp::now()
            .checked_add(moved)
            .map_err(|_| AdvanceError::OutOfRange)?;
        *offset = moved;
        Ok(now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SignedDuration> {
        // A duration is plain data; a panic while it was locked cannot leave it half-written.
        self.offset
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Timestamp {
        let offset = self.offset();
        // `advance` checked that now + offset was representable; real time only grows from
        // there, and a clock nine thousand years ahead is not a case worth a panic.
        Timestamp::now()
            .checked_add(offset)
            .unwrap_or(Timestamp::MAX)
    }

    fn advance_by(&self, by: SignedDuration) -> Result<Timestamp, AdvanceError> {
        self.advance(by)
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
    fn offset_clock_runs_ahead_by_what_it_was_moved() {
        let clock = OffsetClock::new();
        assert_eq!(clock.offset(), SignedDuration::ZERO);
        let before = Timestamp::now();
        let moved = clock
            .advance(SignedDuration::from_hours(30))
            .expect("forward");
        assert!(moved >= before + SignedDuration::from_hours(30));
        let now = clock.now();
        assert!(now >= moved, "real time goes on after the move");
        assert!(now < moved + SignedDuration::from_mins(5));
        clock
            .advance(SignedDuration::from_mins(1))
            .expect("forward");
        assert_eq!(clock.offset(), SignedDuration::from_mins(30 * 60 + 1));
    }

    #[test]
    fn clocks_move_only_forward_and_the_system_clock_not_at_all() {
        let offset = OffsetClock::new();
        assert_eq!(
            offset.advance(SignedDuration::ZERO),
            Err(AdvanceError::NotForward)
        );
        assert_eq!(
            offset.advance(SignedDuration::from_secs(-1)),
            Err(AdvanceError::NotForward)
        );
        assert_eq!(
            offset.advance(SignedDuration::MAX),
            Err(AdvanceError::OutOfRange)
        );
        assert_eq!(
            offset.offset(),
            SignedDuration::ZERO,
            "a refused move changes nothing"
        );
        assert_eq!(
            SystemClock.advance_by(SignedDuration::from_secs(1)),
            Err(AdvanceError::Fixed)
        );
        let manual: Arc<dyn Clock> = Arc::new(ManualClock::at_millis(1_700_000_000_000));
        assert_eq!(
            manual
                .advance_by(SignedDuration::from_secs(1))
                .map(|t| t.as_millisecond()),
            Ok(1_700_000_001_000)
        );
        assert_eq!(
            manual.advance_by(SignedDuration::from_secs(-1)),
            Err(AdvanceError::NotForward)
        );
    }

    #[test]
    fn system_clock_is_after_2025() {
        assert!(SystemClock.now().as_millisecond() > 1_735_689_600_000);
    }
}
