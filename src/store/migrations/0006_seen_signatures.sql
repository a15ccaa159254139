-- tiaochu schema: robot callback signatures already used. DingTalk's HTTP callback signature
-- covers only the timestamp, so a captured (timestamp, sign) pair verifies any body for the hour
-- the timestamp is accepted. Each pair is kept with the msgId it first came with until it can no
-- longer verify; the same pair with another msgId is a replay and refused. `sign_hash` is the
-- SHA-256 of the Base64 sign (hex): the sign itself is a credential for that hour.
CREATE TABLE seen_signatures (
    timestamp_ms INTEGER NOT NULL,
    sign_hash TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (timestamp_ms, sign_hash)
) STRICT, WITHOUT ROWID;
