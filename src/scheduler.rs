//! The scheduler: fires the durable timers the workflow set (reminders, breaches, escalations).
//! Timers live in SQLite, so a restart loses none; each firing is its own transaction through
//! [`Engine::fire_timer`], which marks the timer fired and applies the workflow's decision
//! together, so a timer fires exactly once however often the step runs.
//!
//! [`fire_due`] is the one step tests call; [`run`] sleeps until the next due timer, or until the
//! store reports a timer change, or until `wake` says the clock moved (the sandbox clock panel).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::engine::{Engine, EngineError, Outcome};

/// How many due timers one step takes; the rest wait for the next step, so a long backlog
/// after downtime cannot hold the writer for long.
pub const BATCH: usize = 200;

/// Longest sleep between checks, so a clock that jumps (NTP, sandbox) is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// What one step did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FireReport {
    /// Timers whose decision was applied.
    pub fired: usize,
    /// Timers that were due but had already fired or been cancelled meanwhile.
    pub skipped: usize,
    /// Firings the workflow refused (an unknown key): consumed, logged, nothing else.
    pub rejected: usize,
}

/// Fires every timer due at the clock's now, oldest first, up to [`BATCH`].
pub async fn fire_due(engine: &Engine, clock: &dyn Clock) -> Result<FireReport, EngineError> {
    let now = clock.now();
    let due = engine
        .store()
        .read(move |r| r.due_timers(now, BATCH))
        .await?;
    let mut report = FireReport::default();
    for timer in &due {
        match engine.fire_timer(timer, now).await? {
            None => report.skipped += 1,
            Some(Outcome::Applied { .. }) => report.fired += 1,
            Some(Outcome::Rejected(rejection)) => {
                tracing::warn!(timer = %timer.key, reason = ?rejection.reason, "timer refused by the workflow");
                report.rejected += 1;
            }
        }
    }
    Ok(report)
}

/// Runs [`fire_due`] whenever a timer may be due, until `stop` turns true.
pub async fn run(
    engine: Engine,
    clock: Arc<dyn Clock>,
    mut wake: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut timers_changed = engine.store().timers_changed();
    loop {
        if *stop.borrow() {
            return;
        }
        match fire_due(&engine, clock.as_ref()).await {
            Ok(report) if report.fired + report.rejected > 0 => {
                tracing::info!(
                    fired = report.fired,
                    rejected = report.rejected,
                    "timers fired"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "firing timers failed; retrying shortly"),
        }
        let sleep = match engine.store().read(|r| r.next_due()).await {
            Ok(Some(next)) => {
                let ms = next.as_millisecond() - clock.now().as_millisecond();
                Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0)).min(MAX_SLEEP)
            }
            Ok(None) => MAX_SLEEP,
            Err(_) => Duration::from_secs(1),
        };
        if sleep.is_zero() {
            // More due than one batch took: go on at once, but let other tasks run.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = changed(&mut timers_changed) => {}
            _ = changed(&mut wake) => {}
            _ = changed(&mut stop) => {}
        }
    }
}

/// Resolves on the next change; never, once the sender is gone (so a dropped sender cannot
/// turn the loop into a spin).
async fn changed<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
