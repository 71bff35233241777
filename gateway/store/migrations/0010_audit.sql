-- The audit log of the local API: one row per write a staff or ops token asked for
-- (e.g. a dead letter replayed), whatever came of it. Append-only, like the ledger.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    token_name TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,  -- e.g. 'deadletter.replay'
    target TEXT NOT NULL,  -- what it acted on, e.g. the dead letter's id
    outcome TEXT NOT NULL,
    remote TEXT  -- the caller's address
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
