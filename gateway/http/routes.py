"""The routes of `/api/v1` and who may call each: one table, checked against
`openapi.yaml` by the tests (every route documented with its roles, every path routed).

A handler gets the request and the caller its token names; the table's wrapper answers
401 or 403 before the handler runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from aiohttp import web

from gateway.app.keys import SETTINGS, SNAPSHOTS, TOKENS
from gateway.http import api_members, api_pos, api_records, api_status, dashboard, events
from gateway.http.auth import require_role
from gateway.http.snapshot import Snapshots
from gateway.http.tokens import Caller, Tokens
from gateway.settings.model import ApiRole

PREFIX = "/api/v1"

Handler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]

# Personal data (who a member is, their points) is for the service desk and the tills;
# the operations team runs the gateway without it. Each route leaves a role out, so every
# route has a wrong role to refuse.
MEMBERS: frozenset[ApiRole] = frozenset({"staff", "pos"})
DESK: frozenset[ApiRole] = frozenset({"staff"})
RECORDS: frozenset[ApiRole] = frozenset({"staff", "ops"})
OPS: frozenset[ApiRole] = frozenset({"ops"})
WATCH: frozenset[ApiRole] = frozenset({"staff", "ops"})
TILLS: frozenset[ApiRole] = frozenset({"pos"})


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # below PREFIX
    handler: Handler
    roles: frozenset[ApiRole]
    # Also take the token as `?token=`: only where a browser cannot send a header.
    query_token: bool = False

    @property
    def full_path(self) -> str:
        return PREFIX + self.path


async def _guarded(route: Route, request: web.Request) -> web.StreamResponse:
    caller = require_role(request, route.roles, query=route.query_token)
    return await route.handler(request, caller)


def api_routes() -> list[Route]:
    return [
        Route("GET", "/members", api_members.lookup, MEMBERS),
        Route("GET", "/members/{member_id}/balance", api_members.balance, MEMBERS),
        Route("GET", "/members/{member_id}/history", api_members.history, DESK),
        Route("GET", "/receipts", api_records.receipts, RECORDS),
        Route("GET", "/receipts/{receipt_id}", api_records.receipt, RECORDS),
        Route("GET", "/deadletters", api_records.dead_letters, OPS),
        Route("GET", "/deadletters/{letter_id}", api_records.dead_letter, OPS),
        Route("POST", "/deadletters/{letter_id}/replay", api_records.replay, OPS),
        Route("GET", "/sync", api_status.sync, WATCH),
        Route("GET", "/parts", api_status.parts, WATCH),
        Route("GET", "/devices", api_status.devices, WATCH),
        Route("GET", "/dashboard", api_status.dashboard, WATCH),
        Route("GET", "/events", events.stream, WATCH, query_token=True),
        Route("POST", "/pos/{store}/{pos}/sales", api_pos.sale, TILLS),
        Route("POST", "/pos/{store}/{pos}/authorize", api_pos.authorize, TILLS),
        Route("POST", "/pos/{store}/{pos}/void", api_pos.void, TILLS),
    ]


def add_routes(app: web.Application) -> None:
    """`/api/v1`, the dashboard page and its files."""
    app[TOKENS] = Tokens(app[SETTINGS].http)
    app[SNAPSHOTS] = Snapshots(app)
    for route in api_routes():
        app.router.add_route(route.method, route.full_path, partial(_guarded, route))
    dashboard.add_routes(app)
    app.on_shutdown.append(events.close_streams)
