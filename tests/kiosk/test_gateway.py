"""Every kiosk operation through a real mosquitto and the real gateway app and store."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from devices.kiosk.protocol import default_contract
from devices.mqtt.broker import BrokerProcess, Mosquitto, iotcore_installed
from gateway.app.keys import KIOSK, LEDGER, METRICS, WRITER
from gateway.ids import new_ulid
from gateway.members import make_qr_token
from gateway.receipts import Capture, ParsedReceipt, ReceiptKind, ReceiptPipeline
from tests.brokers import KINDS, running_broker
from tests.conftest import free_port
from tests.kiosk.helpers import (
    QR_KEY,
    Clock,
    eventually,
    kiosk,
    kiosk_settings,
    running_gateway,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
CONTRACT = default_contract()


def conforms(op: str, reply: dict[str, object]) -> bool:
    schema = (CONTRACT.reply_schemas[op] if reply["status"] == "ok"
              else "#/components/schemas/ErrorReply")
    return CONTRACT.schema_error(schema, reply) is None


@pytest.fixture(params=KINDS)
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BrokerProcess]:
    """Every test here against mosquitto and against rumqttd, the fallback demo broker."""
    async with running_broker(request.param, tmp_path / "broker") as running:
        yield running


@pytest.fixture(params=["external", "embedded", "embedded-iotcore"])
async def broker_port(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[
        tuple[int, dict[str, str]]]:
    """The test's own mosquitto, or the demo broker the gateway starts itself: mosquitto
    (found first), or rumqttd when forced."""
    if request.param == "embedded-iotcore" and not iotcore_installed():
        pytest.skip("iotcore is not installed (pip install 'mallgate[broker]')")
    if request.param.startswith("embedded"):
        kind = "iotcore" if request.param == "embedded-iotcore" else "auto"
        yield free_port(), {"broker": "embedded", "embedded_dir": str(tmp_path / "mqtt"),
                            "embedded_broker": kind}
        return
    async with Mosquitto(free_port(), tmp_path / "broker") as running:
        yield running.port, {}


async def test_identify_balance_checkin_redeem(broker_port: tuple[int, dict[str, str]],
                                               tmp_path: Path) -> None:
    port, extra = broker_port
    clock = Clock(datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI))
    settings = kiosk_settings(tmp_path, port, **extra)
    async with running_gateway(settings, clock), kiosk(port) as k1:
        by_card = await k1.request("member.identify", {"by": "card", "value": "DEMO0001"})
        assert by_card["status"] == "ok" and conforms("member.identify", by_card)
        assert by_card["data"]["member_id"] == "m-demo-0001"
        assert by_card["data"]["available"] == 500

        token = make_qr_token(QR_KEY.encode(), "m-demo-0002", clock.at + timedelta(minutes=5))
        by_qr = await k1.request("member.identify", {"by": "qr", "value": token})
        assert by_qr["data"]["member_id"] == "m-demo-0002"
        by_phone = await k1.request("member.identify", {"by": "phone", "value": "+8613800000003"})
        assert by_phone["data"]["member_id"] == "m-demo-0003"

        old = make_qr_token(QR_KEY.encode(), "m-demo-0002", clock.at - timedelta(minutes=5))
        expired = await k1.request("member.identify", {"by": "qr", "value": old})
        assert expired["error"]["code"] == "token_expired" and conforms("x", expired)
        forged = await k1.request("member.identify", {"by": "qr", "value": token[:-2] + "AA"})
        assert forged["error"]["code"] == "invalid_token"
        nobody = await k1.request("member.identify", {"by": "card", "value": "NOPE"})
        assert nobody["error"]["code"] == "unknown_member"

        balance = await k1.request("balance.query", {"member_id": "m-demo-0001"})
        assert conforms("balance.query", balance)
        assert balance["data"]["available"] == 500
        # the welcome points lapse with the next year: spendable through 31 December 2027
        assert (balance["data"]["expiring_points"], balance["data"]["expiring_last_day"],
                balance["data"]["expiring_at"]) == (500, "2027-12-31",
                                                    "2027-12-31T16:00:00.000000+00:00")

        first = new_ulid()
        member = {"session": by_card["data"]["session"]}
        checkin = await k1.request("checkin", member, request_id=first)
        assert checkin["status"] == "ok" and conforms("checkin", checkin)
        assert checkin["data"]["member_id"] == "m-demo-0001"
        assert checkin["data"]["date"] == "2026-11-22"
        points = checkin["data"]["points"]
        again = await k1.request("checkin", member)
        assert again["error"]["code"] == "already_checked_in"
        retried = await k1.request("checkin", member, request_id=first)
        assert retried == checkin  # the stored reply, not a second check-in
        clock.at += timedelta(days=1)
        member = {"session": await k1.session("card", "DEMO0001")}
        tomorrow = await k1.request("checkin", member)
        assert tomorrow["status"] == "ok"

        redeem_id = new_ulid()
        gift = {**member, "kind": "gift", "item": "mug", "points": 300}
        redeemed = await k1.request("redeem", gift, request_id=redeem_id)
        assert redeemed["status"] == "ok" and conforms("redeem", redeemed)
        assert redeemed["data"]["available"] == 500 + 2 * points - 300
        assert await k1.request("redeem", gift, request_id=redeem_id) == redeemed
        too_much = await k1.request("redeem", {**gift, "points": 10_000})
        assert too_much["error"]["code"] == "insufficient_points"
        assert too_much["data"]["available"] == 500 + 2 * points - 300
        after = await k1.request("balance.query", {"member_id": "m-demo-0001"})
        assert after["data"]["available"] == 500 + 2 * points - 300  # burned once
        # the burn took the soonest-lapsing points; check-ins lapse at the same instant
        assert after["data"]["expiring_points"] == 500 + 2 * points - 300
        assert conforms("balance.query", after)


async def test_concurrent_redemptions_never_overdraw(broker: Mosquitto, tmp_path: Path) -> None:
    """Twelve redemptions of 100 points race from two kiosks against 500 points: the
    balance check and the burn are one step, so exactly five pass."""
    settings = kiosk_settings(tmp_path, broker.port)
    async with (running_gateway(settings), kiosk(broker.port, "k1") as k1,
                kiosk(broker.port, "k2") as k2):
        sessions = {k: await k.session("card", "DEMO0001") for k in (k1, k2)}

        def redeem(n: int) -> dict[str, object]:
            return {"session": sessions[k1 if n % 2 else k2], "kind": "gift",
                    "item": f"g-{n}", "points": 100}
        replies = await asyncio.gather(*(
            (k1 if n % 2 else k2).request("redeem", redeem(n)) for n in range(12)))
        codes = sorted(r["status"] if r["status"] == "ok" else r["error"]["code"]
                       for r in replies)
        assert codes == ["insufficient_points"] * 7 + ["ok"] * 5
        after = [r["data"]["available"] for r in replies if r["status"] == "ok"]
        assert sorted(after) == [0, 100, 200, 300, 400]
        balance = await k1.request("balance.query", {"member_id": "m-demo-0001"})
        assert balance["data"]["available"] == 0


async def test_bad_input_gets_clear_errors_and_service_continues(
        broker: Mosquitto, tmp_path: Path) -> None:
    settings = kiosk_settings(tmp_path, broker.port, max_payload_bytes=2048)
    async with running_gateway(settings) as app, kiosk(broker.port) as k1:
        rid = new_ulid()
        cases = [
            (b"{not json", "invalid_payload", None),
            (json.dumps({"v": 1, "id": rid, "ts": "2026-11-22T10:00:00Z", "boot": 1,
                         "seq": 1, "data": {"member_id": "m-demo-0001", "x": 1}}).encode(),
             "invalid_payload", rid),
            (b"{" + b" " * 5000 + b"}", "payload_too_large", None),
        ]
        for payload, code, re_id in cases:
            # Replies to id-less requests are matched on the MQTT correlation data.
            corr = new_ulid()
            reply = await k1.request("checkin", {}, payload=payload, request_id=re_id or corr)
            assert reply["error"]["code"] == code
            assert reply["re"] == re_id
            assert conforms("checkin", reply)
        unknown = await k1.request("teleport", {"member_id": "m-demo-0001"})
        assert unknown["error"]["code"] == "unknown_op"
        ok = await k1.request("balance.query", {"member_id": "m-demo-0001"})
        assert ok["status"] == "ok"
        service = app[KIOSK]
        assert service.stats.dead_letters == 4
        with sqlite3.connect(tmp_path / "gw.db") as db:
            rows = db.execute("SELECT source, error_code, raw FROM dead_letters "
                              "ORDER BY id").fetchall()
        assert [(r[0], r[1]) for r in rows] == [
            ("kiosk", "invalid_payload"), ("kiosk", "invalid_payload"),
            ("kiosk", "payload_too_large"), ("kiosk", "unknown_op")]
        assert rows[0][2] == b"{not json"
        scraped = app[METRICS].render().decode()
        assert "mallgate_kiosk_dead_letters_total 4.0" in scraped
        assert 'mallgate_kiosk_rejected_total{code="invalid_payload"} 2.0' in scraped
        assert 'mallgate_kiosk_online{kiosk="k1"} 1.0' in scraped


async def test_rate_limit_per_kiosk(broker: Mosquitto, tmp_path: Path) -> None:
    settings = kiosk_settings(tmp_path, broker.port, rate_burst=3, rate_per_s=0.001)
    async with (running_gateway(settings), kiosk(broker.port, "k1") as k1,
                kiosk(broker.port, "k2") as k2):
        query = {"member_id": "m-demo-0001"}
        codes = [(await k1.request("balance.query", query)).get("error", {}).get("code")
                 for _ in range(5)]
        assert codes == [None, None, None, "rate_limited", "rate_limited"]
        assert (await k2.request("balance.query", query))["status"] == "ok"  # per kiosk


async def test_offline_redemption_stays_within_the_allowance(
        broker: Mosquitto, tmp_path: Path) -> None:
    # A central is configured but not known to be reachable: offline rules apply, and
    # nothing is confirmed by central yet, so the allowance is zero.
    settings = kiosk_settings(tmp_path, broker.port, central="https://central.invalid")
    async with running_gateway(settings) as app, kiosk(broker.port) as k1:
        session = await k1.session("card", "DEMO0001")

        def coupon(n: int) -> dict[str, object]:
            return {"session": session, "kind": "gift", "item": f"c-{n}", "points": 100}

        reply = await k1.request("redeem", coupon(1))
        assert reply["error"]["code"] == "offline_limit"
        # Central granted 150 points at its last sync (sequence 0): one redemption of 100
        # fits, a second does not, since central has not seen the first.
        await app[WRITER].submit(lambda conn: conn.execute(
            "INSERT INTO offline_allowances (account_id, points, granted_seq, granted_at) "
            "VALUES ('a-demo-0001', 150, 0, '2026-01-01T00:00:00+00:00')"))
        assert (await k1.request("redeem", coupon(2)))["status"] == "ok"
        reply = await k1.request("redeem", coupon(3))
        assert reply["error"]["code"] == "offline_limit"


async def test_gateway_and_kiosk_status(broker: Mosquitto, tmp_path: Path) -> None:
    settings = kiosk_settings(tmp_path, broker.port)
    async with running_gateway(settings) as app:
        service = app[KIOSK]
        async with kiosk(broker.port, "k7", boot=9) as k7:
            await k7.request("balance.query", {"member_id": "m-demo-0001"})
            assert service.kiosks["k7"].online and service.kiosks["k7"].boot == 9
        await eventually(lambda: not service.kiosks["k7"].online)
    # The gateway said goodbye on its retained status.
    async with kiosk(broker.port, "k8") as k8:
        link = k8.link
        link._client.subscribe("lty/v1/test-mall/gateway/status", qos=1)
        async with asyncio.timeout(10):
            while True:
                message = await link.receive()
                if message.topic.endswith("gateway/status"):
                    assert json.loads(message.payload)["online"] is False
                    break


async def test_the_embedded_demo_broker(tmp_path: Path) -> None:
    """broker = "embedded": the gateway starts mosquitto itself and serves through it."""
    port = free_port()
    settings = kiosk_settings(tmp_path, port, broker="embedded",
                              embedded_dir=str(tmp_path / "mqtt"))
    async with running_gateway(settings) as app, kiosk(port) as k1:
        assert app[KIOSK].ops.ops == CONTRACT.ops  # every operation of the contract served
        reply = await k1.request("member.identify", {"by": "card", "value": "DEMO0002"})
        assert reply["data"]["member_id"] == "m-demo-0002"
        checkin = await k1.request("checkin", {"session": reply["data"]["session"]})
        assert checkin["status"] == "ok"
    assert (tmp_path / "mqtt" / "mosquitto.conf").read_text().startswith("# Generated")


async def test_receipt_claim(broker: Mosquitto, tmp_path: Path) -> None:
    """A receipt printed without a member code, claimed at a kiosk within the claim days."""
    clock = Clock(datetime(2026, 11, 22, 15, 0, tzinfo=SHANGHAI))
    settings = kiosk_settings(tmp_path, broker.port)
    async with running_gateway(settings, clock) as app, kiosk(broker.port) as k1:
        def parser(capture: Capture) -> ParsedReceipt:
            number, days_ago = capture.raw.decode().split(":")
            return ParsedReceipt(kind=ReceiptKind.SALE, receipt_no=number, total_fen=12_800,
                                 occurred_at=clock.at - timedelta(days=int(days_ago)))
        pipeline = ReceiptPipeline(app[LEDGER], parser)
        for raw in (b"R-1:0", b"R-OLD:10"):
            outcome = await pipeline.ingest(store_id="S01", pos_id="P1", mode="jsonl", raw=raw)
            assert (outcome.status, outcome.member_id) == ("sale", None)

        sessions = {card: await k1.session("card", card) for card in ("DEMO0004", "DEMO0001")}

        def claim(no: str, member: str = "DEMO0004", day: str = "2026-11-22") -> dict[
                str, object]:
            return {"session": sessions[member], "store_id": "S01", "pos_id": "P1",
                    "receipt_no": no, "business_date": day}

        request_id = new_ulid()
        claimed = await k1.request("receipt.claim", claim("R-1"), request_id=request_id)
        assert claimed["status"] == "ok" and conforms("receipt.claim", claimed)
        assert claimed["data"]["points"] == 128  # m-demo-0004 is on the base tier
        assert claimed["data"]["available"] == 500 + 128
        assert await k1.request("receipt.claim", claim("R-1"), request_id=request_id) == claimed
        assert claimed["data"]["member_id"] == "m-demo-0004"
        no_session = {k: v for k, v in claim("R-1").items() if k != "session"}
        refused = await k1.request("receipt.claim", {**no_session, "member_id": "m-demo-0004"})
        assert refused["error"]["code"] == "session_required"
        other = await k1.request("receipt.claim", claim("R-1", member="DEMO0001"))
        assert other["error"]["code"] == "receipt_already_claimed"
        missing = await k1.request("receipt.claim", claim("R-404"))
        assert missing["error"]["code"] == "receipt_not_found"
        old = await k1.request("receipt.claim", claim("R-OLD", day="2026-11-12"))
        assert old["error"]["code"] == "receipt_claim_expired"
        bad_day = await k1.request("receipt.claim", claim("R-1", day="2026-02-30"))
        assert bad_day["error"]["code"] == "invalid_payload"
        balance = await k1.request("balance.query", {"member_id": "m-demo-0004"})
        assert balance["data"]["available"] == 500 + 128  # credited once


async def test_stored_replies_are_forgotten_after_the_retention(
        broker: Mosquitto, tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI))
    settings = kiosk_settings(tmp_path, broker.port)
    async with running_gateway(settings, clock), kiosk(broker.port) as k1:
        first = new_ulid()
        member = {"session": await k1.session("card", "DEMO0001")}
        await k1.request("checkin", member, request_id=first)
    clock.at += timedelta(days=3)
    async with running_gateway(settings, clock), kiosk(broker.port) as k1:
        def count() -> int:
            with sqlite3.connect(tmp_path / "gw.db") as db:
                return int(db.execute("SELECT count(*) FROM kiosk_requests").fetchone()[0])
        await eventually(lambda: count() == 0)
        # A retry that late is served as a new request: its session has long expired.
        late = await k1.request("checkin", member, request_id=first)
        assert late["error"]["code"] == "session_expired"
        member = {"session": await k1.session("card", "DEMO0001")}
        today = await k1.request("checkin", member)
        assert today["status"] == "ok" and today["data"]["date"] == "2026-11-25"
