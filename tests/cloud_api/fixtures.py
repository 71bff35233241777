"""Fixtures of a running central, shared by the central and sync tests: the same tests run
on every storage backend. Conftests import them so pytest registers them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloud_api.client import CentralClient
from cloud_api.server.postgres_store import PostgresStorage
from cloud_api.server.sqlite_store import SqliteStorage
from cloud_api.server.storage import Storage
from tests.cloud_api.central import Central, running_central
from tests.cloud_api.pg import fresh_database, postgres_server
from tests.sync.clock import FakeClock

__all__ = ["admin", "central", "database", "postgres_server", "storage"]


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        return PostgresStorage(await fresh_database(server))
    return SqliteStorage(tmp_path / "central.db")


@pytest.fixture
async def central(storage: Storage) -> AsyncIterator[Central]:
    async with running_central(storage) as server:
        yield server


@pytest.fixture
async def admin(central: Central) -> AsyncIterator[CentralClient]:
    async with CentralClient(central.url, central.admin_token, timeout_s=5) as client:
        yield client


@dataclass
class Database:
    """One central database (a SQLite file or a PostgreSQL database) that several
    storage instances (workers, or a restarted central) open."""

    path: Path
    dsn: str | None

    def storage(self, clock: FakeClock, **options: Any) -> Storage:
        """A storage on this database with central's clock; `options`: more of the
        storage's keywords."""
        if self.dsn is not None:
            return PostgresStorage(self.dsn, now=clock.now, **options)
        return SqliteStorage(self.path, now=clock.now, **options)


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "postgres":
        dsn = await fresh_database(request.getfixturevalue("postgres_server"))
        return Database(tmp_path / "unused.db", dsn)
    return Database(tmp_path / "central.db", None)
