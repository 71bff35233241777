"""`/api/v1/events`: the dashboard's live feed, a server-sent events stream of snapshots.

A snapshot goes out at once, then every `INTERVAL_S`. The stream ends when the client goes
away or the gateway shuts down. Browsers reconnect by themselves (`retry`), asking the same
URL again, token included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from gateway.app.keys import SNAPSHOTS
from gateway.http.snapshot import Snapshots
from gateway.http.tokens import Caller

INTERVAL_S = 2.0
RETRY_MS = 3000


def snapshots(app: web.Application) -> Snapshots:
    return app[SNAPSHOTS]


def frame(snapshot: object) -> bytes:
    return f"event: snapshot\ndata: {json.dumps(snapshot, separators=(',', ':'))}\n\n".encode()


async def stream(request: web.Request, _: Caller) -> web.StreamResponse:
    feed = snapshots(request.app)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})  # a reverse proxy must not hold the stream back
    await response.prepare(request)
    await response.write(f"retry: {RETRY_MS}\n\n".encode())
    try:
        while not feed.closing.is_set():
            await response.write(frame(await feed.get()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.closing.wait(), INTERVAL_S)
    except (ConnectionResetError, ConnectionError):
        pass  # the dashboard went away
    return response


async def close_streams(app: web.Application) -> None:
    """On shutdown: end every open stream now."""
    snapshots(app).closing.set()
