-- Coupons with their terms, the facts of their lives, and the campaigns a kiosk may
-- redeem points for.

-- What a coupon is: its mall ('*' for group-wide), its campaign and its terms as JSON
-- (`gateway.loyalty.coupon_wire`); `expires_at` is the end of its window, `valid_from` its
-- start. `status` is the fold of its facts, kept here for listing; the facts are the truth.
ALTER TABLE coupons ADD COLUMN mall TEXT NOT NULL DEFAULT '';
ALTER TABLE coupons ADD COLUMN campaign_id TEXT NOT NULL DEFAULT '';
ALTER TABLE coupons ADD COLUMN terms TEXT CHECK (terms IS NULL OR json_valid(terms));
ALTER TABLE coupons ADD COLUMN valid_from TEXT;

-- Issued, held, released, redeemed, restored, voided, expired: each once, by its id
-- (a hash of the coupon, the kind and its ref). No foreign key to coupons: central may
-- send a fact before the coupon it is about.
CREATE TABLE coupon_facts (
    fact_id TEXT PRIMARY KEY,
    coupon_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('issued', 'held', 'released', 'redeemed', 'restored',
                                       'voided', 'expired')),
    ref TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL,
    until TEXT,
    of_ref TEXT,
    site TEXT NOT NULL DEFAULT '',
    recorded_at TEXT NOT NULL
);
CREATE INDEX coupon_facts_coupon ON coupon_facts (coupon_id);

-- Coupon campaigns as central publishes them; `definition` is kept as sent.
CREATE TABLE coupon_campaigns (
    id TEXT PRIMARY KEY,
    definition TEXT NOT NULL CHECK (json_valid(definition)),
    updated_at TEXT NOT NULL
);

-- A till may authorize coupons without points: a hold may ask for no points. SQLite
-- cannot change a CHECK in place, so the table is rebuilt (nothing refers to it).
CREATE TABLE holds_rebuilt (
    id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL,
    pos_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    account_id TEXT,
    member_id TEXT,
    decision TEXT NOT NULL,
    asked INTEGER NOT NULL CHECK (asked >= 0),
    points INTEGER NOT NULL CHECK (points >= 0),
    value_fen INTEGER NOT NULL CHECK (value_fen >= 0),
    basket_fen INTEGER NOT NULL CHECK (basket_fen >= 0),
    request TEXT NOT NULL CHECK (json_valid(request)),
    reply TEXT NOT NULL CHECK (json_valid(reply)),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    captured_at TEXT,
    capture_key TEXT,
    captured_points INTEGER,
    voided_at TEXT,
    UNIQUE (store_id, pos_id, request_id),
    CHECK (decision = 'granted' OR points = 0)
);
INSERT INTO holds_rebuilt SELECT id, store_id, pos_id, request_id, account_id, member_id,
    decision, asked, points, value_fen, basket_fen, request, reply, created_at, expires_at,
    captured_at, capture_key, captured_points, voided_at FROM holds;
DROP TABLE holds;
ALTER TABLE holds_rebuilt RENAME TO holds;
CREATE INDEX holds_open ON holds (account_id, expires_at)
    WHERE decision = 'granted' AND captured_at IS NULL AND voided_at IS NULL;
-- The sale that captured a hold, for a refund to find the coupons it redeemed.
CREATE INDEX holds_capture_key ON holds (capture_key) WHERE capture_key IS NOT NULL;
