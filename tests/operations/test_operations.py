"""The member operations for any channel: a channel's own request and wording in, its
worded answers out, stored for retries in the transaction of what they changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.ledger import Ledger
from gateway.loyalty.hlc import HybridClock
from gateway.members import IdentityKeys, NewMember, add_members
from gateway.operations.model import OperationRequest, Refused, Replies, Reply
from gateway.operations.service import Operations
from gateway.store import Reader, Writer
from tests.loyalty.helpers import RULES, earn

NOW = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
AT = "2026-01-01T00:00:00.000000+00:00"


def ok(request_id: str, data: dict[str, Any]) -> Reply:
    return {"for": request_id, "granted": data}


def refused(request_id: str, refusal: Refused) -> Reply:
    return {"for": request_id, "refused": refusal.code, "shown": refusal.data}


# A channel other than the kiosk: its own reply shape.
TILL = Replies(ok=ok, refused=refused)


@pytest.fixture
async def ops(tmp_path: Path) -> AsyncIterator[Operations]:
    async with Writer(tmp_path / "gw.db") as writer, Reader(tmp_path / "gw.db") as reader:
        ledger = Ledger(writer, reader, site="gw-1", clock=HybridClock("gw1"), rules=RULES,
                        now=lambda: NOW)
        await writer.submit(lambda conn: add_members(
            conn, [NewMember("M1", "A1", "Li *1", "normal", (("card", "C1"),))], AT))
        await ledger.record_many([earn(100, datetime(2026, 2, 1, tzinfo=UTC), key="e1",
                                       member="M1")])
        yield Operations(ledger=ledger, reader=reader, writer=writer,
                         keys=IdentityKeys(None, None, 30), replies=TILL,
                         central_online=lambda: False, claim_days=7, sessions=None, site="gw-1")


def request(op: str, request_id: str, **data: Any) -> OperationRequest:
    return OperationRequest(op=op, key=f"till-1/{request_id}", id=request_id, data=data,
                            kiosk="till-1")


async def test_answers_come_in_the_channels_wording(ops: Operations) -> None:
    reply, retry = await ops.handle(request("member.identify", "r1", by="card", value="C1"))
    assert (reply, retry) == ({"for": "r1", "granted": {
        "member_id": "M1", "display_name": "Li *1", "tier": "normal", "tier_name": "普通",
        "discount_pct": 0, "earn_multiplier_pct": 100, "parking_hours": 0,
        "available": 100, "held": 0}},
        False)
    reply, _ = await ops.handle(request("member.identify", "r2", by="card", value="nobody"))
    assert reply == {"for": "r2", "refused": "unknown_member", "shown": None}


async def test_a_retried_write_gets_its_stored_answer_and_moves_points_once(
        ops: Operations) -> None:
    ops.central_online = lambda: True
    redeem = request("redeem", "r3", member_id="M1", kind="gift", item="pen", points=30)
    first, retry = await ops.handle(redeem)
    assert not retry and first["granted"]["available"] == 70
    again, retry = await ops.handle(redeem)
    assert retry and again == first
    assert (await ops.ledger.balance("A1", NOW)).available == 70


async def test_offline_a_redemption_past_the_allowance_is_refused_and_stored(
        ops: Operations) -> None:
    # central unreachable and no allowance granted: nothing may be spent offline
    redeem = request("redeem", "r4", member_id="M1", kind="gift", item="bag", points=50)
    reply, _ = await ops.handle(redeem)
    assert reply["refused"] == "offline_limit"
    assert reply["shown"] == {"available": 100}
    assert await ops.handle(redeem) == (reply, True)


async def test_a_bad_field_is_refused_and_not_stored(ops: Operations) -> None:
    claim = request("receipt.claim", "r5", member_id="M1", store_id="S1", pos_id="P1",
                    receipt_no="1", business_date="not-a-date")
    reply, retry = await ops.handle(claim)
    assert reply["refused"] == "invalid_payload" and not retry
    assert (await ops.handle(claim))[1] is False  # served afresh, not from a stored answer
