-- POS receipts: every capture's raw bytes are committed before they are parsed.
--
-- A capture is one print job (escpos) or one frame / line (framed, jsonl) as it came off
-- the serial line. It is written first, with status 'new'; processing then sets its status
-- in the same transaction as the receipt, ledger entries or dead letter it produced, so a
-- crash between the two leaves a 'new' capture that is processed again at the next start.
CREATE TABLE pos_captures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id TEXT NOT NULL,
    pos_id TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('escpos', 'framed', 'jsonl')),
    raw BLOB NOT NULL,
    received_at TEXT NOT NULL,
    -- new | sale | refund | copy | non_sale | duplicate | dead
    status TEXT NOT NULL DEFAULT 'new',
    receipt_id INTEGER REFERENCES receipts (id),
    dead_letter_id INTEGER REFERENCES dead_letters (id)
);
CREATE INDEX pos_captures_new ON pos_captures (id) WHERE status = 'new';

-- What a receipt is (sale | refund | copy | non_sale), for queries without JSON.
ALTER TABLE receipts ADD COLUMN kind TEXT NOT NULL DEFAULT 'sale';
-- How many further copies or retransmissions of the receipt arrived (counted, not applied).
ALTER TABLE receipts ADD COLUMN duplicates INTEGER NOT NULL DEFAULT 0;
-- When a member claimed the receipt at a kiosk (NULL: credited at the till, or unclaimed).
ALTER TABLE receipts ADD COLUMN claimed_at TEXT;
