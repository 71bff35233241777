"""Sync tests run against the real central server over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud_api.client import CentralClient
from cloud_api.server.postgres_store import PostgresStorage
from cloud_api.server.sqlite_store import SqliteStorage
from cloud_api.server.storage import Storage
from tests.cloud_api.central import Central, running_central
from tests.cloud_api.pg import fresh_database, postgres_server  # noqa: F401 - a fixture
from tests.sync.edge import Edge, open_edge


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


@pytest.fixture
async def edge(central: Central, tmp_path: Path) -> AsyncIterator[Edge]:
    async with open_edge(tmp_path / "gw.db", central.url, central.gateway_token) as gateway:
        yield gateway
