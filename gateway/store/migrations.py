"""Numbered, transactional schema migrations.

Migrations are SQL files named `NNNN_name.sql` in the `migrations/` directory next to
this module. Each one runs in its own transaction together with its row in
`schema_migrations`, so the database is always at exactly one known version: a migration
either applied completely and is recorded, or left no trace.

A migration file must not contain BEGIN/COMMIT or PRAGMAs that cannot run inside a
transaction (journal_mode, foreign_keys).

Before new migrations run, indexes a bulk fill set aside (see `gateway.store.deferred`) are
built again, so a migration can rely on every index its predecessors created.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from importlib.resources.abc import Traversable

from gateway.store.deferred import has_deferred_indexes, restore_indexes
from gateway.store.errors import MigrationError, SchemaTooNewError, StoreError

MIGRATION_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


def bundled_migrations_dir() -> Traversable:
    """The migrations shipped with the package."""
    return files("gateway.store").joinpath("migrations")


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    """Read and parse every `NNNN_name.sql` file of `directory`, ordered by version.

    Parsing everything first means a truncated file fails before any migration runs.
    """
    directory = directory if directory is not None else bundled_migrations_dir()
    by_version: dict[int, Migration] = {}
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = MIGRATION_FILE.match(entry.name)
        if match is None:
            raise StoreError(f"migration file {entry.name!r} is not named like 0001_name.sql")
        version, name = int(match["version"]), match["name"]
        try:
            statements = split_statements(entry.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise MigrationError(version, name, str(exc)) from exc
        migration = Migration(version=version, name=name, statements=tuple(statements))
        if migration.version in by_version:
            raise MigrationError(
                migration.version,
                migration.name,
                f"version also used by {by_version[migration.version].filename}",
            )
        by_version[migration.version] = migration
    return [by_version[version] for version in sorted(by_version)]


def schema_version(conn: sqlite3.Connection) -> int:
    """The highest applied migration version, 0 for a database never migrated."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if exists is None:
        return 0
    (version,) = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(version)


def migrate(conn: sqlite3.Connection, directory: Traversable | None = None) -> list[int]:
    """Apply every migration newer than the database, in order; return the versions applied.

    Indexes a bulk fill set aside and did not build again (a crash cut it short) are built
    first, so they are back whenever the store opens and before a migration refers to them.
    `conn` must be in autocommit mode (`isolation_level=None`) with no open transaction.
    Raises `SchemaTooNewError` without touching the database if it was migrated by newer
    code, and `MigrationError` naming the file if one fails (that file is rolled back;
    migrations before it stay applied).
    """
    if conn.in_transaction:
        raise StoreError("migrate() needs a connection with no open transaction")
    migrations = load_migrations(directory)
    known_version = migrations[-1].version if migrations else 0
    database_version = schema_version(conn)
    if database_version > known_version:
        raise SchemaTooNewError(database_version, known_version)

    conn.execute(_CREATE_SCHEMA_MIGRATIONS)
    _restore_deferred_indexes(conn)
    applied: list[int] = []
    for migration in migrations:
        if migration.version > database_version and _apply(conn, migration):
            applied.append(migration.version)
    return applied


def _apply(conn: sqlite3.Connection, migration: Migration) -> bool:
    """Run one migration in its own transaction; False if another process applied it first."""
    # IMMEDIATE takes the write lock up front, so two processes migrating the same file
    # serialise here and the second one sees the first one's row below.
    conn.execute("BEGIN IMMEDIATE")
    try:
        already = conn.execute(
            "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
        ).fetchone()
        if already is not None:
            conn.execute("COMMIT")
            return False
        for statement in migration.statements:
            conn.execute(statement)
        _check_foreign_keys(conn, migration)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, datetime.now(UTC).isoformat()),
        )
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        raise MigrationError(migration.version, migration.name, str(exc)) from exc
    except BaseException:
        _rollback(conn)
        raise
    return True


def _restore_deferred_indexes(conn: sqlite3.Connection) -> None:
    """Build the indexes a bulk fill set aside and did not build again (it was cut short)."""
    if not has_deferred_indexes(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        restore_indexes(conn)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        raise StoreError(f"cannot build the deferred indexes again: {exc}") from exc
    except BaseException:
        _rollback(conn)
        raise


def _check_foreign_keys(conn: sqlite3.Connection, migration: Migration) -> None:
    # A migration that rebuilds a table, or runs on a connection without foreign_keys=ON,
    # can leave dangling references; refuse to record such a migration as applied.
    violations = conn.execute("PRAGMA foreign_key_check").fetchall()
    if violations:
        raise MigrationError(
            migration.version, migration.name, f"foreign key violations: {violations[:5]}"
        )


def _rollback(conn: sqlite3.Connection) -> None:
    # Some errors (disk full, I/O) already rolled the transaction back inside SQLite.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def split_statements(sql: str) -> list[str]:
    """Split a script into complete statements, keeping trigger bodies whole.

    `executescript()` would commit the open transaction first, so each statement is run
    separately inside the migration's own transaction instead.
    """
    statements: list[str] = []
    pending = ""
    for piece in sql.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if _has_code(pending):
                statements.append(pending.strip())
            pending = ""
    if _has_code(pending.removesuffix(";")):
        raise ValueError(f"incomplete SQL statement at end of file: {pending.strip()[:80]!r}")
    return statements


def _has_code(sql: str) -> bool:
    """True if `sql` holds more than whitespace, comments and semicolons."""
    without_comments = re.sub(r"--[^\n]*|/\*.*?\*/", "", sql, flags=re.DOTALL)
    return without_comments.strip(" \t\r\n;") != ""
