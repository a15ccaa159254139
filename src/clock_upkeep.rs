//! Clock work above one input (docs/spec.md → Clocks): firing all due timers of a case together (so
//! a backlog after downtime becomes one catch-up per case and person), the hotline's digest of
//! each scheduler pass, recomputing open deadlines when holiday data is loaded, and the system
//! timer that reminds the admins weekly from 1 November while next year's data is missing.
//!
//! Each step that decides runs in ONE store transaction through [`Engine::apply_in_tx`], like
//! every other decision, so a firing and its consequences commit together and a timer fires once.

use std::collections::BTreeSet;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::engine::{Engine, EngineError, Outcome, decode, enqueue};
use crate::messages::notify::{self, DigestLine};
use crate::store::{NewTimer, StoreError, TimerRow, TimerState, Tx};
use crate::workflow::{self, Decision, Effect, EventData, State};

/// Keys of timers that belong to no case.
pub const SYSTEM_TIMER_PREFIX: &str = "system/";

const CALENDAR_TIMER_PREFIX: &str = "system/calendar-data/";

/// How often the admins are reminded of missing holiday data.
const CALENDAR_REMINDER_EVERY: SignedDuration = SignedDuration::from_hours(7 * 24);

/// The key of the weekly "holiday data for `year` is missing" reminder.
pub fn calendar_timer_key(year: i16) -> String {
    format!("{CALENDAR_TIMER_PREFIX}{year}")
}

/// What firing one case's due timers did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CaseFiring {
    /// Timers consumed whose decision was applied (deferred ones excluded).
    pub fired: usize,
    /// Timers moved to the next working time instead (outside working hours, not green channel).
    pub deferred: usize,
    /// Due timers that another firing had consumed meanwhile.
    pub skipped: usize,
    /// The decision, when any timer was consumed.
    pub outcome: Option<Outcome>,
}

/// Fires every pending timer of case `case_id` due at `now`, in one transaction: the workflow
/// sees them together (see [`workflow::fire_timers`]).
pub async fn fire_case(
    engine: &Engine,
    case_id: i64,
    now: Timestamp,
) -> Result<CaseFiring, EngineError> {
    fire_case_as(engine, case_id, now, Lateness::MaybeDowntime).await
}

/// What a late firing means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lateness {
    /// The service may have been down: a late batch is one catch-up message per person.
    MaybeDowntime,
    /// The clock was just moved on (the sandbox clock panel): each firing is told as if
    /// punctual, never as "系统服务曾中断…补发" (principle 9).
    ClockMoved,
}

/// [`fire_case`], saying what lateness means.
pub async fn fire_case_as(
    engine: &Engine,
    case_id: i64,
    now: Timestamp,
    lateness: Lateness,
) -> Result<CaseFiring, EngineError> {
    let engine2 = engine.clone();
    engine
        .store()
        .write(move |tx| fire_case_in_tx(&engine2, tx, case_id, now, lateness))
        .await
}

/// [`fire_case`] inside the caller's transaction.
pub fn fire_case_in_tx(
    engine: &Engine,
    tx: &Tx<'_>,
    case_id: i64,
    now: Timestamp,
    lateness: Lateness,
) -> Result<CaseFiring, EngineError> {
    let mut firing = CaseFiring::default();
    let mut keys = Vec::new();
    for timer in tx.timers_for_case(case_id)? {
        // A quarantined timer waits for an operator (`tiaochu quarantine retry`).
        if timer.state != TimerState::Pending
            || timer.due_at > now
            || timer.quarantined_at.is_some()
        {
            continue;
        }
        if tx.mark_fired(timer.id, now)? {
            keys.push(timer.key);
        } else {
            firing.skipped += 1;
        }
    }
    if keys.is_empty() {
        return Ok(firing);
    }
    let Some(row) = tx.case(case_id)? else {
        return Ok(firing);
    };
    let case = decode(&row)?;
    let ctx_roster = engine.roster();
    let ctx = engine.ctx(&ctx_roster);
    let fired = match lateness {
        Lateness::MaybeDowntime => workflow::fire_timers(&case, &keys, now, &ctx),
        Lateness::ClockMoved => workflow::fire_timers_after_clock_move(&case, &keys, now, &ctx),
    };
    let outcome = match fired {
        Ok(decision) => {
            let rearmed: BTreeSet<&str> = decision
                .effects
                .iter()
                .filter_map(|e| match e {
                    Effect::SetTimer { key, .. } => Some(key.as_str()),
                    _ => None,
                })
                .collect();
            firing.deferred = keys.iter().filter(|k| rearmed.contains(k.as_str())).count();
            let outcome = engine.apply_in_tx(tx, Some((&row, &case)), decision, now)?;
            if let Outcome::Applied { decision, .. } = &outcome {
                // Queued with the decision, so the pass's digest cannot lose them to a kill.
                let lines = digest_lines(decision)
                    .iter()
                    .map(|l| {
                        serde_json::to_string(l).map_err(|e| StoreError::BadData(e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                tx.add_digest_lines(&lines, now)?;
            }
            outcome
        }
        Err(rejection) => Outcome::Rejected(rejection),
    };
    firing.fired = keys.len() - firing.deferred;
    firing.outcome = Some(outcome);
    Ok(firing)
}

/// The digest lines for a firing's decision: one per reminder and per breach.
pub fn digest_lines(decision: &Decision) -> Vec<DigestLine> {
    let case = &decision.case;
    decision
        .events
        .iter()
        .filter_map(|e| {
            let (id, late_minutes, what) = match &e.data {
                EventData::ReminderSent {
                    clock,
                    count,
                    late_minutes,
                    ..
                } => (clock, late_minutes, format!("第 {count} 次提醒")),
                EventData::Breach {
                    clock,
                    late_minutes,
                    ..
                } => (
                    clock,
                    late_minutes,
                    "已超期，已通知责任人并逐级上报".to_string(),
                ),
                _ => return None,
            };
            let clock = case.clocks.iter().find(|c| c.id == *id)?;
            let late = if late_minutes.is_some() {
                "（服务中断后补发）"
            } else {
                ""
            };
            let what = format!("{what}{late}");
            Some(DigestLine {
                ticket_no: case.ticket_no.to_string(),
                green_channel: case.green_channel,
                clock: clock.kind.label(),
                what,
            })
        })
        .collect()
}

/// Sends the digest of every queued line (the firings of this pass, and any a killed pass left):
/// to the hotline group's custom robot when configured, else to each hotline head. The lines are
/// taken and the digest queued in ONE transaction, keyed by the first line's id, so each line is
/// in exactly one digest.
pub async fn send_digest(engine: &Engine, now: Timestamp) -> Result<(), EngineError> {
    let engine2 = engine.clone();
    engine
        .store()
        .write(move |tx| -> Result<(), EngineError> {
            let taken = tx.take_digest_lines()?;
            let Some((first, _)) = taken.first() else {
                return Ok(());
            };
            let key = format!("digest/{first}");
            let mut lines = Vec::with_capacity(taken.len());
            for (id, json) in &taken {
                match serde_json::from_str::<DigestLine>(json) {
                    Ok(line) => lines.push(line),
                    // Only this module writes the queue; a line it cannot read is dropped, not
                    // allowed to block every later digest.
                    Err(e) => {
                        tracing::error!(line = id, error = %e, "unreadable digest line dropped")
                    }
                }
            }
            if lines.is_empty() {
                return Ok(());
            }
            let rendered = notify::digest(&lines, now, engine2.calendar());
            let rows = engine2.hotline_posts(&rendered);
            for (i, (_, row)) in rows.iter().enumerate() {
                enqueue(tx, &format!("{key}/{i}"), row, now)?;
            }
            Ok(())
        })
        .await
}

/// Fires a timer of no case; false when it had already fired or been cancelled.
pub async fn fire_system(
    engine: &Engine,
    timer: &TimerRow,
    now: Timestamp,
) -> Result<bool, EngineError> {
    let engine2 = engine.clone();
    let (id, key) = (timer.id, timer.key.clone());
    engine
        .store()
        .write(move |tx| fire_system_in_tx(&engine2, tx, id, &key, now))
        .await
}

fn fire_system_in_tx(
    engine: &Engine,
    tx: &Tx<'_>,
    id: i64,
    key: &str,
    now: Timestamp,
) -> Result<bool, EngineError> {
    if !tx.mark_fired(id, now)? {
        return Ok(false);
    }
    if key == crate::onboarding::REMINDER_TIMER_KEY {
        crate::onboarding::remind_in_tx(engine, tx, now)?;
        return Ok(true);
    }
    let Some(year) = key
        .strip_prefix(CALENDAR_TIMER_PREFIX)
        .and_then(|y| y.parse::<i16>().ok())
    else {
        tracing::warn!(timer = %key, "unknown system timer consumed");
        return Ok(true);
    };
    let calendar = engine.calendar();
    if calendar.has_year(year) {
        // Loaded: the chain goes on with the following year, from 1 November.
        arm_calendar_timer(engine, tx, year + 1, november_first(engine, year))?;
        return Ok(true);
    }
    let rendered = notify::calendar_missing(year, now, calendar);
    for (i, person) in crate::quarantine::admins_or_heads(engine)
        .into_iter()
        .enumerate()
    {
        let out = engine.dispatch().message(&person, &rendered);
        enqueue(
            tx,
            &format!("{key}/{}/{i}", now.as_millisecond()),
            &out,
            now,
        )?;
    }
    let next = now
        .checked_add(CALENDAR_REMINDER_EVERY)
        .unwrap_or(Timestamp::MAX);
    arm_calendar_timer(engine, tx, year, next)?;
    Ok(true)
}

/// Sets the reminder for `year` at the first working time from `from`.
fn arm_calendar_timer(
    engine: &Engine,
    tx: &Tx<'_>,
    year: i16,
    from: Timestamp,
) -> Result<(), EngineError> {
    let key = calendar_timer_key(year);
    tx.set_timer(&NewTimer {
        key: &key,
        case_id: None,
        kind: r#"{"system":"calendar_data"}"#,
        due_at: engine.calendar().next_working_time(from),
        payload_json: &json!({ "year": year }).to_string(),
    })?;
    Ok(())
}

/// 1 November of `year`, 00:00 in the calendar's zone: when next year's data is due.
fn november_first(engine: &Engine, year: i16) -> Timestamp {
    Date::new(year, 11, 1)
        .ok()
        .and_then(|d| d.to_zoned(engine.calendar().time_zone().clone()).ok())
        .map_or(Timestamp::MAX, |z| z.timestamp())
}

/// At start-up: makes sure the weekly reminder runs for a missing current year (at once) and a
/// missing next year (from 1 November). A reminder already pending keeps its time.
pub async fn ensure_calendar_reminders(engine: &Engine, now: Timestamp) -> Result<(), EngineError> {
    let engine2 = engine.clone();
    engine
        .store()
        .write(move |tx| -> Result<(), EngineError> {
            let year = engine2.calendar().local_date(now).year();
            for (y, from) in [(year, now), (year + 1, november_first(&engine2, year))] {
                if engine2.calendar().has_year(y) {
                    continue;
                }
                let pending = tx
                    .timer_by_key(&calendar_timer_key(y))?
                    .is_some_and(|t| t.state == TimerState::Pending);
                if !pending {
                    arm_calendar_timer(&engine2, tx, y, from.max(now))?;
                }
            }
            Ok(())
        })
        .await
}

/// What recomputing the open deadlines did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recomputed {
    /// Cases with at least one deadline counted again.
    pub cases: usize,
    /// Running clocks whose deadline, provisional flag or explanation changed.
    pub clocks: usize,
    /// Of those, the ones whose due instant moved (their people were told).
    pub moved: usize,
}

/// Counts every running clock of every open case again on the engine's calendar, one
/// transaction per case (see [`workflow::recompute_clocks`]); a no-op when nothing changed.
pub async fn recompute_open(engine: &Engine, now: Timestamp) -> Result<Recomputed, EngineError> {
    let ids = open_case_ids(engine).await?;
    let mut total = Recomputed::default();
    for id in ids {
        let engine2 = engine.clone();
        let one = engine
            .store()
            .write(move |tx| recompute_in_tx(&engine2, tx, id, now))
            .await?;
        total.add(one);
    }
    Ok(total)
}

/// As [`recompute_open`], on the calling thread (`tiaochu calendar load`).
pub fn recompute_open_blocking(engine: &Engine, now: Timestamp) -> Result<Recomputed, EngineError> {
    let states = State::open_names();
    let rows = engine.store().read_blocking(move |r| {
        r.cases_in_states(&states.iter().map(String::as_str).collect::<Vec<_>>())
    })?;
    let mut total = Recomputed::default();
    for row in rows {
        let engine2 = engine.clone();
        let id = row.id;
        let one = engine
            .store()
            .write_blocking(move |tx| recompute_in_tx(&engine2, tx, id, now))?;
        total.add(one);
    }
    Ok(total)
}

impl Recomputed {
    fn add(&mut self, other: Recomputed) {
        self.cases += other.cases;
        self.clocks += other.clocks;
        self.moved += other.moved;
    }
}

async fn open_case_ids(engine: &Engine) -> Result<Vec<i64>, EngineError> {
    let states = State::open_names();
    let rows = engine
        .store()
        .read(move |r| r.cases_in_states(&states.iter().map(String::as_str).collect::<Vec<_>>()))
        .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

fn recompute_in_tx(
    engine: &Engine,
    tx: &Tx<'_>,
    case_id: i64,
    now: Timestamp,
) -> Result<Recomputed, EngineError> {
    let Some(row) = tx.case(case_id)? else {
        return Ok(Recomputed::default());
    };
    let case = decode(&row)?;
    let decision = workflow::recompute_clocks(&case, now, &engine.ctx(&engine.roster()));
    let recomputed: Vec<bool> = decision
        .events
        .iter()
        .filter_map(|e| match e.data {
            EventData::DeadlineRecomputed { changed, .. } => Some(changed),
            _ => None,
        })
        .collect();
    if recomputed.is_empty() {
        return Ok(Recomputed::default());
    }
    engine.apply_in_tx(tx, Some((&row, &case)), decision, now)?;
    Ok(Recomputed {
        cases: 1,
        clocks: recomputed.len(),
        moved: recomputed.iter().filter(|c| **c).count(),
    })
}
