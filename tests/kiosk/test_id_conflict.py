"""A request id is the idempotency key of one request: reused for another operation or
other data it gets `id_conflict`, never the stored reply of the first (another member's
data); the identical retry still gets the stored reply."""

from __future__ import annotations

from pathlib import Path

from devices.kiosk.protocol import default_contract
from devices.mqtt.broker import Mosquitto
from gateway.app.keys import KIOSK, METRICS
from gateway.ids import new_ulid
from tests.kiosk.helpers import kiosk, kiosk_settings, running_gateway

CONTRACT = default_contract()


async def test_a_reused_id_for_other_data_is_a_conflict(broker: Mosquitto,
                                                         tmp_path: Path) -> None:
    settings = kiosk_settings(tmp_path, broker.port)
    async with running_gateway(settings) as app, kiosk(broker.port) as k1:
        one = {"session": await k1.session("card", "DEMO0001")}
        two = {"session": await k1.session("card", "DEMO0002")}
        first = new_ulid()
        checkin = await k1.request("checkin", one, request_id=first)
        assert checkin["status"] == "ok"

        other_op = await k1.request("balance.query", {"member_id": "m-demo-0001"},
                                    request_id=first)
        other_member = await k1.request("checkin", two, request_id=first)
        for reply in (other_op, other_member):
            assert reply["status"] == "error" and reply["error"]["code"] == "id_conflict"
            assert reply["re"] == first
            assert "data" not in reply  # nothing of the first request's answer
            assert CONTRACT.schema_error("#/components/schemas/ErrorReply", reply) is None

        assert await k1.request("checkin", one, request_id=first) == checkin
        # m-demo-0002 was not checked in under the reused id.
        fresh = await k1.request("checkin", two)
        assert fresh["status"] == "ok"

        # A stored refusal is guarded the same way.
        refused_id = new_ulid()
        nobody = await k1.request("member.identify", {"by": "card", "value": "NOPE"},
                                  request_id=refused_id)
        assert nobody["error"]["code"] == "unknown_member"
        reused = await k1.request("member.identify", {"by": "card", "value": "DEMO0003"},
                                  request_id=refused_id)
        assert reused["error"]["code"] == "id_conflict"

        assert app[KIOSK].stats.retries == 1
        scraped = app[METRICS].render().decode()
        assert 'mallgate_kiosk_rejected_total{code="id_conflict"} 3.0' in scraped
