"""The dashboard: one page at `/` with its stylesheet and script, served from `static/`.

The page itself holds no data and needs no token; what it shows comes from
`/api/v1/events`, which does. No build step and nothing from a CDN: a gateway on a mall's
LAN may have no internet at all.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

STATIC = files("gateway.http").joinpath("static")
# The files served, by name, with their type: nothing else under static/ is reachable.
FILES = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
# The page loads only its own script and style and talks only to its own origin.
_PAGE_HEADERS = {**_HEADERS, "Content-Security-Policy":
                 "default-src 'none'; script-src 'self'; style-src 'self'; "
                 "connect-src 'self'; img-src 'self'; frame-ancestors 'none'",
                 "Referrer-Policy": "no-referrer"}


async def page(_: web.Request) -> web.Response:
    body = STATIC.joinpath("index.html").read_bytes()
    return web.Response(body=body, content_type="text/html", charset="utf-8",
                        headers=_PAGE_HEADERS)


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in FILES:
        raise web.HTTPNotFound()
    return web.Response(body=STATIC.joinpath(name).read_bytes(), content_type=FILES[name],
                        charset="utf-8", headers=_HEADERS)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", static)
