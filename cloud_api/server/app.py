"""The reference central member API: aiohttp handlers over a `Storage`.

Every route but `/healthz` needs a bearer token. A gateway token reaches only its own
`/v1/gateways/{gw}/...` routes and its mall's data; a back-office (admin) token reaches
its mall's `/v1/malls/{mall}/...` routes. Every error has one shape:
`{"error": {"code", "message", "details"}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from cloud_api.server.batch import parse_event
from cloud_api.server.codes import Code
from cloud_api.server.contract import Contract, JsonBodyError, parse_json_object
from cloud_api.server.http_errors import error, errors_middleware
from cloud_api.server.limits import CentralLimits
from cloud_api.server.storage import Principal, Storage, Verdict
from gateway.loyalty import (
    Entry,
    EntryKind,
    InsufficientPoints,
    InvalidPhone,
    LoyaltyError,
    LoyaltyRules,
    redemption_entry,
)
from gateway.loyalty.calendar import expiry_for
from gateway.loyalty.hlc import HybridClock
from gateway.loyalty.phones import normalise_phone

log = logging.getLogger(__name__)

STORAGE = web.AppKey("storage", Storage)
RULES = web.AppKey("rules", LoyaltyRules)
NOTIFIER: web.AppKey[Notifier] = web.AppKey("notifier")
CLOCK = web.AppKey("clock", HybridClock)
CONTRACT = web.AppKey("contract", Contract)
PRINCIPAL = web.RequestKey("principal", Principal)

MAX_PAGE = 5000
# A long poll is held at most this long, below common proxy idle timeouts (60 s).
MAX_WAIT_S = 30.0
SNAPSHOT_PAGE = 2000
PURGE_INTERVAL_S = 3600.0
TIER_REVIEW_INTERVAL_S = 3600.0
DEFAULT_RETENTION_DAYS = 90


class Notifier:
    """Wakes long polls of a mall when a change is committed (within this process; other
    workers' changes are seen at the next re-check)."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, mall_id: str) -> asyncio.Event:
        return self._events.setdefault(mall_id, asyncio.Event())

    def notify(self, mall_id: str) -> None:
        self._events.pop(mall_id, asyncio.Event()).set()


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    if request.path == "/healthz":
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    principal = None
    if scheme.lower() == "bearer" and token:
        principal = await request.app[STORAGE].authenticate(token.strip())
    if principal is None:
        raise error(401, Code.UNAUTHORIZED, "a valid bearer token is required")
    gateway = request.match_info.get("gw")
    mall = request.match_info.get("mall")
    if gateway is not None and (principal.scope != "gateway"
                                or principal.gateway_id != gateway):
        raise error(403, Code.FORBIDDEN, "this token is not for this gateway")
    if mall is not None and (principal.scope != "admin" or principal.mall_id != mall):
        raise error(403, Code.FORBIDDEN, "this token is not for this mall's back office")
    request[PRINCIPAL] = principal
    return await handler(request)


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


# Operations whose body is a member profile: their refusals say `invalid_member`.
MEMBER_OPERATIONS = frozenset({"createMember", "updateMember"})


async def read_body(request: web.Request, operation_id: str | None) -> dict[str, Any]:
    """The request's JSON object, checked against the operation's schema in the contract
    (None: parsed only; the caller checks the parts)."""
    try:
        body = parse_json_object(await request.read())
    except JsonBodyError as exc:
        raise error(400, Code.INVALID_JSON, str(exc)) from None
    if operation_id is not None:
        problem = request.app[CONTRACT].check_body(operation_id, body)
        if problem is not None:
            code = (Code.INVALID_MEMBER if operation_id in MEMBER_OPERATIONS
                    else Code.INVALID_REQUEST)
            raise error(400, code, problem.message, **problem.details())
    return body


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise error(400, Code.INVALID_PARAMETER, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise error(400, Code.INVALID_PARAMETER, f"{name} must be in {low}..{high}")
    return value


def server_time() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# -- gateway routes ---------------------------------------------------------------------

async def events_batch(request: web.Request) -> web.Response:
    principal = principal_of(request)
    # The batch is checked here; each event alone by `parse_event`, so that one bad event
    # gets its own verdict and never fails the others.
    events = (await read_body(request, None)).get("events")
    if not isinstance(events, list):
        raise error(400, Code.INVALID_BATCH, "events must be a list of events")
    contract = request.app[CONTRACT]
    if len(events) > contract.limits.max_batch_events:
        raise error(413, Code.TOO_MANY_EVENTS, "too many events in one batch",
                    limit=contract.limits.max_batch_events)
    verdicts = await request.app[STORAGE].accept_events(
        principal.mall_id, principal.gateway_id or "",
        [parse_event(event, contract) for event in events])
    if any(v.status == "accepted" for v in verdicts):
        request.app[NOTIFIER].notify(principal.mall_id)
    return web.json_response({"verdicts": [v.as_json() for v in verdicts],
                              "server_time": server_time()})


async def changes(request: web.Request) -> web.Response:
    principal = principal_of(request)
    cursor = int_param(request, "cursor", 0, 0, 2**62)
    limit = int_param(request, "limit", 500, 1, MAX_PAGE)
    wait = min(float(int_param(request, "wait", 0, 0, 3600)), MAX_WAIT_S)
    storage, notifier = request.app[STORAGE], request.app[NOTIFIER]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        woken = notifier.event(principal.mall_id)
        page = await storage.changes(principal.mall_id, cursor, limit, principal.gateway_id)
        remaining = deadline - loop.time()
        # A page that grants allowances is sent even with no change: the grants were
        # deferred ones come due, and the throttle counts them as given.
        if page.next_cursor > cursor or page.allowances or remaining <= 0:
            break
        # Re-check at least every second: another worker may have written.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), min(remaining, 1.0))
    return web.json_response({
        "changes": [{"server_seq": c.server_seq, "kind": c.kind, "key": c.key,
                     "payload": c.payload} for c in page.changes],
        "next_cursor": str(page.next_cursor), "head": str(page.head),
        "allowances": [{"account_id": a, "points": p} for a, p in page.allowances.items()],
        "server_time": server_time(),
    })


async def snapshot(request: web.Request) -> web.StreamResponse:
    """The mall's current state as gzip NDJSON: a header with the cursor to follow the
    change feed from, then every member and every ledger entry in key order, then an end
    line. A broken download resumes with `?cursor=&phase=&after=` from its last line."""
    principal = principal_of(request)
    storage = request.app[STORAGE]
    cursor = int_param(request, "cursor", -1, -1, 2**62)
    phase = request.query.get("phase", "member")
    if phase not in {"member", "ledger"}:
        raise error(400, Code.INVALID_PARAMETER, "phase must be member or ledger")
    after = request.query.get("after", "")
    if cursor < 0:
        cursor, phase, after = await storage.head(principal.mall_id), "member", ""
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                           "Content-Encoding": "gzip"})
    await response.prepare(request)
    # Level 1: most of gzip's saving on JSON at a fraction of the CPU of the default.
    gz = zlib.compressobj(1, zlib.DEFLATED, 31)

    async def send(lines: Iterable[str]) -> None:
        text = "".join(line + "\n" for line in lines)
        await response.write(gz.compress(text.encode()) + gz.flush(zlib.Z_SYNC_FLUSH))

    await send([json.dumps({"type": "header", "cursor": str(cursor), "format": 1})])
    phases = ["member", "ledger"]
    for kind in phases[phases.index(phase):]:
        key = after if kind == phase else ""
        while True:
            rows = await storage.snapshot_lines(principal.mall_id, kind, key, SNAPSHOT_PAGE)
            if not rows:
                break
            await send(line for _, line in rows)
            key = rows[-1][0]
    await send([json.dumps({"type": "end", "cursor": str(cursor)})])
    await response.write(gz.flush())
    await response.write_eof()
    return response


async def heartbeat(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await read_body(request, "heartbeat")
    storage = request.app[STORAGE]
    await storage.heartbeat(principal.mall_id, principal.gateway_id or "", body)
    return web.json_response({"server_time": server_time(),
                              "head": str(await storage.head(principal.mall_id))})


# -- back-office routes -----------------------------------------------------------------

async def create_member(request: web.Request) -> web.Response:
    mall = request.match_info["mall"]
    member = await request.app[STORAGE].create_member(
        mall, await read_body(request, "createMember"))
    request.app[NOTIFIER].notify(mall)
    return web.json_response(member, status=201)


async def find_members(request: web.Request) -> web.Response:
    """The service desk's search: the mall's members with the phone number given (in any
    usual spelling), found by its keyed hash; an empty list when there are none."""
    number = request.query.get("phone", "")
    try:
        normalise_phone(number)
    except InvalidPhone as exc:
        raise error(400, Code.INVALID_PARAMETER, f"phone: {exc}") from None
    members = await request.app[STORAGE].find_members_by_phone(request.match_info["mall"],
                                                               number)
    return web.json_response({"members": members})


async def get_member(request: web.Request) -> web.Response:
    return web.json_response(await request.app[STORAGE].get_member(
        request.match_info["mall"], request.match_info["member"]))


async def update_member(request: web.Request) -> web.Response:
    mall = request.match_info["mall"]
    member = await request.app[STORAGE].update_member(
        mall, request.match_info["member"], await read_body(request, "updateMember"))
    request.app[NOTIFIER].notify(mall)
    return web.json_response(member)


async def erase_member(request: web.Request) -> web.Response:
    mall = request.match_info["mall"]
    await request.app[STORAGE].erase_member(mall, request.match_info["member"])
    request.app[NOTIFIER].notify(mall)
    return web.Response(status=204)


def _central_stamp(app: web.Application, entry: Entry) -> Entry:
    now = datetime.now(UTC)
    return entry.stamped(origin_site="central", origin_seq=0,
                         hlc=str(app[CLOCK].stamp()), recorded_at=now)


async def _record(request: web.Request, entry: Entry) -> web.Response:
    verdict = await request.app[STORAGE].record_central(request.match_info["mall"],
                                                        _central_stamp(request.app, entry))
    return await _recorded(request, verdict)


async def _recorded(request: web.Request, verdict: Verdict) -> web.Response:
    """The reply to an entry made centrally: its verdict and the balance after it."""
    mall = request.match_info["mall"]
    if verdict.status == "rejected":
        raise error(422, Code.REDEMPTION_REFUSED, verdict.message or "",
                    reason=verdict.code)
    request.app[NOTIFIER].notify(mall)
    state = await request.app[STORAGE].get_member(mall, request.match_info["member"])
    return web.json_response({"verdict": verdict.as_json(), "balance": state["balance"]},
                             status=201 if verdict.status == "accepted" else 200)


async def redeem(request: web.Request) -> web.Response:
    """An online redemption (mini-program): needs the available balance, now."""
    body = await read_body(request, "redeemOnline")
    request_id, cost, item = body["request_id"], body["cost"], body.get("item", "gift")
    mall = request.match_info["mall"]
    member = (await request.app[STORAGE].get_member(mall, request.match_info["member"]))["member"]
    entry = redemption_entry(account_id=member["account_id"], member_id=member["member_id"],
                             request_id=request_id, cost=cost, item=item,
                             at=datetime.now(UTC), rules=request.app[RULES], actor="central")
    try:
        verdict = await request.app[STORAGE].redeem_online(
            mall, _central_stamp(request.app, entry))
    except InsufficientPoints as exc:
        raise error(422, Code.INSUFFICIENT_POINTS, str(exc)) from None
    except LoyaltyError as exc:
        raise error(422, Code.REDEMPTION_REFUSED, str(exc)) from None
    return await _recorded(request, verdict)


async def adjust(request: web.Request) -> web.Response:
    body = await read_body(request, "adjustPoints")
    request_id, points, reason = body["request_id"], body["points"], body["reason"]
    state = await request.app[STORAGE].get_member(request.match_info["mall"],
                                                  request.match_info["member"])
    rules, now = request.app[RULES], datetime.now(UTC)
    entry = Entry(kind=EntryKind.ADJUST, points=points,
                  account_id=state["member"]["account_id"],
                  member_id=state["member"]["member_id"], source_type="central.adjust",
                  source_key=request_id, reason=reason, effective_at=now,
                  expires_at=expiry_for(now, rules.expiry, rules.tz) if points > 0 else None,
                  rule_version=rules.version, actor="admin")
    return await _record(request, entry)


async def put_offer(request: web.Request) -> web.Response:
    mall = request.match_info["mall"]
    seq = await request.app[STORAGE].put_document(mall, "offer", request.match_info["offer"],
                                                  await read_body(request, "putOffer"))
    request.app[NOTIFIER].notify(mall)
    return web.json_response({"server_seq": seq})


async def put_config(request: web.Request) -> web.Response:
    """Publish a configuration document (e.g. `loyalty` rules) as a new version."""
    mall = request.match_info["mall"]
    body = await read_body(request, "putConfig")
    seq = await request.app[STORAGE].put_document(mall, "config", request.match_info["kind"],
                                                  body)
    request.app[NOTIFIER].notify(mall)
    return web.json_response({"server_seq": seq})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "server_time": server_time()})


async def purge_forever(storage: Storage, retention_s: float) -> None:
    """Drop change-log rows past the retention, once an hour."""
    while True:
        for mall_id in await storage.mall_ids():
            purged = await storage.purge_changes(mall_id, retention_s)
            if purged:
                log.info("mall %s: %d change-log rows past retention purged", mall_id, purged)
        await asyncio.sleep(PURGE_INTERVAL_S)


async def review_tiers_forever(storage: Storage) -> None:
    """Review the tier anniversaries that are over, once an hour: a review decides by whole
    past days, so the hours after the first of a day change nothing."""
    while True:
        for mall_id in await storage.mall_ids():
            try:
                downgraded = await storage.review_tiers(mall_id)
            except Exception:  # one mall's failure must not stop the others' reviews
                log.exception("mall %s: tier review failed; retried in an hour", mall_id)
                continue
            if downgraded:
                log.info("mall %s: %d members one tier down at their anniversary",
                         mall_id, downgraded)
        await asyncio.sleep(TIER_REVIEW_INTERVAL_S)


def create_central_app(
    storage: Storage, *, rules: LoyaltyRules | None = None,
    middlewares: Iterable[Callable[..., Awaitable[web.StreamResponse]]] = (),
    retention_s: float | None = None, limits: CentralLimits | None = None,
    review_tiers: bool = False,
) -> web.Application:
    """The central API over `storage`; the app opens and closes the storage.

    `middlewares` run before authentication (tests use them to inject faults).
    `retention_s` turns on the hourly purge of the change log (None keeps everything).
    `limits`: what a request, a batch and an entry may hold (the defaults when None).
    `review_tiers` turns on the hourly review of tier anniversaries (`mallgate central
    serve` does; tests call `Storage.review_tiers` with their own clock)."""
    contract = Contract(limits)
    app = web.Application(
        client_max_size=contract.limits.max_body_bytes,
        middlewares=[*middlewares, errors_middleware(contract.limits.max_body_bytes),
                     auth_middleware])
    app[CONTRACT] = contract
    app[STORAGE] = storage
    app[RULES] = rules or LoyaltyRules()
    app[NOTIFIER] = Notifier()
    app[CLOCK] = HybridClock("central")

    async def storage_context(app: web.Application) -> AsyncIterator[None]:
        await storage.open()
        purge = (asyncio.create_task(purge_forever(storage, retention_s), name="purge")
                 if retention_s is not None else None)
        review = (asyncio.create_task(review_tiers_forever(storage), name="tier-review")
                  if review_tiers else None)
        yield
        for task in (purge, review):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await storage.close()

    app.cleanup_ctx.append(storage_context)
    gw, mall, member = "/v1/gateways/{gw}", "/v1/malls/{mall}", "/v1/malls/{mall}/members"
    app.router.add_get("/healthz", healthz)
    app.router.add_post(gw + "/events:batch", events_batch)
    app.router.add_get(gw + "/changes", changes)
    app.router.add_get(gw + "/snapshot", snapshot)
    app.router.add_post(gw + "/heartbeat", heartbeat)
    app.router.add_post(member, create_member)
    app.router.add_get(member, find_members)
    app.router.add_get(member + "/{member}", get_member)
    app.router.add_patch(member + "/{member}", update_member)
    app.router.add_delete(member + "/{member}", erase_member)
    app.router.add_post(member + "/{member}/redemptions", redeem)
    app.router.add_post(member + "/{member}/adjustments", adjust)
    app.router.add_put(mall + "/offers/{offer}", put_offer)
    app.router.add_put(mall + "/config/{kind}", put_config)
    from cloud_api.server import coupon_routes  # noqa: PLC0415 - its handlers use this module

    coupon_routes.add_routes(app.router, mall)
    return app
