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
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from cloud_api.server import metrics
from cloud_api.server.batch import parse_event
from cloud_api.server.codes import Code
from cloud_api.server.contract import Contract, JsonBodyError, parse_json_object
from cloud_api.server.delivery import Deliverer, remind_forever
from cloud_api.server.enrolment import CodeSender
from cloud_api.server.http_errors import error, errors_middleware
from cloud_api.server.jobs import every_hour_per_mall
from cloud_api.server.limits import CentralLimits
from cloud_api.server.notices import ADJUST_SOURCE
from cloud_api.server.storage import SNAPSHOT_PHASES, Principal, Storage, Verdict
from cloud_api.server.webhooks import DeliveryPolicy, Webhook
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
from gateway.loyalty.versions import RULES_KIND
from gateway.loyalty.wire import entry_to_wire

log = logging.getLogger(__name__)

STORAGE = web.AppKey("storage", Storage)
NOTIFIER: web.AppKey[Notifier] = web.AppKey("notifier")
CLOCK = web.AppKey("clock", HybridClock)
CONTRACT = web.AppKey("contract", Contract)
WEBHOOKS: web.AppKey[Mapping[str, Sequence[Webhook]]] = web.AppKey("webhooks")
DELIVERER: web.AppKey[Deliverer | None] = web.AppKey("deliverer")
PRINCIPAL = web.RequestKey("principal", Principal)

MAX_PAGE = 5000
# A long poll is held at most this long, below common proxy idle timeouts (60 s).
MAX_WAIT_S = 30.0
SNAPSHOT_PAGE = 2000
# The snapshot's header says which lines follow: 2 added the coupon phases, which a
# gateway that reads format 1 would refuse as lines of an unknown type.
SNAPSHOT_FORMAT = 2
MAX_NOTICES_PAGE = 1000
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
    change feed from, then every member, ledger entry, coupon campaign and coupon (with
    its facts), each phase in key order (`SNAPSHOT_PHASES`), then an end
    line. A broken download resumes with `?cursor=&phase=&after=` from its last line."""
    principal = principal_of(request)
    storage = request.app[STORAGE]
    cursor = int_param(request, "cursor", -1, -1, 2**62)
    phase = request.query.get("phase", "member")
    if phase not in SNAPSHOT_PHASES:
        raise error(400, Code.INVALID_PARAMETER,
                    f"phase must be one of {', '.join(SNAPSHOT_PHASES)}")
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

    # The rules versions ride in the header: their changes may be purged from the log.
    await send([json.dumps({"type": "header", "cursor": str(cursor), "format": SNAPSHOT_FORMAT,
                            "rule_versions": await storage.rule_documents(principal.mall_id)},
                           ensure_ascii=False)])
    for kind in SNAPSHOT_PHASES[SNAPSHOT_PHASES.index(phase):]:
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
    now = datetime.now(UTC)
    entry = redemption_entry(account_id=member["account_id"], member_id=member["member_id"],
                             request_id=request_id, cost=cost, item=item, at=now,
                             rules=await rules_at(request, now), actor="central")
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
    now = datetime.now(UTC)
    rules = await rules_at(request, now)
    entry = Entry(kind=EntryKind.ADJUST, points=points,
                  account_id=state["member"]["account_id"],
                  member_id=state["member"]["member_id"], source_type=ADJUST_SOURCE,
                  source_key=request_id, reason=reason, effective_at=now,
                  expires_at=expiry_for(now, rules.expiry, rules.tz) if points > 0 else None,
                  rule_version=rules.version, actor="admin")
    return await _record(request, entry)


async def checkin(request: web.Request) -> web.Response:
    """The mini-program's daily check-in: the same entry as a kiosk's check-in of the same
    local day, so the member gets the points once whichever channel is first (201 checked
    in now, 200 already checked in today)."""
    mall = request.match_info["mall"]
    entry, verdict = await request.app[STORAGE].checkin(mall, request.match_info["member"])
    if verdict.status == "accepted":
        request.app[NOTIFIER].notify(mall)
    state = await request.app[STORAGE].get_member(mall, request.match_info["member"])
    return web.json_response(
        {"verdict": verdict.as_json(), "balance": state["balance"],
         "date": entry.source_key.rsplit(":", 1)[-1], "points": entry.points,
         "entry": entry_to_wire(entry)},
        status=201 if verdict.status == "accepted" else 200)


async def put_offer(request: web.Request) -> web.Response:
    mall = request.match_info["mall"]
    seq = await request.app[STORAGE].put_document(mall, "offer", request.match_info["offer"],
                                                  await read_body(request, "putOffer"))
    request.app[NOTIFIER].notify(mall)
    return web.json_response({"server_seq": seq})


async def rules_at(request: web.Request, at: datetime) -> LoyaltyRules:
    """The mall's loyalty rules in force at `at` (its published versions, else the
    server's own)."""
    return (await request.app[STORAGE].rule_book(request.match_info["mall"])).at(at)


async def put_config(request: web.Request) -> web.Response:
    """Publish a configuration document as a new version; `loyalty` rules are checked
    against their schema and kept as a version in force from its effective time."""
    mall = request.match_info["mall"]
    body = await read_body(request, "putConfig")
    kind, storage = request.match_info["kind"], request.app[STORAGE]
    if kind == RULES_KIND:
        published = await storage.publish_rules(mall, body["version"], body["payload"],
                                                body.get("effective_at"))
        answer = published.as_json()
    else:
        answer = {"server_seq": await storage.put_document(mall, "config", kind, body)}
    request.app[NOTIFIER].notify(mall)
    return web.json_response(answer)


async def get_config(request: web.Request) -> web.Response:
    """The mall's versions of a configuration kind as central keeps them; only `loyalty`
    rules are kept as versions."""
    if request.match_info["kind"] != RULES_KIND:
        raise error(404, Code.NOT_FOUND, f"central keeps versions of {RULES_KIND!r} only")
    versions = await request.app[STORAGE].list_rules(request.match_info["mall"])
    in_force = next((v["version"] for v in versions if v["in_force"]), None)
    return web.json_response({"versions": versions, "in_force": in_force,
                              "server_time": server_time()})


# -- member notices and webhooks ---------------------------------------------------------

async def _notices_page(request: web.Request, member_id: str | None) -> web.Response:
    cursor = int_param(request, "cursor", 0, 0, 2**62)
    limit = int_param(request, "limit", 100, 1, MAX_NOTICES_PAGE)
    notices, next_cursor = await request.app[STORAGE].notices(
        request.match_info["mall"], member_id, cursor, limit)
    return web.json_response({"notices": notices, "next_cursor": str(next_cursor)})


async def list_notices(request: web.Request) -> web.Response:
    """The mall's member notices in the order central kept them, by cursor."""
    return await _notices_page(request, None)


async def member_notices(request: web.Request) -> web.Response:
    return await _notices_page(request, request.match_info["member"])


async def webhook_status(request: web.Request) -> web.Response:
    """The mall's configured webhooks and how many deliveries each has in each state."""
    mall = request.match_info["mall"]
    counts = await request.app[STORAGE].delivery_counts(mall)
    hooks = request.app[WEBHOOKS].get(mall, [])
    names = sorted({h.name for h in hooks} | set(counts))
    return web.json_response({"webhooks": [
        {"name": name, "configured": any(h.name == name for h in hooks),
         "deliveries": counts.get(name, {"pending": 0, "delivered": 0, "dead": 0})}
        for name in names]})


async def dead_deliveries(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 100, 1, MAX_NOTICES_PAGE)
    return web.json_response({"dead": await request.app[STORAGE].dead_deliveries(
        request.match_info["mall"], limit)})


async def retry_dead(request: web.Request) -> web.Response:
    """Dead deliveries pending again: those of the notices named, or all of them."""
    body = await read_body(request, "retryDeadDeliveries")
    retried = await request.app[STORAGE].retry_dead(request.match_info["mall"],
                                                    body.get("notice_ids"))
    return web.json_response({"retried": retried})


async def mall_metrics(request: web.Request) -> web.Response:
    """The mall's webhook deliveries by state and this worker's attempts, for Prometheus."""
    mall = request.match_info["mall"]
    deliverer = request.app[DELIVERER]
    attempts: Counter[tuple[str, str]] = Counter()
    if deliverer is not None:
        for (of_mall, webhook, outcome), count in deliverer.counts.items():
            if of_mall == mall:
                attempts[(webhook, outcome)] += count
    body = metrics.render(await request.app[STORAGE].delivery_counts(mall), attempts)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "server_time": server_time()})


async def purge_forever(storage: Storage, retention_s: float) -> None:
    """Drop change-log rows and notices (delivered or dead everywhere) past the
    retention, once an hour."""
    async def purge(mall_id: str) -> None:
        purged = await storage.purge_changes(mall_id, retention_s)
        if purged:
            log.info("mall %s: %d change-log rows past retention purged", mall_id, purged)
        notices = await storage.purge_notices(mall_id, retention_s)
        if notices:
            log.info("mall %s: %d notices past retention purged", mall_id, notices)

    await every_hour_per_mall(storage, "the retention purge", purge)


async def review_tiers_forever(storage: Storage) -> None:
    """Review the tier anniversaries that are over, once an hour: a review decides by whole
    past days, so the hours after the first of a day change nothing."""
    async def review(mall_id: str) -> None:
        downgraded = await storage.review_tiers(mall_id)
        if downgraded:
            log.info("mall %s: %d members one tier down at their anniversary",
                     mall_id, downgraded)

    await every_hour_per_mall(storage, "the tier review", review)


async def grant_birthdays_forever(storage: Storage, notifier: Notifier) -> None:
    """The birthday job: the year's birthday gift to every member whose birthday window is
    today, once an hour, so a gift is there early in the day (a gift is one entry per
    member and year: the hours after the first, and a gateway that gave it first, add
    nothing)."""
    async def grant(mall_id: str) -> None:
        granted = await storage.grant_birthdays(mall_id)
        if granted:
            notifier.notify(mall_id)
            log.info("mall %s: %d birthday gifts granted", mall_id, len(granted))

    await every_hour_per_mall(storage, "the birthday gifts", grant)


def create_central_app(
    storage: Storage, *,
    middlewares: Iterable[Callable[..., Awaitable[web.StreamResponse]]] = (),
    retention_s: float | None = None, limits: CentralLimits | None = None,
    review_tiers: bool = False, grant_birthdays: bool = False,
    webhooks: Mapping[str, Sequence[Webhook]] | None = None,
    delivery: DeliveryPolicy | None = None, remind_expiry: bool = False,
    code_sender: CodeSender | None = None,
) -> web.Application:
    """The central API over `storage`; the app opens and closes the storage.

    `middlewares` run before authentication (tests use them to inject faults).
    `retention_s` turns on the hourly purge of the change log (None keeps everything).
    `limits`: what a request, a batch and an entry may hold (the defaults when None).
    `review_tiers` turns on the hourly review of tier anniversaries (`mallgate central
    serve` does; tests call `Storage.review_tiers` with their own clock).
    `grant_birthdays` turns on the hourly birthday job (`mallgate central serve` does;
    tests call `Storage.grant_birthdays` with their own clock).
    `webhooks`: each mall's webhooks, delivered to by a background `Deliverer` (none: no
    delivery; notices are still kept and readable). `remind_expiry` turns on the hourly
    expiry reminder job (`mallgate central serve` does; tests call
    `Storage.find_expiry_reminders` with their own clock).
    `code_sender` delivers enrolment codes (None: a log line with the number masked)."""
    contract = Contract(limits)
    app = web.Application(
        client_max_size=contract.limits.max_body_bytes,
        middlewares=[*middlewares, errors_middleware(contract.limits.max_body_bytes),
                     auth_middleware])
    app[CONTRACT] = contract
    app[STORAGE] = storage
    app[NOTIFIER] = Notifier()
    app[CLOCK] = HybridClock("central")
    app[WEBHOOKS] = webhooks or {}
    app[DELIVERER] = Deliverer(storage, app[WEBHOOKS], delivery) if webhooks else None

    async def storage_context(app: web.Application) -> AsyncIterator[None]:
        await storage.open()
        purge = (asyncio.create_task(purge_forever(storage, retention_s), name="purge")
                 if retention_s is not None else None)
        review = (asyncio.create_task(review_tiers_forever(storage), name="tier-review")
                  if review_tiers else None)
        birthdays = (asyncio.create_task(grant_birthdays_forever(storage, app[NOTIFIER]),
                                         name="birthday-gifts")
                     if grant_birthdays else None)
        remind = (asyncio.create_task(remind_forever(storage), name="expiry-reminders")
                  if remind_expiry else None)
        deliverer = app[DELIVERER]
        deliver = (asyncio.create_task(deliverer.run(), name="webhook-delivery")
                   if deliverer is not None else None)
        yield
        for task in (purge, review, birthdays, remind, deliver):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await storage.close()

    app.cleanup_ctx.append(storage_context)
    _add_routes(app, code_sender)
    return app


def _add_routes(app: web.Application, code_sender: CodeSender | None) -> None:
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
    app.router.add_post(member + "/{member}/checkins", checkin)
    app.router.add_put(mall + "/offers/{offer}", put_offer)
    app.router.add_put(mall + "/config/{kind}", put_config)
    app.router.add_get(mall + "/config/{kind}", get_config)
    app.router.add_get(mall + "/notices", list_notices)
    app.router.add_get(member + "/{member}/notices", member_notices)
    app.router.add_get(mall + "/webhooks", webhook_status)
    app.router.add_get(mall + "/webhooks/dead", dead_deliveries)
    app.router.add_post(mall + "/webhooks/dead:retry", retry_dead)
    app.router.add_get(mall + "/metrics", mall_metrics)
    # Imported here: these route modules read this module's keys and helpers.
    from cloud_api.server import coupon_routes  # noqa: PLC0415
    from cloud_api.server.enrolment_routes import add_enrolment_routes  # noqa: PLC0415

    add_enrolment_routes(app, gw, code_sender)
    coupon_routes.add_routes(app.router, mall)
