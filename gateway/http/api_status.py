"""`/api/v1/parts`, `/devices`, `/sync` and `/dashboard`: the gateway's states, read only."""

from __future__ import annotations

from aiohttp import web

from gateway.app.keys import PARTS, SOURCES
from gateway.http.events import snapshots
from gateway.http.tokens import Caller


async def parts(request: web.Request, _: Caller) -> web.Response:
    return web.json_response({"parts": [{"name": s.name, **s.as_dict()}
                                         for s in request.app[PARTS].statuses()]})


async def devices(request: web.Request, _: Caller) -> web.Response:
    sources = request.app.get(SOURCES)
    found = sources.devices() if sources else {"pos": [], "kiosks": [], "ble_receivers": []}
    return web.json_response(found)


async def sync(request: web.Request, _: Caller) -> web.Response:
    sources = request.app.get(SOURCES)
    status = await sources.sync_status() if sources else None
    return web.json_response({"running": status is not None, "status": status})


async def dashboard(request: web.Request, _: Caller) -> web.Response:
    """One snapshot of what the event stream sends, for a script or a test."""
    return web.json_response(await snapshots(request.app).get())
