"""Tiers live, through the whole app with a till on a real pty.

A member who spends 600 yuan is silver at once (the kiosk's balance reply and the till's
authorize reply say so, with silver's benefits) and the next sale earns at silver's
multiplier; offline too. With the real central over loopback, central confirms the tier,
and once an anniversary passes without spend (central's clock) it takes one step down,
which reaches the edge by the change feed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from cloud_api.client import CentralClient
from cloud_api.server.sqlite_store import SqliteStorage
from devices.kiosk.protocol import REPLIES, decode_request, default_contract
from gateway.app.keys import CENTRAL, LEDGER, READER, WRITER
from gateway.ids import new_ulid
from gateway.members import IdentityKeys
from gateway.operations.service import Operations
from tests.cloud_api.central import MALL, running_central
from tests.conftest import free_port
from tests.pos.helpers import RULES
from tests.pos.ptys import SOCAT
from tests.pos.tills import ACCOUNT, MEMBER, Clock, gateway_and_till, give_points

pytestmark = pytest.mark.skipif(SOCAT is None, reason="socat is not installed")
SILVER = RULES.tiers.tiers[1]


def sale_at(no: str, total: int, at: datetime) -> dict[str, Any]:
    return {"receipt_no": no, "occurred_at": at.astimezone(RULES.tz).isoformat(),
            "total_fen": total, "member_code": MEMBER}


def not_member_day(clock: Clock) -> datetime:
    """A recent sale time that is not on member day (double points would hide the tier)."""
    at = clock.now - timedelta(hours=1)
    while at.astimezone(RULES.tz).day == RULES.earn.member_day:
        at -= timedelta(days=1)
    return at


async def kiosk(app: web.Application, op: str, data: dict[str, Any]) -> dict[str, Any]:
    """A kiosk request answered by the operations the kiosk service runs."""
    ops = Operations(ledger=app[LEDGER], reader=app[READER], writer=app[WRITER],
                     keys=IdentityKeys(None, None, 30), replies=REPLIES,
                     central_online=app[CENTRAL].online, claim_days=7, sessions=None,
                     site="gw-test")
    payload = json.dumps({"v": 1, "id": new_ulid(), "ts": "2026-03-01T04:00:00.000Z",
                          "boot": 1, "seq": 1, "data": data}).encode()
    reply, _ = await ops.handle(
        decode_request(default_contract(), "k1", op, payload).operation())
    return reply


async def earned(app: web.Application, receipt_no: str) -> int:
    return int(await app[READER].run(lambda c: c.execute(
        "SELECT points FROM ledger WHERE kind = 'EARN' AND source_key LIKE ?",
        (f"%:{receipt_no}:%",)).fetchone()[0]))


async def tier_at_edge(app: web.Application) -> tuple[str, str | None, str | None]:
    row = await app[READER].run(lambda c: c.execute(
        "SELECT tier, tier_anniversary, tier_provisional_at FROM members WHERE id = ?",
        (MEMBER,)).fetchone())
    return row[0], row[1], row[2]


async def spend_600_then_320(app: web.Application, till: Any, clock: Clock) -> None:
    at = not_member_day(clock)
    first = await till.send(sale_at("T-1", 60_000, at))
    assert first.ok
    assert (await tier_at_edge(app))[0] == "silver"
    second = await till.send(sale_at("T-2", 32_000, at + timedelta(minutes=5)))
    assert second.ok
    assert await earned(app, "T-1") == 600  # earned at normal, the tier it had
    assert await earned(app, "T-2") == 352  # 320 yuan at silver x1.10


async def until(check: Callable[[], Awaitable[bool]], limit_s: float = 20) -> None:
    async with asyncio.timeout(limit_s):
        while not await check():  # noqa: ASYNC110 - polls the database and central
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("mode", ["jsonl", "framed"])
async def test_600_yuan_makes_silver_at_once_and_the_next_sale_earns_at_silver(
        tmp_path: Path, mode: str) -> None:
    clock = Clock()
    async with gateway_and_till(tmp_path, mode, clock) as (app, till):
        await spend_600_then_320(app, till, clock)
        balance = await kiosk(app, "balance.query", {"member_id": MEMBER})
        assert balance["status"] == "ok", balance
        want = {"tier": "silver", "tier_name": SILVER.name, "discount_pct": 5,
                "parking_hours": 2, "earn_multiplier_pct": 110}
        assert {k: balance["data"].get(k) for k in want} == want
        await app[WRITER].submit(lambda c: c.execute(
            "INSERT INTO member_identifiers (kind, value, member_id) VALUES "
            "('card', 'CARD-55', ?)", (MEMBER,)))
        identified = await kiosk(app, "member.identify", {"by": "card", "value": "CARD-55"})
        assert identified["status"] == "ok", identified
        assert {k: identified["data"].get(k) for k in want} == want
        await give_points(app, 100)
        reply = await till.send({"type": "authorize", "request_id": "R-pay",
                                 "member_code": MEMBER, "total_fen": 5000, "points": 50,
                                 "coupon_codes": [], "lines": []})
        assert reply.body is not None and reply.body["status"] == "granted", reply.body
        assert reply.body["tier"] == "silver"
        assert reply.body["discount_pct"] == 5 and reply.body["parking_hours"] == 2
        # The change is a fact with its reason, on its way to central.
        rows = await app[READER].run(lambda c: c.execute(
            "SELECT from_tier, to_tier, direction, origin, confirmed FROM tier_changes"
        ).fetchall())
        assert rows == [("normal", "silver", "upgrade", "edge", None)]
        events = await app[READER].run(lambda c: c.execute(
            "SELECT count(*) FROM outbox WHERE event_type = 'tier.changed'").fetchone()[0])
        assert events == 1


async def test_offline_the_upgrade_still_applies(tmp_path: Path) -> None:
    clock = Clock()
    unreachable = {"central": {"url": f"http://127.0.0.1:{free_port()}", "token": "t",
                               "timeout_s": 0.5},
                   "sync": {"push_interval_s": 0.05, "backoff_initial_s": 0.05,
                            "backoff_max_s": 0.2}}
    async with gateway_and_till(tmp_path, "jsonl", clock, central=unreachable) as (app, till):
        assert not app[CENTRAL].online()
        await spend_600_then_320(app, till, clock)
        tier, _, provisional = await tier_at_edge(app)
        assert tier == "silver" and provisional is not None


async def test_central_confirms_then_an_anniversary_without_spend_steps_down(
        tmp_path: Path) -> None:
    edge_clock = Clock()
    central_now = [edge_clock.now]
    storage = SqliteStorage(tmp_path / "central.db", now=lambda: central_now[0])
    async with running_central(storage) as central, \
            CentralClient(central.url, central.admin_token, timeout_s=5) as admin:
        await admin.create_member(MALL, {"member_id": MEMBER, "account_id": ACCOUNT})
        synced = {"central": {"url": central.url, "token": central.gateway_token,
                              "timeout_s": 5.0},
                  "sync": {"long_poll_s": 1, "push_interval_s": 0.05,
                           "backoff_initial_s": 0.05, "backoff_max_s": 0.5}}
        async with gateway_and_till(tmp_path, "jsonl", edge_clock,
                                    central=synced) as (app, till):
            async def from_central() -> bool:
                return (await tier_at_edge(app))[0] == "normal" and bool(
                    await app[READER].run(lambda c: c.execute(
                        "SELECT central_version FROM members WHERE id = ?",
                        (MEMBER,)).fetchone()[0]))
            await until(from_central)
            await spend_600_then_320(app, till, edge_clock)

            async def confirmed() -> bool:
                tier, _, provisional = await tier_at_edge(app)
                return tier == "silver" and provisional is None
            await until(confirmed)
            state = await admin.get_member(MALL, MEMBER)
            assert state["member"]["tier"] == "silver"
            anniversary = date.fromisoformat(state["member"]["tier_anniversary"])
            facts = await app[READER].run(lambda c: c.execute(
                "SELECT to_tier, confirmed FROM tier_changes").fetchall())
            assert facts == [("silver", "confirmed")]  # the edge's and central's: one fact

            async def pushed() -> bool:
                return not await app[READER].run(lambda c: c.execute(
                    "SELECT count(*) FROM outbox").fetchone()[0])
            await until(pushed)
            upgrades = [a for a in (await admin.get_member(MALL, MEMBER))["activity"]
                        if a["type"] == "tier.changed"]
            assert [a["payload"]["to_tier"] for a in upgrades] == ["silver"]
            assert await app[READER].run(lambda c: c.execute(
                "SELECT count(*) FROM dead_letters").fetchone()[0]) == 0

            # A year on, nothing spent since: central's daily review steps down one tier.
            central_now[0] = datetime.combine(anniversary + timedelta(days=2),
                                              datetime.min.time(), RULES.tz)
            assert await storage.review_tiers(MALL) == 1

            async def stepped_down() -> bool:
                return (await tier_at_edge(app))[0] == "normal"
            await until(stepped_down)
            assert (await admin.get_member(MALL, MEMBER))["member"]["tier"] == "normal"
            history = await app[READER].run(lambda c: c.execute(
                "SELECT to_tier, direction FROM tier_changes ORDER BY at").fetchall())
            assert history == [("silver", "upgrade"), ("normal", "downgrade")]
