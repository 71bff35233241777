"""The gateway's offline store: one SQLite file, one group-commit writer, read-only readers."""

from gateway.store.db import as_database, open_memory, open_reader, open_writer
from gateway.store.errors import (
    MigrationError,
    SchemaTooNewError,
    StoreError,
    WriterClosedError,
)
from gateway.store.migrations import load_migrations, migrate, schema_version
from gateway.store.reader import Reader
from gateway.store.writer import Writer, WriterStats

__all__ = [
    "MigrationError",
    "Reader",
    "SchemaTooNewError",
    "StoreError",
    "Writer",
    "WriterClosedError",
    "WriterStats",
    "as_database",
    "load_migrations",
    "migrate",
    "open_memory",
    "open_reader",
    "open_writer",
    "schema_version",
]
