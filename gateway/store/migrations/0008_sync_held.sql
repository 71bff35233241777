-- Changes from central the edge could not apply, and the changes of the same member that
-- wait behind them (docs/sync.md, "Changes the gateway refuses").
--
-- A member is held while it has a row with a `letter_id`: its refused change, kept in
-- `dead_letters` with why. Rows without one are later changes of that member, kept as
-- they came (`change`, the change's JSON) and applied in arrival order (`id`) once the
-- refused change is resolved. Other members' changes never wait.
CREATE TABLE sync_held (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    server_seq INTEGER,
    change TEXT,
    letter_id INTEGER,
    held_at TEXT NOT NULL,
    CHECK ((change IS NULL) = (letter_id IS NOT NULL))
);
CREATE INDEX sync_held_member ON sync_held (member_id);
