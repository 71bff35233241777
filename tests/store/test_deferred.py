"""Indexes set aside for a bulk fill come back: at the fill's end, or when the store opens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.store import Writer, migrate, open_writer
from gateway.store.deferred import defer_indexes, has_deferred_indexes, restore_indexes
from gateway.store.migrations import bundled_migrations_dir

NAMES = ("members_account", "member_identifiers_member")


def index_sql(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                             "AND sql IS NOT NULL").fetchall())


def listed(conn: sqlite3.Connection) -> list[str]:
    return [name for (name,) in conn.execute("SELECT name FROM deferred_indexes ORDER BY name")]


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    connection = open_writer(tmp_path / "store.db")
    migrate(connection)
    return connection


def defer(conn: sqlite3.Connection, names: tuple[str, ...] = NAMES) -> list[str]:
    conn.execute("BEGIN IMMEDIATE")
    dropped = defer_indexes(conn, names)
    conn.execute("COMMIT")
    return dropped


def test_deferring_drops_and_lists_restoring_builds_the_same_index(
    conn: sqlite3.Connection,
) -> None:
    before = index_sql(conn)
    assert defer(conn) == list(NAMES)
    assert not set(NAMES) & index_sql(conn).keys()
    assert listed(conn) == sorted(NAMES) and has_deferred_indexes(conn)
    assert defer(conn) == []  # already set aside: nothing more to drop
    conn.execute("BEGIN IMMEDIATE")
    assert restore_indexes(conn) == sorted(NAMES)
    conn.execute("COMMIT")
    assert index_sql(conn) == before
    assert listed(conn) == [] and not has_deferred_indexes(conn)


def test_restoring_only_some_keeps_the_others_deferred(conn: sqlite3.Connection) -> None:
    defer(conn)
    conn.execute("BEGIN IMMEDIATE")
    assert restore_indexes(conn, ["members_account"]) == ["members_account"]
    conn.execute("COMMIT")
    assert "members_account" in index_sql(conn)
    assert listed(conn) == ["member_identifiers_member"]


def test_a_rolled_back_deferral_leaves_the_indexes_and_no_row(conn: sqlite3.Connection) -> None:
    before = index_sql(conn)
    conn.execute("BEGIN IMMEDIATE")
    defer_indexes(conn, NAMES)
    conn.execute("ROLLBACK")
    assert index_sql(conn) == before and listed(conn) == []


def test_an_index_already_back_is_only_unlisted(conn: sqlite3.Connection) -> None:
    before = index_sql(conn)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO deferred_indexes VALUES ('members_account', ?)",
                 (before["members_account"],))
    assert restore_indexes(conn) == ["members_account"]
    conn.execute("COMMIT")
    assert index_sql(conn) == before and listed(conn) == []


def test_building_keeps_the_writers_temp_store_and_rolls_back_with_its_savepoint(
    conn: sqlite3.Connection,
) -> None:
    (setting,) = conn.execute("PRAGMA temp_store").fetchone()
    defer(conn)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("SAVEPOINT op")
    restore_indexes(conn)
    conn.execute("ROLLBACK TO op")  # the savepoint still rolls the build back
    conn.execute("RELEASE op")
    conn.execute("COMMIT")
    assert conn.execute("PRAGMA temp_store").fetchone() == (setting,)
    assert listed(conn) == sorted(NAMES)


async def test_opening_the_store_builds_indexes_a_cut_short_fill_left_deferred(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    async with Writer(path) as writer:
        before = await writer.submit(index_sql)
        await writer.submit(lambda c: defer_indexes(c, NAMES))
    # The process "died" here: the fill never built them again.
    conn = sqlite3.connect(path)
    assert not set(NAMES) & index_sql(conn).keys()
    conn.close()
    async with Writer(path) as writer:
        assert await writer.submit(index_sql) == before
        assert await writer.submit(listed) == []


def test_deferred_indexes_are_back_before_a_new_migration_runs(tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    for bundled in bundled_migrations_dir().iterdir():
        if bundled.name.endswith(".sql"):
            (directory / bundled.name).write_text(bundled.read_text("utf-8"), "utf-8")
    conn = open_writer(tmp_path / "store.db")
    migrate(conn)
    defer(conn)
    # A later migration that refers to a deferred index fails if it is not back first.
    (directory / "0900_rebuild_account_index.sql").write_text(
        "DROP INDEX members_account;\n"
        "CREATE INDEX members_account ON members (account_id, id);\n", "utf-8")
    assert migrate(conn, directory) == [900]
    assert "(account_id, id)" in index_sql(conn)["members_account"]
    assert "member_identifiers_member" in index_sql(conn)
    assert listed(conn) == []
