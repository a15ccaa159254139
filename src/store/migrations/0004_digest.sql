-- tiaochu schema: the scheduler's digest queue (issue 8). A timer firing writes its digest lines
-- in the same transaction as its decision; the digest that sends them deletes them in the same
-- transaction as it queues its outbox rows. So a kill between a firing and its pass's digest
-- loses nothing: the next pass sends the lines left here.
CREATE TABLE digest_lines (
    -- AUTOINCREMENT: ids are never reused after the table empties, so each names one digest.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    line_json TEXT NOT NULL CHECK (json_valid(line_json)),
    created_at INTEGER NOT NULL
) STRICT;
