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
