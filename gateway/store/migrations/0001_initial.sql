-- Schema v1 of the gateway's offline store.
-- Times are ISO-8601 UTC text; JSON columns are TEXT checked with json_valid().

-- Membership ---------------------------------------------------------------

-- An account holds the points; family members share one account.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    owner_member_id TEXT,
    central_version INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);

-- Only what the edge needs: a masked display name, never a raw phone number.
-- account_id has no foreign key: central is the source of truth for the membership
-- graph and sync may deliver a member before its account.
CREATE TABLE members (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    display_name_masked TEXT,
    tier TEXT NOT NULL,
    tier_anniversary TEXT,
    birth_month INTEGER CHECK (birth_month BETWEEN 1 AND 12),
    birth_day INTEGER CHECK (birth_day BETWEEN 1 AND 31),
    tags TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
    opt_outs TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(opt_outs)),
    central_version INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    CHECK ((birth_month IS NULL) = (birth_day IS NULL))
);
CREATE INDEX members_account ON members (account_id);
-- Birthday campaigns look members up by day of the year.
CREATE INDEX members_birthday ON members (birth_month, birth_day)
    WHERE birth_month IS NOT NULL;

-- How a member is recognised: loyalty card, keyed hash of the phone number, QR token
-- shown by the app, or BLE key of the app's beacon. Erasing a member removes these.
CREATE TABLE member_identifiers (
    kind TEXT NOT NULL CHECK (kind IN ('card', 'phone_hash', 'qr_token', 'ble_key')),
    value TEXT NOT NULL,
    member_id TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    PRIMARY KEY (kind, value)
) WITHOUT ROWID;
CREATE INDEX member_identifiers_member ON member_identifiers (member_id);

-- Points ledger --------------------------------------------------------------

-- Append-only: balances, lots, expiry and tier are a fold over these rows, and merging two
-- sites is a set union. The natural key makes every write insert-or-ignore.
CREATE TABLE ledger (
    entry_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    member_id TEXT,
    kind TEXT NOT NULL,
    points INTEGER NOT NULL,
    qual_fen INTEGER NOT NULL DEFAULT 0,
    lot_id TEXT,
    expires_at TEXT,
    available_at TEXT,
    ref_entry_id TEXT,
    source_type TEXT NOT NULL,
    source_key TEXT NOT NULL,
    rule_version TEXT NOT NULL,
    reason TEXT NOT NULL,
    origin_site TEXT NOT NULL,
    origin_seq INTEGER NOT NULL,
    hlc TEXT NOT NULL,
    effective_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    UNIQUE (source_type, source_key, kind)
);
CREATE INDEX ledger_account_effective ON ledger (account_id, effective_at);

-- Corrections are new entries (REVERSE, ADJUST), never edits. Member erasure purges the
-- other tables; the ledger is keyed by account and stays.
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'ledger is append-only');
END;

CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'ledger is append-only');
END;

-- Entries central has acknowledged, or that came from central.
CREATE TABLE ledger_sync (
    entry_id TEXT PRIMARY KEY REFERENCES ledger (entry_id),
    server_seq INTEGER,
    acked_at TEXT NOT NULL
);

-- Events waiting to be sent to central, in the order they were committed.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    account_id TEXT,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Named monotonic counters (e.g. the site's origin_seq).
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

-- Inputs -------------------------------------------------------------------

-- Every sale as the POS sent it. The natural key makes a re-sent receipt a duplicate;
-- member_id is NULL while the receipt is unclaimed.
CREATE TABLE receipts (
    id INTEGER PRIMARY KEY,
    store_id TEXT NOT NULL,
    pos_id TEXT NOT NULL,
    receipt_no TEXT NOT NULL,
    business_date TEXT NOT NULL,
    raw BLOB NOT NULL,
    parsed TEXT CHECK (parsed IS NULL OR json_valid(parsed)),
    parse_status TEXT NOT NULL,
    member_id TEXT REFERENCES members (id) ON DELETE SET NULL,
    received_at TEXT NOT NULL,
    UNIQUE (store_id, pos_id, receipt_no, business_date)
);
CREATE INDEX receipts_member ON receipts (member_id) WHERE member_id IS NOT NULL;
CREATE INDEX receipts_unclaimed ON receipts (business_date) WHERE member_id IS NULL;

-- Input that could not be parsed or applied, kept raw so it can be replayed after a fix.
-- AUTOINCREMENT so an id shown in the dashboard is never reused after a purge.
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    raw BLOB NOT NULL,
    error_code TEXT NOT NULL,
    error TEXT NOT NULL,
    context TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(context)),
    received_at TEXT NOT NULL,
    replayed_at TEXT,
    replay_result TEXT
);
CREATE INDEX dead_letters_source ON dead_letters (source, received_at);
CREATE INDEX dead_letters_pending ON dead_letters (received_at) WHERE replayed_at IS NULL;

-- The stored reply of every kiosk request, so a retried request gets the same answer.
CREATE TABLE kiosk_requests (
    request_id TEXT PRIMARY KEY,
    kiosk_id TEXT NOT NULL,
    op TEXT NOT NULL,
    reply TEXT NOT NULL CHECK (json_valid(reply)),
    created_at TEXT NOT NULL
);
CREATE INDEX kiosk_requests_created ON kiosk_requests (created_at);

-- Offers and coupons -------------------------------------------------------

-- Targeting, reward and cooldown rules live in `definition`, as central sent them.
CREATE TABLE offers (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    definition TEXT NOT NULL CHECK (json_valid(definition)),
    valid_from TEXT,
    valid_until TEXT,
    central_version INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);

-- offer_id has no foreign key: central may issue coupons for offers not cached here.
CREATE TABLE coupons (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    member_id TEXT REFERENCES members (id) ON DELETE CASCADE,
    offer_id TEXT,
    status TEXT NOT NULL DEFAULT 'issued',
    issued_at TEXT NOT NULL,
    expires_at TEXT,
    redeemed_at TEXT,
    redeemed_entry_id TEXT,
    central_version INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE INDEX coupons_member ON coupons (member_id, status);
CREATE INDEX coupons_offer ON coupons (offer_id);

-- One row per offer shown to a member in a zone; cooldowns look back over these.
CREATE TABLE offer_deliveries (
    id INTEGER PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    zone_id TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    delivered_at TEXT NOT NULL
);
CREATE INDEX offer_deliveries_member_offer ON offer_deliveries (member_id, offer_id, delivered_at);
CREATE INDEX offer_deliveries_member_zone ON offer_deliveries (member_id, zone_id, delivered_at);

-- Sync and configuration ---------------------------------------------------

-- How far this gateway has read each peer's stream (central, or another site).
CREATE TABLE sync_cursor (
    peer TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Every configuration (rules, offers, tiers) applied, newest last per kind.
CREATE TABLE config_versions (
    kind TEXT NOT NULL,
    version TEXT NOT NULL,
    payload TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (kind, version)
);
CREATE INDEX config_versions_applied ON config_versions (kind, applied_at);
