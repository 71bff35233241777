"""One check-in a day across channels: a kiosk (the app over a real mosquitto) and the
mini-program (central's API over loopback) make the same entry, so whichever is first,
the member gets the points once, and both ends agree on the balance."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cloud_api.client import CentralClient
from cloud_api.server.sqlite_store import SqliteStorage
from devices.mqtt.broker import Mosquitto
from gateway.app.keys import LEDGER, READER
from gateway.settings import Settings
from tests.cloud_api.central import MALL, running_central
from tests.kiosk.helpers import Clock, kiosk, kiosk_settings_data, running_gateway

SHANGHAI = ZoneInfo("Asia/Shanghai")
POINTS = 5  # the default check-in points


async def until(check: Callable[[], Awaitable[bool]], limit_s: float = 20) -> None:
    async with asyncio.timeout(limit_s):
        while not await check():  # noqa: ASYNC110 - polls the database and central
            await asyncio.sleep(0.05)


async def test_kiosk_and_mini_program_check_ins_of_a_day_are_one(
        broker: Mosquitto, tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 5, 10, 10, 0, tzinfo=SHANGHAI))
    storage = SqliteStorage(tmp_path / "central.db", now=clock)
    async with running_central(storage) as central, \
            CentralClient(central.url, central.admin_token, timeout_s=5) as admin:
        await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1", "identifiers": [
            {"kind": "card", "value": "CARD-M1"}]})
        data = kiosk_settings_data(tmp_path, broker.port, demo_members=0)
        data["central"] = {"url": central.url, "token": central.gateway_token,
                           "timeout_s": 5.0}
        data["sync"] = {"long_poll_s": 1, "push_interval_s": 0.05,
                        "backoff_initial_s": 0.05, "backoff_max_s": 0.5}
        settings = Settings.model_validate_json(json.dumps(data))
        async with running_gateway(settings, clock) as app, kiosk(broker.port) as k1:
            async def scalar(sql: str) -> int:
                return int(await app[READER].run(lambda c: c.execute(sql).fetchone()[0]))

            async def member_here() -> bool:
                return await scalar("SELECT count(*) FROM members WHERE id = 'M1'") == 1
            await until(member_here)

            # Day 1: the kiosk first; the mini-program's check-in is the kiosk's entry.
            at_kiosk = await k1.request("checkin",
                                        {"session": await k1.session("card", "CARD-M1")})
            assert at_kiosk["status"] == "ok", at_kiosk

            async def pushed() -> bool:
                return await scalar("SELECT count(*) FROM outbox") == 0
            await until(pushed)
            online = await admin.checkin(MALL, "M1")
            assert online["verdict"]["status"] == "duplicate"
            assert online["entry"]["actor"] == "kiosk"
            assert online["balance"]["available"] == POINTS

            # Day 2: the mini-program first; the kiosk then finds it checked in already.
            clock.at += timedelta(days=1)
            first = await admin.checkin(MALL, "M1")
            assert first["verdict"]["status"] == "accepted"
            assert first["date"] == "2026-05-11"

            async def pulled() -> bool:
                return await scalar("SELECT count(*) FROM ledger WHERE "
                                    "source_key = 'M1:2026-05-11'") == 1
            await until(pulled)
            late = await k1.request("checkin",
                                    {"session": await k1.session("card", "CARD-M1")})
            assert late["status"] == "error"
            assert late["error"]["code"] == "already_checked_in"

            edge = await app[LEDGER].balance("A1")
            state = await admin.get_member(MALL, "M1")
            assert edge.available == state["balance"]["available"] == 2 * POINTS
            checkins = [e for e in state["ledger"] if e["source_type"] == "checkin"]
            assert [e["actor"] for e in checkins] == ["kiosk", "mini-program"]
