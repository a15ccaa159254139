//! The similar-case index (migrations 0009 and 0012): one document per case, an FTS5 inverted
//! index over its tokens, document frequencies and totals — and [`StoreIndex`], through which
//! [`crate::similar::rank`] reads them. The documents are made by the caller
//! ([`crate::similar::IndexDoc`]); this module only keeps the tables consistent with each other.
//!
//! The inverted index's row id is the negated case id (0012): FTS5 reads a list in ascending row
//! id order at half the cost of descending, and the ranking wants the newest cases first.

use std::collections::{HashMap, HashSet};

use rusqlite::{OptionalExtension, params};

use super::{ReadTx, StoreError, Tx, limit};
use crate::similar::{DocView, Index, IndexDoc, Stats, Terms};

/// The separator of `similar_docs.terms`; tokens never contain it.
const SEP: char = ' ';

/// FTS5's own defaults for the in-memory table a write fills before it writes a segment, and for
/// how many segments of a level are merged; a rebuild raises the first and turns merging off
/// until its end ([`Tx::similar_bulk`]).
const FTS5_HASHSIZE: i64 = 1024 * 1024;
const FTS5_AUTOMERGE: i64 = 4;
/// The in-memory table of a rebuild: 100,000 cases make a 28 MB inverted index.
const BULK_HASHSIZE: i64 = 64 * 1024 * 1024;

fn doc_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String, String, bool, bool)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn decode(
    terms: &str,
    units_json: &str,
    closed: bool,
    typical: bool,
) -> Result<IndexDoc, StoreError> {
    let units: Vec<String> = serde_json::from_str(units_json)
        .map_err(|e| StoreError::BadData(format!("相似案例索引的单位列表无效：{e}")))?;
    Ok(IndexDoc {
        terms: terms
            .split(SEP)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        units,
        closed,
        typical,
    })
}

fn unique(terms: &[String]) -> HashSet<&str> {
    terms.iter().map(String::as_str).collect()
}

impl Tx<'_> {
    /// Makes `doc` case `case_id`'s document in the index, replacing the one it had. Only what
    /// changed is written: the flags and units alone when the text is the same.
    pub fn index_similar(&self, case_id: i64, doc: &IndexDoc) -> Result<(), StoreError> {
        let terms = doc.terms.join(&SEP.to_string());
        let units = serde_json::to_string(&doc.units)
            .map_err(|e| StoreError::BadData(format!("相似案例索引的单位列表无法编码：{e}")))?;
        let old = self.similar_doc(case_id)?;
        if let Some(old) = &old
            && old.terms == doc.terms
        {
            if old.units != doc.units || old.closed != doc.closed || old.typical != doc.typical {
                self.conn()
                    .prepare_cached(
                        "UPDATE similar_docs SET units_json = ?2, closed = ?3, typical = ?4
                         WHERE case_id = ?1",
                    )?
                    .execute(params![case_id, units, doc.closed, doc.typical])?;
            }
            return Ok(());
        }
        let new_terms = unique(&doc.terms);
        let old_terms = old.as_ref().map(|o| unique(&o.terms)).unwrap_or_default();
        if old.is_some() {
            self.conn()
                .prepare_cached("DELETE FROM similar_fts WHERE rowid = ?1")?
                .execute([-case_id])?;
            for term in old_terms.difference(&new_terms) {
                self.release_term(term)?;
            }
        }
        self.write_similar_doc(case_id, &terms, doc.terms.len(), &units, doc)?;
        let mut add_term = self.conn().prepare_cached(
            "INSERT INTO similar_terms (term, df) VALUES (?1, 1)
             ON CONFLICT (term) DO UPDATE SET df = df + 1",
        )?;
        for term in new_terms.difference(&old_terms) {
            add_term.execute([term])?;
        }
        let (docs, tokens) = match &old {
            Some(o) => (0, doc.terms.len() as i64 - o.terms.len() as i64),
            None => (1, doc.terms.len() as i64),
        };
        self.conn()
            .prepare_cached(
                "UPDATE similar_stats SET docs = docs + ?1, tokens = tokens + ?2 WHERE id = 1",
            )?
            .execute(params![docs, tokens])?;
        Ok(())
    }

    /// Case `case_id`'s row in `similar_docs` (inserted or replaced) and its entry in the
    /// inverted index (which must have none).
    fn write_similar_doc(
        &self,
        case_id: i64,
        terms: &str,
        len: usize,
        units: &str,
        doc: &IndexDoc,
    ) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO similar_docs (case_id, terms, len, units_json, closed, typical)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (case_id) DO UPDATE SET terms = excluded.terms, len = excluded.len,
                     units_json = excluded.units_json, closed = excluded.closed,
                     typical = excluded.typical",
            )?
            .execute(params![
                case_id,
                terms,
                len as i64,
                units,
                doc.closed,
                doc.typical
            ])?;
        self.conn()
            .prepare_cached("INSERT INTO similar_fts (rowid, terms) VALUES (?1, ?2)")?
            .execute(params![-case_id, terms])?;
        Ok(())
    }

    /// Fills the index, emptied first, with many cases at once ([`SimilarBulk`]).
    pub fn similar_bulk(&self) -> Result<SimilarBulk<'_, '_>, StoreError> {
        self.clear_similar()?;
        // FTS5 writes a segment each time its in-memory table passes `hashsize` (1 MB) and merges
        // segments as they pile up (`automerge`); a rebuild ends with one merge of everything, so
        // it keeps more in memory and merges only then. Restored by `finish`, in the same
        // transaction.
        self.conn().execute_batch(&format!(
            "INSERT INTO similar_fts (similar_fts, rank) VALUES ('hashsize', {BULK_HASHSIZE});
             INSERT INTO similar_fts (similar_fts, rank) VALUES ('automerge', 0);"
        ))?;
        Ok(SimilarBulk {
            tx: self,
            df: HashMap::new(),
            docs: 0,
            tokens: 0,
        })
    }

    /// One case fewer holds `term`.
    fn release_term(&self, term: &str) -> Result<(), StoreError> {
        let gone = self
            .conn()
            .prepare_cached("DELETE FROM similar_terms WHERE term = ?1 AND df = 1")?
            .execute([term])?;
        if gone == 0 {
            self.conn()
                .prepare_cached("UPDATE similar_terms SET df = df - 1 WHERE term = ?1")?
                .execute([term])?;
        }
        Ok(())
    }

    /// Empties the index, before it is rebuilt from the cases.
    pub fn clear_similar(&self) -> Result<(), StoreError> {
        self.conn().execute_batch(
            "INSERT INTO similar_fts (similar_fts) VALUES ('delete-all');
             DELETE FROM similar_docs;
             DELETE FROM similar_terms;
             UPDATE similar_stats SET docs = 0, tokens = 0 WHERE id = 1;",
        )?;
        Ok(())
    }
}

/// A rebuild of the whole index: each case's document and inverted-index entry as it is added;
/// the document frequencies and totals counted in memory and written once by
/// [`SimilarBulk::finish`] — one row per term instead of an update per term per case, which was
/// most of a rebuild's time. Dropped without `finish`, the transaction must not commit.
pub struct SimilarBulk<'t, 'c> {
    tx: &'t Tx<'c>,
    df: HashMap<String, i64>,
    docs: i64,
    tokens: i64,
}

impl SimilarBulk<'_, '_> {
    /// Case `case_id`'s document; each case once.
    pub fn add(&mut self, case_id: i64, doc: &IndexDoc) -> Result<(), StoreError> {
        let terms = doc.terms.join(&SEP.to_string());
        let units = serde_json::to_string(&doc.units)
            .map_err(|e| StoreError::BadData(format!("相似案例索引的单位列表无法编码：{e}")))?;
        self.tx
            .write_similar_doc(case_id, &terms, doc.terms.len(), &units, doc)?;
        for term in unique(&doc.terms) {
            match self.df.get_mut(term) {
                Some(n) => *n += 1,
                None => {
                    self.df.insert(term.to_string(), 1);
                }
            }
        }
        self.docs += 1;
        self.tokens += doc.terms.len() as i64;
        Ok(())
    }

    /// Writes the document frequencies and totals, and merges the inverted index into one
    /// segment (FTS5 `optimize`): a lookup then reads one list instead of one per segment that
    /// the cases were written in. Returns how many cases were added.
    pub fn finish(self) -> Result<usize, StoreError> {
        let conn = self.tx.conn();
        let mut insert =
            conn.prepare_cached("INSERT INTO similar_terms (term, df) VALUES (?1, ?2)")?;
        for (term, df) in &self.df {
            insert.execute(params![term, df])?;
        }
        conn.prepare_cached("UPDATE similar_stats SET docs = ?1, tokens = ?2 WHERE id = 1")?
            .execute(params![self.docs, self.tokens])?;
        conn.execute_batch(&format!(
            "INSERT INTO similar_fts (similar_fts) VALUES ('optimize');
             INSERT INTO similar_fts (similar_fts, rank) VALUES ('hashsize', {FTS5_HASHSIZE});
             INSERT INTO similar_fts (similar_fts, rank) VALUES ('automerge', {FTS5_AUTOMERGE});"
        ))?;
        Ok(usize::try_from(self.docs).unwrap_or(0))
    }
}

impl ReadTx<'_> {
    /// Case `case_id`'s document in the index.
    pub fn similar_doc(&self, case_id: i64) -> Result<Option<IndexDoc>, StoreError> {
        let row = self
            .conn()
            .prepare_cached(
                "SELECT case_id, terms, units_json, closed, typical FROM similar_docs
                 WHERE case_id = ?1",
            )?
            .query_row([case_id], doc_row)
            .optional()?;
        row.map(|(_, terms, units, closed, typical)| decode(&terms, &units, closed, typical))
            .transpose()
    }

    /// The index as [`crate::similar::rank`] reads it, in this transaction's snapshot.
    pub fn similar_index(&self) -> StoreIndex<'_, '_> {
        StoreIndex { tx: self }
    }

    /// How many cases there are.
    pub fn case_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .prepare_cached("SELECT count(*) FROM cases")?
            .query_row([], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// How many cases the similar-case index holds.
    pub fn similar_count(&self) -> Result<u64, StoreError> {
        Ok(self.similar_index().stats()?.docs)
    }

    /// Every case id, oldest first: what a rebuild walks.
    pub fn case_ids(&self) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT id FROM cases ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The stored index, keyed by case id (a larger id is a newer case).
pub struct StoreIndex<'t, 'c> {
    tx: &'t ReadTx<'c>,
}

impl Index for StoreIndex<'_, '_> {
    type Key = i64;
    type Error = StoreError;

    fn stats(&self) -> Result<Stats, StoreError> {
        let (docs, tokens): (i64, i64) = self
            .tx
            .conn()
            .prepare_cached("SELECT docs, tokens FROM similar_stats WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(Stats {
            docs: u64::try_from(docs).unwrap_or(0),
            tokens: u64::try_from(tokens).unwrap_or(0),
        })
    }

    fn doc_freqs(&self, terms: &[&str]) -> Result<HashMap<String, u64>, StoreError> {
        let json = serde_json::to_string(terms)
            .map_err(|e| StoreError::BadData(format!("检索词无法编码：{e}")))?;
        let mut stmt = self.tx.conn().prepare_cached(
            "SELECT term, df FROM similar_terms WHERE term IN (SELECT value FROM json_each(?1))",
        )?;
        let rows = stmt.query_map([json], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = HashMap::new();
        for row in rows {
            let (term, df) = row?;
            out.insert(term, u64::try_from(df).unwrap_or(0));
        }
        Ok(out)
    }

    fn postings(&self, term: &str, n: usize) -> Result<Vec<i64>, StoreError> {
        // Tokens are Han characters or ASCII letters, so quoting makes any of them one FTS5
        // string (never an operator such as OR or NOT).
        if term.is_empty() || term.contains('"') {
            return Ok(Vec::new());
        }
        // Row ids are negated case ids: ascending is newest first.
        let mut stmt = self.tx.conn().prepare_cached(
            "SELECT rowid FROM similar_fts WHERE similar_fts MATCH ?1 ORDER BY rowid LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![format!("\"{term}\""), limit(n)], |r| {
            r.get::<_, i64>(0).map(|id| -id)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn visit_docs(
        &self,
        keys: &[i64],
        visit: &mut dyn FnMut(i64, DocView<'_>),
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(keys)
            .map_err(|e| StoreError::BadData(format!("案件编号列表无法编码：{e}")))?;
        let mut stmt = self.tx.conn().prepare_cached(
            "SELECT case_id, terms, units_json, closed, typical FROM similar_docs
             WHERE case_id IN (SELECT value FROM json_each(?1))",
        )?;
        let mut rows = stmt.query([json])?;
        while let Some(r) = rows.next()? {
            // The terms are lent by SQLite: no string per token.
            let text = |i: usize| {
                r.get_ref(i)?
                    .as_str()
                    .map_err(|e| StoreError::BadData(format!("相似案例索引的文本无效：{e}")))
            };
            let terms = text(1)?;
            let units: Vec<String> = serde_json::from_str(text(2)?)
                .map_err(|e| StoreError::BadData(format!("相似案例索引的单位列表无效：{e}")))?;
            visit(
                r.get(0)?,
                DocView {
                    terms: Terms::Spaced(terms),
                    units: &units,
                    closed: r.get(3)?,
                    typical: r.get(4)?,
                },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::super::{NewCase, Store};
    use super::*;
    use crate::domain::{CaseNo, TicketNo, UnitName};
    use crate::similar::{MemoryIndex, Params, Scope, rank};

    fn case(tx: &Tx<'_>, n: usize) -> Result<i64, StoreError> {
        tx.insert_case(&NewCase {
            case_no: &CaseNo::new(2026, i64::try_from(n).expect("fits")),
            ticket_no: &TicketNo::parse(&format!("DH2026{n:07}")).expect("ticket"),
            first_unit: &UnitName::unchecked("区人社局"),
            urgent: false,
            state: "submitted",
            data_json: "{}",
            created_at: Timestamp::from_second(0).expect("ts"),
        })
    }

    fn doc(text: &str, units: &[&str]) -> IndexDoc {
        IndexDoc::from_text(text, units.iter().map(|u| u.to_string()).collect())
    }

    const TEXTS: [&str; 4] = [
        "反映建筑公司拖欠农民工工资",
        "反映小区物业公司撤场垃圾堆积",
        "反映夜间施工噪音扰民",
        "反映KTV噪音扰民影响休息",
    ];

    #[test]
    fn the_store_ranks_exactly_as_memory_and_follows_replacements() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let ids = store
            .write_blocking(|tx| -> Result<_, StoreError> {
                let mut ids = Vec::new();
                for (n, text) in TEXTS.iter().enumerate() {
                    let id = case(tx, n + 1)?;
                    tx.index_similar(id, &doc(text, &["区人社局"]))?;
                    ids.push(id);
                }
                Ok(ids)
            })
            .expect("write");
        let mut memory = MemoryIndex::default();
        for text in TEXTS {
            memory.add(doc(text, &["区人社局"]));
        }
        let query = doc("夜里噪音太大", &[]);
        let params = Params::default();
        let in_memory = rank(&memory, &query, &[], Scope::All, 4, &params).expect("memory");
        let q = query.clone();
        let stored = store
            .read_blocking(move |r| rank(&r.similar_index(), &q, &[], Scope::All, 4, &params))
            .expect("store");
        assert_eq!(in_memory.len(), stored.len());
        for (m, s) in in_memory.iter().zip(&stored) {
            assert_eq!(ids[m.key], s.key);
            assert!((m.score - s.score).abs() < 1e-12, "{m:?} {s:?}");
        }

        // Replacing a document moves its terms and keeps the totals right.
        let third = ids[2];
        store
            .write_blocking(move |tx| tx.index_similar(third, &doc("反映医保报销进度慢", &[])))
            .expect("replace");
        let (stats, df_noise, df_yibao, hits) = store
            .read_blocking(move |r| -> Result<_, StoreError> {
                let index = r.similar_index();
                let df = index.doc_freqs(&["噪音", "医保"])?;
                Ok((
                    index.stats()?,
                    df.get("噪音").copied(),
                    df.get("医保").copied(),
                    rank(&index, &doc("医保报销", &[]), &[], Scope::All, 4, &params)?,
                ))
            })
            .expect("read");
        assert_eq!(stats.docs, 4);
        let mut expected = memory_tokens(&TEXTS);
        expected = expected - crate::similar::tokens::tokens(TEXTS[2]).len() as u64
            + crate::similar::tokens::tokens("反映医保报销进度慢").len() as u64;
        assert_eq!(stats.tokens, expected);
        assert_eq!((df_noise, df_yibao), (Some(1), Some(1)));
        assert_eq!(hits.first().map(|h| h.key), Some(third));

        // Flags alone change no term; a rebuild starts from nothing.
        store
            .write_blocking(move |tx| {
                let mut closed = doc("反映医保报销进度慢", &["区医保服务中心"]);
                closed.closed = true;
                tx.index_similar(third, &closed)
            })
            .expect("flags");
        let finished = store
            .read_blocking(move |r| {
                rank(
                    &r.similar_index(),
                    &doc("医保", &[]),
                    &[],
                    Scope::Finished,
                    4,
                    &params,
                )
            })
            .expect("read");
        assert_eq!(finished.iter().map(|h| h.key).collect::<Vec<_>>(), [third]);
        store
            .write_blocking(|tx| tx.clear_similar())
            .expect("clear");
        let (stats, terms) = store
            .read_blocking(|r| -> Result<_, StoreError> {
                let index = r.similar_index();
                Ok((index.stats()?, index.postings("噪音", 10)?))
            })
            .expect("read");
        assert_eq!((stats.docs, stats.tokens), (0, 0));
        assert!(terms.is_empty());
    }

    #[test]
    fn a_bulk_rebuild_equals_writing_case_by_case() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let params = Params::default();
        let query = doc("夜里KTV噪音太大", &["区人社局"]);
        let mut terms: Vec<String> = TEXTS
            .iter()
            .flat_map(|t| crate::similar::tokens::tokens(t))
            .collect();
        terms.sort();
        terms.dedup();
        let read = |store: &Store| {
            let (q, terms) = (query.clone(), terms.clone());
            store
                .read_blocking(move |r| -> Result<_, StoreError> {
                    let index = r.similar_index();
                    let t: Vec<&str> = terms.iter().map(String::as_str).collect();
                    let mut df: Vec<(String, u64)> = index.doc_freqs(&t)?.into_iter().collect();
                    df.sort();
                    let hits = rank(&index, &q, &[], Scope::All, 4, &params)?;
                    let keys: Vec<i64> = hits.iter().map(|h| h.key).collect();
                    Ok((index.stats()?, df, keys, index.postings("噪音", 10)?))
                })
                .expect("read")
        };
        let ids = store
            .write_blocking(|tx| -> Result<_, StoreError> {
                let mut ids = Vec::new();
                for (n, text) in TEXTS.iter().enumerate() {
                    let id = case(tx, n + 1)?;
                    // A replaced document leaves nothing behind.
                    tx.index_similar(id, &doc("反映医保报销进度慢", &[]))?;
                    tx.index_similar(id, &doc(text, &["区人社局"]))?;
                    ids.push(id);
                }
                Ok(ids)
            })
            .expect("write");
        let one_by_one = read(&store);
        assert_eq!(one_by_one.3, [ids[3], ids[2]], "newest first");
        let bulk_ids = ids.clone();
        let added = store
            .write_blocking(move |tx| -> Result<_, StoreError> {
                let mut bulk = tx.similar_bulk()?;
                for (id, text) in bulk_ids.iter().zip(TEXTS) {
                    bulk.add(*id, &doc(text, &["区人社局"]))?;
                }
                bulk.finish()
            })
            .expect("bulk");
        assert_eq!(added, TEXTS.len());
        let bulk = read(&store);
        assert_eq!(one_by_one, bulk);
        assert_eq!(bulk.0.tokens, memory_tokens(&TEXTS));

        // After a rebuild, a case's document is still replaced in place.
        let last = ids[3];
        store
            .write_blocking(move |tx| tx.index_similar(last, &doc("反映医保报销进度慢", &[])))
            .expect("replace");
        let after = read(&store);
        assert_eq!(after.3, [ids[2]]);
        assert_eq!(after.0.docs, 4);
    }

    fn memory_tokens(texts: &[&str]) -> u64 {
        texts
            .iter()
            .map(|t| crate::similar::tokens::tokens(t).len() as u64)
            .sum()
    }
}
