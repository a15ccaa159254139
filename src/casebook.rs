//! The district's own case history at the moment of decision (五(五) "为同类问题的处置提供参考
//! 依据"): keeps the similar-case index in step with every case write, takes the list of similar
//! past cases a new application version is registered with (shown on the inspectors' review
//! card), answers `相似` and `案例`, and rebuilds the index from the cases.
//!
//! The ranking is [`crate::similar`]; the tables are src/store/similar.rs. The index is written
//! inside the caller's transaction, so it can never disagree with the cases it was committed
//! with. A review card's list may be searched ahead, on a read snapshot off the writer
//! ([`SearchedAhead`]).

use std::sync::{Arc, Mutex, PoisonError};

use crate::calendar::Calendar;
use crate::domain::{TicketNo, UnitName};
use crate::engine::{EngineError, decode};
use crate::messages::notify::Rendered;
use crate::messages::similar::{cases_reply, similar_reply};
use crate::roster::{Person, Role};
use crate::similar::{self, Hit, IndexDoc, Params, Scope, SimilarCase};
use crate::store::{ReadTx, Store, StoreError, Tx};
use crate::workflow::{Application, Case};

/// Who may look through the case history (docs/spec.md → Text commands): the hotline and the
/// working group's leaders. The history names citizens' problems across every unit, so a unit's
/// own people see their cases through 查询 instead.
const HISTORY_READERS: [Role; 5] = [
    Role::Inspector,
    Role::Supervisor,
    Role::HotlineHead,
    Role::GroupLeader,
    Role::Admin,
];

fn may_read_history(person: &Person) -> bool {
    person.roles.iter().any(|r| HISTORY_READERS.contains(r))
}

fn refused(title: &str) -> Rendered {
    Rendered {
        title: title.to_string(),
        markdown: "往期案例仅供区12345热线（质检、督办、负责人）和工作小组组长查阅。您所在单位的案件可发送“查询 DH…”查看。".to_string(),
    }
}

/// `相似 DH…`: the answer for `person`.
pub fn similar_command(
    tx: &ReadTx<'_>,
    person: &Person,
    ticket_no: &TicketNo,
    calendar: &Calendar,
) -> Result<Rendered, EngineError> {
    if !may_read_history(person) {
        return Ok(refused("无法查看相似案例"));
    }
    let Some(row) = tx.case_by_ticket(ticket_no)?.into_iter().next() else {
        return Ok(Rendered {
            title: "未找到案件".to_string(),
            markdown: format!(
                "没有找到工单 {ticket_no} 的联合调处案件。请核对工单编号（如 DH2026110300017）。"
            ),
        });
    };
    let case = decode(&row)?;
    let found = for_case(tx, row.id, &case, calendar)?;
    Ok(similar_reply(ticket_no, &found))
}

/// `案例 关键词`: the answer for `person`.
pub fn cases_command(
    tx: &ReadTx<'_>,
    person: &Person,
    keywords: &str,
    calendar: &Calendar,
) -> Result<Rendered, EngineError> {
    if !may_read_history(person) {
        return Ok(refused("无法查看案例"));
    }
    Ok(cases_reply(keywords, &search(tx, keywords, calendar)?))
}

/// Similar cases on the review card.
pub const ON_CARD: usize = 3;
/// Similar cases `相似` and `案例` answer with.
pub const ON_REQUEST: usize = 5;
/// A past case is shown only when it holds at least this share of the application's word pairs
/// ([`similar::shared_pairs`]): below it, the two share words, not a problem. The share does not
/// move with the size of the index, as the ranking score does. On the evaluation set every first
/// result shares 0.137 or more; cases of other topics share 0.02–0.26 (docs/similar.md).
pub const MIN_SHARED: f64 = 0.10;
/// For the 案例 keyword search: a case holds at least half of the keywords' word pairs.
pub const MIN_SHARED_KEYWORDS: f64 = 0.5;
/// Among the cases at least this share as similar as the best, finished ones come first (they
/// have an outcome to learn from), typical ones before the rest.
const PREFER_FINISHED_WITHIN: f64 = 0.5;

/// Keeps case row `case_id`'s index document in step with `case` as just written (`before`:
/// the case as it was, `None` when new). Nothing is written when the document is unchanged,
/// which is most decisions.
pub fn sync(
    tx: &Tx<'_>,
    case_id: i64,
    before: Option<&Case>,
    case: &Case,
) -> Result<(), StoreError> {
    let doc = IndexDoc::from_case(case);
    if before.is_some_and(|b| IndexDoc::from_case(b) == doc) {
        return Ok(());
    }
    tx.index_similar(case_id, &doc)
}

/// What the review card of an application filed by `first_unit` is searched with: the
/// application's words and units, its first unit always among them.
pub fn review_query(application: &Application, first_unit: &UnitName) -> IndexDoc {
    let mut query = IndexDoc::from_registered(application);
    if !query.units.iter().any(|u| *u == *first_unit) {
        query.units.insert(0, first_unit.to_string());
    }
    query
}

/// The similar past cases a new application version is registered with, for the review card:
/// up to [`ON_CARD`] for `query` ([`review_query`]), leaving out the case itself (row `case_id`,
/// when it already has one).
pub fn review_search(
    tx: &ReadTx<'_>,
    query: &IndexDoc,
    case_id: Option<i64>,
    calendar: &Calendar,
) -> Result<Vec<SimilarCase>, StoreError> {
    similar(
        tx,
        query,
        case_id,
        Scope::All,
        ON_CARD,
        MIN_SHARED,
        calendar,
    )
}

/// `相似`: the past cases most like stored case `case_id`, up to [`ON_REQUEST`].
pub fn for_case(
    tx: &ReadTx<'_>,
    case_id: i64,
    case: &Case,
    calendar: &Calendar,
) -> Result<Vec<SimilarCase>, StoreError> {
    similar(
        tx,
        &review_query(&case.application, &case.first_unit),
        Some(case_id),
        Scope::All,
        ON_REQUEST,
        MIN_SHARED,
        calendar,
    )
}

/// `案例 关键词`: closed and typical cases matching `keywords`, typical ones first.
pub fn search(
    tx: &ReadTx<'_>,
    keywords: &str,
    calendar: &Calendar,
) -> Result<Vec<SimilarCase>, StoreError> {
    let query = IndexDoc::from_text(keywords, Vec::new());
    similar(
        tx,
        &query,
        None,
        Scope::Finished,
        ON_REQUEST,
        MIN_SHARED_KEYWORDS,
        calendar,
    )
}

/// The ranked hits of `query`, reordered for the reader and summarised from the case documents.
/// A case whose document cannot be read is left out (and logged) rather than failing the
/// registration that asked.
#[allow(clippy::too_many_arguments)] // one query's whole description, passed down once
pub fn similar(
    tx: &ReadTx<'_>,
    query: &IndexDoc,
    exclude: Option<i64>,
    scope: Scope,
    top: usize,
    min_shared: f64,
    calendar: &Calendar,
) -> Result<Vec<SimilarCase>, StoreError> {
    let mut hits = ranked(tx, query, exclude, scope, top * 3, min_shared)?;
    let best = hits.first().map_or(0.0, |h| h.score);
    // Stable: within each group the ranking's order stays. The index knows which cases are
    // typical and closed, so only the cases shown are read.
    hits.sort_by_key(|hit| {
        if hit.score < best * PREFER_FINISHED_WITHIN {
            3
        } else if hit.typical {
            0
        } else if hit.closed {
            1
        } else {
            2
        }
    });
    let mut found = Vec::with_capacity(top);
    for hit in hits {
        if found.len() == top {
            break;
        }
        let Some(row) = tx.case(hit.key)? else {
            continue;
        };
        match decode(&row) {
            Ok(case) => found.push(similar::summarize(&case, calendar)),
            Err(e) => tracing::warn!(case_no = %row.case_no, error = %e,
                "similar case left out: its document cannot be read"),
        }
    }
    Ok(found)
}

/// Hits of `query` sharing `min_shared` or more of its word pairs, best first.
pub fn ranked(
    tx: &ReadTx<'_>,
    query: &IndexDoc,
    exclude: Option<i64>,
    scope: Scope,
    top: usize,
    min_shared: f64,
) -> Result<Vec<Hit<i64>>, StoreError> {
    let exclude: Vec<i64> = exclude.into_iter().collect();
    let hits = similar::rank(
        &tx.similar_index(),
        query,
        &exclude,
        scope,
        top,
        &Params::default(),
    )?;
    Ok(hits
        .into_iter()
        .filter(|h| h.shared >= min_shared)
        .collect())
}

/// Rebuilds the whole index from the cases; returns how many were indexed (`tiaochu migrate`).
pub fn rebuild(tx: &Tx<'_>) -> Result<usize, StoreError> {
    let mut bulk = tx.similar_bulk()?;
    for id in tx.case_ids()? {
        let Some(row) = tx.case(id)? else { continue };
        let case = decode(&row).map_err(|e| StoreError::BadData(e.to_string()))?;
        bulk.add(id, &IndexDoc::from_case(&case))?;
    }
    bulk.finish()
}

/// At start: rebuilds the index when it does not hold every case (a database migrated to the
/// similar-case schema by this start, or restored from an older backup). Returns how many cases
/// were indexed, 0 when it was already complete.
pub fn catch_up_blocking(store: &Store) -> Result<usize, StoreError> {
    let (cases, indexed) =
        store.read_blocking(|r| Ok::<_, StoreError>((r.case_count()?, r.similar_count()?)))?;
    if cases == indexed {
        return Ok(0);
    }
    let n = store.write_blocking(rebuild)?;
    tracing::info!(cases = n, "similar-case index rebuilt");
    Ok(n)
}

/// Review-card searches made ahead of their decisions, off the writer thread.
///
/// The search is the costliest step of registering an application (docs/throughput.md), and
/// it only reads. So the inbox worker searches for each complete application on a read
/// snapshot just before it queues the message's decision, and the decision takes the list when
/// the version it registers asks exactly that query (same words and units, same case left out);
/// otherwise it searches inside its transaction as before. A list searched ahead holds the
/// cases committed when the worker took the message up: one registered in the same instant,
/// by a decision still queued, may be missing from it — the inspector's `相似` finds it.
#[derive(Clone, Default)]
pub struct SearchedAhead(Arc<Mutex<Kept>>);

#[derive(Default)]
struct Kept {
    lists: Vec<Ahead>,
    /// Searches kept since start, taken or not.
    searched: u64,
}

struct Ahead {
    query: IndexDoc,
    exclude: Option<i64>,
    found: Vec<SimilarCase>,
}

/// Searches kept at most; the inbox worker takes up to 50 messages a step and clears the rest
/// after each.
const AHEAD_KEPT: usize = 64;

impl SearchedAhead {
    /// Keeps `found`, the list for `query` leaving out row `exclude`.
    pub fn put(&self, query: IndexDoc, exclude: Option<i64>, found: Vec<SimilarCase>) {
        let mut kept = self.lock();
        if kept.lists.len() >= AHEAD_KEPT {
            kept.lists.remove(0);
        }
        kept.lists.push(Ahead {
            query,
            exclude,
            found,
        });
        kept.searched += 1;
    }

    /// The list searched ahead for `query` leaving out `exclude`, if any; it is used once.
    pub fn take(&self, query: &IndexDoc, exclude: Option<i64>) -> Option<Vec<SimilarCase>> {
        let mut kept = self.lock();
        let at = kept
            .lists
            .iter()
            .position(|a| a.exclude == exclude && &a.query == query)?;
        Some(kept.lists.remove(at).found)
    }

    /// Forgets every search not taken (its message was refused or answered otherwise).
    pub fn clear(&self) {
        self.lock().lists.clear();
    }

    /// How many searches were made ahead since start.
    pub fn searched(&self) -> u64 {
        self.lock().searched
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A plain list; a panic while it was held cannot leave it inconsistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
