-- Holds: points a till reserves before a sale pays with them (framed and jsonl POS).
--
-- One row per authorize request of a till, keyed by (store, pos, request id), granted or
-- refused; its reply is kept so a till that resends the request gets the same answer. A
-- granted hold's state is derived, never swept: captured once a sale spent it
-- (`captured_at`), voided (`voided_at`), expired once `expires_at` has passed, open
-- otherwise. The points of open holds count as spent for every other check until then.
CREATE TABLE holds (
    id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL,
    pos_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    account_id TEXT,
    member_id TEXT,
    -- 'granted', or the refusal's code (insufficient_points, offline_limit, ...)
    decision TEXT NOT NULL,
    asked INTEGER NOT NULL CHECK (asked > 0),
    points INTEGER NOT NULL CHECK (points >= 0),
    value_fen INTEGER NOT NULL CHECK (value_fen >= 0),
    basket_fen INTEGER NOT NULL CHECK (basket_fen >= 0),
    -- The authorize request as the till sent it (member, lines with categories, coupons).
    request TEXT NOT NULL CHECK (json_valid(request)),
    reply TEXT NOT NULL CHECK (json_valid(reply)),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    captured_at TEXT,
    capture_key TEXT,  -- the sale that spent it: (store, pos, receipt no, business date)
    captured_points INTEGER,
    voided_at TEXT,
    UNIQUE (store_id, pos_id, request_id),
    CHECK (decision = 'granted' OR points = 0)
);
-- What other checks subtract: an account's holds not yet captured or voided.
CREATE INDEX holds_open ON holds (account_id, expires_at)
    WHERE decision = 'granted' AND captured_at IS NULL AND voided_at IS NULL;
