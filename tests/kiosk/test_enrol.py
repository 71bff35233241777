"""Enrolment at a kiosk through a real mosquitto, the gateway app and a real central over
loopback: online with the code central texts, offline as a provisional member who earns at
once and is merged under central's id when central comes back, without losing or doubling
a point."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cloud_api.client import CentralClient
from cloud_api.server.phones import PhoneKeys
from cloud_api.server.sqlite_store import SqliteStorage
from devices.kiosk.protocol import default_contract
from devices.kiosk.sim import KioskClient
from devices.mqtt.broker import Mosquitto
from gateway.app.keys import CENTRAL, METRICS
from gateway.settings import Settings
from tests.cloud_api.central import MALL, running_central
from tests.cloud_api.sms import SmsGateway, sms_gateway
from tests.conftest import free_port
from tests.kiosk.helpers import PHONE_KEY, eventually, kiosk, kiosk_settings_data, running_gateway

CONTRACT = default_contract()
NUMBER = "13900139000"
CONSENT = {"policy_version": "privacy-2026-01", "accepted": True}


def settings_for(tmp_path: Path, broker: int, central_url: str, token: str) -> Settings:
    data: dict[str, Any] = kiosk_settings_data(tmp_path, broker)
    data["central"] = {"url": central_url, "token": token, "timeout_s": 2.0}
    data["sync"] = {"long_poll_s": 1, "push_interval_s": 0.05, "backoff_initial_s": 0.05,
                    "backoff_max_s": 0.3, "heartbeat_s": 0.5}
    return Settings.model_validate_json(json.dumps(data))


def central_storage(tmp_path: Path) -> SqliteStorage:
    return SqliteStorage(tmp_path / "central.db",
                         phones=PhoneKeys({MALL: PHONE_KEY.encode()}))


async def enrol(k: KioskClient, **data: Any) -> dict[str, Any]:
    reply = await k.request("member.enroll", {"phone": NUMBER, "consent": CONSENT, **data})
    schema = (CONTRACT.reply_schemas["member.enroll"] if reply["status"] == "ok"
              else "#/components/schemas/ErrorReply")
    assert CONTRACT.schema_error(schema, reply) is None, reply
    return reply


def edge_rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "gw.db") as db:
        return db.execute(sql).fetchall()


@pytest.fixture
async def sms() -> AsyncIterator[SmsGateway]:
    async with sms_gateway() as gateway:
        yield gateway


async def test_online_enrolment_with_the_code_central_texts(
        broker: Mosquitto, sms: SmsGateway, tmp_path: Path) -> None:
    async with running_central(central_storage(tmp_path), code_sender=sms.sender) as central:
        settings = settings_for(tmp_path, broker.port, central.url, central.gateway_token)
        async with running_gateway(settings) as app, kiosk(broker.port) as k1:
            await eventually(app[CENTRAL].online)
            sent = await enrol(k1)
            assert sent["data"] == {"step": "code_sent", "phone_masked": "139****9000",
                                    "expires_at": sent["data"]["expires_at"]}
            code = sms.code_for(NUMBER)
            wrong = await enrol(k1, code=f"{(int(code) + 1) % 1_000_000:06d}")
            assert wrong["error"]["code"] == "invalid_code"
            async with CentralClient(central.url, central.admin_token) as admin:
                await admin.create_member(MALL, {"member_id": "m-friend"})
            enrolled = await enrol(k1, code=code, referrer="m-friend")
            assert enrolled["data"]["step"] == "enrolled"
            member = enrolled["data"]["member_id"]
            assert not member.startswith("p-")
            # At once a member here, with a session: checks in, is found by phone.
            checkin = await k1.request("checkin", {"session": enrolled["data"]["session"]})
            assert checkin["status"] == "ok" and checkin["data"]["member_id"] == member
            found = await k1.request("member.identify", {"by": "phone", "value": NUMBER})
            assert found["data"]["member_id"] == member
            async with CentralClient(central.url, central.admin_token) as admin:
                state = await admin.get_member(MALL, member)
                friend = await admin.get_member(MALL, "m-friend")
            profile = state["member"]
            assert profile["consent"]["policy_version"] == "privacy-2026-01"
            assert profile["phone_verified"] is True
            # The friend who invited the new member: a referral, both sides rewarded.
            assert "task.referee" in [e["source_type"] for e in state["ledger"]]
            assert [e["source_type"] for e in friend["ledger"]] == ["task.referrer"]


async def test_offline_enrolment_is_provisional_then_merged_under_centrals_id(
        broker: Mosquitto, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    storage = central_storage(tmp_path)
    async with running_central(storage, port=port) as central:
        tokens = (central.gateway_token, central.admin_token)
    # Central is down: the gateway enrols a provisional member, who earns at once.
    settings = settings_for(tmp_path, broker.port, url, tokens[0])
    async with running_gateway(settings) as app, kiosk(broker.port, "k1") as k1, \
            kiosk(broker.port, "k2") as k2:
        assert not app[CENTRAL].online()
        first = await enrol(k1)
        assert first["data"]["step"] == "provisional"
        provisional = first["data"]["member_id"]
        assert provisional.startswith("p-")
        session = first["data"]["session"]
        checkin = await k1.request("checkin", {"session": session})
        assert checkin["status"] == "ok"
        points = checkin["data"]["points"]
        # The same phone at another kiosk is the same member, not a second one.
        twice = await enrol(k2)
        assert twice["error"]["code"] == "already_member"
        assert len(edge_rows(tmp_path, "SELECT * FROM provisional_members")) == 1

        # Central comes back: sync pushes the entries, central confirms the member.
        async with running_central(central_storage(tmp_path), port=port,
                                   tokens=tokens) as central:
            await eventually(lambda: bool(edge_rows(
                tmp_path, "SELECT 1 FROM provisional_members WHERE merged_at IS NOT NULL")))
            (final,) = edge_rows(tmp_path, "SELECT final_member_id FROM provisional_members")
            member = final[0]
            scraped = app[METRICS].render().decode()
            assert "mallgate_enrolments_merged_total 1.0" in scraped
            assert edge_rows(tmp_path, f"SELECT id FROM members WHERE id = '{provisional}'"
                             ) == []
            # The provisional member's session and id now name the final member.
            balance = await k1.request("balance.query", {"member_id": provisional})
            assert balance["data"]["member_id"] == member
            assert balance["data"]["available"] == points
            gift = {"session": session, "kind": "gift", "item": "pen", "points": points}
            redeemed = await k1.request("redeem", gift)
            assert redeemed["data"]["member_id"] == member
            async with CentralClient(central.url, central.admin_token) as admin:
                async def central_available() -> int:
                    state = await admin.get_member(MALL, member)
                    return int(state["balance"]["available"])
                for _ in range(200):  # the burn is pushed like any entry
                    if await central_available() == 0:
                        break
                    await asyncio.sleep(0.05)
                state = await admin.get_member(MALL, member)
                assert state["balance"]["available"] == 0
                assert sorted(e["points"] for e in state["ledger"]) == [-points, points]
                assert state["member"]["phone_verified"] is False
                found = await admin._request("GET", f"/v1/malls/{MALL}/members",
                                             params={"phone": NUMBER})
                assert [m["member_id"] for m in found["members"]] == [member]
    # The merge is once: the edge's ledger holds the check-in and the burn, nothing more.
    assert sorted(r[0] for r in edge_rows(tmp_path, "SELECT points FROM ledger")) == \
        sorted([-points, points, *[500] * 5])



async def test_a_phone_central_already_had_gets_the_provisional_points(
        broker: Mosquitto, tmp_path: Path) -> None:
    """The shopper had joined through the mini-program while this gateway was cut off:
    central confirms the provisional member as that member, whose own account receives the
    provisional account's points, once."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with running_central(central_storage(tmp_path), port=port) as central:
        tokens = (central.gateway_token, central.admin_token)
        async with CentralClient(central.url, central.admin_token) as admin:
            known = await admin.create_member(MALL, {"phone": NUMBER, "name": "Wang Fang"})
            await admin.adjust(MALL, known["member_id"], request_id="welcome", points=100,
                               reason="welcome")
    settings = settings_for(tmp_path, broker.port, url, tokens[0])
    async with running_gateway(settings) as app, kiosk(broker.port) as k1:
        assert not app[CENTRAL].online()
        first = await enrol(k1)
        assert first["data"]["step"] == "provisional"
        checkin = await k1.request("checkin", {"session": first["data"]["session"]})
        points = checkin["data"]["points"]
        async with running_central(central_storage(tmp_path), port=port,
                                   tokens=tokens) as central, \
                CentralClient(central.url, central.admin_token) as admin:
            member = known["member_id"]

            async def settled() -> bool:
                state = await admin.get_member(MALL, member)
                return bool(state["balance"]["available"] == 100 + points)
            for _ in range(300):
                if await settled():
                    break
                await asyncio.sleep(0.05)
            assert await settled()
            balance = await k1.request("balance.query", {"member_id": member})
            assert balance["data"]["available"] == 100 + points
            merged = await k1.request("balance.query", {"member_id": first["data"]["member_id"]})
            assert merged["data"]["member_id"] == member
            found = await admin._request("GET", f"/v1/malls/{MALL}/members",
                                         params={"phone": NUMBER})
            assert [m["member_id"] for m in found["members"]] == [member]
    moved = edge_rows(tmp_path, "SELECT points FROM ledger WHERE source_type = 'enrol.merge'")
    assert sorted(r[0] for r in moved) == [-points, points]
