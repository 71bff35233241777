"""`mallgate central serve` as a real process and the gateway app syncing with it both ways."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from cloud_api.client import CentralClient
from cloud_api.errors import CentralError
from gateway.app import create_app
from gateway.app.keys import CENTRAL, LEDGER, METRICS, READER, SYNC
from gateway.loyalty import LoyaltyRules, checkin_entry
from gateway.settings import Settings
from tests.conftest import free_port

MALL, GATEWAY = "wire-mall", "gw-wire"
CLI = [sys.executable, "-c", "from gateway.cli import main; main()"]


def mallgate(*args: str) -> str:
    return subprocess.run([*CLI, *args], check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()


@contextlib.contextmanager
def central_process(db: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([*CLI, "central", "serve", "--db", str(db), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def until(check: Callable[[], Awaitable[bool]], limit_s: float = 20) -> None:
    async with asyncio.timeout(limit_s):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[web.Application]:
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield app
    finally:
        await runner.cleanup()


@pytest.mark.skipif(os.name != "posix", reason="POSIX processes")
async def test_central_and_gateway_sync_a_mall_both_ways(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "central.db"
    mallgate("central", "token", "--db", str(db), "--mall", MALL, "--admin")  # creates db
    gateway_token = mallgate("central", "token", "--db", str(db), "--mall", MALL,
                             "--gateway", GATEWAY)
    admin_token = mallgate("central", "token", "--db", str(db), "--mall", MALL, "--admin")
    url = f"http://127.0.0.1:{port}"
    settings = Settings.model_validate({
        "site": {"mall_id": MALL, "gateway_id": GATEWAY},
        "store": {"path": tmp_path / "gw.db"},
        "central": {"url": url, "token": gateway_token, "timeout_s": 5.0},
        "sync": {"long_poll_s": 1, "push_interval_s": 0.05, "backoff_initial_s": 0.05,
                 "backoff_max_s": 0.5},
    }, strict=False)
    with central_process(db, port):
        async with CentralClient(url, admin_token, timeout_s=5) as admin:
            async def up() -> bool:
                try:
                    await admin.get_member(MALL, "nobody")
                except CentralError as exc:
                    return exc.status == 404
                return False
            await until(up)
            async with running(create_app(settings)) as app:
                assert SYNC in app
                await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1",
                                                 "name": "周", "identifiers": [
                                                     {"kind": "card", "value": "CARD-1"}]})

                async def member_at_edge() -> bool:
                    found = await app[READER].run(lambda c: c.execute(
                        "SELECT member_id FROM member_identifiers WHERE value = 'CARD-1'"
                    ).fetchone())
                    return bool(found == ("M1",))
                await until(member_at_edge)

                rules = LoyaltyRules()
                await app[LEDGER].record(checkin_entry(
                    account_id="A1", member_id="M1", at=datetime.now(UTC), rules=rules))

                async def points_central() -> bool:
                    state = await admin.get_member(MALL, "M1")
                    return bool(state["balance"]["available"] == rules.checkin.points)
                await until(points_central)

                async def confirmed_at_edge() -> bool:
                    balance = await app[LEDGER].balance("A1")
                    return bool(balance.confirmed == rules.checkin.points)
                await until(confirmed_at_edge)
                status = await app[SYNC].status()
                assert status.outbox_depth == 0 and status.mode == "online"
                assert app[CENTRAL].online()  # what kiosks see: central answers

                async def scraped() -> bool:
                    text = app[METRICS].render().decode()
                    return ('mallgate_sync_mode{mode="online"} 1.0' in text
                            and "mallgate_sync_online 1.0" in text
                            and "mallgate_sync_outbox_depth 0.0" in text
                            and "mallgate_sync_cursor_lag 0.0" in text)
                await until(scraped)
