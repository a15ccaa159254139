-- tiaochu schema, version 1. Every instant is INTEGER milliseconds since the Unix epoch (UTC).
-- Tables are STRICT so a wrong type is an error, never a silent conversion; JSON columns are
-- checked with json_valid so a bad document cannot be committed.

-- Case numbers (TC-2026-0001) are monotonic per year and never reused, even after a rollback
-- of a later transaction, because the counter lives in the same transaction as the case.
CREATE TABLE case_counters (
    year INTEGER PRIMARY KEY,
    last INTEGER NOT NULL CHECK (last >= 1)
) STRICT;

-- One row per case. The workflow owns `state` and `data_json`; the other columns are copies of
-- what queries filter on. `revision` is the optimistic-concurrency token: every update must
-- name the revision it read and increments it.
CREATE TABLE cases (
    id INTEGER PRIMARY KEY,
    case_no TEXT NOT NULL UNIQUE,
    ticket_no TEXT NOT NULL,
    first_unit TEXT NOT NULL,
    urgent INTEGER NOT NULL CHECK (urgent IN (0, 1)),
    state TEXT NOT NULL,
    data_json TEXT NOT NULL CHECK (json_valid(data_json)),
    revision INTEGER NOT NULL DEFAULT 1 CHECK (revision >= 1),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX cases_by_ticket ON cases (ticket_no, created_at DESC, id DESC);
CREATE INDEX cases_by_state ON cases (state);

-- Each submission of an application for a case; a corrected resubmission after a return is the
-- next version of the same case.
CREATE TABLE case_versions (
    case_id INTEGER NOT NULL REFERENCES cases (id),
    version INTEGER NOT NULL CHECK (version >= 1),
    application_json TEXT NOT NULL CHECK (json_valid(application_json)),
    submitted_by TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    PRIMARY KEY (case_id, version)
) STRICT;

-- The units taking part in a case (first unit and cooperating units) and where each stands.
CREATE TABLE case_units (
    case_id INTEGER NOT NULL REFERENCES cases (id),
    unit TEXT NOT NULL,
    status TEXT NOT NULL,
    data_json TEXT NOT NULL CHECK (json_valid(data_json)),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (case_id, unit)
) STRICT;

-- The audit log every report is computed from. AUTOINCREMENT so an id is never reused and ids
-- order events by commit. Append-only: the triggers below refuse any UPDATE or DELETE.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id INTEGER REFERENCES cases (id),
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    at INTEGER NOT NULL,
    data_json TEXT NOT NULL CHECK (json_valid(data_json))
) STRICT;
CREATE INDEX events_by_case ON events (case_id, id);
CREATE INDEX events_by_time ON events (at, id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

-- Every inbound message, persisted before it is acknowledged. The unique key makes a
-- redelivered message a no-op.
CREATE TABLE inbox (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL CHECK (source IN ('robot', 'card', 'stream', 'sandbox')),
    message_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    payload TEXT NOT NULL,
    outcome TEXT,
    finished_at INTEGER,
    UNIQUE (source, message_id),
    CHECK ((outcome IS NULL) = (finished_at IS NULL))
) STRICT;
CREATE INDEX inbox_pending ON inbox (id) WHERE finished_at IS NULL;

-- Outbound messages, written in the transaction that decided them, with the exact bytes to
-- send. A row is claimed by setting `lease_until`; an expired lease makes it claimable again.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    idem_key TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    payload BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_error TEXT,
    sent_at INTEGER,
    response TEXT,
    dead_at INTEGER
) STRICT;
CREATE INDEX outbox_pending_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_dead ON outbox (id) WHERE state = 'dead';

-- Reminders, deadlines and escalations. The partial index keeps "what is due next" cheap no
-- matter how many fired timers accumulate.
CREATE TABLE timers (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    case_id INTEGER REFERENCES cases (id),
    kind TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    payload_json TEXT NOT NULL CHECK (json_valid(payload_json)),
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'fired', 'cancelled')),
    fired_at INTEGER,
    CHECK ((state = 'fired') = (fired_at IS NOT NULL))
) STRICT;
CREATE INDEX timers_pending_due ON timers (due_at) WHERE state = 'pending';
CREATE INDEX timers_by_case ON timers (case_id);

-- Interactive cards, by DingTalk outTrackId, so a card can be updated in place after each action.
CREATE TABLE cards (
    out_track_id TEXT PRIMARY KEY,
    case_id INTEGER REFERENCES cases (id),
    kind TEXT NOT NULL,
    recipients_json TEXT NOT NULL CHECK (json_valid(recipients_json)),
    data_json TEXT NOT NULL CHECK (json_valid(data_json)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX cards_by_case ON cards (case_id);
