"""A real central server on a loopback port, for the central and sync tests."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from cloud_api.server.app import STORAGE, create_central_app
from cloud_api.server.enrolment import CodeSender
from cloud_api.server.storage import Storage
from gateway.loyalty import Entry, EntryKind
from tests.conftest import free_port
from tests.loyalty.canonical import entry_to_json

MALL = "test-mall"
GATEWAY = "gw-test"


@dataclass
class Central:
    url: str
    port: int
    app: web.Application
    runner: web.AppRunner
    gateway_token: str
    admin_token: str
    stopped: bool = False

    @property
    def storage(self) -> Storage:
        return self.app[STORAGE]

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.runner.cleanup()


async def start_central(
    storage: Storage, *, port: int | None = None,
    middlewares: Iterable[Callable[..., Awaitable[web.StreamResponse]]] = (),
    tokens: tuple[str, str] | None = None, **options: Any,
) -> Central:
    """`options`: more of `create_central_app`'s keywords (webhooks, delivery,
    code_sender, ...)."""
    app = create_central_app(storage, middlewares=middlewares, **options)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    if tokens is None:
        tokens = (await storage.add_token(MALL, "gateway", GATEWAY),
                  await storage.add_token(MALL, "admin", None))
    return Central(f"http://127.0.0.1:{port}", port, app, runner, *tokens)


@contextlib.asynccontextmanager
async def running_central(
    storage: Storage, *, port: int | None = None,
    middlewares: Iterable[Callable[..., Awaitable[web.StreamResponse]]] = (),
    code_sender: CodeSender | None = None, tokens: tuple[str, str] | None = None,
) -> AsyncIterator[Central]:
    central = await start_central(storage, port=port, middlewares=middlewares,
                                  code_sender=code_sender, tokens=tokens)
    try:
        yield central
    finally:
        await central.stop()


def entry(points: int, key: str, *, account: str = "A1", member: str = "M1",
          site: str = GATEWAY, seq: int = 1) -> Entry:
    when = datetime(2026, 5, 1, 12, tzinfo=UTC)
    kind = EntryKind.EARN if points >= 0 else EntryKind.BURN
    base = Entry(kind=kind, points=points, account_id=account, member_id=member,
                 source_type="test", source_key=key, reason=f"test {key}", effective_at=when,
                 rule_version="t")
    return base.stamped(origin_site=site, origin_seq=seq, hlc=f"{seq:013d}-0000-{site}",
                        recorded_at=when)


def event(e: Entry) -> str:
    return json.dumps({"event_id": e.entry_id, "type": "ledger.entry",
                       "payload": json.loads(entry_to_json(e))})
