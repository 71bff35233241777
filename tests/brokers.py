"""The demo brokers tests run against: mosquitto, and rumqttd from the `iotcore` extra."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from devices.mqtt.broker import BrokerProcess, Mosquitto, Rumqttd, iotcore_installed
from tests.conftest import free_port

KINDS = ["mosquitto", "rumqttd"]


@asynccontextmanager
async def running_broker(kind: str, data_dir: Path) -> AsyncIterator[BrokerProcess]:
    """A broker of `kind` on a free loopback port; rumqttd is skipped without iotcore."""
    if kind == "rumqttd" and not iotcore_installed():
        pytest.skip("iotcore is not installed (pip install 'mallgate[broker]')")
    broker = Mosquitto(free_port(), data_dir) if kind == "mosquitto" else Rumqttd(
        free_port(), data_dir)
    async with broker:
        yield broker

