"""A real mosquitto per test, on a free loopback port, stopped whatever happens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devices.mqtt.broker import Mosquitto
from tests.conftest import free_port


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    async with Mosquitto(free_port(), tmp_path / "broker") as running:
        yield running
