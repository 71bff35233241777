-- Refunds whose original sale is not (yet) known: kept for review, applied when it arrives.
--
-- A refund finds its original by store and original receipt number on any till within
-- `[pos] refund_window_days`. When none is found (the sale's till is still offline, or its
-- receipt was not captured) the refund's receipt row is stored unlinked, a review dead
-- letter says why, and a row here waits for the sale: the sale's own transaction links
-- the refund, records its reversal and sets `applied_at`, once.
CREATE TABLE pending_refunds (
    receipt_id INTEGER PRIMARY KEY REFERENCES receipts (id),
    store_id TEXT NOT NULL,
    original_no TEXT NOT NULL,
    business_date TEXT NOT NULL,  -- the refund's
    -- The review letter; no foreign key: retention and erasure delete letters.
    dead_letter_id INTEGER,
    applied_at TEXT,
    sale_key TEXT  -- the sale it was applied to
);
CREATE INDEX pending_refunds_open ON pending_refunds (store_id, original_no)
    WHERE applied_at IS NULL;
-- A refund's original on any till of the store: by receipt number, newest first.
CREATE INDEX receipts_by_number ON receipts (store_id, receipt_no, business_date);
-- The refunds of a sale (what earlier refunds took back), without a scan of all receipts.
CREATE INDEX receipts_refund_of ON receipts (json_extract(parsed, '$.original_key'))
    WHERE kind = 'refund';
