-- Tiers kept live: every tier change is a fact with its reason, and an upgrade made here
-- holds until central has decided on the member's tier since.
--
-- A change's id is a hash of what decided it (member, new tier, and the entry whose spend
-- reached the threshold, or the anniversary reviewed), so the same upgrade computed here
-- and at central is one fact. `origin` says who recorded it first here: 'edge' (this
-- gateway, after a sale or refund) or 'central' (sent down by the change feed).
-- `confirmed`: NULL while central has not decided since an edge upgrade; 'confirmed' once
-- central's tier is this one, 'superseded' when central decided otherwise.
CREATE TABLE tier_changes (
    change_id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    from_tier TEXT NOT NULL,
    to_tier TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('upgrade', 'downgrade')),
    at TEXT NOT NULL,
    anniversary TEXT,
    qualifying_fen INTEGER NOT NULL,
    trigger_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('edge', 'central')),
    confirmed TEXT CHECK (confirmed IN ('confirmed', 'superseded')),
    recorded_at TEXT NOT NULL
);
CREATE INDEX tier_changes_member ON tier_changes (member_id, at);
CREATE INDEX tier_changes_unconfirmed ON tier_changes (member_id) WHERE confirmed IS NULL;

-- When the current tier was reached (central's `tier_since`), and, while the tier is an
-- upgrade made here that central has not decided on yet, when that upgrade happened: a
-- member profile central sent before it saw the upgrade keeps the upgraded tier.
ALTER TABLE members ADD COLUMN tier_since TEXT;
ALTER TABLE members ADD COLUMN tier_provisional_at TEXT;
