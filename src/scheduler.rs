//! The scheduler: fires the durable timers the workflow set (reminders, breaches, escalations)
//! and the system's own (the weekly reminder about missing holiday data). Timers live in SQLite,
//! so a restart loses none; all due timers of one case fire in ONE transaction through
//! [`clock_upkeep::fire_case`], which marks them fired and applies the workflow's decision together,
//! so a timer fires exactly once however often the step runs — and timers that piled up while
//! the service was down go out as one catch-up message per case and person, not a flood. Each
//! pass ends with one digest of what it sent, for the hotline group.
//!
//! A case whose firing fails in a way a retry will not fix (its document does not read, the
//! decision breaks an invariant) has its due timers quarantined, the admins are told once, and
//! the other cases' timers go on; a failure of the storage is tried again with backoff
//! ([`crate::quarantine`]).
//!
//! [`fire_due`] is the one way timers fire, in the service and in tests; [`run`] first recomputes open deadlines on the
//! loaded calendar (new holiday data takes effect on restart) and arms the holiday-data
//! reminder, then sleeps until the next due timer, or until the store reports a timer change,
//! or until `wake` says the clock moved (the sandbox clock panel).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use jiff::Timestamp;

use crate::clock::Clock;
use crate::clock_upkeep::{self, Lateness};
use crate::engine::{Engine, EngineError, Outcome};
use crate::quarantine;
use crate::store::{QuarantineId, QuarantineKind, StoreError, TimerRow, TimerState};

/// How many due timers one step takes; the rest wait for the next step, so a long backlog
/// after downtime cannot hold the writer for long. A case's due timers fire together, so this
/// bounds the cases a step visits.
pub const BATCH: usize = 200;

/// Longest sleep between checks, so a clock that jumps (NTP, sandbox) is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// What one step did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FireReport {
    /// Timers whose decision was applied.
    pub fired: usize,
    /// Timers that came due outside working hours and were moved to the next working time.
    pub deferred: usize,
    /// Timers that were due but had already fired or been cancelled meanwhile.
    pub skipped: usize,
    /// Firings the workflow refused (an unknown key): consumed, logged, nothing else.
    pub rejected: usize,
    /// Timers quarantined because firing them failed for good.
    pub quarantined: usize,
}

/// Fires every timer due at the clock's now, oldest first, up to [`BATCH`] (with every other
/// due timer of the same cases), then sends the pass's digest. A case (or system timer) whose
/// firing fails for good is quarantined and the rest go on; when the storage still fails after
/// the retries, the step stops with that error and the timers stay due.
pub async fn fire_due(engine: &Engine, clock: &dyn Clock) -> Result<FireReport, EngineError> {
    fire_due_as(engine, clock, Lateness::MaybeDowntime).await
}

/// [`fire_due`] right after the clock was moved on (the sandbox clock panel): what came due in
/// the jump is told as punctual, not as a catch-up after downtime (principle 9).
pub async fn fire_due_after_clock_move(
    engine: &Engine,
    clock: &dyn Clock,
) -> Result<FireReport, EngineError> {
    fire_due_as(engine, clock, Lateness::ClockMoved).await
}

async fn fire_due_as(
    engine: &Engine,
    clock: &dyn Clock,
    lateness: Lateness,
) -> Result<FireReport, EngineError> {
    let now = clock.now();
    let due = engine
        .store()
        .read(move |r| r.due_timers(now, BATCH))
        .await?;
    let mut report = FireReport::default();
    let mut cases = BTreeSet::new();
    for timer in &due {
        let Some(case_id) = timer.case_id else {
            let (result, tries) =
                quarantine::with_retries(|_| clock_upkeep::fire_system(engine, timer, now)).await;
            match result {
                Ok(true) => report.fired += 1,
                Ok(false) => report.skipped += 1,
                Err(e) => {
                    report.quarantined +=
                        set_aside(engine, vec![timer.clone()], None, e, tries, now).await?;
                }
            }
            continue;
        };
        if !cases.insert(case_id) {
            continue;
        }
        let (result, tries) = quarantine::with_retries(|_| {
            clock_upkeep::fire_case_as(engine, case_id, now, lateness)
        })
        .await;
        let firing = match result {
            Ok(firing) => firing,
            Err(e) => {
                let timers: Vec<TimerRow> = due
                    .iter()
                    .filter(|t| t.case_id == Some(case_id))
                    .cloned()
                    .collect();
                report.quarantined +=
                    set_aside(engine, timers, Some(case_id), e, tries, now).await?;
                continue;
            }
        };
        report.skipped += firing.skipped;
        report.deferred += firing.deferred;
        match firing.outcome {
            None => {}
            Some(Outcome::Applied { .. }) => report.fired += firing.fired,
            Some(Outcome::Rejected(rejection)) => {
                tracing::warn!(timer = %timer.key, reason = ?rejection.reason, "timers refused by the workflow");
                report.rejected += firing.fired;
            }
        }
    }
    clock_upkeep::send_digest(engine, now).await?;
    Ok(report)
}

/// What becomes of `timers` (the due timers of case `case_id`, or one system timer) after their
/// firing failed with `error` in `tries` tries: a failure of the storage is returned (the step
/// stops), after recording the tries when the storage lets it; any other failure quarantines
/// them and tells the admins, in one transaction. Returns how many were quarantined.
async fn set_aside(
    engine: &Engine,
    timers: Vec<TimerRow>,
    case_id: Option<i64>,
    error: EngineError,
    tries: u32,
    now: Timestamp,
) -> Result<usize, EngineError> {
    if error.is_transient() {
        let counts: Vec<(i64, i64)> = timers
            .iter()
            .map(|t| (t.id, t.attempts + i64::from(tries)))
            .collect();
        // Best effort: the storage is failing, so this may fail too.
        if let Err(note) = engine
            .store()
            .write(move |tx| {
                for (id, attempts) in &counts {
                    tx.note_timer_attempts(*id, *attempts)?;
                }
                Ok::<_, StoreError>(())
            })
            .await
        {
            tracing::warn!(error = %note, "could not record the timers' attempts");
        }
        return Err(error);
    }
    tracing::error!(?case_id, error = %error, "timers quarantined");
    let engine2 = engine.clone();
    let reason = error.to_string();
    engine
        .store()
        .write(move |tx| -> Result<usize, StoreError> {
            // Every due timer of the case, also those beyond this step's batch: they would fail
            // the same way.
            let timers = match case_id {
                Some(id) => tx.timers_for_case(id)?,
                None => timers,
            };
            let mut ids = Vec::new();
            let mut attempts = 0;
            for timer in &timers {
                if timer.state != TimerState::Pending || timer.due_at > now {
                    continue;
                }
                let tried = timer.attempts + i64::from(tries);
                if tx.quarantine_timer(timer.id, &reason, tried, now)? {
                    attempts = attempts.max(tried);
                    ids.push(QuarantineId {
                        kind: QuarantineKind::Timer,
                        id: timer.id,
                    });
                }
            }
            let what = match case_id {
                Some(id) => {
                    let case_no = tx
                        .case(id)?
                        .map_or_else(|| format!("#{id}"), |c| c.case_no.into());
                    format!("案件 {case_no} 的定时提醒")
                }
                None => "系统定时任务".to_string(),
            };
            quarantine::notify_admins(&engine2, tx, &ids, &what, &reason, attempts, now)?;
            Ok(ids.len())
        })
        .await
        .map_err(EngineError::Store)
}

/// Runs [`fire_due`] whenever a timer may be due, until `stop` turns true.
pub async fn run(
    engine: Engine,
    clock: Arc<dyn Clock>,
    mut wake: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut timers_changed = engine.store().timers_changed();
    match clock_upkeep::recompute_open(&engine, clock.now()).await {
        Ok(r) if r.clocks > 0 => tracing::info!(
            cases = r.cases,
            clocks = r.clocks,
            moved = r.moved,
            "deadlines recomputed on the loaded holiday data"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "recomputing open deadlines failed"),
    }
    if let Err(e) = clock_upkeep::ensure_calendar_reminders(&engine, clock.now()).await {
        tracing::error!(error = %e, "arming the holiday-data reminder failed");
    }
    // The clock-move count last acted on: a pass after a move is not a catch-up after downtime.
    let mut moves_seen = *wake.borrow_and_update();
    // Set by a move until a pass leaves nothing due (a jump may span several batches).
    let mut after_move = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let moves = *wake.borrow_and_update();
        if moves != moves_seen {
            moves_seen = moves;
            after_move = true;
        }
        let lateness = if after_move {
            Lateness::ClockMoved
        } else {
            Lateness::MaybeDowntime
        };
        // The earliest due time first: every commit that sets a timer wakes this loop, and those
        // timers are nearly always days ahead, so one read settles most wakes (under load, one
        // per decision) without reading the due timers themselves.
        let now = clock.now();
        let next = engine.store().read(|r| r.next_due()).await;
        let due = matches!(next, Ok(Some(at)) if at <= now);
        let mut failed = false;
        if due {
            match fire_due_as(&engine, clock.as_ref(), lateness).await {
                Ok(report) if report.fired + report.deferred + report.rejected > 0 => {
                    tracing::info!(
                        fired = report.fired,
                        deferred = report.deferred,
                        rejected = report.rejected,
                        "timers fired"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "firing timers failed; retrying shortly");
                    failed = true;
                }
            }
        }
        let sleep = match next {
            // The failed timers are still due: wait rather than spin on them.
            _ if failed => Duration::from_secs(1),
            // A batch fired: look again at once, more may be due.
            _ if due => Duration::ZERO,
            Ok(Some(next)) => {
                let ms = next.as_millisecond() - clock.now().as_millisecond();
                Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0)).min(MAX_SLEEP)
            }
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                tracing::error!(error = %e, "reading the next timer failed; retrying shortly");
                Duration::from_secs(1)
            }
        };
        if !sleep.is_zero() && !failed {
            after_move = false;
        }
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
