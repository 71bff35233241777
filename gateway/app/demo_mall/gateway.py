"""The demo's gateway: the application from `create_app`, served in this process.

Unlike `mallgate run`, a part that stops the gateway does not end the process: it ends
the demo, which then shuts everything down in order and says why.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.app.factory import Stopper, create_app
from gateway.app.keys import STOP
from gateway.settings import Settings


def listen(port: int) -> socket.socket:
    """A loopback socket on `port`, or on a free one when that is taken (or 0)."""
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serving(settings: Settings, sock: socket.socket,
                  ) -> AsyncIterator[tuple[web.Application, Stopper]]:
    """Every part of the gateway started in order, and stopped in reverse on exit."""
    app = create_app(settings)
    stopper = app[STOP]
    assert isinstance(stopper, Stopper)  # noqa: S101 - create_app puts it there
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
        yield app, stopper
    finally:
        await runner.cleanup()
        sock.close()
