"""The README's demo keeps issue 14's promise: a demo member who spends ¥600 at a till is
silver at the kiosk at once, and the next sale earns at silver's rate.

`mallgate demo` runs as a user runs it, a process with its children; the test drives it
only through what the demo offers a user: the POS end of its ESC/POS serial line (a
passive tap, so the demo's own till writing there now and then is not disturbed by a
reply the test would have to read), a kiosk of its own on the demo broker, and the
gateway's `/api/v1` with the demo's staff token. The demo's simulators are slowed down so
that nothing but the test spends for the member meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import serial_asyncio_fast

from devices.kiosk.protocol import Topics
from devices.kiosk.sim import KioskClient
from devices.mqtt.transport import MqttLink
from devices.pos.printouts import Printout
from gateway.loyalty import LoyaltyRules
from tests.conftest import free_port
from tests.pos.ptys import SOCAT

pytestmark = pytest.mark.skipif(SOCAT is None, reason="socat is not installed")

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0
WAIT_S = 20.0
RULES = LoyaltyRules()  # the demo runs the default rules
SILVER = RULES.tiers.tiers[1]
# Demo member n's tier is the n-th of the tiers in turn: member 4 starts as normal.
MEMBER, CARD = "m-demo-0004", "DEMO0004"
T = TypeVar("T")


@dataclass
class Demo:
    process: asyncio.subprocess.Process
    broker_port: int
    escpos_line: Path
    http_port: int
    staff_token: str
    output: list[str]


@contextlib.asynccontextmanager
async def running_demo(tmp_path: Path) -> AsyncIterator[Demo]:
    """`mallgate demo` with four members and its tills, kiosks and walkers slowed right
    down; stopped with SIGINT (a terminal's Ctrl-C) whatever happens."""
    http_port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from gateway.cli import main; main()", "demo",
        "--dir", str(tmp_path / "mall"), "--http-port", str(http_port), "--broker-port", "0",
        "--members", "4", "--pos-rate", "0.01", "--kiosk-every", "3600", "--ble-rate", "0.1",
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True)
    output: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while not output or not output[-1].startswith("Ctrl-C stops everything"):
                line = await stdout.readline()
                assert line, "".join(output)
                output.append(line.decode())
        banner = "".join(output)
        broker = re.search(r"broker +127\.0\.0\.1:(\d+)", banner)
        escpos = re.search(r"POS +S03-P1 escpos +(\S+)", banner)
        token = re.search(r"/\?token=(\S+)", banner)
        assert broker and escpos and token, banner
        reading = asyncio.create_task(_keep_reading(stdout, output))
        try:
            yield Demo(process, int(broker[1]), Path(escpos[1]), http_port, token[1], output)
        finally:
            os.killpg(process.pid, signal.SIGINT)
            async with asyncio.timeout(START_TIMEOUT_S):
                await process.wait()
            await reading
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def _keep_reading(stdout: asyncio.StreamReader, output: list[str]) -> None:
    """The demo's live lines, read so that its pipe never fills."""
    while line := await stdout.readline():
        output.append(line.decode())


@contextlib.asynccontextmanager
async def demo_kiosk(demo: Demo) -> AsyncIterator[KioskClient]:
    """A fourth kiosk, `k9`, on the demo broker, as the README's walk-through is."""
    topics = Topics("demo-mall")
    async with MqttLink(KioskClient.config(topics, "k9", "127.0.0.1",
                                           demo.broker_port)) as link:
        await asyncio.wait_for(link.connected.wait(), WAIT_S)
        client = KioskClient(link, topics, "k9")
        try:
            yield client
        finally:
            await client.close()


async def print_receipt(line: Path, printout: Printout) -> None:
    """What the shop's POS prints, on the line the gateway taps."""
    _, writer = await serial_asyncio_fast.open_serial_connection(url=str(line),
                                                                 baudrate=115200)
    try:
        writer.write(printout.escpos())
        await writer.drain()
    finally:
        writer.close()


async def history(demo: Demo) -> list[dict[str, Any]]:
    """The member's ledger history from the gateway's API, with the demo's staff token."""
    headers = {"Authorization": f"Bearer {demo.staff_token}"}
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{demo.http_port}/api/v1/members/{MEMBER}/history",
            headers=headers) as reply:
        assert reply.status == 200, await reply.text()
        lines: list[dict[str, Any]] = (await reply.json())["history"]
        return lines


async def earned_by(demo: Demo, receipt_no: str) -> int:
    """The points the receipt earned, once the gateway has it."""
    async def found() -> list[dict[str, Any]]:
        return [line for line in await history(demo) if line["event"] == "EARN"
                and f"receipt {receipt_no} " in line["reason"]]
    lines = await until(found)
    (line,) = lines
    return int(line["available_delta"])


async def until(check: Callable[[], Awaitable[T]]) -> T:
    async with asyncio.timeout(WAIT_S):
        while not (result := await check()):  # noqa: ASYNC110 - polls the gateway API
            await asyncio.sleep(0.1)
        return result


def shopping_time() -> datetime:
    """Now at the mall, as its tills print it, but not on member day (double points would
    hide the tier's rate)."""
    at = datetime.now(RULES.tz).replace(microsecond=0) - timedelta(minutes=5)
    while at.day == RULES.earn.member_day:
        at -= timedelta(days=1)
    return at.replace(tzinfo=None)


async def test_600_yuan_make_a_demo_member_silver_and_the_next_sale_earns_at_silver(
        tmp_path: Path) -> None:
    async with running_demo(tmp_path) as demo, demo_kiosk(demo) as kiosk:
        before = await kiosk.request("balance.query", {"member_id": MEMBER})
        assert before["status"] == "ok" and before["data"]["tier"] == "normal", before
        at = shopping_time()
        await print_receipt(demo.escpos_line, Printout(
            "万达广场 优衣库", "Y600-1", at, (("羽绒服", 60_000),), member_code=CARD))
        assert await earned_by(demo, "Y600-1") == 600  # at normal, the tier it had
        # Silver at once: the upgrade is committed with the sale that reached the tier.
        identified = await kiosk.request("member.identify", {"by": "card", "value": CARD})
        assert identified["status"] == "ok", identified
        want = {"tier": "silver", "tier_name": SILVER.name,
                "discount_pct": SILVER.discount_pct, "parking_hours": SILVER.parking_hours,
                "earn_multiplier_pct": SILVER.earn_multiplier_pct}
        assert {k: identified["data"].get(k) for k in want} == want

        await print_receipt(demo.escpos_line, Printout(
            "万达广场 优衣库", "Y600-2", at + timedelta(minutes=3), (("围巾", 32_000),),
            member_code=CARD))
        assert await earned_by(demo, "Y600-2") == 352  # 320 yuan at silver x1.10
