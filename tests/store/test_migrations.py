"""Schema migrations and the v1 schema's guarantees."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.store import (
    MigrationError,
    SchemaTooNewError,
    StoreError,
    Writer,
    as_database,
    load_migrations,
    migrate,
    open_writer,
    schema_version,
)

# Versions of the migrations shipped with the package, oldest first.
BUNDLED = [migration.version for migration in load_migrations()]

V1_TABLES = {
    "accounts",
    "members",
    "member_identifiers",
    "ledger",
    "ledger_sync",
    "outbox",
    "counters",
    "receipts",
    "dead_letters",
    "kiosk_requests",
    "offers",
    "coupons",
    "offer_deliveries",
    "sync_cursor",
    "config_versions",
    "schema_migrations",
}

# (name, type, not null) of every ledger column, in order: the ledger code depends on it.
LEDGER_COLUMNS = [
    ("entry_id", "TEXT", False),
    ("account_id", "TEXT", True),
    ("member_id", "TEXT", False),
    ("kind", "TEXT", True),
    ("points", "INTEGER", True),
    ("qual_fen", "INTEGER", True),
    ("lot_id", "TEXT", False),
    ("expires_at", "TEXT", False),
    ("available_at", "TEXT", False),
    ("ref_entry_id", "TEXT", False),
    ("source_type", "TEXT", True),
    ("source_key", "TEXT", True),
    ("rule_version", "TEXT", True),
    ("reason", "TEXT", True),
    ("origin_site", "TEXT", True),
    ("origin_seq", "INTEGER", True),
    ("hlc", "TEXT", True),
    ("effective_at", "TEXT", True),
    ("recorded_at", "TEXT", True),
    ("actor", "TEXT", True),
]


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_writer(tmp_path / "store.db")
    yield connection
    connection.close()


@pytest.fixture
def migrated(conn: sqlite3.Connection) -> sqlite3.Connection:
    migrate(conn)
    return conn


def write_migrations(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql, encoding="utf-8")
    return directory


def ledger_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "entry_id": "e-1",
        "account_id": "acct-1",
        "member_id": "m-1",
        "kind": "EARN",
        "points": 120,
        "qual_fen": 12_000,
        "source_type": "sale",
        "source_key": "S1/P1/0001/2024-05-01",
        "rule_version": "r1",
        "reason": "Purchase",
        "origin_site": "site-a",
        "origin_seq": 1,
        "hlc": "0001",
        "effective_at": "2024-05-01T10:00:00Z",
        "recorded_at": "2024-05-01T10:00:01Z",
        "actor": "pos",
    }
    row.update(overrides)
    return row


def insert_ledger(conn: sqlite3.Connection, row: dict[str, Any], verb: str = "INSERT") -> int:
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    cursor = conn.execute(f"{verb} INTO ledger ({columns}) VALUES ({marks})", list(row.values()))
    return cursor.rowcount


def test_fresh_database_gets_every_table(migrated: sqlite3.Connection) -> None:
    tables = set(as_database(migrated).table_names())
    assert tables >= V1_TABLES
    assert schema_version(migrated) == BUNDLED[-1]
    (name,) = migrated.execute("SELECT name FROM schema_migrations WHERE version = 1").fetchone()
    assert name == "initial"


def test_ledger_columns_are_exactly_as_specified(migrated: sqlite3.Connection) -> None:
    table = as_database(migrated).table("ledger")
    columns = [(c.name, c.type, bool(c.notnull)) for c in table.columns]
    assert columns == LEDGER_COLUMNS
    assert table.pks == ["entry_id"]
    indexed = {tuple(index.columns) for index in table.indexes}
    assert ("account_id", "effective_at") in indexed
    assert ("source_type", "source_key", "kind") in indexed


def test_second_run_applies_nothing(conn: sqlite3.Connection) -> None:
    assert migrate(conn) == BUNDLED
    assert migrate(conn) == []
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(BUNDLED),)


def test_migrations_apply_in_order_and_only_once(conn: sqlite3.Connection, tmp_path: Path) -> None:
    directory = write_migrations(
        tmp_path / "m",
        {
            "0002_add_b.sql": "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id REFERENCES a (id));",
            "0001_add_a.sql": "CREATE TABLE a (id INTEGER PRIMARY KEY);",
        },
    )
    assert migrate(conn, directory) == [1, 2]
    write_migrations(directory, {"0003_add_c.sql": "CREATE TABLE c (id INTEGER PRIMARY KEY);"})
    assert migrate(conn, directory) == [3]
    assert migrate(conn, directory) == []


def test_failing_migration_rolls_back_completely(conn: sqlite3.Connection, tmp_path: Path) -> None:
    directory = write_migrations(
        tmp_path / "m",
        {
            "0001_good.sql": "CREATE TABLE a (id INTEGER PRIMARY KEY);",
            "0002_broken.sql": (
                "CREATE TABLE b (id INTEGER PRIMARY KEY);\n"
                "INSERT INTO a (id) VALUES (1);\n"
                "INSERT INTO no_such_table VALUES (1);\n"
            ),
        },
    )
    with pytest.raises(MigrationError) as raised:
        migrate(conn, directory)

    assert raised.value.version == 2
    assert raised.value.name == "broken"
    assert "0002_broken.sql" in str(raised.value)
    assert not conn.in_transaction
    assert schema_version(conn) == 1
    tables = set(as_database(conn).table_names())
    assert "a" in tables
    assert "b" not in tables
    assert conn.execute("SELECT count(*) FROM a").fetchone() == (0,)


def test_truncated_migration_fails_before_anything_runs(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    directory = write_migrations(
        tmp_path / "m",
        {
            "0001_good.sql": "CREATE TABLE a (id INTEGER PRIMARY KEY);",
            "0002_cut.sql": "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1;",
        },
    )
    with pytest.raises(MigrationError) as raised:
        migrate(conn, directory)
    assert (raised.value.version, raised.value.name) == (2, "cut")
    assert schema_version(conn) == 0


def test_database_newer_than_the_code_is_refused(conn: sqlite3.Connection, tmp_path: Path) -> None:
    newer = write_migrations(
        tmp_path / "newer",
        {
            "0001_a.sql": "CREATE TABLE a (id INTEGER PRIMARY KEY);",
            "0002_b.sql": "CREATE TABLE b (id INTEGER PRIMARY KEY);",
        },
    )
    older = write_migrations(
        tmp_path / "older", {"0001_a.sql": "CREATE TABLE a (id INTEGER PRIMARY KEY);"}
    )
    migrate(conn, newer)

    with pytest.raises(SchemaTooNewError) as raised:
        migrate(conn, older)
    assert (raised.value.database_version, raised.value.known_version) == (2, 1)


def test_badly_named_migration_file_is_refused(conn: sqlite3.Connection, tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "m", {"1_initial.sql": "SELECT 1;"})
    with pytest.raises(StoreError, match=r"1_initial\.sql"):
        migrate(conn, directory)


def test_duplicate_version_is_refused(tmp_path: Path) -> None:
    directory = write_migrations(
        tmp_path / "m", {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"}
    )
    with pytest.raises(MigrationError):
        load_migrations(directory)


def test_ledger_refuses_update(migrated: sqlite3.Connection) -> None:
    insert_ledger(migrated, ledger_row())
    with pytest.raises(sqlite3.IntegrityError, match="ledger is append-only"):
        migrated.execute("UPDATE ledger SET points = 1000 WHERE entry_id = 'e-1'")


def test_ledger_refuses_delete(migrated: sqlite3.Connection) -> None:
    insert_ledger(migrated, ledger_row())
    with pytest.raises(sqlite3.IntegrityError, match="ledger is append-only"):
        migrated.execute("DELETE FROM ledger")
    assert migrated.execute("SELECT points FROM ledger").fetchone() == (120,)


def test_ledger_refuses_replace_and_upsert(migrated: sqlite3.Connection) -> None:
    insert_ledger(migrated, ledger_row())
    with pytest.raises(sqlite3.IntegrityError, match="ledger is append-only"):
        insert_ledger(migrated, ledger_row(points=999), verb="INSERT OR REPLACE")
    with pytest.raises(sqlite3.IntegrityError, match="ledger is append-only"):
        migrated.execute(
            "INSERT INTO ledger SELECT * FROM ledger WHERE true "
            "ON CONFLICT (entry_id) DO UPDATE SET points = 999"
        )
    assert migrated.execute("SELECT points FROM ledger").fetchone() == (120,)


def test_ledger_natural_key_is_unique(migrated: sqlite3.Connection) -> None:
    insert_ledger(migrated, ledger_row())
    duplicate = ledger_row(entry_id="e-2", points=1)

    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        insert_ledger(migrated, duplicate)
    assert insert_ledger(migrated, duplicate, verb="INSERT OR IGNORE") == 0
    # The same source may produce entries of other kinds (e.g. its REVERSE).
    assert insert_ledger(migrated, ledger_row(entry_id="e-3", kind="REVERSE")) == 1
    assert migrated.execute("SELECT entry_id FROM ledger ORDER BY entry_id").fetchall() == [
        ("e-1",),
        ("e-3",),
    ]


def test_erasing_a_member_removes_their_identifiers(migrated: sqlite3.Connection) -> None:
    migrated.execute(
        "INSERT INTO members (id, account_id, tier, updated_at) "
        "VALUES ('m-1', 'a-1', 'SILVER', 't')"
    )
    migrated.execute(
        "INSERT INTO member_identifiers (kind, value, member_id) VALUES ('card', 'C1', 'm-1')"
    )
    migrated.execute("DELETE FROM members WHERE id = 'm-1'")
    assert migrated.execute("SELECT count(*) FROM member_identifiers").fetchone() == (0,)


async def test_writer_migrates_on_open(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with Writer(path) as writer:
        assert writer.migrations_applied == BUNDLED
    async with Writer(path) as writer:
        assert writer.migrations_applied == []


async def test_writer_refuses_a_database_from_newer_code(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    conn = open_writer(path)
    migrate(conn)
    conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 't')")
    conn.close()

    with pytest.raises(SchemaTooNewError):
        async with Writer(path):
            pass


async def test_writer_reports_a_failing_migration(tmp_path: Path) -> None:
    directory = write_migrations(
        tmp_path / "m", {"0001_bad.sql": "CREATE TABLE a (id);\nINSERT INTO missing VALUES (1);"}
    )
    with pytest.raises(MigrationError):
        async with Writer(tmp_path / "store.db", migrations_dir=directory):
            pass
