"""`/api/v1/pos/{store}/{pos}`: a till posts its sales, `authorize` and `void` over HTTP,
with the same payloads and answers as on its serial line (docs/pos.md, "Over HTTP").

A sale is read and committed by the POS receipt pipeline (through `SOURCES`) before it is
answered: 201 credited, 200 a duplicate (the first result), 422 refused or unreadable
(kept as a dead letter, as on serial).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.app.keys import SOURCES
from gateway.http.tokens import Caller


def _till(request: web.Request) -> tuple[str, str]:
    return request.match_info["store"], request.match_info["pos"]


async def sale(request: web.Request, caller: Caller) -> web.Response:
    store_id, pos_id = _till(request)
    outcome = await request.app[SOURCES].pos_sale(store_id, pos_id, await request.read())
    if outcome.status in ("dead", "refused"):
        code, _sep, msg = outcome.reason.partition(": ")
        return web.json_response({"error": {"code": code, "msg": msg}}, status=422)
    duplicate = outcome.status == "duplicate"
    return web.json_response({"status": outcome.status, "duplicate": duplicate,
                              "receipt_no": outcome.receipt_no, "points": outcome.points,
                              "member_id": outcome.member_id},
                             status=200 if duplicate else 201)


async def _request(request: web.Request, kind: str) -> web.Response:
    store_id, pos_id = _till(request)
    try:
        payload: Any = json.loads(await request.read())
    except (UnicodeDecodeError, ValueError):
        payload = None
    if not isinstance(payload, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object\n")
    reply = await request.app[SOURCES].pos_request(kind, store_id, pos_id, payload)
    return web.json_response(reply)


async def authorize(request: web.Request, _: Caller) -> web.Response:
    return await _request(request, "authorize")


async def void(request: web.Request, _: Caller) -> web.Response:
    return await _request(request, "void")
