"""Fixtures of a running central, shared by the central and sync tests: the same tests run
on every storage backend. Conftests import them so pytest registers them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud_api.client import CentralClient
from cloud_api.server.postgres_store import PostgresStorage
from cloud_api.server.sqlite_store import SqliteStorage
from cloud_api.server.storage import Storage
from tests.cloud_api.central import Central, running_central
from tests.cloud_api.pg import fresh_database, postgres_server

__all__ = ["admin", "central", "postgres_server", "storage"]


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
