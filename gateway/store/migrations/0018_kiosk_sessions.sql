-- Secrets the gateway makes for itself and keeps across restarts, by name. The first is
-- the key that signs kiosk sessions (`gateway/operations/sessions.py`): kept here, a
-- session issued before a crash still authorizes the request the broker redelivers after
-- it, and no configuration has to carry a key only this gateway ever reads.
CREATE TABLE gateway_secrets (
    name TEXT PRIMARY KEY,
    secret BLOB NOT NULL,
    created_at TEXT NOT NULL
);
