"""The birthday gift at a kiosk, through the app and a real mosquitto: the member's first
identify or balance query in their birthday month gives it, once a year."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from devices.kiosk.protocol import default_contract
from devices.mqtt.broker import Mosquitto
from gateway.app.keys import READER, WRITER
from tests.kiosk.helpers import Clock, kiosk, kiosk_settings, running_gateway

SHANGHAI = ZoneInfo("Asia/Shanghai")
CONTRACT = default_contract()
GIFT = 200  # the default birthday gift
WELCOME = 500  # what demo members start with


def conforms(op: str, reply: dict[str, object]) -> bool:
    return CONTRACT.schema_error(CONTRACT.reply_schemas[op], reply) is None


async def test_first_interaction_of_the_birthday_month_gives_the_gift_once(
        broker: Mosquitto, tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 5, 10, 10, 0, tzinfo=SHANGHAI))
    settings = kiosk_settings(tmp_path, broker.port)
    async with running_gateway(settings, clock) as app, kiosk(broker.port) as k1, \
            kiosk(broker.port, "k2") as k2:
        await app[WRITER].submit(lambda c: c.executemany(
            "UPDATE members SET birth_month = ?, birth_day = ? WHERE id = ?",
            [(5, 28, "m-demo-0001"), (6, 1, "m-demo-0002")]))

        first = await k1.request("member.identify", {"by": "card", "value": "DEMO0001"})
        assert first["status"] == "ok" and conforms("member.identify", first), first
        assert first["data"]["gifts"] == [
            {"kind": "birthday", "points": GIFT, "reason": "Birthday gift 2026"}]
        assert first["data"]["available"] == WELCOME + GIFT
        # Later requests, at any kiosk, show the points and give nothing more.
        again = await k2.request("balance.query", {"member_id": "m-demo-0001"})
        assert again["status"] == "ok" and conforms("balance.query", again), again
        assert "gifts" not in again["data"] and again["data"]["available"] == WELCOME + GIFT
        # A birthday in another month: nothing yet.
        june = await k1.request("balance.query", {"member_id": "m-demo-0002"})
        assert "gifts" not in june["data"] and june["data"]["available"] == WELCOME

        clock.at += timedelta(days=25)  # 4 June
        in_june = await k1.request("member.identify", {"by": "card", "value": "DEMO0002"})
        assert [g["points"] for g in in_june["data"]["gifts"]] == [GIFT]
        late = await k1.request("member.identify", {"by": "card", "value": "DEMO0001"})
        assert "gifts" not in late["data"]

        clock.at = datetime(2027, 5, 1, 9, 0, tzinfo=SHANGHAI)  # the next year's May
        next_year = await k2.request("balance.query", {"member_id": "m-demo-0001"})
        assert [g["reason"] for g in next_year["data"]["gifts"]] == ["Birthday gift 2027"]

        rows = await app[READER].run(lambda c: c.execute(
            "SELECT member_id, source_key, points, actor FROM ledger "
            "WHERE source_type = 'birthday' ORDER BY source_key").fetchall())
        assert rows == [("m-demo-0001", "m-demo-0001:2026", GIFT, "kiosk"),
                        ("m-demo-0001", "m-demo-0001:2027", GIFT, "kiosk"),
                        ("m-demo-0002", "m-demo-0002:2026", GIFT, "kiosk")]
        outbox = await app[READER].run(lambda c: c.execute(
            "SELECT count(*) FROM outbox o JOIN ledger l ON l.entry_id = o.event_id "
            "WHERE l.source_type = 'birthday'").fetchone()[0])
        assert outbox == 3  # each on its way to central
