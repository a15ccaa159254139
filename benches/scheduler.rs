//! Scheduler cost against a large timer table: 1,000,000 pending timers in a temporary SQLite
//! database, 110,000 of them in the past. A pass ([`fire_due`]) must cost time in proportion to
//! the timers it fires, not to the table: it reads the due ones through the partial index and
//! fires each in its own transaction. Prints microseconds per pass and per due timer while 10k
//! and then 100k timers are due. Plain `main`; run with `cargo bench --bench scheduler`.
//!
//! The timers belong to no case, so each firing is the scheduler's own work (index read, one
//! write transaction marking the timer fired), without a workflow decision on top.

use std::sync::Arc;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use tiaochu::calendar::{Calendar, WorkingHours};
use tiaochu::card_secrets::CardSecrets;
use tiaochu::clock::{Clock, ManualClock};
use tiaochu::dispatch::Dispatch;
use tiaochu::engine::Engine;
use tiaochu::roster::Roster;
use tiaochu::scheduler::{BATCH, fire_due};
use tiaochu::settings::Settings;
use tiaochu::store::{NewTimer, Store, StoreError};

const TOTAL: usize = 1_000_000;
const FIRST_DUE: usize = 10_000;
const THEN_DUE: usize = 100_000;
const CHUNK: usize = 100_000;

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("bench.db")).expect("store");
    let settings = Settings::load_with_env(None, Vec::new()).expect("settings");
    let roster = Roster::load(&root.join("config/roster.toml")).expect("roster");
    let calendar = Calendar::load_dir(&root.join("config/calendar"), WorkingHours::default())
        .expect("calendar");
    let engine = Engine::new(
        store.clone(),
        Arc::new(roster),
        Arc::new(calendar),
        settings.sla.clone(),
        Dispatch::from_settings(&settings.dingtalk, CardSecrets::ephemeral()),
    );

    // Timer i is due at base + i ms: the first 110k are in the past by the end, the rest a day on.
    let base: Timestamp = "2026-11-02T09:00:00+08:00".parse().expect("base");
    let past = FIRST_DUE + THEN_DUE;
    let started = Instant::now();
    for chunk in 0..TOTAL / CHUNK {
        store
            .write_blocking(move |tx| -> Result<_, StoreError> {
                for i in chunk * CHUNK..(chunk + 1) * CHUNK {
                    let offset = if i < past {
                        i as i64
                    } else {
                        86_400_000 + i as i64
                    };
                    let key = format!("bench/{i}");
                    tx.set_timer(&NewTimer {
                        key: &key,
                        case_id: None,
                        kind: "{}",
                        due_at: base
                            .checked_add(SignedDuration::from_millis(offset))
                            .expect("instant"),
                        payload_json: "{}",
                    })?;
                }
                Ok(())
            })
            .expect("insert timers");
    }
    println!(
        "setup: {TOTAL} pending timers inserted in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let clock = ManualClock::new(base);
    let mut fired_before = 0;
    for (label, due_until) in [("10k due", FIRST_DUE), ("100k due", past)] {
        clock.set(
            base.checked_add(SignedDuration::from_millis(due_until as i64 - 1))
                .expect("instant"),
        );
        let now = clock.now();
        let pending = TOTAL - fired_before;
        let due_now = store
            .read_blocking(move |r| r.due_timers(now, usize::MAX >> 1).map(|v| v.len()))
            .expect("count due");
        let started = Instant::now();
        let (mut passes, mut fired) = (0u64, 0usize);
        let mut first_pass = None;
        loop {
            let pass = Instant::now();
            let report = runtime
                .block_on(fire_due(&engine, &clock as &dyn Clock))
                .expect("pass");
            if report.fired + report.skipped == 0 {
                break;
            }
            first_pass.get_or_insert(pass.elapsed());
            passes += 1;
            fired += report.fired;
        }
        let total = started.elapsed();
        let per_pass = total.as_secs_f64() * 1e6 / passes as f64;
        let per_timer = total.as_secs_f64() * 1e6 / fired as f64;
        println!(
            "{label}: {pending} pending, {due_now} due; drained in {passes} passes of ≤{BATCH} \
             in {:.2} s: {per_pass:.0} µs per pass, {per_timer:.1} µs per due timer \
             (first pass {:.0} µs)",
            total.as_secs_f64(),
            first_pass.map_or(0.0, |d| d.as_secs_f64() * 1e6),
        );
        assert_eq!(fired, due_now, "every due timer fired once");
        fired_before += fired;
    }
}
