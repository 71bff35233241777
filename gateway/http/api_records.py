"""`/api/v1/receipts` and `/api/v1/deadletters`: recent receipts, what the gateway
refused, and the replay of a POS dead letter (audited)."""

from __future__ import annotations

import base64
import json
import sqlite3
from typing import Any

from aiohttp import web

from gateway.app.keys import NOW, READER, SOURCES, WRITER
from gateway.deadletters.replayable import letters, refusal
from gateway.http.audit import audit
from gateway.http.tokens import Caller

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

_RECEIPT = ("SELECT id, store_id, pos_id, receipt_no, business_date, kind, parse_status, "
            "member_id, received_at, parsed FROM receipts ")
_LETTER = ("SELECT id, source, received_at, error_code, error, length(raw), replayed_at, "
           "replay_result, context, raw FROM dead_letters ")


def _limit(request: web.Request) -> int:
    try:
        limit = int(request.query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise web.HTTPBadRequest(text="limit: an integer\n") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise web.HTTPBadRequest(text=f"limit: 1..{MAX_LIMIT}\n")
    return limit


def _id(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound(text=f"no such {name}\n") from None


def _receipt(row: tuple[Any, ...], *, full: bool) -> dict[str, object]:
    parsed = json.loads(row[9]) if row[9] else None
    body: dict[str, object] = {
        "id": row[0], "store_id": row[1], "pos_id": row[2], "receipt_no": row[3],
        "business_date": row[4], "kind": row[5], "parse_status": row[6], "member_id": row[7],
        "received_at": row[8],
        "total_fen": parsed.get("total_fen") if isinstance(parsed, dict) else None}
    if full:
        body["parsed"] = parsed
    return body


async def receipts(request: web.Request, _: Caller) -> web.Response:
    limit = _limit(request)
    rows = await request.app[READER].run(lambda conn: conn.execute(
        _RECEIPT + "ORDER BY id DESC LIMIT ?", (limit,)).fetchall())
    return web.json_response({"receipts": [_receipt(row, full=False) for row in rows]})


async def receipt(request: web.Request, _: Caller) -> web.Response:
    receipt_id = _id(request, "receipt_id")
    row = await request.app[READER].run(lambda conn: conn.execute(
        _RECEIPT + "WHERE id = ?", (receipt_id,)).fetchone())
    if row is None:
        raise web.HTTPNotFound(text="no such receipt\n")
    return web.json_response(_receipt(row, full=True))


def _letter(row: tuple[Any, ...], *, full: bool) -> dict[str, object]:
    body: dict[str, object] = {
        "id": row[0], "source": row[1], "received_at": row[2], "error_code": row[3],
        "error": row[4], "size": row[5], "replayed_at": row[6], "replay_result": row[7]}
    if full:
        # Kept masked (gateway/redaction.py); bytes as they came, so base64.
        body["context"] = json.loads(row[8])
        body["raw_base64"] = base64.b64encode(row[9]).decode("ascii")
    return body


async def dead_letters(request: web.Request, _: Caller) -> web.Response:
    limit = _limit(request)
    where = "" if request.query.get("all") in {"1", "true"} else "WHERE replayed_at IS NULL "
    rows = await request.app[READER].run(lambda conn: conn.execute(
        _LETTER + where + "ORDER BY id DESC LIMIT ?", (limit,)).fetchall())
    return web.json_response({"dead_letters": [_letter(row, full=False) for row in rows]})


async def dead_letter(request: web.Request, _: Caller) -> web.Response:
    letter_id = _id(request, "letter_id")
    row = await request.app[READER].run(lambda conn: conn.execute(
        _LETTER + "WHERE id = ?", (letter_id,)).fetchone())
    if row is None:
        raise web.HTTPNotFound(text="no such dead letter\n")
    return web.json_response(_letter(row, full=True))


async def replay(request: web.Request, caller: Caller) -> web.Response:
    """Run one POS dead letter through the current receipt templates again, as
    `mallgate deadletters replay ID` does; the request is audited whatever comes of it."""
    letter_id = _id(request, "letter_id")
    app = request.app

    def read(conn: sqlite3.Connection) -> str | None:
        return refusal(letter_id, letters(conn, (letter_id,)).get(letter_id))

    why_not = await app[READER].run(read)
    status: int
    body: dict[str, object]
    if why_not is not None:
        status = 404 if why_not.endswith("no such dead letter") else 409
        body = {"id": letter_id, "replayed": False, "reason": why_not}
    elif not (outcomes := await app[SOURCES].replay([letter_id])):
        status = 409  # replayed by someone else in between
        body = {"id": letter_id, "replayed": False,
                "reason": f"dead letter {letter_id}: no longer pending"}
    else:
        outcome = outcomes[0]
        status = 200
        body = {"id": letter_id, "replayed": outcome.status != "dead",
                "status": outcome.status, "points": outcome.points,
                "receipt_no": outcome.receipt_no, "reason": outcome.reason}
    await audit(app[WRITER], caller, action="deadletter.replay", target=str(letter_id),
                outcome=str(body.get("status") or body["reason"]), remote=request.remote,
                at=app[NOW]())
    return web.json_response(body, status=status)
