"""Liveness and readiness probes: the only endpoints that need no token."""

from __future__ import annotations

from aiohttp import web

from gateway.app.keys import PARTS, READER, SETTINGS
from gateway.parts import PartState
from gateway.store import StoreError


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers. Says nothing about its dependencies."""
    site = request.app[SETTINGS].site
    return web.json_response({"status": "ok", "mall": site.mall_id, "gateway": site.gateway_id})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the store is open and answers a read, and every part the configuration
    enabled is up. 503 otherwise, naming each part that is not and why."""
    checks: dict[str, str] = {}
    try:
        version = await request.app[READER].run(
            lambda conn: conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        )
        checks["store"] = f"ok (schema {version})"
    except StoreError as exc:
        checks["store"] = f"unavailable: {exc}"
    parts = {status.name: status.as_dict() for status in request.app[PARTS].statuses()}
    failing = {name: part for name, part in parts.items() if part["state"] != PartState.UP}
    ready = all(value.startswith("ok") for value in checks.values()) and not failing
    body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks,
                               "parts": parts}
    if failing:
        body["failing"] = {name: f"{part['state']}: {part['reason']}"
                           for name, part in failing.items()}
    return web.json_response(body, status=200 if ready else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
