"""The birthday gift with a POS sale, through the whole app with a till on a real pty.

The member's first sale in their birthday month gives the gift with the sale, offline as
online. Given at the edge while central is out of reach and by central's birthday job in
the meantime, it is one entry once the two meet: central keeps one, the edge keeps one,
and the balances agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from cloud_api.client import CentralClient
from cloud_api.server.sqlite_store import SqliteStorage
from gateway.app.keys import LEDGER, READER, WRITER
from tests.cloud_api.central import MALL, start_central
from tests.conftest import free_port
from tests.pos.helpers import RULES
from tests.pos.ptys import SOCAT
from tests.pos.tills import ACCOUNT, MEMBER, Clock, gateway_and_till

pytestmark = pytest.mark.skipif(SOCAT is None, reason="socat is not installed")
GIFT = RULES.birthday.points
# 10 May 2026, noon in Shanghai: not member day (double points would blur the sums).
START = datetime(2026, 5, 10, 4, tzinfo=UTC)


def clock_at_start() -> Clock:
    clock = Clock()
    clock.now = START
    return clock


def sale(no: str, clock: Clock, total: int = 10_000) -> dict[str, Any]:
    return {"receipt_no": no, "occurred_at": clock.now.astimezone(RULES.tz).isoformat(),
            "total_fen": total, "member_code": MEMBER}


async def birthday_rows(app: web.Application) -> list[tuple[str, int, str]]:
    rows: list[tuple[str, int, str]] = await app[READER].run(lambda c: c.execute(
        "SELECT source_key, points, actor FROM ledger WHERE source_type = 'birthday' "
        "ORDER BY source_key").fetchall())
    return rows


async def set_birthday(app: web.Application, month: int, day: int) -> None:
    await app[WRITER].submit(lambda c: c.execute(
        "UPDATE members SET birth_month = ?, birth_day = ? WHERE id = ?",
        (month, day, MEMBER)))


async def until(check: Callable[[], Awaitable[bool]], limit_s: float = 20) -> None:
    async with asyncio.timeout(limit_s):
        while not await check():  # noqa: ASYNC110 - polls the database and central
            await asyncio.sleep(0.05)


async def test_the_first_sale_of_the_birthday_month_gives_the_gift_once(
        tmp_path: Path) -> None:
    clock = clock_at_start()
    async with gateway_and_till(tmp_path, "jsonl", clock) as (app, till):
        await set_birthday(app, 5, 31)
        assert (await till.send(sale("B-1", clock))).ok
        assert await birthday_rows(app) == [(f"{MEMBER}:2026", GIFT, "pos")]
        assert (await till.send(sale("B-2", clock))).ok
        assert len(await birthday_rows(app)) == 1
        balance = await app[LEDGER].balance(ACCOUNT)
        assert balance.available == 100 + 100 + GIFT  # two sales of 100 yuan and the gift
        # A sale outside the birthday month gives nothing; the next May's, the next gift.
        clock.now += timedelta(days=26)  # 5 June
        assert (await till.send(sale("B-3", clock))).ok
        assert len(await birthday_rows(app)) == 1
        clock.now += timedelta(days=335)  # 6 May 2027
        assert (await till.send(sale("B-4", clock))).ok
        assert [row[0] for row in await birthday_rows(app)] == [
            f"{MEMBER}:2026", f"{MEMBER}:2027"]


async def test_a_gift_given_at_the_edge_offline_and_by_central_is_one_entry(
        tmp_path: Path) -> None:
    clock = clock_at_start()
    local = clock.now.astimezone(RULES.tz)
    storage = SqliteStorage(tmp_path / "central.db", now=lambda: clock.now)
    await storage.open()
    tokens = (await storage.add_token(MALL, "gateway", "gw-test"),
              await storage.add_token(MALL, "admin", None))
    await storage.create_member(MALL, {"member_id": MEMBER, "account_id": ACCOUNT,
                                       "birth_month": local.month, "birth_day": 1})
    await storage.close()
    port = free_port()
    synced = {"central": {"url": f"http://127.0.0.1:{port}", "token": tokens[0],
                          "timeout_s": 2.0},
              "sync": {"long_poll_s": 1, "push_interval_s": 0.05,
                       "backoff_initial_s": 0.05, "backoff_max_s": 0.3}}
    async with gateway_and_till(tmp_path, "jsonl", clock, central=synced) as (app, till):
        # Central is out of reach: the sale gives the gift at the edge.
        await set_birthday(app, local.month, 1)
        assert (await till.send(sale("C-1", clock))).ok
        (edge_gift,) = await birthday_rows(app)
        assert edge_gift[2] == "pos"
        # Meanwhile central gives it by its birthday job.
        await storage.open()
        (central_gift,) = await storage.grant_birthdays(MALL)
        await storage.close()
        assert central_gift.entry_id == await app[READER].run(lambda c: c.execute(
            "SELECT entry_id FROM ledger WHERE source_type = 'birthday'").fetchone()[0])
        central = await start_central(storage, port=port, tokens=tokens)
        try:
            async with CentralClient(central.url, tokens[1], timeout_s=5) as admin:
                async def met() -> bool:
                    pushed = not await app[READER].run(lambda c: c.execute(
                        "SELECT count(*) FROM outbox").fetchone()[0])
                    pulled = await app[READER].run(lambda c: c.execute(
                        "SELECT central_version FROM members WHERE id = ?",
                        (MEMBER,)).fetchone()[0])
                    return pushed and bool(pulled) and (await admin.get_member(
                        MALL, MEMBER))["balance"]["available"] == 100 + GIFT
                await until(met)
                state = await admin.get_member(MALL, MEMBER)
                births = [e for e in state["ledger"] if e["source_type"] == "birthday"]
                assert [e["actor"] for e in births] == ["system"]  # central's, first there
                assert await birthday_rows(app) == [edge_gift]  # the edge keeps its own
                edge = await app[LEDGER].balance(ACCOUNT)
                assert edge.available == state["balance"]["available"] == 100 + GIFT
                assert await app[READER].run(lambda c: c.execute(
                    "SELECT count(*) FROM dead_letters").fetchone()[0]) == 0
        finally:
            await central.stop()
