-- Sync with central: what the edge needs beyond 0001's outbox, ledger_sync and sync_cursor.

-- The offline redemption allowance central granted per account at the last sync, as of
-- the change feed's `granted_seq`. Offline, a redemption must fit in `points` minus this
-- site's burns central had not counted then (unacknowledged, or sequenced after it).
CREATE TABLE offline_allowances (
    account_id TEXT PRIMARY KEY,
    points INTEGER NOT NULL CHECK (points >= 0),
    granted_seq INTEGER NOT NULL,
    granted_at TEXT NOT NULL
);

-- Outbox events central did not settle (no verdict, or a transient one): while one is
-- failing, later events of the same account wait behind it; other accounts go on.
CREATE TABLE sync_failures (
    event_id TEXT PRIMARY KEY,
    account_id TEXT,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    last_at TEXT NOT NULL
);

-- Small named values of the sync engine: last successes, snapshot progress.
CREATE TABLE sync_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Members seen by the snapshot being applied; members not seen are gone centrally.
CREATE TABLE sync_snapshot_seen (
    member_id TEXT PRIMARY KEY
) WITHOUT ROWID;
