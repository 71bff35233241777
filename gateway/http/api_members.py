"""`/api/v1/members`: find a member by card, QR token or phone hash; their balance and
their ledger history with a reason per line. Reads only."""

from __future__ import annotations

from aiohttp import web

from gateway.app.keys import LEDGER, READER, SETTINGS
from gateway.http.tokens import Caller
from gateway.members import IdentityError, IdentityKeys, Lookup, Member, find_member
from gateway.members.identity import verify_qr_token
from gateway.operations.expiring import expiring_fields
from gateway.settings import Settings

# Query parameter -> how it finds the member. A phone number is asked for only as its
# keyed hash: a clear number in a URL would end up in proxy and browser histories.
_BY = ("card", "qr", "phone_hash")


def _keys(settings: Settings) -> IdentityKeys:
    k = settings.kiosk
    return IdentityKeys(qr_key=k.qr_key.get_secret_value().encode() if k.qr_key else None,
                        phone_key=None, skew_s=k.clock_skew_s)


def _member_json(member: Member) -> dict[str, object]:
    return {"member_id": member.id, "account_id": member.account_id,
            "display_name": member.display_name, "tier": member.tier}


def _lookup(request: web.Request) -> Lookup:
    given = [(by, request.query[by]) for by in _BY if request.query.get(by)]
    if len(given) != 1:
        raise web.HTTPBadRequest(text=f"give exactly one of {', '.join(_BY)}\n")
    by, value = given[0]
    if by == "card":
        return Lookup("card", value)
    if by == "phone_hash":
        return Lookup("phone_hash", value)
    keys = _keys(request.app[SETTINGS])
    try:
        return Lookup("member", verify_qr_token(keys.qr_key, value,
                                                request.app[LEDGER].now(), keys.skew_s))
    except IdentityError as exc:
        raise web.HTTPBadRequest(text=f"{exc.code}: {exc.msg}\n") from None


async def _member(request: web.Request, lookup: Lookup) -> Member:
    member = await request.app[READER].run(lambda conn: find_member(conn, lookup))
    if member is None:
        raise web.HTTPNotFound(text="no such member at this gateway\n")
    return member


async def lookup(request: web.Request, _: Caller) -> web.Response:
    return web.json_response(_member_json(await _member(request, _lookup(request))))


async def balance(request: web.Request, _: Caller) -> web.Response:
    member = await _member(request, Lookup("member", request.match_info["member_id"]))
    ledger = request.app[LEDGER]
    rows = await ledger.entries(member.account_id)
    points = ledger.balance_of(member.account_id, rows)
    return web.json_response({
        **_member_json(member), "as_of": points.as_of.isoformat(),
        "available": points.available, "confirmed": points.confirmed,
        "pending": points.pending, "locked": points.locked, "debt": points.debt,
        **expiring_fields((entry for entry, _ in rows), points.as_of, ledger.rules.tz)})


async def history(request: web.Request, _: Caller) -> web.Response:
    member = await _member(request, Lookup("member", request.match_info["member_id"]))
    journal = await request.app[LEDGER].history(member.account_id)
    lines = [{"at": line.at.isoformat(), "event": line.event, "entry_id": line.entry_id,
              "available_delta": line.available_delta, "locked_delta": line.locked_delta,
              "available": line.available, "locked": line.locked, "debt": line.debt,
              "reason": line.reason} for line in journal]
    return web.json_response({**_member_json(member), "history": lines})
