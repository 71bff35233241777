"""An SMS gateway's webhook on a loopback port: what central's code sender posts to it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cloud_api.server.enrolment import WebhookSender
from tests.conftest import free_port


@dataclass
class SmsGateway:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    failing: bool = False

    @property
    def sender(self) -> WebhookSender:
        return WebhookSender(self.url)

    def code_for(self, phone: str) -> str:
        """The last code texted to `phone`."""
        return str([m for m in self.received if m["phone"] == phone][-1]["code"])


@contextlib.asynccontextmanager
async def sms_gateway() -> AsyncIterator[SmsGateway]:
    port = free_port()
    gateway = SmsGateway(f"http://127.0.0.1:{port}/sms")

    async def receive(request: web.Request) -> web.Response:
        if gateway.failing:
            return web.Response(status=502)
        gateway.received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/sms", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield gateway
    finally:
        await runner.cleanup()
