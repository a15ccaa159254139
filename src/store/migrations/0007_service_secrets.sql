-- tiaochu schema: secrets the service generates for itself (security issue 13). Kept in the
-- database so a backup and its restore carry them: the card instance ids already delivered stay
-- valid, and the card-callback address registered with DingTalk keeps working.
--   card_ids            the HMAC key that makes card outTrackIds unguessable
--   card_callback_path  the secret path segment of POST /dingtalk/card/<segment>
CREATE TABLE service_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL CHECK (length(value) >= 16),
    created_at INTEGER NOT NULL
) STRICT;
