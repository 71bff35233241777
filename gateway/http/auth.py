"""Who may call what on the local API. Only the liveness and readiness probes are open.

A caller shows a bearer token (`Authorization: Bearer ...`); its role decides what it may
do. A missing or unknown token is 401, a known token of another role 403. The server-sent
events stream also takes the token as `?token=`, because a browser's `EventSource` cannot
set a header; the gateway writes no access log, so the query string is kept nowhere.
"""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from gateway.app.keys import SETTINGS, TOKENS
from gateway.http.tokens import Caller, Tokens
from gateway.settings.advice import is_loopback
from gateway.settings.model import ApiRole

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mallgate"'}


def tokens(app: web.Application) -> Tokens:
    """The app's tokens (`TOKENS`), or read from the settings for an app without the API."""
    known = app.get(TOKENS)
    return known if known is not None else Tokens(app[SETTINGS].http)


def _presented(request: web.Request, *, query: bool) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    if query:
        return request.query.get("token") or None
    return None


def require_role(request: web.Request, roles: Collection[ApiRole], *,
                 query: bool = False) -> Caller:
    """The caller, if its token is valid and of one of `roles`.

    Raises 401 (no or unknown token) or 403 (a valid token of another role). `query`
    also accepts the token as `?token=` (the event stream only)."""
    token = _presented(request, query=query)
    caller = tokens(request.app).match(token) if token is not None else None
    if caller is None:
        raise web.HTTPUnauthorized(text="bearer token required\n", headers=_CHALLENGE)
    if caller.role not in roles:
        raise web.HTTPForbidden(text=f"the {caller.role} role may not do this "
                                     f"(needs {' or '.join(sorted(roles))})\n")
    return caller


def require_ops(request: web.Request) -> None:
    """Allow the operations role: an ops token, or any caller on a loopback-only API
    while no ops token is configured.

    Raises 401 (no or wrong token), 403 (another role's token, or no ops token configured
    on a reachable API)."""
    http = request.app[SETTINGS].http
    has_ops = http.ops_token is not None or any(t.role == "ops" for t in http.tokens)
    if not has_ops:
        if is_loopback(http.host):
            return
        raise web.HTTPForbidden(text="set http.ops_token to use this endpoint on a network "
                                     "address\n")
    ops: tuple[ApiRole, ...] = ("ops",)
    require_role(request, ops)
