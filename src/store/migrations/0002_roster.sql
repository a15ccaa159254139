-- tiaochu schema, version 2: roster changes made in DingTalk (设置联络员, 更换分管领导, 绑定 …).
-- config/roster.toml seeds the roster; a row here replaces the file's person with the same
-- (unit, name) — or adds one the file lacks — so the change survives restarts and wins over the
-- file for exactly the people it touched.
CREATE TABLE roster_people (
    unit TEXT NOT NULL,
    name TEXT NOT NULL,
    title TEXT NOT NULL,
    roles_json TEXT NOT NULL CHECK (json_valid(roles_json)),
    staff_id TEXT NOT NULL,
    phone TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (unit, name)
) STRICT;

-- The history of those changes: who changed what, when, the person before and after.
-- Append-only, like the event log.
CREATE TABLE roster_changes (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    unit TEXT NOT NULL,
    name TEXT NOT NULL,
    before_json TEXT CHECK (before_json IS NULL OR json_valid(before_json)),
    after_json TEXT NOT NULL CHECK (json_valid(after_json))
) STRICT;
CREATE TRIGGER roster_changes_no_update BEFORE UPDATE ON roster_changes
BEGIN SELECT RAISE(ABORT, 'roster_changes is append-only'); END;
CREATE TRIGGER roster_changes_no_delete BEFORE DELETE ON roster_changes
BEGIN SELECT RAISE(ABORT, 'roster_changes is append-only'); END;
