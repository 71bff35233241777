"""A phone number alone does not spend a member's points: over a real mosquitto, against
the gateway app and, where a code is texted, a real central over loopback with an SMS
gateway's webhook. Sessions carry their proof, signed; a bare-number session checks in
and reads, and redeems only once the number is proved by the code central texts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cloud_api.server.phones import PhoneKeys
from cloud_api.server.sqlite_store import SqliteStorage
from devices.kiosk.protocol import default_contract
from devices.kiosk.sim import KioskClient
from devices.mqtt.broker import Mosquitto
from gateway.app.keys import CENTRAL
from tests.cloud_api.central import running_central
from tests.cloud_api.sms import SmsGateway, sms_gateway
from tests.conftest import free_port
from tests.kiosk.helpers import Clock, eventually, kiosk, kiosk_settings, running_gateway
from tests.kiosk.test_enrol import central_storage, settings_for

CONTRACT = default_contract()
SHANGHAI = ZoneInfo("Asia/Shanghai")
NUMBER = "13800000003"  # the third demo member's phone
MEMBER = "m-demo-0003"
GIFT = {"kind": "gift", "item": "mug", "points": 10}


@pytest.fixture
async def sms() -> AsyncIterator[SmsGateway]:
    async with sms_gateway() as gateway:
        yield gateway


def conforms(op: str, reply: dict[str, Any]) -> dict[str, Any]:
    schema = (CONTRACT.reply_schemas[op] if reply["status"] == "ok"
              else "#/components/schemas/ErrorReply")
    assert CONTRACT.schema_error(schema, reply) is None, reply
    return reply


async def ask(k: KioskClient, op: str, data: dict[str, Any]) -> dict[str, Any]:
    return conforms(op, await k.request(op, data))


def error(reply: dict[str, Any]) -> str:
    assert reply["status"] == "error", reply
    return str(reply["error"]["code"])


def burns(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM ledger WHERE kind = 'BURN'"
                                ).fetchone()[0])


def other_code(code: str, step: int = 1) -> str:
    return f"{(int(code) + step) % 1_000_000:06d}"


async def test_a_phone_session_redeems_only_with_the_code_central_texts(
        broker: Mosquitto, sms: SmsGateway, tmp_path: Path) -> None:
    async with running_central(central_storage(tmp_path), code_sender=sms.sender) as central:
        settings = settings_for(tmp_path, broker.port, central.url, central.gateway_token)
        async with running_gateway(settings) as app, kiosk(broker.port) as k1:
            await eventually(app[CENTRAL].online)
            found = await ask(k1, "member.identify", {"by": "phone", "value": NUMBER})
            data = found["data"]
            assert (data["member_id"], data["proof"]) == (MEMBER, "phone")
            assert data["verification"]["step"] == "code_sent"
            assert data["verification"]["phone_masked"] == "138****0003"
            code = sms.code_for(NUMBER)
            # The number alone checks in and reads, but does not spend.
            assert (await ask(k1, "checkin", {"session": data["session"]}))["status"] == "ok"
            balance = await ask(k1, "balance.query", {"member_id": MEMBER})
            assert balance["status"] == "ok"
            refused = await ask(k1, "redeem", {"session": data["session"], **GIFT})
            assert error(refused) == "session_unverified"
            assert "QR code" in refused["error"]["msg"]
            assert burns(tmp_path / "gw.db") == 0
            # Nor does it see the member's coupon codes, which a till would take.
            codes = await ask(k1, "coupon.list", {"session": data["session"]})
            assert error(codes) == "session_unverified"

            # A wrong code opens nothing; the right one opens a session that spends.
            wrong = await ask(k1, "member.identify", {"by": "phone", "value": NUMBER,
                                                      "code": other_code(code)})
            assert error(wrong) == "invalid_code"
            proved = await ask(k1, "member.identify", {"by": "phone", "value": NUMBER,
                                                       "code": code})
            assert proved["data"]["proof"] == "phone_code"
            assert "verification" not in proved["data"]
            redeemed = await ask(k1, "redeem", {"session": proved["data"]["session"], **GIFT})
            assert redeemed["status"] == "ok" and redeemed["data"]["member_id"] == MEMBER
            assert burns(tmp_path / "gw.db") == 1
            # The code is used up: it proves no second identification.
            again = await ask(k1, "member.identify", {"by": "phone", "value": NUMBER,
                                                      "code": code})
            assert error(again) == "code_expired"

            # A card still redeems as before.
            card = await ask(k1, "member.identify", {"by": "card", "value": "DEMO0001"})
            assert card["data"]["proof"] == "card" and "verification" not in card["data"]
            assert (await ask(k1, "redeem", {"session": card["data"]["session"],
                                             **GIFT}))["status"] == "ok"
            assert burns(tmp_path / "gw.db") == 2


async def test_wrong_codes_are_limited(broker: Mosquitto, sms: SmsGateway,
                                       tmp_path: Path) -> None:
    async with running_central(central_storage(tmp_path), code_sender=sms.sender) as central:
        settings = settings_for(tmp_path, broker.port, central.url, central.gateway_token)
        async with running_gateway(settings) as app, kiosk(broker.port) as k1:
            await eventually(app[CENTRAL].online)
            await ask(k1, "member.identify", {"by": "phone", "value": NUMBER})
            code = sms.code_for(NUMBER)
            for step in range(1, 6):
                guess = await ask(k1, "member.identify", {"by": "phone", "value": NUMBER,
                                                          "code": other_code(code, step)})
                assert error(guess) == "invalid_code"
            # Five wrong guesses: even the right code no longer opens a verified session.
            late = await ask(k1, "member.identify", {"by": "phone", "value": NUMBER,
                                                     "code": code})
            assert error(late) == "too_many_attempts"
            # A new code (identify without one) works again.
            fresh = await ask(k1, "member.identify", {"by": "phone", "value": NUMBER})
            assert fresh["data"]["verification"]["step"] == "code_sent"
            proved = await ask(k1, "member.identify", {"by": "phone", "value": NUMBER,
                                                       "code": sms.code_for(NUMBER)})
            assert proved["data"]["proof"] == "phone_code"


async def test_offline_a_phone_session_checks_in_and_reads_but_cannot_redeem(
        broker: Mosquitto, tmp_path: Path) -> None:
    port = free_port()
    async with running_central(central_storage(tmp_path), port=port) as central:
        token = central.gateway_token
    # Central is down: no code can be sent or checked.
    settings = settings_for(tmp_path, broker.port, f"http://127.0.0.1:{port}", token)
    async with running_gateway(settings) as app, kiosk(broker.port) as k1:
        assert not app[CENTRAL].online()
        found = await ask(k1, "member.identify", {"by": "phone", "value": NUMBER})
        assert found["data"]["proof"] == "phone" and "verification" not in found["data"]
        session = found["data"]["session"]
        assert (await ask(k1, "balance.query", {"member_id": MEMBER}))["status"] == "ok"
        assert (await ask(k1, "checkin", {"session": session}))["status"] == "ok"
        assert error(await ask(k1, "redeem", {"session": session, **GIFT})) == \
            "session_unverified"
        with_code = await ask(k1, "member.identify", {"by": "phone", "value": NUMBER,
                                                      "code": "123456"})
        assert error(with_code) == "verification_unavailable"
        assert burns(tmp_path / "gw.db") == 0
        # A card session passes the proof and meets the offline rule as before: central
        # never granted this gateway an allowance, so nothing is spent offline.
        card = await k1.session("card", "DEMO0003")
        assert error(await ask(k1, "redeem", {"session": card, **GIFT})) == "offline_limit"


async def test_a_central_that_cannot_text_codes_leaves_a_bare_number_session(
        broker: Mosquitto, sms: SmsGateway, tmp_path: Path) -> None:
    """Central without the mall's phone key cannot make codes: identification by phone
    still reads and checks in, and a code is `verification_unavailable`, not a crash."""
    storage = SqliteStorage(tmp_path / "central.db", phones=PhoneKeys({}))
    async with running_central(storage, code_sender=sms.sender) as central:
        settings = settings_for(tmp_path, broker.port, central.url, central.gateway_token)
        async with running_gateway(settings) as app, kiosk(broker.port) as k1:
            await eventually(app[CENTRAL].online)
            found = await ask(k1, "member.identify", {"by": "phone", "value": NUMBER})
            assert found["data"]["proof"] == "phone" and "verification" not in found["data"]
            assert sms.received == []
            assert (await ask(k1, "checkin", {"session": found["data"]["session"]})
                    )["status"] == "ok"
            with_code = await ask(k1, "member.identify", {"by": "phone", "value": NUMBER,
                                                          "code": "123456"})
            assert error(with_code) == "verification_unavailable"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def legacy_session(db: Path, kiosk_id: str, member: str, expires: datetime) -> str:
    """A session as gateways issued them before sessions carried a proof: `s1.` and no
    proof, signed with the gateway's key."""
    with sqlite3.connect(db) as conn:
        (key,) = conn.execute("SELECT secret FROM gateway_secrets WHERE name = "
                              "'kiosk_session_key'").fetchone()
    body = (f"s1.{_b64(kiosk_id.encode())}.{_b64(member.encode())}"
            f".{int(expires.timestamp())}")
    return f"{body}.{_b64(hmac.new(bytes(key), body.encode(), hashlib.sha256).digest())}"


async def test_the_proof_is_signed_and_old_sessions_count_as_a_bare_number(
        broker: Mosquitto, tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI))
    settings = kiosk_settings(tmp_path, broker.port)
    async with running_gateway(settings, clock), kiosk(broker.port, "k1") as k1:
        found = await ask(k1, "member.identify", {"by": "phone", "value": NUMBER})
        session = found["data"]["session"]
        assert ".phone." in session
        # Raising the proof in the token breaks its signature.
        for raised in ("card", "phone_code", "qr"):
            tampered = session.replace(".phone.", f".{raised}.")
            assert error(await ask(k1, "redeem", {"session": tampered, **GIFT})) == \
                "session_invalid"
        assert burns(tmp_path / "gw.db") == 0

        old = legacy_session(tmp_path / "gw.db", "k1", MEMBER, clock.at + timedelta(minutes=2))
        assert (await ask(k1, "checkin", {"session": old}))["data"]["member_id"] == MEMBER
        assert error(await ask(k1, "redeem", {"session": old, **GIFT})) == \
            "session_unverified"
        assert burns(tmp_path / "gw.db") == 0
