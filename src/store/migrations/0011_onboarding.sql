-- tiaochu schema: onboarding the liaisons (启动 名单, 名单 进度; src/onboarding.rs) and people who
-- left the DingTalk organisation (address-book events over Stream).

-- One row per member unit asked to name its liaison: who started the round and when, when the
-- unit answered (a liaison in the roster in force) and how often its leaders were reminded. A
-- unit asked again (its liaison left the organisation) has its row reset, not a second one.
CREATE TABLE onboarding_units (
    unit TEXT PRIMARY KEY,
    asked_at INTEGER NOT NULL,
    asked_by TEXT NOT NULL,
    done_at INTEGER,
    reminders INTEGER NOT NULL DEFAULT 0 CHECK (reminders >= 0),
    last_reminded_at INTEGER
) STRICT;

-- A person the address book says left the organisation keeps their row (so timelines still name
-- them), flagged with the instant DingTalk reported it; NULL while they belong to it.
ALTER TABLE roster_people ADD COLUMN departed_at INTEGER;

-- Address-book events arrive over Stream as inbox rows of their own source, `event`: the inbox
-- is rebuilt with that source allowed (SQLite cannot change a CHECK in place), rows and ids kept.
CREATE TABLE inbox_new (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL CHECK (source IN ('robot', 'card', 'stream', 'sandbox', 'event')),
    message_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    payload TEXT NOT NULL,
    outcome TEXT,
    finished_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    quarantined_at INTEGER,
    quarantine_reason TEXT,
    UNIQUE (source, message_id),
    CHECK ((outcome IS NULL) = (finished_at IS NULL))
) STRICT;
INSERT INTO inbox_new (id, source, message_id, received_at, payload, outcome, finished_at,
        attempts, quarantined_at, quarantine_reason)
    SELECT id, source, message_id, received_at, payload, outcome, finished_at,
        attempts, quarantined_at, quarantine_reason FROM inbox;
DROP TABLE inbox;
ALTER TABLE inbox_new RENAME TO inbox;
CREATE INDEX inbox_pending ON inbox (id) WHERE finished_at IS NULL AND quarantined_at IS NULL;
CREATE INDEX inbox_quarantined ON inbox (id) WHERE quarantined_at IS NOT NULL;
