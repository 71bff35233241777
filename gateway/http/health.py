"""Liveness and readiness probes: the only endpoints that need no token."""

from __future__ import annotations

from aiohttp import web

from gateway.keys import READER, SETTINGS, WRITER
from gateway.store import StoreError


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers. Says nothing about its dependencies."""
    site = request.app[SETTINGS].site
    return web.json_response({"status": "ok", "mall": site.mall_id, "gateway": site.gateway_id})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the store is open and answers a read. 503 with the reason otherwise."""
    checks: dict[str, str] = {}
    try:
        version = await request.app[READER].run(
            lambda conn: conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        )
        checks["store"] = f"ok (schema {version})"
        if request.app[WRITER].stats.queue_depth >= request.app[WRITER].queue_max:
            checks["writer"] = "queue full"
    except StoreError as exc:
        checks["store"] = f"unavailable: {exc}"
    ready = all(value.startswith("ok") for value in checks.values())
    return web.json_response({"status": "ready" if ready else "not ready", "checks": checks},
                             status=200 if ready else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
