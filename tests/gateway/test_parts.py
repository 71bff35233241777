"""Every part the configuration enables is supervised, and its death is visible at once.

A gateway with kiosks (a real mosquitto), BLE remote receivers, a POS port on a real pty
and sync with a real central over loopback: each part's task is killed in turn, and
`/readyz` answers 503 naming it, `mallgate_part_up` shows 0 for it, and, for sync, a kiosk
redemption that central's presence allowed is refused beyond the offline allowance.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web
from pytest_aiohttp import AiohttpClient

from cloud_api.server.sqlite_store import SqliteStorage
from devices.mqtt.broker import Mosquitto
from gateway.app import create_app
from gateway.app.keys import CENTRAL, PARTS, WRITER
from gateway.parts import PartState, PartStatus, Restarts
from gateway.settings import Settings
from tests.cloud_api.central import running_central
from tests.conftest import free_port
from tests.kiosk.helpers import kiosk, kiosk_settings_data
from tests.pos.ptys import pty_pair

# Long enough that a killed part is still down when the test looks.
SLOW_RESTARTS = Restarts(initial_s=600, max_s=600)


async def until(condition: Callable[[], bool], polls: int = 1500) -> None:
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition never became true")


def settings_for(tmp_path: Path, broker: int, central_url: str, token: str,
                 pos_path: Path) -> Settings:
    data: dict[str, Any] = kiosk_settings_data(tmp_path, broker)
    data["central"] = {"url": central_url, "token": token, "timeout_s": 5.0}
    data["sync"] = {"long_poll_s": 1, "push_interval_s": 0.05, "backoff_initial_s": 0.05,
                    "backoff_max_s": 0.5}
    data["pos"] = {"ports": [{"path": str(pos_path), "store_id": "S01", "pos_id": "P1",
                              "mode": "jsonl"}]}
    data["ble"] = {"enabled": True, "zones": [{"id": "atrium", "kiosks": ["k1"]}],
                   "receivers": [{"id": "rx-atrium", "zone": "atrium"}]}
    data["site"]["mall_id"] = "test-mall"
    data["site"]["gateway_id"] = "gw-test"
    return Settings.model_validate_json(json.dumps(data))


def part_up(metrics: str, part: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f'mallgate_part_up{{part="{part}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no mallgate_part_up sample for {part}")


def state_of(app: web.Application, name: str) -> PartStatus | None:
    part = app[PARTS].get(name)
    return part.status() if part is not None else None


def is_down(app: web.Application, name: str) -> bool:
    status = state_of(app, name)
    return status is not None and status.state is PartState.DOWN


def kill(part: str) -> None:
    """Cancel the running task of `part`, as a crash of its code would end it."""
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == part and not t.done()]
    task.cancel()


async def test_killing_each_part_shows_it_down_and_sync_down_means_offline_rules(
        aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    async with (Mosquitto(free_port(), tmp_path / "broker") as broker,
                running_central(SqliteStorage(tmp_path / "central.db")) as central,
                pty_pair(tmp_path) as pair):
        settings = settings_for(tmp_path, broker.port, central.url, central.gateway_token,
                                pair.gateway)
        app = create_app(settings, restarts=SLOW_RESTARTS)
        client = await aiohttp_client(app)
        # sync first: the kiosk service must still be there to show what its death means
        names = ["store", "sync", "ble", "pos:" + str(pair.gateway), "kiosk", "mqtt",
                 "retention", "enrolments"]
        assert sorted(part.name for part in app[PARTS]) == sorted(names)

        async def ready() -> tuple[int, dict[str, Any]]:
            reply = await client.get("/readyz")
            return reply.status, await reply.json()

        # Everything up: ready. (The BLE receiver never said it is offline.)
        for _ in range(1500):
            status, body = await ready()
            if status == 200:
                break
            await asyncio.sleep(0.02)
        assert status == 200, body
        assert app[CENTRAL].online()

        async with kiosk(broker.port) as k1:
            session = await k1.session("card", "DEMO0001")

            def redeem(n: int) -> dict[str, object]:
                return {"session": session, "kind": "gift", "item": f"c-{n}",
                        "points": 100}
            # Central answers: the redemption is checked against the balance only.
            assert (await k1.request("redeem", redeem(1)))["status"] == "ok"

            for name in names[1:]:  # the store's death stops the app: tested apart
                kill(name)
                await until(partial(is_down, app, name))
                status, body = await ready()
                assert status == 503
                assert name in body["failing"], body
                assert body["failing"][name] == "down: its task was cancelled"
                metrics = (await (await client.get("/metrics")).read()).decode()
                assert part_up(metrics, name) == 0.0
                if name == "sync":
                    # The engine's last word was "online", but nothing is syncing now: the
                    # offline allowance applies (central's grant, pinned here to 50 points).
                    assert not app[CENTRAL].online()
                    await app[WRITER].submit(lambda conn: conn.execute(
                        "INSERT OR REPLACE INTO offline_allowances (account_id, points, "
                        "granted_seq, granted_at) VALUES ('a-demo-0001', 50, 1000000, "
                        "'2026-01-01T00:00:00+00:00')"))
                    reply = await k1.request("redeem", redeem(2))
                    assert reply["status"] == "error"
                    assert reply["error"]["code"] == "offline_limit", reply


async def test_a_missing_pos_port_makes_the_gateway_not_ready(
        aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    settings = Settings.model_validate_json(json.dumps({
        "site": {"mall_id": "test-mall", "gateway_id": "gw-test"},
        "store": {"path": str(tmp_path / "gw.db")}, "http": {"port": free_port()},
        "pos": {"ports": [{"path": str(tmp_path / "no-such-port"), "store_id": "S01",
                           "pos_id": "P1", "mode": "jsonl"}]}}))
    app = create_app(settings)
    client = await aiohttp_client(app)
    name = f"pos:{tmp_path / 'no-such-port'}"
    await until(lambda: getattr(state_of(app, name), "reason", None) is not None)
    reply = await client.get("/readyz")
    assert reply.status == 503
    failing = (await reply.json())["failing"]
    assert failing[name].startswith(f"degraded: port {tmp_path / 'no-such-port'} closed")


async def test_an_unreachable_broker_and_central_make_the_gateway_not_ready(
        aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    data = kiosk_settings_data(tmp_path, free_port())  # nothing listens there
    data["central"] = {"url": f"http://127.0.0.1:{free_port()}", "token": "t",
                       "timeout_s": 1.0}
    data["sync"] = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2}
    app = create_app(Settings.model_validate_json(json.dumps(data)))
    client = await aiohttp_client(app)
    reply = await client.get("/readyz")
    assert reply.status == 503
    failing = (await reply.json())["failing"]
    assert failing["mqtt"].startswith("degraded: MQTT broker 127.0.0.1:")
    assert failing["sync"].startswith("degraded: central")
