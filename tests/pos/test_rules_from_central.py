"""Rules from central, through the whole app with a till on a real pty and the real
central over loopback (SQLite and PostgreSQL): a version published over central's HTTP
API changes the next sale's points at the edge, from its effective time only (the
gateway's clock moved by the test); one the gateway cannot parse is refused, kept as a
dead letter, shown by `sync status` and the sync part's health, and the old one stays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from cloud_api.client import CentralClient
from cloud_api.server.storage import Storage
from gateway.app.keys import CENTRAL, LEDGER, PARTS, READER, WRITER
from gateway.loyalty import LoyaltyRules
from gateway.loyalty.versions import rules_document
from sync.state import read_status
from tests.cloud_api.central import MALL, Central, running_central
from tests.cloud_api.fixtures import postgres_server, storage
from tests.pos.helpers import RULES
from tests.pos.ptys import SOCAT
from tests.pos.tills import ACCOUNT, MEMBER, Clock, Till, gateway_and_till, give_points

__all__ = ["postgres_server", "storage"]  # fixtures: central on each backend
pytestmark = pytest.mark.skipif(SOCAT is None, reason="socat is not installed")


def triple(version: str) -> dict[str, Any]:
    """The default rules at 3 points a yuan, with no member day (so the day a test runs
    on cannot double them)."""
    document = rules_document(LoyaltyRules())
    document["earn"] |= {"points_per_yuan": 3, "member_day": 0}
    return document | {"version": version}


def plain_day(at: datetime) -> datetime:
    """`at`, or the day before it if it is member day under the default rules."""
    while at.astimezone(RULES.tz).day == RULES.earn.member_day:
        at -= timedelta(days=1)
    return at


def sale(no: str, total: int, at: datetime) -> dict[str, Any]:
    return {"receipt_no": no, "occurred_at": at.astimezone(RULES.tz).isoformat(),
            "total_fen": total, "member_code": MEMBER}


async def until(check: Callable[[], Awaitable[bool]], limit_s: float = 20) -> None:
    async with asyncio.timeout(limit_s):
        while not await check():  # noqa: ASYNC110 - polls the store and central
            await asyncio.sleep(0.05)


async def earn_of(app: web.Application, receipt_no: str) -> tuple[int, str]:
    """Points and rule version of the sale's EARN entry at the edge."""
    row = await app[READER].run(lambda c: c.execute(
        "SELECT points, rule_version FROM ledger WHERE kind = 'EARN' AND source_key LIKE ?",
        (f"%:{receipt_no}:%",)).fetchone())
    return int(row[0]), str(row[1])


async def rules_versions_at_edge(app: web.Application) -> int:
    return int(await app[READER].run(lambda c: c.execute(
        "SELECT count(*) FROM config_versions WHERE kind = 'loyalty'").fetchone()[0]))


@asynccontextmanager
async def mall(tmp_path: Path, storage: Storage, clock: Clock) -> AsyncIterator[
        tuple[Central, CentralClient, web.Application, Till]]:
    """Central with the member, and the gateway syncing with it, the member arrived."""
    async with running_central(storage) as central, \
            CentralClient(central.url, central.admin_token, timeout_s=5) as admin:
        await admin.create_member(MALL, {"member_id": MEMBER, "account_id": ACCOUNT,
                                         "tier": "normal"})
        synced = {"central": {"url": central.url, "token": central.gateway_token,
                              "timeout_s": 5.0},
                  "sync": {"long_poll_s": 1, "push_interval_s": 0.05,
                           "backoff_initial_s": 0.05, "backoff_max_s": 0.5}}
        async with gateway_and_till(tmp_path, "jsonl", clock, central=synced) as (app, till):
            async def arrived() -> bool:
                return bool(await app[READER].run(lambda c: c.execute(
                    "SELECT central_version FROM members WHERE id = ?",
                    (MEMBER,)).fetchone()[0]))
            await until(arrived)
            yield central, admin, app, till


async def test_a_published_version_changes_the_next_sale_and_reaches_central(
        tmp_path: Path, storage: Storage) -> None:
    clock = Clock()
    async with mall(tmp_path, storage, clock) as (_, admin, app, till):
        at = plain_day(clock.now - timedelta(hours=1))
        assert (await till.send(sale("R-1", 10_000, at))).ok
        assert await earn_of(app, "R-1") == (100, RULES.version)  # the local settings

        await admin.put_config(MALL, "loyalty", "triple-1", triple("triple-1"),
                               effective_at=(at + timedelta(minutes=1)).isoformat())

        async def applied() -> bool:
            return await rules_versions_at_edge(app) == 1
        await until(applied)
        assert (await till.send(sale("R-2", 10_000, at + timedelta(minutes=2)))).ok
        assert await earn_of(app, "R-2") == (300, "triple-1")
        # A sale rung up before the version's time, sent late, keeps the rules of its time.
        assert (await till.send(sale("R-0", 10_000, at - timedelta(minutes=5)))).ok
        assert await earn_of(app, "R-0") == (100, RULES.version)

        async def at_central() -> bool:
            ledger = (await admin.get_member(MALL, MEMBER))["ledger"]
            return {(e["points"], e["rule_version"]) for e in ledger if e["kind"] == "EARN"} \
                == {(100, RULES.version), (300, "triple-1")}
        await until(at_central)


async def test_a_future_version_applies_only_from_its_time(
        tmp_path: Path, storage: Storage) -> None:
    clock = Clock()
    async with mall(tmp_path, storage, clock) as (_, admin, app, till):
        start = plain_day(clock.now)
        clock.now = start
        from_ = start + timedelta(days=1)
        await admin.put_config(MALL, "loyalty", "next-week", triple("next-week"),
                               effective_at=from_.isoformat())

        async def arrived() -> bool:
            return await rules_versions_at_edge(app) == 1
        await until(arrived)
        status = await app[READER].run(lambda c: read_status(c, clock.now))
        assert status.rules_in_force is None  # the local settings, still
        assert [u["version"] for u in status.rules_upcoming] == ["next-week"]
        assert (await till.send(sale("F-1", 10_000, start - timedelta(minutes=1)))).ok
        assert await earn_of(app, "F-1") == (100, RULES.version)
        assert app[LEDGER].rules.version == RULES.version

        clock.now = from_ + timedelta(hours=1)
        assert app[LEDGER].rules.version == "next-week"
        assert (await till.send(sale("F-2", 10_000, clock.now - timedelta(minutes=1)))).ok
        assert await earn_of(app, "F-2") == (300, "next-week")
        status = await app[READER].run(lambda c: read_status(c, clock.now))
        assert status.rules_in_force == "next-week" and status.rules_upcoming == []


async def test_a_version_the_gateway_cannot_parse_is_refused_and_the_old_one_stays(
        tmp_path: Path, storage: Storage) -> None:
    clock = Clock()
    async with mall(tmp_path, storage, clock) as (central, admin, app, till):
        at = plain_day(clock.now - timedelta(hours=1))
        await admin.put_config(MALL, "loyalty", "triple-1", triple("triple-1"),
                               effective_at=(at - timedelta(days=1)).isoformat())
        # A newer central's rules with a field this gateway does not know, as it would
        # send them (central's own check would refuse them, so they go in behind it).
        unknown = triple("next") | {"earn": triple("next")["earn"] | {"per_visit": 1}}
        await central.storage.put_document(MALL, "config", "loyalty", {
            "version": "next", "effective_at": (at - timedelta(hours=1)).isoformat(),
            "payload": unknown})

        async def refused() -> bool:
            return bool(await app[READER].run(lambda c: c.execute(
                "SELECT count(*) FROM dead_letters WHERE source = 'sync'").fetchone()[0]))
        await until(refused)
        letter = await app[READER].run(lambda c: c.execute(
            "SELECT error_code, error FROM dead_letters WHERE source = 'sync'").fetchone())
        assert letter[0] == "invalid_rules" and "per_visit" in letter[1], letter
        assert await rules_versions_at_edge(app) == 1
        assert app[LEDGER].rules.version == "triple-1"
        assert (await till.send(sale("B-1", 10_000, at))).ok
        assert await earn_of(app, "B-1") == (300, "triple-1")

        status = await app[READER].run(lambda c: read_status(c, clock.now))
        assert status.refused_changes == 1 and status.rules_in_force == "triple-1"
        assert status.first_refused is not None and "per_visit" in status.first_refused
        part = app[PARTS].get("sync")
        assert part is not None
        health = part.status()
        assert health.state.value == "degraded", health
        assert "per_visit" in (health.reason or "")


async def test_offline_the_edge_holds_central_s_grant_to_the_rules_cap(
        tmp_path: Path) -> None:
    """Central granted more than the rules in force allow (granted under other rules):
    offline, a till gets no more than `offline_allowance_cap`."""
    capped = {"redemption": {"offline_allowance_cap": 120}}
    async with gateway_and_till(tmp_path, "jsonl", loyalty=capped) as (app, till):
        await give_points(app, 1000)
        app[CENTRAL].configured = True  # central configured and not heard from: offline
        await app[WRITER].submit(lambda c: c.execute(
            "INSERT INTO offline_allowances (account_id, points, granted_seq, granted_at) "
            "VALUES (?, 500, 0, '2026-01-01')", (ACCOUNT,)))
        reply = (await till.send({"type": "authorize", "request_id": "pay-1",
                                  "member_code": MEMBER, "total_fen": 50_000, "points": 300,
                                  "coupon_codes": [], "lines": []})).body
        assert reply is not None and reply["status"] == "granted", reply
        assert reply["points"] == 120
