//! An index held in memory: the past cases of `tiaochu similar --corpus DIR` and of the
//! evaluation, ranked by exactly the code that ranks the stored cases.

use std::collections::HashMap;
use std::convert::Infallible;

use super::IndexDoc;
use super::rank::{DocView, Index, Stats};

/// Documents keyed by the order they were added (0, 1, …; later is newer).
#[derive(Debug, Clone, Default)]
pub struct MemoryIndex {
    docs: Vec<IndexDoc>,
    /// Per term, the documents containing it, oldest first.
    postings: HashMap<String, Vec<usize>>,
    tokens: u64,
}

impl MemoryIndex {
    /// Adds a document; returns its key.
    pub fn add(&mut self, doc: IndexDoc) -> usize {
        let key = self.docs.len();
        let mut seen: Vec<&str> = doc.terms.iter().map(String::as_str).collect();
        seen.sort_unstable();
        seen.dedup();
        for term in seen {
            self.postings.entry(term.to_string()).or_default().push(key);
        }
        self.tokens += doc.terms.len() as u64;
        self.docs.push(doc);
        key
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

impl Index for MemoryIndex {
    type Key = usize;
    type Error = Infallible;

    fn stats(&self) -> Result<Stats, Infallible> {
        Ok(Stats {
            docs: self.docs.len() as u64,
            tokens: self.tokens,
        })
    }

    fn doc_freqs(&self, terms: &[&str]) -> Result<HashMap<String, u64>, Infallible> {
        Ok(terms
            .iter()
            .filter_map(|t| {
                self.postings
                    .get(*t)
                    .map(|p| ((*t).to_string(), p.len() as u64))
            })
            .collect())
    }

    fn postings(&self, term: &str, limit: usize) -> Result<Vec<usize>, Infallible> {
        Ok(self
            .postings
            .get(term)
            .map(|p| p.iter().rev().take(limit).copied().collect())
            .unwrap_or_default())
    }

    fn visit_docs(
        &self,
        keys: &[usize],
        visit: &mut dyn FnMut(usize, DocView<'_>),
    ) -> Result<(), Infallible> {
        for k in keys {
            if let Some(d) = self.docs.get(*k) {
                visit(*k, d.view());
            }
        }
        Ok(())
    }
}
