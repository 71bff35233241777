"""A mini-program backend's webhook receiver on loopback, for central's notice tests.

It checks each delivery's HMAC signature and keeps each notice once by its id, as a real
receiver would; it can fail or hold requests to exercise central's retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cloud_api.server.webhooks import (
    ATTEMPT_HEADER,
    NOTICE_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Webhook,
    verify,
)
from tests.cloud_api.central import MALL
from tests.conftest import free_port

SECRET = b"receiver-secret-for-tests"
WAIT_S = 30.0


@dataclass
class Receiver:
    """A webhook receiver: checks the signature, keeps each notice once by its id."""

    fail_first: int = 0  # answer 500 to this many requests first
    hang_first: bool = False  # hold the first request (after keeping its notice)
    requests: list[dict[str, Any]] = field(default_factory=list)
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    url: str = ""

    async def until(self, check: Callable[[], bool]) -> None:
        """Wait until `check()` holds after some request."""
        async with asyncio.timeout(WAIT_S), self.changed:
            await self.changed.wait_for(check)

    async def _tell(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signed = verify(SECRET, request.headers.get(TIMESTAMP_HEADER, ""), body,
                        request.headers.get(SIGNATURE_HEADER, ""))
        notice = json.loads(body)
        self.requests.append({"id": request.headers.get(NOTICE_ID_HEADER),
                              "attempt": request.headers.get(ATTEMPT_HEADER),
                              "signed": signed, "notice": notice})
        await self._tell()
        if not signed or notice["notice_id"] != request.headers.get(NOTICE_ID_HEADER):
            return web.Response(status=401)
        if len(self.requests) <= self.fail_first:
            return web.Response(status=500)
        self.processed.setdefault(notice["notice_id"], notice)  # dedup by id
        await self._tell()
        if self.hang_first and len(self.requests) == 1:
            await self.release.wait()
        return web.Response(status=204)

    def webhook(self, name: str = "mini") -> dict[str, list[Webhook]]:
        return {MALL: [Webhook(MALL, name, self.url, SECRET)]}


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        receiver.release.set()
        await runner.cleanup()
