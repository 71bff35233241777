"""Faults injected in front of the real central server, and the convergence check."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from cloud_api.client import CentralClient
from gateway.loyalty import fold
from tests.cloud_api.central import MALL
from tests.sync.edge import Edge

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Faults:
    """A queue of faults, each used by one matching request, then normal service.

    `slow` delays, `silent` never answers (the client's timeout must fire), `5xx` and `429`
    answer with an error, `413` refuses bodies over `max_body`, `lost` commits the request
    and then drops the connection so the reply never arrives.
    """

    plan: collections.deque[str] = field(default_factory=collections.deque)
    paths: tuple[str, ...] = ("events:batch", "changes")
    max_body: int | None = None
    seen: collections.Counter[str] = field(default_factory=collections.Counter)

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not any(request.path.endswith(p) for p in self.paths):
                return await handler(request)
            if self.max_body is not None and request.content_length \
                    and request.content_length > self.max_body:
                self.seen["413"] += 1
                return web.json_response({"error": {"code": "too_large", "message": "proxy",
                                                    "details": {}}}, status=413)
            fault = self.plan.popleft() if self.plan else None
            if fault is None:
                return await handler(request)
            self.seen[fault] += 1
            if fault == "slow":
                await asyncio.sleep(0.2)
                return await handler(request)
            if fault == "silent":
                await asyncio.sleep(3600)
            if fault == "5xx":
                return web.Response(status=503, text="storm")
            if fault == "429":
                return web.Response(status=429, headers={"Retry-After": "1"})
            if fault == "lost":
                await handler(request)  # committed centrally...
                if request.transport is not None:
                    request.transport.abort()  # ...and the reply never arrives
                raise ConnectionResetError("reply lost")
            raise AssertionError(f"unknown fault {fault}")
        return inject


async def assert_converged(edge: Edge, admin: CentralClient, accounts: dict[str, str]) -> None:
    """Outbox empty; every edge entry in central exactly once (or in dead letters); the
    edge's and central's balances both equal the fold of the union of entries."""
    assert await edge.scalar("SELECT count(*) FROM outbox") == 0
    dead = await edge.scalar("SELECT count(*) FROM dead_letters")
    for member, account in accounts.items():
        central = await admin.get_member(MALL, member)
        ids = [e["entry_id"] for e in central["ledger"]]
        assert len(ids) == len(set(ids)), "an entry is in central twice"
        local = await edge.ledger.entries(account)
        local_ids = {e.entry_id for e, _ in local}
        if not dead:
            assert local_ids == set(ids)
        assert all(acked for _, acked in local), "an entry was never acknowledged"
        union = fold([e for e, _ in local], edge.ledger.now(), journal=False)
        balance = await edge.ledger.balance(account)
        assert central["balance"]["available"] == balance.available == union.available
        assert balance.pending == 0


def withhold_verdicts(event_ids: set[str], times: list[int]) -> Callable[
        [web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Central commits everything but leaves `event_ids` out of its reply, `times[0]` times."""
    @web.middleware
    async def withhold(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if not request.path.endswith("events:batch") or times[0] <= 0 \
                or not isinstance(response, web.Response) or response.text is None:
            return response
        body = json.loads(response.text)
        kept = [v for v in body["verdicts"] if v["event_id"] not in event_ids]
        if len(kept) == len(body["verdicts"]):
            return response
        times[0] -= 1
        return web.json_response({**body, "verdicts": kept})
    return withhold


@dataclass
class Blackout:
    """Central stops answering: while `dark`, every gateway request is held unanswered
    (no error, no timeout the test did not choose); `lift` lets the held ones through.
    `asked` lists every gateway request as (last path segment, its `wait` parameter)."""

    dark: bool = False
    asked: list[tuple[str, str | None]] = field(default_factory=list)
    held: collections.Counter[str] = field(default_factory=collections.Counter)
    _light: asyncio.Event = field(default_factory=asyncio.Event)

    def cut(self) -> None:
        self.dark = True
        self._light.clear()

    def lift(self) -> None:
        self.dark = False
        self._light.set()

    def holding(self, *paths: str) -> bool:
        """A request to each of `paths` is being held."""
        return all(self.held[path] > 0 for path in paths)

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def hold(request: web.Request, handler: Handler) -> web.StreamResponse:
            if "/gateways/" not in request.path:
                return await handler(request)
            path = request.path.rsplit("/", 1)[-1]
            self.asked.append((path, request.query.get("wait")))
            if self.dark:
                self.held[path] += 1
                try:
                    await self._light.wait()
                finally:
                    self.held[path] -= 1
            return await handler(request)
        return hold
