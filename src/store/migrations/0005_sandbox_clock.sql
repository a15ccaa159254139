-- tiaochu schema: the sandbox console's clock (issue 6). How far the clock panel has moved the
-- sandbox's clock ahead of real time, so a restart does not put the clock back behind what was
-- already recorded under the moved clock. One row at most; never used outside sandbox mode.
CREATE TABLE sandbox_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    offset_ms INTEGER NOT NULL CHECK (offset_ms >= 0)
) STRICT;
