"""A gateway with kiosks enabled against a test broker, and a kiosk to talk to it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from devices.kiosk.protocol import Topics
from devices.kiosk.sim import KioskClient
from devices.mqtt.transport import MqttLink
from gateway.app import create_app
from gateway.app.keys import KIOSK
from gateway.settings import Settings
from tests.conftest import free_port

SITE = "test-mall"
QR_KEY = "qr-test-key"
PHONE_KEY = "phone-test-key"
TOPICS = Topics(SITE)


def kiosk_settings_data(tmp_path: Path, broker_port: int, **kiosk: Any) -> dict[str, Any]:
    """Settings (as JSON data) of a gateway serving kiosks through the test broker."""
    central = kiosk.pop("central", None)
    section: dict[str, Any] = {"enabled": True, "port": broker_port, "qr_key": QR_KEY,
                               "phone_hash_key": PHONE_KEY, "demo_members": 5}
    section.update(kiosk)
    return {
        "site": {"mall_id": SITE, "gateway_id": "gw-test"},
        "store": {"path": str(tmp_path / "gw.db")},
        "http": {"port": free_port()},
        "central": {"url": central} if central else {},
        "kiosk": section,
    }


def kiosk_settings(tmp_path: Path, broker_port: int, **kiosk: Any) -> Settings:
    return Settings.model_validate_json(
        json.dumps(kiosk_settings_data(tmp_path, broker_port, **kiosk)))


class Clock:
    def __init__(self, start: datetime) -> None:
        self.at = start

    def __call__(self) -> datetime:
        return self.at


@asynccontextmanager
async def running_gateway(
    settings: Settings, now: Callable[[], datetime] | None = None,
) -> AsyncIterator[web.Application]:
    app = create_app(settings, now=now) if now else create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        service = app[KIOSK]
        await asyncio.wait_for(service.link.subscribed.wait(), 10)
        yield app
    finally:
        await runner.cleanup()


@asynccontextmanager
async def kiosk(port: int, kid: str = "k1", *, boot: int = 1) -> AsyncIterator[KioskClient]:
    async with MqttLink(KioskClient.config(TOPICS, kid, "127.0.0.1", port, boot=boot)) as link:
        await asyncio.wait_for(link.connected.wait(), 10)
        client = KioskClient(link, TOPICS, kid, boot=boot)
        try:
            yield client
        finally:
            await client.close()


async def eventually(condition: Callable[[], bool], *, polls: int = 1000) -> None:
    """Wait until `condition()` holds (polled every 20 ms), failing after `polls` polls."""
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition never became true")
