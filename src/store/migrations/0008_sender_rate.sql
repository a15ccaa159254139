-- tiaochu schema: per-sender inbound limit (security issue 13). How many robot messages each
-- sender has sent in the current one-minute window, and whether they were already told that the
-- rest of the window is not processed. One row per sender, overwritten as windows pass.
CREATE TABLE sender_rate (
    sender TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    count INTEGER NOT NULL CHECK (count >= 0),
    told INTEGER NOT NULL CHECK (told IN (0, 1))
) STRICT;
