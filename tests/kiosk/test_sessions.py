"""Writes on a member need the session `member.identify` opened at that kiosk: over a real
mosquitto, against the gateway app, with a controllable clock."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from devices.kiosk.protocol import default_contract
from devices.mqtt.broker import Mosquitto
from gateway.ids import new_ulid
from tests.kiosk.helpers import Clock, kiosk, kiosk_settings, running_gateway

SHANGHAI = ZoneInfo("Asia/Shanghai")
CONTRACT = default_contract()


def code(reply: dict[str, object]) -> object:
    assert CONTRACT.schema_error("#/components/schemas/ErrorReply", reply) is None, reply
    error = reply["error"]
    assert isinstance(error, dict)
    return error["code"]


def burns(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM ledger WHERE kind = 'BURN' OR "
                                "source_type = 'checkin'").fetchone()[0])


async def test_writes_without_a_valid_session_of_this_kiosk_are_refused(
        broker: Mosquitto, tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI))
    settings = kiosk_settings(tmp_path, broker.port, session_s=120)
    async with (running_gateway(settings, clock), kiosk(broker.port, "k1") as k1,
                kiosk(broker.port, "k2") as k2):
        found = await k1.request("member.identify", {"by": "card", "value": "DEMO0001"})
        assert CONTRACT.schema_error(CONTRACT.reply_schemas["member.identify"], found) is None
        session = found["data"]["session"]
        assert found["data"]["session_expires_at"].startswith("2026-11-22T02:02:00")
        gift = {"kind": "gift", "item": "mug", "points": 10}

        # A bare member id moves nothing: that was the hole.
        assert code(await k1.request("checkin", {"member_id": "m-demo-0001"})) == \
            "session_required"
        assert code(await k1.request("redeem", {"member_id": "m-demo-0001", **gift})) == \
            "session_required"
        assert code(await k1.request("offer.claim", {"member_id": "m-demo-0001",
                                                     "offer_id": "demo-welcome"})) == \
            "session_required"
        # Another kiosk's session, a forged one, one naming another member.
        assert code(await k2.request("redeem", {"session": session, **gift})) == \
            "session_wrong_kiosk"
        forged = session[:-2] + ("AA" if not session.endswith("AA") else "BB")
        assert code(await k1.request("redeem", {"session": forged, **gift})) == \
            "session_invalid"
        assert code(await k1.request("redeem", {"session": session,
                                                "member_id": "m-demo-0002", **gift})) == \
            "session_invalid"
        assert burns(tmp_path / "gw.db") == 0

        # Within its time the session works, at its own kiosk, for its member.
        first = new_ulid()
        redeemed = await k1.request("redeem", {"session": session, **gift}, request_id=first)
        assert redeemed["status"] == "ok" and redeemed["data"]["member_id"] == "m-demo-0001"
        clock.at += timedelta(seconds=121)
        assert code(await k1.request("checkin", {"session": session})) == "session_expired"
        # A retry of a request served in time still gets its stored reply.
        assert await k1.request("redeem", {"session": session, **gift},
                                request_id=first) == redeemed
        assert burns(tmp_path / "gw.db") == 1
        # Identified again, the member checks in.
        again = await k1.session("card", "DEMO0001")
        assert (await k1.request("checkin", {"session": again}))["status"] == "ok"
        assert burns(tmp_path / "gw.db") == 2


async def test_a_session_outlives_a_restart_of_the_gateway(broker: Mosquitto,
                                                           tmp_path: Path) -> None:
    """The key that signs sessions is kept in the store: a kiosk's session opened before
    a restart still works after it (and a request redelivered after a crash is served)."""
    settings = kiosk_settings(tmp_path, broker.port)
    async with running_gateway(settings), kiosk(broker.port) as k1:
        session = await k1.session("card", "DEMO0003")
    async with running_gateway(settings), kiosk(broker.port) as k1:
        reply = await k1.request("checkin", {"session": session})
        assert reply["status"] == "ok" and reply["data"]["member_id"] == "m-demo-0003"
