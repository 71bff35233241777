"""Who may call what on the local API. Only the liveness and readiness probes are open."""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web

from gateway.app.keys import SETTINGS


def _loopback_only(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_ops(request: web.Request) -> None:
    """Allow the operations role: its bearer token, or any caller on a loopback-only API.

    Raises 401 (no or wrong token) or 403 (no token configured on a reachable API).
    """
    http = request.app[SETTINGS].http
    if http.ops_token is None:
        if _loopback_only(http.host):
            return
        raise web.HTTPForbidden(text="set http.ops_token to use this endpoint on a network "
                                     "address\n")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = http.ops_token.get_secret_value()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise web.HTTPUnauthorized(text="bearer token of the ops role required\n",
                                   headers={"WWW-Authenticate": 'Bearer realm="mallgate"'})
