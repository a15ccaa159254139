-- tiaochu schema: dashboard login (issue 7). Only SHA-256 hashes of the secrets are stored, so a
-- copy of the database cannot be used to log in. Instants are INTEGER milliseconds (UTC).

-- One-time login links sent through the robot (看板): valid until `expires_at`, used at most once.
CREATE TABLE dashboard_login_tokens (
    token_hash TEXT PRIMARY KEY,
    person_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
) STRICT;

-- Browser sessions made from a used link, valid until `expires_at`.
CREATE TABLE dashboard_sessions (
    session_hash TEXT PRIMARY KEY,
    person_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX dashboard_sessions_by_expiry ON dashboard_sessions (expires_at);
CREATE INDEX dashboard_login_tokens_by_expiry ON dashboard_login_tokens (expires_at);
