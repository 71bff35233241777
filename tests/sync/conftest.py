"""Sync tests run against the real central server over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cloud_api.central import Central
from tests.cloud_api.fixtures import admin, central, postgres_server, storage
from tests.sync.edge import Edge, open_edge

__all__ = ["admin", "central", "edge", "postgres_server", "storage"]


@pytest.fixture
async def edge(central: Central, tmp_path: Path) -> AsyncIterator[Edge]:
    async with open_edge(tmp_path / "gw.db", central.url, central.gateway_token) as gateway:
        yield gateway
