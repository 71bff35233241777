-- Tills may post their sales over HTTP (mode 'http'): the captures' mode check grows by it.
-- SQLite cannot change a CHECK in place, so the table is rebuilt; nothing refers to it.
CREATE TABLE pos_captures_rebuilt (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id TEXT NOT NULL,
    pos_id TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('escpos', 'framed', 'jsonl', 'http')),
    raw BLOB NOT NULL,
    received_at TEXT NOT NULL,
    -- new | sale | refund | copy | non_sale | duplicate | dead
    status TEXT NOT NULL DEFAULT 'new',
    receipt_id INTEGER REFERENCES receipts (id),
    dead_letter_id INTEGER REFERENCES dead_letters (id)
);
INSERT INTO pos_captures_rebuilt (id, store_id, pos_id, mode, raw, received_at, status,
                              receipt_id, dead_letter_id)
    SELECT id, store_id, pos_id, mode, raw, received_at, status, receipt_id, dead_letter_id
    FROM pos_captures;
DROP TABLE pos_captures;
ALTER TABLE pos_captures_rebuilt RENAME TO pos_captures;
CREATE INDEX pos_captures_new ON pos_captures (id) WHERE status = 'new';
