"""SIGKILL of the gateway between receiving a redeem and its PUBACK: applied exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devices.mqtt.broker import BrokerProcess, Mosquitto
from devices.mqtt.transport import LinkConfig, MqttLink
from gateway.ids import new_ulid
from tests.brokers import KINDS, running_broker
from tests.kiosk.helpers import TOPICS, kiosk, kiosk_settings_data
from tests.scale import rounds

CHILD = Path(__file__).with_name("crash_child.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=KINDS)
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BrokerProcess]:
    """Against mosquitto and rumqttd: both must fire the Will and redeliver the request."""
    async with running_broker(request.param, tmp_path / "broker") as running:
        yield running


@contextlib.asynccontextmanager
async def gateway_process(settings_file: Path, mode: str) -> AsyncIterator[
        asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), str(settings_file), mode, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line == b"ready\n"
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest.mark.parametrize("mode", ["before-commit", "before-puback"])
async def test_a_redeem_interrupted_by_sigkill_happens_exactly_once(
        broker: Mosquitto, tmp_path: Path, mode: str) -> None:
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(kiosk_settings_data(tmp_path, broker.port)))
    db = tmp_path / "gw.db"
    status = LinkConfig(host="127.0.0.1", port=broker.port, client_id="observer",
                        subscriptions=((TOPICS.gateway_status, 1),))
    async with kiosk(broker.port) as k1, MqttLink(status) as observer:
        await asyncio.wait_for(observer.connected.wait(), 10)
        ids = []
        for _ in range(rounds(1)):
            request_id = new_ulid()
            ids.append(request_id)
            async with gateway_process(settings_file, mode) as doomed:
                assert await gateway_status(observer) == {"online": True}
                # The session outlives the process that issued it: its key is in the store.
                session = await k1.session("card", "DEMO0001")
                gift = {"session": session, "kind": "gift", "item": "pen", "points": 10}
                pending = asyncio.create_task(
                    k1.request("redeem", gift, request_id=request_id, wait_s=60))
                assert await asyncio.wait_for(doomed.wait(), 30) == -signal.SIGKILL
            # The broker noticed the vanished gateway and published its Last Will.
            assert await gateway_status(observer) == {"online": False}
            # The broker still holds the unacknowledged request for the gateway's session.
            async with gateway_process(settings_file, "serve"):
                assert await gateway_status(observer) == {"online": True}
                reply = await pending
                assert reply["status"] == "ok"
                again = await k1.request("redeem", gift, request_id=request_id)
                assert again == reply
            assert await gateway_status(observer) == {"online": False}  # clean goodbye
    with sqlite3.connect(db) as conn:
        burns = conn.execute("SELECT source_key, points FROM ledger WHERE kind = 'BURN'"
                             ).fetchall()
        stored = conn.execute("SELECT count(*) FROM kiosk_requests WHERE op = 'redeem'"
                              ).fetchone()[0]
    assert sorted(burns) == sorted((f"k1/{i}", -10) for i in ids)
    assert stored == len(ids)



async def gateway_status(observer: MqttLink) -> dict[str, object]:
    """The next gateway status the observer sees, without its timestamp."""
    message = await asyncio.wait_for(observer.receive(), 30)
    observer.ack(message)
    status: dict[str, object] = json.loads(message.payload)
    status.pop("ts", None)
    return status
