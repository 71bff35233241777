"""Connection limits for an aiohttp server: how many at once, and how long headers may take.

Shared by central's server and the gateway's API (which imports it in its composition
root); it depends on nothing of either.

aiohttp has no timeout for a request's headers: a client that sends them a byte at a time
holds its connection, and a file descriptor, for as long as it likes. A thousand of them
exhausted the gateway's descriptors; every accept then failed and was logged, and `/readyz`
and kiosk traffic stalled. `ConnectionGuard` wraps the server's protocol factory:

- at most `max_connections` at once. At the limit, the oldest connection that has not yet
  sent a whole request's headers is dropped for the new one (a slow client loses, a fresh
  one gets in); if every connection is busy with a request, the new one is closed.
- a connection must send a request's headers within `header_timeout_s` of opening, and of
  its previous request's end (which also bounds an idle keep-alive connection); otherwise
  it is closed. The middleware disarms the deadline while a request is being handled, so
  a long-poll is not cut.

    guard = ConnectionGuard(HttpLimits())
    guard.install(app)                      # before the runner is set up
    runner = web.AppRunner(app, keepalive_timeout=guard.limits.keepalive_timeout_s)
    await runner.setup()
    server = await loop.create_server(guard.factory(runner.server), sock=sock)
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_connections: int = 512
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 15.0


@dataclass(slots=True)
class GuardStats:
    accepted: int = 0
    evicted: int = 0  # dropped, still without headers, to make room for a new connection
    refused: int = 0  # closed at once: the limit was reached by busy connections
    timed_out: int = 0  # no whole request headers within header_timeout_s


class ConnectionGuard:
    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.stats = GuardStats()
        self._open: set[asyncio.BaseTransport] = set()
        # Connections waiting for a request's headers, oldest first, with their deadline.
        self._waiting: dict[asyncio.BaseTransport, asyncio.TimerHandle] = {}

    @property
    def connections(self) -> int:
        return len(self._open)

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self._middleware)

    def factory(self, make: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server` around aiohttp's `runner.server`."""
        return lambda: _Guarded(make(), self)

    # -- what the guarded protocols report -------------------------------------------------
    def admit(self, transport: asyncio.BaseTransport) -> bool:
        if len(self._open) >= self.limits.max_connections:
            if not self._waiting:
                self.stats.refused += 1
                return False
            oldest = next(iter(self._waiting))
            self._drop(oldest)
            self.stats.evicted += 1
        self._open.add(transport)
        self.stats.accepted += 1
        self._arm(transport)
        return True

    def closed(self, transport: asyncio.BaseTransport) -> None:
        self._open.discard(transport)
        self._disarm(transport)

    # -- deadlines -------------------------------------------------------------------------
    def _arm(self, transport: asyncio.BaseTransport) -> None:
        self._disarm(transport)
        loop = asyncio.get_running_loop()
        self._waiting[transport] = loop.call_later(self.limits.header_timeout_s,
                                                   self._expire, transport)

    def _disarm(self, transport: asyncio.BaseTransport) -> None:
        handle = self._waiting.pop(transport, None)
        if handle is not None:
            handle.cancel()

    def _expire(self, transport: asyncio.BaseTransport) -> None:
        self._waiting.pop(transport, None)
        self.stats.timed_out += 1
        self._drop(transport)

    def _drop(self, transport: asyncio.BaseTransport) -> None:
        self._disarm(transport)
        self._open.discard(transport)
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()
        else:
            transport.close()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # aiohttp calls this once a request's headers are in: its deadline is met.
        transport = request.transport
        if transport is not None:
            self._disarm(transport)
        try:
            return await handler(request)
        finally:
            if transport is not None and transport in self._open:
                self._arm(transport)


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, admitted and timed by the guard."""

    __slots__ = ("_guard", "_inner", "_transport")

    def __init__(self, inner: asyncio.BaseProtocol, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._guard.admit(transport):
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()
            return
        self._transport = transport
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return  # refused: aiohttp never saw it
        self._guard.closed(self._transport)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None and isinstance(self._inner, asyncio.Protocol):
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._transport is not None and isinstance(self._inner, asyncio.Protocol):
            return self._inner.eof_received()
        return None

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._inner.resume_writing()


class GuardedSockSite(web.SockSite):
    """A `SockSite` whose connections go through `guard`."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, guard: ConnectionGuard,
                 **kwargs: Any) -> None:
        super().__init__(runner, sock, **kwargs)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None  # noqa: S101 - the runner is set up before its sites
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.factory(server), sock=self._sock, ssl=self._ssl_context,
            backlog=self._backlog)


async def serve_app(app: web.Application, host: str, port: int, limits: HttpLimits) -> None:
    """Serve `app` on host:port within `limits` until SIGINT or SIGTERM."""
    guard = ConnectionGuard(limits)
    guard.install(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           keepalive_timeout=limits.keepalive_timeout_s)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        await GuardedSockSite(runner, sock, guard).start()
        await stop.wait()
    finally:
        await runner.cleanup()
