"""Secondary indexes set aside during a bulk fill and built once after it.

Filling an empty table with its secondary indexes in place updates each index row by row;
building an index after the fill sorts its keys once, which is cheaper. `defer_indexes`
drops indexes and records their CREATE statements in `deferred_indexes`, in the caller's
transaction, so either both happen or neither does. `restore_indexes` builds them again
and forgets them. `migrate()` restores every deferred index before it runs new migrations,
so an index dropped by a fill that a crash cut short is back whenever the store opens,
before any migration that may refer to it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator

DEFERRED_TABLE = "deferred_indexes"


def defer_indexes(conn: sqlite3.Connection, names: Iterable[str]) -> list[str]:
    """Drop these indexes and remember how to build them; returns the ones dropped.

    An index already deferred (absent) is skipped. Must run inside a transaction.
    """
    dropped: list[str] = []
    for name in names:
        row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
                           (name,)).fetchone()
        if row is None or row[0] is None:  # already set aside, or one SQLite made itself
            continue
        conn.execute(f"INSERT INTO {DEFERRED_TABLE} (name, create_sql) VALUES (?, ?)",
                     (name, row[0]))
        conn.execute(f"DROP INDEX {_quoted(name)}")
        dropped.append(name)
    return dropped


def restore_indexes(conn: sqlite3.Connection, names: Iterable[str] | None = None) -> list[str]:
    """Build the deferred indexes (these, or all of them) again; returns the ones built.

    Must run inside a transaction: an index and the removal of its row commit together.
    """
    rows = conn.execute(f"SELECT name, create_sql FROM {DEFERRED_TABLE} ORDER BY name")
    wanted = None if names is None else set(names)
    restored: list[str] = []
    for name, create_sql in rows.fetchall():
        if wanted is not None and name not in wanted:
            continue
        present = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                               (name,)).fetchone()
        if present is None:
            with _sorting_in_files(conn):
                conn.execute(create_sql)
        conn.execute(f"DELETE FROM {DEFERRED_TABLE} WHERE name = ?", (name,))
        restored.append(name)
    return restored


def has_deferred_indexes(conn: sqlite3.Connection) -> bool:
    """Whether any index is set aside (False on a schema without the table)."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                          (DEFERRED_TABLE,)).fetchone()
    return exists is not None and conn.execute(
        f"SELECT 1 FROM {DEFERRED_TABLE} LIMIT 1").fetchone() is not None


@contextlib.contextmanager
def _sorting_in_files(conn: sqlite3.Connection) -> Iterator[None]:
    """Building an index sorts every key of the table. Under `temp_store = MEMORY` (the
    writer's setting, for its savepoint journals) SQLite holds that whole sort in memory,
    tens of MB for a million rows; in files it stays within the page cache. The setting
    can change inside a transaction while the connection has no temporary table; if it
    cannot, the index is still built, sorted in memory."""
    (previous,) = conn.execute("PRAGMA temp_store").fetchone()
    try:
        conn.execute("PRAGMA temp_store = FILE")
    except sqlite3.OperationalError:
        yield
        return
    try:
        yield
    finally:
        conn.execute(f"PRAGMA temp_store = {int(previous)}")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
