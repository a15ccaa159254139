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
