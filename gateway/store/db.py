"""Opening connections to the gateway's SQLite file.

There is exactly one write connection per database (owned by `Writer`) and any number of
read-only connections. WAL mode lets the readers run while the writer commits.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from gateway.store.errors import StoreError

StrPath = str | os.PathLike[str]

# How long a connection waits for a lock held by another connection before failing.
# Only other processes (the CLI, a backup) can hold the write lock, and only briefly.
BUSY_TIMEOUT_MS = 5_000

# Checkpoint the WAL back into the main file every ~4 MiB (1,000 pages of 4 KiB): small
# enough that reads stay fast and the WAL stays small on the gateway's flash storage.
WAL_AUTOCHECKPOINT_PAGES = 1_000

# The writer's page cache (see open_writer).
WRITER_CACHE_KIB = 16 * 1024

# After a checkpoint, truncate a WAL that grew during a burst back to this size.
JOURNAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024


def open_writer(path: StrPath) -> sqlite3.Connection:
    """Open the write connection: WAL, fsync on every commit, foreign keys enforced.

    The connection is in autocommit mode (`isolation_level=None`); callers issue
    `BEGIN IMMEDIATE` / `COMMIT` themselves so a transaction is exactly what they wrote.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # Set the timeout first: switching to WAL needs a lock another process may hold.
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _enable_wal(conn, path)
        # FULL makes every COMMIT durable (the WAL is fsynced); the group-commit writer
        # pays that once per batch, not once per event.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
        # Each op of a batch runs in its own savepoint; the pages it may have to roll back
        # go to a sub-journal, which past 64 KiB spills to a temporary file (one file and
        # thousands of writes per batch). A batch is bounded, so keep it in memory.
        conn.execute("PRAGMA temp_store = MEMORY")
        # The interior pages of every table and index the writer touches stay cached, so a
        # write at a million members reads only the leaves it changes (default: 2 MiB).
        conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        _apply_integrity_pragmas(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def open_reader(path: StrPath) -> sqlite3.Connection:
    """Open a read-only connection to an existing database (created by the writer)."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # mode=ro already refuses writes; query_only also refuses them if a caller ever
        # hands this function a path that SQLite cannot open read-only.
        conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def open_memory() -> sqlite3.Connection:
    """An in-memory connection with the writer's integrity settings, for fast unit tests.

    It is not durable and has no WAL; use it with `migrate()` to test code against the schema.
    """
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    _apply_integrity_pragmas(conn)
    return conn


def as_database(conn: sqlite3.Connection) -> Database:
    """Wrap a connection in sqlite-utils for introspection (tables, columns, indexes)."""
    return Database(conn)


def _enable_wal(conn: sqlite3.Connection, path: StrPath) -> None:
    database = as_database(conn)
    database.enable_wal()  # switches only if not already in WAL (the switch takes a lock)
    if database.journal_mode != "wal":
        raise StoreError(f"cannot use WAL journal mode on {os.fspath(path)!r} "
                         f"(got {database.journal_mode})")


def _apply_integrity_pragmas(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA foreign_keys = ON")
    # With recursive triggers on, rows removed by INSERT OR REPLACE fire DELETE triggers,
    # so REPLACE cannot bypass the ledger's append-only triggers.
    conn.execute("PRAGMA recursive_triggers = ON")
