-- Secrets the gateway makes for itself and keeps across restarts, by name. The first is
-- the key that signs kiosk sessions (`gateway/operations/sessions.py`): kept here, a
-- session issued before a crash still authorizes the request the broker redelivers after
-- it, and no configuration has to carry a key only this gateway ever reads.
CREATE TABLE gateway_secrets (
    name TEXT PRIMARY KEY,
    secret BLOB NOT NULL,
    created_at TEXT NOT NULL
);

-- Members enrolled at a kiosk while central was unreachable: a provisional member (id and
-- account derived from the kiosk request, so a redelivered request makes the same one)
-- who earns at once. Kept here until central confirms it: the number's keyed hash and
-- masked form (never the number), the consent given and the referrer. `final_member_id`
-- is central's id for it once confirmed, `merged_at` when the edge merged it under that id.
CREATE TABLE provisional_members (
    member_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    enrolment_id TEXT NOT NULL UNIQUE,
    phone_hash TEXT NOT NULL,
    phone_masked TEXT NOT NULL,
    consent TEXT NOT NULL,
    referrer TEXT,
    created_at TEXT NOT NULL,
    final_member_id TEXT,
    merged_at TEXT
);
CREATE INDEX provisional_members_pending ON provisional_members (created_at)
    WHERE merged_at IS NULL;

-- A merged provisional member's id names its final member from then on: a session, a
-- receipt's member code or a retried request that names the provisional id finds the
-- member it became.
CREATE TABLE member_aliases (
    alias_id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
