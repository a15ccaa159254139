//! Ranking past cases against a new application: Okapi BM25 over character bigrams, scaled up by
//! the overlap of the units involved, in two stages so that a query stays cheap however many
//! cases are stored.
//!
//! 1. **Candidates.** Every query term the index knows is looked up, rarest first, each reading
//!    at most an equal share of what is left of [`Params::posting_budget`] postings (newest
//!    first); each case found collects the weight of the terms it holds. On a small index every
//!    posting fits in the budget; on a large one a common term reads only its newest cases, so
//!    no few terms can spend the whole budget and every term still brings in the recent cases
//!    that share it. When the postings do not all fit, single characters and terms held by more
//!    than half the cases are not looked up at all: they cost a lookup each and weigh little.
//! 2. **Scoring.** The best [`Params::candidates`] are scored exactly: BM25 over every query
//!    term, times `1 + unit_weight × Jaccard(units)`, divided by the query's score against itself
//!    so that 1.0 means "as close as the application is to itself" whatever its length.
//!
//! The index is a trait, so the same ranking runs over the store (src/store/similar.rs) and over
//! a directory of application files ([`super::MemoryIndex`], for `tiaochu similar --corpus` and
//! the evaluation).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use super::IndexDoc;

/// BM25 term-frequency saturation.
const K1: f64 = 1.2;
/// BM25 length normalisation.
const B: f64 = 0.75;

/// The tuning of a ranking. [`Params::default`] is what the service and the CLI use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// How much sharing the units (first unit and units asked for) raises a score: the text score
    /// is multiplied by `1 + unit_weight × |shared| / |either|`.
    pub unit_weight: f64,
    /// Postings read in the candidate stage, at most.
    pub posting_budget: usize,
    /// Cases scored exactly in the second stage.
    pub candidates: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            unit_weight: 0.5,
            posting_budget: 10_000,
            candidates: 40,
        }
    }
}

/// Corpus totals BM25 needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub docs: u64,
    /// Tokens over every doc (the mean document length is this over `docs`).
    pub tokens: u64,
}

/// Which past cases a ranking may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every indexed case.
    All,
    /// Closed cases and typical cases only (the 案例 search: cases with an outcome to learn from).
    Finished,
}

/// Where the ranking reads past cases from.
pub trait Index {
    /// Identifies a past case; a larger key is a newer case (ties go to the newer).
    type Key: Copy + Eq + Hash + Ord;
    type Error;
    fn stats(&self) -> Result<Stats, Self::Error>;
    /// Document frequency of each of `terms` that occurs anywhere; absent terms are left out.
    fn doc_freqs(&self, terms: &[&str]) -> Result<HashMap<String, u64>, Self::Error>;
    /// Up to `limit` cases whose terms include `term`, newest first.
    fn postings(&self, term: &str, limit: usize) -> Result<Vec<Self::Key>, Self::Error>;
    /// Shows `visit` the indexed document of each of `keys`, in any order; keys with no document
    /// are left out. A visitor rather than a list: the store lends each document's text without
    /// copying it into a string per token.
    fn visit_docs(
        &self,
        keys: &[Self::Key],
        visit: &mut dyn FnMut(Self::Key, DocView<'_>),
    ) -> Result<(), Self::Error>;
}

/// A past case's document as the exact scoring reads it, borrowed from the index.
#[derive(Debug, Clone, Copy)]
pub struct DocView<'a> {
    pub terms: Terms<'a>,
    pub units: &'a [String],
    pub closed: bool,
    pub typical: bool,
}

/// The tokens of a document, with repeats, in either form an index keeps them.
#[derive(Debug, Clone, Copy)]
pub enum Terms<'a> {
    List(&'a [String]),
    /// Separated by single spaces (tokens never contain one).
    Spaced(&'a str),
}

impl<'a> Terms<'a> {
    fn each(self, mut f: impl FnMut(&'a str)) {
        match self {
            Terms::List(list) => list.iter().for_each(|t| f(t)),
            Terms::Spaced(text) => text.split(' ').filter(|t| !t.is_empty()).for_each(f),
        }
    }
}

impl IndexDoc {
    /// This document as [`Index::visit_docs`] shows it.
    pub fn view(&self) -> DocView<'_> {
        DocView {
            terms: Terms::List(&self.terms),
            units: &self.units,
            closed: self.closed,
            typical: self.typical,
        }
    }
}

/// FxHash (rustc's): a multiply and a rotate per word. The ranking hashes every token of forty
/// documents and every posting it reads; SipHash's protection against chosen collisions buys
/// nothing for a few hundred keys of one query and cost a fifth of a query's time.
#[derive(Debug, Clone, Copy, Default)]
struct Fx(u64);

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        if !rest.is_empty() {
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// One ranked past case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit<K> {
    pub key: K,
    /// Relative to the query's score against itself: 1.0 is identical wording and units. It
    /// orders the hits; its scale moves with the size of the index (rare words weigh more in a
    /// larger one).
    pub score: f64,
    /// [`shared_pairs`] of the query and the case: what a display floor can rely on at any
    /// size of the index.
    pub shared: f64,
    /// The case's [`IndexDoc::closed`] and [`IndexDoc::typical`]: a reader can order the hits
    /// without reading the cases.
    pub closed: bool,
    pub typical: bool,
}

/// The best `top` past cases for `query`, best first, leaving out `exclude` (the case the query
/// belongs to) and cases with no term in common.
pub fn rank<I: Index>(
    index: &I,
    query: &IndexDoc,
    exclude: &[I::Key],
    scope: Scope,
    top: usize,
    params: &Params,
) -> Result<Vec<Hit<I::Key>>, I::Error> {
    let mut qtf: HashMap<&str, u32> = HashMap::new();
    for t in &query.terms {
        *qtf.entry(t.as_str()).or_default() += 1;
    }
    if qtf.is_empty() || top == 0 {
        return Ok(Vec::new());
    }
    let stats = index.stats()?;
    if stats.docs == 0 {
        return Ok(Vec::new());
    }
    let mut terms: Vec<&str> = qtf.keys().copied().collect();
    terms.sort_unstable();
    let df = index.doc_freqs(&terms)?;
    let bm = Bm25::new(stats);
    let weight = |t: &str| -> f64 {
        let n = df.get(t).copied().unwrap_or(0);
        bm.idf(n) * query_weight(qtf.get(t).copied().unwrap_or(0))
    };

    // Stage 1: rarest terms first, within the posting budget.
    let mut known: Vec<(&str, u64)> = terms
        .iter()
        .filter_map(|t| df.get(*t).map(|n| (*t, *n)))
        .collect();
    // When the postings do not all fit in the budget, only the word pairs and words no more than
    // half the cases hold are looked up: single characters and the commonest pairs bring in half
    // the index for little weight, and every lookup has a cost. They still count in stage 2.
    if known.iter().map(|(_, n)| *n).sum::<u64>() > params.posting_budget as u64 {
        known.retain(|(t, n)| t.chars().count() > 1 && *n * 2 <= stats.docs);
    }
    known.sort_unstable_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
    let mut partial: FxMap<I::Key, f64> = FxMap::default();
    let mut read = 0usize;
    for (i, (term, _)) in known.iter().enumerate() {
        // Each term gets an equal share of what is left: a few common terms cannot take the
        // whole budget, and what a rare term leaves goes to the terms after it.
        if read >= params.posting_budget {
            break;
        }
        let share = ((params.posting_budget - read) / (known.len() - i)).max(1);
        let found = index.postings(term, share)?;
        read += found.len();
        let w = weight(term);
        for key in found {
            *partial.entry(key).or_default() += w;
        }
    }
    for key in exclude {
        partial.remove(key);
    }
    let mut candidates: Vec<(I::Key, f64)> = partial.into_iter().collect();
    let wanted = params.candidates.max(top);
    let by_weight = |a: &(I::Key, f64), b: &(I::Key, f64)| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0));
    if candidates.len() > wanted {
        candidates.select_nth_unstable_by(wanted - 1, by_weight);
        candidates.truncate(wanted);
    }
    let keys: Vec<I::Key> = candidates.iter().map(|(k, _)| *k).collect();

    // Stage 2: exact scores.
    let own = self_score(&bm, &qtf, &df, query, params);
    if own <= 0.0 {
        return Ok(Vec::new());
    }
    let scorer = Scorer::new(query, &qtf, &weight);
    let mut counts = vec![0u32; scorer.terms.len()];
    let mut hits: Vec<Hit<I::Key>> = Vec::with_capacity(keys.len());
    index.visit_docs(&keys, &mut |key, doc| {
        if scope == Scope::Finished && !(doc.closed || doc.typical) {
            return;
        }
        let (text, shared) = scorer.score(&bm, doc.terms, &mut counts);
        let s = text * (1.0 + params.unit_weight * jaccard(&query.units, doc.units));
        if s > 0.0 {
            hits.push(Hit {
                key,
                score: s / own,
                shared,
                closed: doc.closed,
                typical: doc.typical,
            });
        }
    })?;
    hits.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(b.key.cmp(&a.key)));
    hits.truncate(top);
    Ok(hits)
}

/// The query as the exact scoring reads it: each distinct term once, with its weight and whether
/// it counts in [`shared_pairs`], found by a hash of the token.
struct Scorer<'q> {
    slot: FxMap<&'q str, usize>,
    /// (weight, counts towards the shared share) by slot.
    terms: Vec<(f64, bool)>,
    /// How many slots count towards the shared share.
    shared_of: usize,
}

impl<'q> Scorer<'q> {
    fn new(
        query: &'q IndexDoc,
        qtf: &HashMap<&'q str, u32>,
        weight: &dyn Fn(&str) -> f64,
    ) -> Scorer<'q> {
        let pairs = query_pairs(query);
        // As shared_pairs: a query with no pair counts every term.
        let all = pairs.is_empty();
        let mut slot = FxMap::default();
        let mut terms = Vec::with_capacity(qtf.len());
        for t in qtf.keys() {
            slot.insert(*t, terms.len());
            terms.push((weight(t), all || pairs.contains(t)));
        }
        let shared_of = terms.iter().filter(|(_, s)| *s).count();
        Scorer {
            slot,
            terms,
            shared_of,
        }
    }

    /// BM25 of a document's tokens, and the share of the query's pairs it holds. `counts` is
    /// scratch space of one slot per query term.
    fn score(&self, bm: &Bm25, doc: Terms<'_>, counts: &mut [u32]) -> (f64, f64) {
        counts.fill(0);
        let mut len = 0usize;
        doc.each(|t| {
            len += 1;
            if let Some(i) = self.slot.get(t) {
                counts[*i] += 1;
            }
        });
        let norm = bm.norm(len);
        let (mut text, mut shared) = (0.0, 0usize);
        for (n, (w, pair)) in counts.iter().zip(&self.terms) {
            if *n > 0 {
                let n = f64::from(*n);
                text += w * n * (K1 + 1.0) / (n + norm);
                shared += usize::from(*pair);
            }
        }
        let shared = if self.shared_of == 0 {
            0.0
        } else {
            shared as f64 / self.shared_of as f64
        };
        (text, shared)
    }
}

/// Template wording every application's title has (反映……的问题): never evidence of a shared
/// problem.
const TEMPLATE_PAIRS: [&str; 3] = ["反映", "的问", "问题"];

/// The share of the query's distinct word pairs (two-character tokens, the template's own left
/// out) that `doc` holds: how much wording the two share, whatever the size of the index. A
/// query with no pair (a one-character keyword) counts its characters instead.
pub fn shared_pairs(query: &IndexDoc, doc: &IndexDoc) -> f64 {
    let mut q = query_pairs(query);
    let mut d = query_pairs(doc);
    if q.is_empty() {
        q = query.terms.iter().map(String::as_str).collect();
        d = doc.terms.iter().map(String::as_str).collect();
    }
    if q.is_empty() {
        return 0.0;
    }
    q.intersection(&d).count() as f64 / q.len() as f64
}

/// The distinct word pairs of `d`, the template's left out.
fn query_pairs(d: &IndexDoc) -> HashSet<&str> {
    d.terms
        .iter()
        .map(String::as_str)
        .filter(|t| t.chars().count() == 2 && !TEMPLATE_PAIRS.contains(t))
        .collect()
}

/// Weight of a term the query repeats (title words are counted twice): 1, 1.33, 1.5 … 2.
fn query_weight(qtf: u32) -> f64 {
    let q = f64::from(qtf);
    2.0 * q / (q + 1.0)
}

/// `|a ∩ b| / |a ∪ b|` of the distinct units, 0 when both are empty. Lists of a few units:
/// comparing every pair is cheaper than hashing them.
fn jaccard(a: &[String], b: &[String]) -> f64 {
    let distinct = |l: &[String]| {
        l.iter()
            .enumerate()
            .filter(|(i, u)| !l[..*i].contains(u))
            .count()
    };
    let shared = a
        .iter()
        .enumerate()
        .filter(|(i, u)| !a[..*i].contains(u) && b.contains(u))
        .count();
    let union = distinct(a) + distinct(b) - shared;
    if union == 0 {
        return 0.0;
    }
    shared as f64 / union as f64
}

/// The query scored against itself: the largest score a past case can reach, so a hit's score
/// reads as a share of it. Every query term counts, those no case holds at their highest idf:
/// a past case that shares only the common words of a new problem scores low, however small the
/// index.
fn self_score(
    bm: &Bm25,
    qtf: &HashMap<&str, u32>,
    df: &HashMap<String, u64>,
    query: &IndexDoc,
    params: &Params,
) -> f64 {
    let weight = |t: &str| {
        bm.idf(df.get(t).copied().unwrap_or(0)) * query_weight(qtf.get(t).copied().unwrap_or(0))
    };
    let text = bm.score_counts(qtf, query.terms.len(), &weight);
    let units = if query.units.is_empty() {
        1.0
    } else {
        1.0 + params.unit_weight
    };
    text * units
}

struct Bm25 {
    docs: f64,
    avg_len: f64,
}

impl Bm25 {
    fn new(stats: Stats) -> Bm25 {
        let docs = stats.docs as f64;
        Bm25 {
            docs,
            avg_len: (stats.tokens as f64 / docs.max(1.0)).max(1.0),
        }
    }

    /// Lucene's BM25 idf: always positive, so a term in every case still counts a little.
    fn idf(&self, df: u64) -> f64 {
        let df = df as f64;
        (1.0 + (self.docs - df + 0.5) / (df + 0.5)).ln()
    }

    /// The length normalisation of a document of `len` tokens.
    fn norm(&self, len: usize) -> f64 {
        K1 * (1.0 - B + B * len as f64 / self.avg_len)
    }

    fn score_counts(
        &self,
        tf: &HashMap<&str, u32>,
        len: usize,
        weight: &dyn Fn(&str) -> f64,
    ) -> f64 {
        let norm = self.norm(len);
        tf.iter()
            .map(|(t, n)| {
                let n = f64::from(*n);
                weight(t) * n * (K1 + 1.0) / (n + norm)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::MemoryIndex;
    use super::*;

    fn doc(text: &str, units: &[&str]) -> IndexDoc {
        IndexDoc::from_text(text, units.iter().map(|u| u.to_string()).collect())
    }

    fn corpus() -> MemoryIndex {
        let mut index = MemoryIndex::default();
        index.add(doc("反映建筑公司拖欠农民工工资", &["区人社局", "区住建局"]));
        index.add(doc(
            "反映小区物业公司撤场垃圾堆积",
            &["南街街道", "区住建局"],
        ));
        index.add(doc("反映夜间施工噪音扰民", &["北街街道"]));
        index
    }

    #[test]
    fn the_case_sharing_the_words_ranks_first() {
        let hits = rank(
            &corpus(),
            &doc("工地老板拖欠工资", &[]),
            &[],
            Scope::All,
            3,
            &Params::default(),
        )
        .expect("rank");
        assert_eq!(hits.first().map(|h| h.key), Some(0), "{hits:?}");
        assert!(
            hits.iter().all(|h| h.score > 0.0 && h.score <= 1.0),
            "{hits:?}"
        );
    }

    #[test]
    fn an_identical_application_scores_one() {
        let q = doc("反映夜间施工噪音扰民", &["北街街道"]);
        let hits = rank(&corpus(), &q, &[], Scope::All, 1, &Params::default()).expect("rank");
        assert_eq!(hits[0].key, 2);
        assert!((hits[0].score - 1.0).abs() < 1e-9, "{hits:?}");
    }

    #[test]
    fn shared_units_break_a_tie_in_the_text() {
        let mut index = MemoryIndex::default();
        index.add(doc("反映拖欠工资", &["区人社局"]));
        index.add(doc("反映拖欠工资", &["区住建局"]));
        let q = doc("拖欠工资", &["区人社局"]);
        let plain = rank(&index, &q, &[], Scope::All, 2, &Params::default()).expect("rank");
        assert_eq!(plain[0].key, 0, "shared unit first: {plain:?}");
        let no_units = Params {
            unit_weight: 0.0,
            ..Params::default()
        };
        let tied = rank(&index, &q, &[], Scope::All, 2, &no_units).expect("rank");
        assert_eq!(
            tied[0].key, 1,
            "without the signal the newer wins the tie: {tied:?}"
        );
    }

    #[test]
    fn excluded_unrelated_and_unfinished_cases_are_left_out() {
        let index = corpus();
        let q = doc("反映夜间施工噪音扰民", &[]);
        let hits = rank(&index, &q, &[2], Scope::All, 3, &Params::default()).expect("rank");
        assert!(hits.iter().all(|h| h.key != 2), "{hits:?}");
        let none = rank(
            &index,
            &doc("医保报销", &[]),
            &[],
            Scope::All,
            3,
            &Params::default(),
        )
        .expect("rank");
        assert!(none.is_empty(), "{none:?}");
        let finished = rank(&index, &q, &[], Scope::Finished, 3, &Params::default()).expect("rank");
        assert!(finished.is_empty(), "no case is closed: {finished:?}");
    }

    #[test]
    fn a_tight_budget_still_finds_the_rare_match() {
        let mut index = MemoryIndex::default();
        for _ in 0..50 {
            index.add(doc("反映问题协调处理", &[]));
        }
        index.add(doc("反映电梯困人问题", &[]));
        let tight = Params {
            posting_budget: 3,
            candidates: 2,
            ..Params::default()
        };
        let hits = rank(&index, &doc("电梯困人", &[]), &[], Scope::All, 1, &tight).expect("rank");
        assert_eq!(hits.first().map(|h| h.key), Some(50), "{hits:?}");
    }
}
