"""The balance a check-in reply carries, computed inside its writer op with the entry it
just recorded, equals the balance read afresh once the op has committed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devices.kiosk.protocol import REPLIES, decode_request, default_contract
from gateway.ids import new_ulid
from gateway.ledger import Ledger
from gateway.loyalty.hlc import HybridClock
from gateway.members import IdentityKeys
from gateway.operations.service import Operations
from gateway.store import Reader, Writer
from tests.loyalty.helpers import RULES, burn, earn

NOW = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


@pytest.fixture
async def ops(tmp_path: Path) -> AsyncIterator[Operations]:
    async with Writer(tmp_path / "gw.db") as writer, Reader(tmp_path / "gw.db") as reader:
        ledger = Ledger(writer, reader, site="gw-1", clock=HybridClock("gw1"), rules=RULES,
                        now=lambda: NOW)
        await writer.submit(lambda conn: conn.execute(
            "INSERT INTO members (id, account_id, tier, updated_at) "
            "VALUES ('M1', 'A1', 'normal', '2026-01-01T00:00:00.000000+00:00')"))
        yield Operations(ledger=ledger, reader=reader, writer=writer,
                         keys=IdentityKeys(None, None, 30), replies=REPLIES,
                         central_online=lambda: True,
                         claim_days=7, sessions=None, site="gw-1")


async def request(ops: Operations, op: str, data: dict[str, object]) -> dict[str, object]:
    payload = json.dumps({"v": 1, "id": new_ulid(), "ts": "2026-03-01T04:00:00.000Z",
                          "boot": 1, "seq": 1, "data": data}).encode()
    reply, retry = await ops.handle(
        decode_request(default_contract(), "k1", op, payload).operation())
    assert not retry
    return reply


@pytest.mark.parametrize("read_first", [False, True])
async def test_a_checkin_reply_has_the_balance_read_after_it(ops: Operations,
                                                             read_first: bool) -> None:
    ledger = ops.ledger
    earlier = await ledger.record_many([
        earn(100, datetime(2026, 2, 1, tzinfo=UTC), key="e1", member="M1"),
        earn(40, datetime(2026, 2, 2, tzinfo=UTC), key="e2", member="M1"),
        burn(30, datetime(2026, 2, 3, tzinfo=UTC), key="b1")])
    await ledger.acknowledge([(earlier[0].entry.entry_id, 1)])  # e2 and b1 unacknowledged
    if read_first:  # the account cached, as after an identify
        await request(ops, "balance.query", {"member_id": "M1"})

    reply = await request(ops, "checkin", {"member_id": "M1"})
    assert reply["status"] == "ok", reply
    data = reply["data"]
    assert isinstance(data, dict)
    balance = await ledger.balance("A1", NOW)
    assert balance.pending > 0 and balance.confirmed == 100
    assert data["available"] == balance.available == 110 + RULES.checkin.points

    again = await request(ops, "checkin", {"member_id": "M1"})
    assert again["status"] == "error"
    redeemed = await request(ops, "redeem", {"member_id": "M1", "kind": "gift",
                                             "item": "pen", "points": 10})
    assert redeemed["status"] == "ok", redeemed
    redeemed_data = redeemed["data"]
    assert isinstance(redeemed_data, dict)
    assert redeemed_data["available"] == (await ledger.balance("A1", NOW)).available


async def test_a_balance_reply_names_the_points_that_lapse_first(ops: Operations) -> None:
    contract = default_contract()
    empty = await request(ops, "balance.query", {"member_id": "M1"})
    assert contract.schema_error(contract.reply_schemas["balance.query"], empty) is None
    data = empty["data"]
    assert isinstance(data, dict)
    assert (data["expiring_points"], data["expiring_last_day"], data["expiring_at"]) == (
        0, None, None)

    await ops.ledger.record_many([
        earn(100, datetime(2026, 2, 1, tzinfo=UTC), key="e1", member="M1"),
        earn(40, datetime(2026, 2, 2, tzinfo=UTC), key="e2", member="M1"),
        earn(5, datetime(2026, 2, 3, tzinfo=UTC), key="e3", member="M1",
             expires_in_days=None),
        burn(30, datetime(2026, 2, 3, tzinfo=UTC), key="b1")])
    reply = await request(ops, "balance.query", {"member_id": "M1"})
    assert contract.schema_error(contract.reply_schemas["balance.query"], reply) is None
    data = reply["data"]
    assert isinstance(data, dict)
    # the burn took the soonest lot's points: 70 of e1's 100 lapse first, on 1 February
    # 2027 at 00:00 UTC, which is 08:00 in Shanghai: spendable that whole local day
    assert (data["expiring_points"], data["expiring_last_day"], data["expiring_at"]) == (
        70, "2027-02-01", "2027-02-01T00:00:00.000000+00:00")
