//! What the inbox and the scheduler do when processing a row fails (issue 15), so one bad row
//! never stops the queue. A failure of the storage (busy, full disk, I/O) is tried again with
//! backoff and counted in the row's attempts; it is never a reason to set the row aside, since
//! every other row would fail the same way. Any other failure — a case document that does not
//! read, a decision that breaks an invariant, a panic — fails the same way every time, so the
//! row is quarantined with the reason, the admins are told once, and the rows behind it go on.
//! `tiaochu quarantine list|retry` shows and releases them (store side: `store/quarantine.rs`).

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;

use crate::engine::{Engine, EngineError, enqueue};
use crate::messages::escape::{md_code, md_text};
use crate::messages::notify::{Rendered, mask_phones};
use crate::outbox::ADMIN_NOTICE_PREFIX;
use crate::roster::{Person, Role};
use crate::store::{QuarantineId, StoreError, Tx};

/// Tries of one row within one step while it fails for a passing reason; then the step stops
/// and its loop tries again later (the storage is failing for every row, not for this one).
pub const TRIES: u32 = 4;

/// The wait before the second try; doubled before each further one.
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);

/// Runs `attempt(n)` for n = 1, 2, … up to [`TRIES`] while it fails transiently
/// ([`EngineError::is_transient`]), waiting [`BACKOFF_BASE`]·2ⁿ⁻¹ between tries. Returns the last
/// result and how many tries it took.
pub async fn with_retries<T, F, Fut>(attempt: F) -> (Result<T, EngineError>, u32)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, EngineError>>,
{
    continue_retries(None, attempt).await
}

/// As [`with_retries`], where `first`, when given, is the outcome of the first try, already
/// made elsewhere (the inbox's pipelined first tries): it counts as try 1.
pub async fn continue_retries<T, F, Fut>(
    first: Option<Result<T, EngineError>>,
    mut attempt: F,
) -> (Result<T, EngineError>, u32)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, EngineError>>,
{
    let mut n = 1;
    let mut result = match first {
        Some(result) => result,
        None => attempt(1).await,
    };
    loop {
        match result {
            Err(e) if e.is_transient() && n < TRIES => {
                tracing::warn!(attempt = n, error = %e, "processing failed for a passing reason; trying again");
                tokio::time::sleep(BACKOFF_BASE * 2u32.pow(n - 1)).await;
                n += 1;
                result = attempt(n).await;
            }
            result => return (result, n),
        }
    }
}

/// Who is told about a quarantined row: the admins of the roster in force (so an admin bound in
/// DingTalk after start-up counts), else the hotline heads, so the notice reaches someone.
pub fn admins_or_heads(engine: &Engine) -> Vec<Person> {
    let roster = engine.roster();
    let admins: Vec<Person> = roster.people_with_role(Role::Admin).cloned().collect();
    if admins.is_empty() {
        roster
            .people_with_role(Role::HotlineHead)
            .cloned()
            .collect()
    } else {
        admins
    }
}

/// Queues, in the transaction that quarantined `ids`, the one notice telling the admins what was
/// set aside and why. Its key starts with [`ADMIN_NOTICE_PREFIX`], like the dead-letter notices,
/// so a notice that cannot be delivered does not notify about itself; it carries the instant of
/// the quarantine, so releasing a row and seeing it fail again tells them again.
pub fn notify_admins(
    engine: &Engine,
    tx: &Tx<'_>,
    ids: &[QuarantineId],
    what: &str,
    reason: &str,
    attempts: i64,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(first) = ids.first() else {
        return Ok(());
    };
    let people = admins_or_heads(engine);
    if people.is_empty() {
        tracing::warn!(%first, "no admin in the roster to tell about a quarantined row");
        return Ok(());
    }
    let shown: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let retry = match ids {
        [one] => format!("tiaochu quarantine retry {one}"),
        _ => "tiaochu quarantine retry --all".to_string(),
    };
    let rendered = Rendered {
        title: "处理失败，已隔离".to_string(),
        markdown: format!(
            "### 处理失败，已隔离\n\n- 对象：{}\n- 编号：{}\n- 原因：{}\n- 已尝试：{attempts} 次\n\n\
             其余消息和定时任务照常处理，这一项暂停，等待管理员处理。\n\n\
             查看：{}；排除原因后重新处理：{}",
            md_text(what),
            md_text(&shown.join("、")),
            md_text(&mask_phones(reason)),
            md_code("tiaochu quarantine list"),
            md_code(&retry),
        ),
    };
    for (i, person) in people.iter().enumerate() {
        let out = engine.dispatch().message(person, &rendered);
        let key = format!(
            "{ADMIN_NOTICE_PREFIX}quarantine:{first}@{}/{i}",
            now.as_millisecond()
        );
        enqueue(tx, &key, &out, now)?;
    }
    Ok(())
}
