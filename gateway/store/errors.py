"""Errors raised by the offline store.

Every failure of the store is a `StoreError`, so callers that only care whether the
write happened can catch one class; the subclasses carry the data needed to act on it.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error raised by `gateway.store`."""


class MigrationError(StoreError):
    """A migration file could not be applied; the database is left at the previous version."""

    def __init__(self, version: int, name: str, reason: str) -> None:
        super().__init__(f"migration {version:04d}_{name}.sql failed: {reason}")
        self.version = version
        self.name = name
        self.reason = reason


class SchemaTooNewError(StoreError):
    """The database was migrated by newer code; running older code on it could corrupt it."""

    def __init__(self, database_version: int, known_version: int) -> None:
        super().__init__(
            f"database schema is at version {database_version}, "
            f"but this code only knows up to version {known_version}"
        )
        self.database_version = database_version
        self.known_version = known_version


class WriterClosedError(StoreError):
    """The writer is closing or closed; the operation was not queued and did not run."""
