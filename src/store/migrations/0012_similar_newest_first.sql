-- tiaochu schema: the similar-case inverted index again, keyed so that a term's newest cases come
-- first in FTS5's cheap direction (docs/similar.md → Cost).
--
-- The ranking reads each query term's newest cases. FTS5 walks a term's list in ascending rowid
-- order at half the cost of descending (measured at 100,000 cases: 2.2 against 4.4 ms a query),
-- so the row id is now the NEGATED case id: ascending order is newest first. The table is
-- contentless (nothing is ever read back from it but row ids) with contentless_delete, so a case's
-- old entry is deleted by its row id alone. The tokens arrive made and separated by spaces, so the
-- `ascii` tokenizer (every byte above 127 is part of a token) splits them as unicode61 did, without
-- its per-character Unicode tables.
--
-- The index is emptied: the tokens are made in Rust, so `tiaochu migrate` (and `tiaochu serve` at
-- start, seeing fewer indexed cases than cases) rebuilds it from the cases.

DROP TABLE similar_fts;

CREATE VIRTUAL TABLE similar_fts USING fts5 (
    terms,
    content = '',
    contentless_delete = 1,
    detail = 'none',
    tokenize = 'ascii'
);

DELETE FROM similar_docs;
DELETE FROM similar_terms;
UPDATE similar_stats SET docs = 0, tokens = 0 WHERE id = 1;
