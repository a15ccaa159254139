-- Quarantine (issue 15): an inbound message or a timer whose processing fails in a way a retry
-- will not fix (a case document that does not read, a decision that breaks an invariant) is set
-- aside with the reason and the time, so the rows behind it go on; `tiaochu quarantine` lists and
-- releases them. `attempts` counts every try, including those that failed for a passing reason
-- (a busy or failing disk), which are retried and never quarantined.
ALTER TABLE inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inbox ADD COLUMN quarantined_at INTEGER;
ALTER TABLE inbox ADD COLUMN quarantine_reason TEXT;
DROP INDEX inbox_pending;
CREATE INDEX inbox_pending ON inbox (id) WHERE finished_at IS NULL AND quarantined_at IS NULL;
CREATE INDEX inbox_quarantined ON inbox (id) WHERE quarantined_at IS NOT NULL;

-- A quarantined timer stays 'pending' (the state it will fire from once released); the due
-- index leaves it out, so the scheduler neither fires it nor wakes for it.
ALTER TABLE timers ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE timers ADD COLUMN quarantined_at INTEGER;
ALTER TABLE timers ADD COLUMN quarantine_reason TEXT;
DROP INDEX timers_pending_due;
CREATE INDEX timers_pending_due ON timers (due_at) WHERE state = 'pending' AND quarantined_at IS NULL;
CREATE INDEX timers_quarantined ON timers (id) WHERE quarantined_at IS NOT NULL;
