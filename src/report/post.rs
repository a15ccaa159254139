//! The monthly post (五(四) 月统计; docs/spec.md → Reports): on the first working day of each month at
//! `[report] monthly_at` (09:00 by default), the previous month's brief goes as a DingTalk markdown
//! message to the hotline group (custom robot, when `[dingtalk] group_webhook` is set; otherwise to
//! the hotline heads) and, with `[report] group_leaders`, to each working-group leader (组长/副组长).
//!
//! [`post_monthly`] is the step: idempotent per month, because every row it queues is keyed
//! `report:<YYYY-MM>/<recipient>` in the outbox, which keeps the first row of a key. [`run`] is the
//! loop that calls it once the moment has come, also after downtime later in the month. A month
//! with no event at all posts nothing (there is nothing to account for).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use super::{Period, ReportError, build, markdown};
use crate::calendar::Calendar;
use crate::clock::Clock;
use crate::engine::{Engine, EngineError, enqueue};
use crate::messages::notify::Rendered;
use crate::roster::Role;
use crate::settings::ReportSettings;

/// How often the loop looks at the clock; the post is due at most this late.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// What one call of [`post_monthly`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostOutcome {
    /// The month reported, `2026-11`.
    pub period_key: String,
    /// Outbox rows queued now; 0 when the month had been posted before or had no event.
    pub queued: usize,
    /// The month had no event, so nothing was posted.
    pub empty: bool,
}

/// When this month's post is due: the first working day of the local month of `now`, at
/// `at` = (hour, minute) local time. None only when that instant cannot be represented.
pub fn monthly_due(calendar: &Calendar, now: Timestamp, at: (i8, i8)) -> Option<Timestamp> {
    let mut day = calendar.local_date(now).first_of_month();
    while !calendar.is_working_day(day) {
        day = day.tomorrow().ok()?;
    }
    day.at(at.0, at.1, 0, 0)
        .to_zoned(calendar.time_zone().clone())
        .ok()
        .map(|z| z.timestamp())
}

/// Queues the report of the month before `now`'s month to its recipients; repeated calls for the
/// same month queue nothing more.
pub async fn post_monthly(
    engine: &Engine,
    settings: &ReportSettings,
    now: Timestamp,
) -> Result<PostOutcome, ReportError> {
    let period = Period::month_before(engine.calendar().local_date(now));
    let period_key = period.key();
    let reader = engine.clone();
    let report = engine
        .store()
        .read(move |r| build(r, reader.calendar(), &period, now))
        .await?;
    if report.cases.is_empty() && report.stats.units.is_empty() {
        return Ok(PostOutcome {
            period_key,
            queued: 0,
            empty: true,
        });
    }
    let rendered = Rendered {
        title: format!("{}联合调处月统计", report.period_label),
        markdown: markdown::brief(&report),
    };
    let mut rows = engine.hotline_posts(&rendered);
    let roster = engine.roster();
    if settings.group_leaders {
        for leader in roster.people_with_role(Role::GroupLeader) {
            let id = leader.id().to_string();
            if rows.iter().all(|(k, _)| *k != id) {
                rows.push((id, engine.dispatch().message(leader, &rendered)));
            }
        }
    }
    let prefix = format!("report:{period_key}");
    let queued = engine
        .store()
        .write(move |tx| -> Result<_, EngineError> {
            // Ids only grow, and this transaction holds the write lock, so a row whose id is
            // above the newest one before is one this call inserted (not an earlier post's).
            let newest = tx.list_outbox(None, 1)?.first().map_or(0, |r| r.id);
            let mut queued = 0;
            for (who, out) in &rows {
                enqueue(tx, &format!("{prefix}/{who}"), out, now)?;
            }
            for row in tx.list_outbox(None, rows.len())? {
                if row.id > newest && row.idem_key.starts_with(&prefix) {
                    queued += 1;
                }
            }
            Ok(queued)
        })
        .await?;
    Ok(PostOutcome {
        period_key,
        queued,
        empty: false,
    })
}

/// Posts each month's report once its moment has come (see the module doc); returns when `stop`
/// turns true.
pub async fn run(
    engine: Engine,
    clock: Arc<dyn Clock>,
    settings: ReportSettings,
    mut stop: watch::Receiver<bool>,
) {
    let at = settings.monthly_at_time();
    let mut posted: Option<String> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let now = clock.now();
        let key = Period::month_before(engine.calendar().local_date(now)).key();
        let due = monthly_due(engine.calendar(), now, at).is_some_and(|due| now >= due);
        if due && posted.as_deref() != Some(key.as_str()) {
            match post_monthly(&engine, &settings, now).await {
                Ok(outcome) => {
                    tracing::info!(
                        month = %outcome.period_key,
                        queued = outcome.queued,
                        empty = outcome.empty,
                        "monthly report posted"
                    );
                    posted = Some(key);
                }
                Err(e) => tracing::error!(error = %e, "monthly report failed; retrying"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}
