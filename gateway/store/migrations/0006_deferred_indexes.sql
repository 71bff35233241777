-- Indexes set aside while a table is bulk-filled (the first snapshot into an empty store)
-- and built once after the fill, which costs less than keeping them up to date row by row.
-- A row is written in the transaction that drops its index and deleted in the one that
-- builds it again; the store rebuilds whatever is listed here whenever it opens, so an
-- index whose fill was cut short by a crash comes back at the next start.
CREATE TABLE deferred_indexes (
    name TEXT PRIMARY KEY,
    create_sql TEXT NOT NULL
);
