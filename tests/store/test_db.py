"""Connection settings: what makes the write connection durable and the readers safe."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.store import open_memory, open_reader, open_writer
from gateway.store.db import BUSY_TIMEOUT_MS
from gateway.store.migrations import split_statements


def pragma(conn: sqlite3.Connection, name: str) -> object:
    (value,) = conn.execute(f"PRAGMA {name}").fetchone()
    return value


def test_writer_connection_is_durable_and_strict(tmp_path: Path) -> None:
    conn = open_writer(tmp_path / "store.db")
    try:
        assert pragma(conn, "journal_mode") == "wal"
        assert pragma(conn, "synchronous") == 2  # FULL
        assert pragma(conn, "foreign_keys") == 1
        assert pragma(conn, "recursive_triggers") == 1
        assert pragma(conn, "busy_timeout") == BUSY_TIMEOUT_MS
        assert conn.isolation_level is None  # transactions are explicit
    finally:
        conn.close()


def test_reader_connection_is_read_only(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    open_writer(path).close()
    conn = open_reader(path)
    try:
        assert pragma(conn, "query_only") == 1
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("CREATE TABLE t (x)")
    finally:
        conn.close()


def test_reader_does_not_create_a_missing_database(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        open_reader(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


def test_memory_connection_enforces_foreign_keys() -> None:
    conn = open_memory()
    try:
        assert pragma(conn, "foreign_keys") == 1
    finally:
        conn.close()


def sql_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# Text that would confuse a naive split: semicolons, comment markers, quotes, newlines.
tricky_text = st.text(alphabet=st.sampled_from(list("ab ;-/*'\n")), max_size=20)


@given(st.lists(tricky_text, min_size=1, max_size=5))
def test_split_statements_round_trips_through_sqlite(values: list[str]) -> None:
    inserts = [f"INSERT INTO t VALUES ({sql_quote(value)})" for value in values]
    script = "-- header; comment\n" + ";\n".join(inserts) + ";\n/* trailing; */\n"
    conn = open_memory()
    try:
        conn.execute("CREATE TABLE t (v TEXT)")
        statements = split_statements(script)
        for statement in statements:
            conn.execute(statement)  # raises if handed more than one statement
        assert len(statements) == len(values)
        assert [v for (v,) in conn.execute("SELECT v FROM t ORDER BY rowid")] == values
    finally:
        conn.close()
