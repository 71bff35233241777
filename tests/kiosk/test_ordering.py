"""Requests of one kiosk are answered in arrival order; different kiosks are served side by
side, and their writes still commit together. Through a real mosquitto and the real app."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from devices.mqtt.broker import Mosquitto
from gateway.app.keys import WRITER
from tests.kiosk.helpers import eventually, kiosk, kiosk_settings, running_gateway

MEMBER = "m-demo-0001"


def gift(session: str, n: int) -> dict[str, Any]:
    return {"session": session, "kind": "gift", "item": f"g-{n}", "points": 10}


async def test_a_balance_after_a_redeem_shows_the_redeem(broker: Mosquitto, tmp_path: Path) -> None:
    """Twenty redeem / balance pairs sent back to back by one kiosk, none waiting for its
    reply: every balance reflects every redeem sent before it."""
    settings = kiosk_settings(tmp_path, broker.port, rate_burst=100)
    async with running_gateway(settings), kiosk(broker.port) as k1:
        session = await k1.session("card", "DEMO0001")
        sent = []
        for n in range(20):
            sent.append(asyncio.ensure_future(k1.request("redeem", gift(session, n))))
            sent.append(asyncio.ensure_future(
                k1.request("balance.query", {"member_id": MEMBER})))
        replies = await asyncio.gather(*sent)
        redeemed = [r["data"]["available"] for r in replies[0::2]]
        balances = [r["data"]["available"] for r in replies[1::2]]
        assert redeemed == [500 - 10 * (n + 1) for n in range(20)]
        assert balances == redeemed


async def test_a_slow_kiosk_holds_up_only_itself(broker: Mosquitto, tmp_path: Path) -> None:
    """While k1's redeem waits for the store, k1's next request waits behind it, k2 is
    answered, and the writes of both kiosks then commit in one batch."""
    settings = kiosk_settings(tmp_path, broker.port)
    async with (running_gateway(settings) as app, kiosk(broker.port, "k1") as k1,
                kiosk(broker.port, "k2") as k2):
        writer = app[WRITER]
        one = await k1.session("card", "DEMO0001")
        two = await k2.session("card", "DEMO0002")
        release = threading.Event()
        entered = threading.Event()

        def hold(conn: object) -> None:
            entered.set()
            release.wait(30)

        held = asyncio.ensure_future(writer.submit(hold))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
        redeem = asyncio.ensure_future(k1.request("redeem", gift(one, 1)))
        after = asyncio.ensure_future(k1.request("balance.query", {"member_id": MEMBER}))
        # k2 is not queued behind k1: its read is answered while k1's write waits.
        read = await k2.request("balance.query", {"member_id": "m-demo-0003"})
        assert read["status"] == "ok"
        other_checkin = asyncio.ensure_future(
            k2.request("checkin", {"session": two}))
        await eventually(lambda: writer.stats.queue_depth == 2)  # the redeem, the check-in
        assert not redeem.done() and not after.done() and not other_checkin.done()
        batches = writer.stats.batches
        release.set()
        await held
        first, second, checkin = await asyncio.gather(redeem, after, other_checkin)
        assert first["data"]["available"] == 490
        assert second["data"]["available"] == 490
        assert checkin["status"] == "ok"
        # The held batch, then k1's redeem and k2's check-in, queued meanwhile, in one
        # commit together.
        assert writer.stats.batches == batches + 2
