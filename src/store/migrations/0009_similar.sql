-- tiaochu schema: similar past cases (五(五); src/similar, docs/similar.md). What each case
-- contributes to the similarity index and the inverted index over it. Written by the engine in
-- the transaction that writes the case; `tiaochu migrate` rebuilds all of it from the cases,
-- since the tokens are made in Rust and a migration cannot make them.

-- One row per indexed case: its tokens (separated by single spaces), the units involved, and
-- whether it is finished, read back to score the candidates exactly.
CREATE TABLE similar_docs (
    case_id INTEGER PRIMARY KEY REFERENCES cases (id),
    terms TEXT NOT NULL,
    len INTEGER NOT NULL CHECK (len >= 0),
    units_json TEXT NOT NULL CHECK (json_valid(units_json)),
    closed INTEGER NOT NULL CHECK (closed IN (0, 1)),
    typical INTEGER NOT NULL CHECK (typical IN (0, 1))
) STRICT;

-- The inverted index over similar_docs.terms (external content, rowid = case id). The tokens
-- arrive separated by spaces, so unicode61 only splits them; detail=none because the ranking asks
-- which cases hold a term, never where.
CREATE VIRTUAL TABLE similar_fts USING fts5 (
    terms,
    content = 'similar_docs',
    content_rowid = 'case_id',
    detail = 'none',
    tokenize = 'unicode61'
);

-- How many cases hold each term (BM25's document frequency, which FTS5 does not keep).
CREATE TABLE similar_terms (
    term TEXT PRIMARY KEY,
    df INTEGER NOT NULL CHECK (df >= 1)
) STRICT, WITHOUT ROWID;

-- Totals for BM25, one row: indexed cases and their tokens.
CREATE TABLE similar_stats (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    docs INTEGER NOT NULL CHECK (docs >= 0),
    tokens INTEGER NOT NULL CHECK (tokens >= 0)
) STRICT;
INSERT INTO similar_stats (id, docs, tokens) VALUES (1, 0, 0);
