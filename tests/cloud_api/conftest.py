"""Central server fixtures: the same tests run on every storage backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cloud_api.client import CentralClient
from tests.cloud_api.central import Central
from tests.cloud_api.fixtures import admin, central, database, postgres_server, storage

__all__ = ["admin", "central", "database", "gw_client", "postgres_server", "storage"]


@pytest.fixture
async def gw_client(central: Central) -> AsyncIterator[CentralClient]:
    async with CentralClient(central.url, central.gateway_token, timeout_s=5) as client:
        yield client
