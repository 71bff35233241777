"""Malls are isolated at central: every key, lookup and uniqueness constraint is scoped by
mall, so one mall's facts never decide another's (and no reply shows another mall's
sequence numbers)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cloud_api.client import CentralClient
from tests.cloud_api.central import GATEWAY, MALL, Central, entry, event

OTHER, OTHER_GW = "other-mall", "gw-other"


@pytest.fixture
async def other_admin(central: Central) -> AsyncIterator[CentralClient]:
    token = await central.storage.add_token(OTHER, "admin", None)
    async with CentralClient(central.url, token, timeout_s=5) as client:
        yield client


@pytest.fixture
async def other_gw(central: Central) -> AsyncIterator[CentralClient]:
    token = await central.storage.add_token(OTHER, "gateway", OTHER_GW)
    async with CentralClient(central.url, token, timeout_s=5) as client:
        yield client


async def test_an_admin_request_id_is_the_malls_own(admin: CentralClient,
                                                    other_admin: CentralClient) -> None:
    for client, mall in ((other_admin, OTHER), (admin, MALL)):
        await client.create_member(mall, {"member_id": "M1", "account_id": "A1"})
        done = await client.adjust(mall, "M1", request_id="adj-1", points=500, reason="gift")
        assert done["verdict"]["status"] == "accepted"
        assert done["verdict"]["server_seq"] == 2  # the mall's own sequence
        assert done["balance"]["available"] == 500
        redeemed = await client.redeem(mall, "M1", request_id="rq-1", cost=100, item="mug")
        assert redeemed["verdict"]["status"] == "accepted"
        assert redeemed["balance"]["available"] == 400


async def test_the_same_natural_key_in_two_malls_is_two_facts(
    gw_client: CentralClient, other_gw: CentralClient, admin: CentralClient,
) -> None:
    checkin = entry(10, "checkin:M1:2026-05-01")
    for _ in range(3):  # the other mall is busier: its sequence runs ahead
        (theirs,) = await other_gw.push_batch(OTHER_GW, [event(checkin)])
    await other_gw.push_batch(OTHER_GW, [event(entry(1, "x1")), event(entry(1, "x2"))])
    (ours,) = await gw_client.push_batch(GATEWAY, [event(checkin)])
    assert (theirs.status, ours.status) == ("duplicate", "accepted")
    assert ours.server_seq == 1
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    state = await admin.get_member(MALL, "M1")
    assert [e["source_key"] for e in state["ledger"]] == ["checkin:M1:2026-05-01"]
    assert state["balance"]["available"] == 10
    page = await gw_client.changes(GATEWAY, 0)
    assert page.head == 2


async def test_activity_event_ids_are_the_malls_own(gw_client: CentralClient,
                                                    other_gw: CentralClient) -> None:
    visit = ('{"event_id": "v1", "type": "visit", "payload": {"member_id": "M1", '
             '"account_id": "A1", "zone": "z", "arrived_at": "2026-05-01T10:00:00+08:00", '
             '"via": "static"}}')
    (theirs,) = await other_gw.push_batch(OTHER_GW, [visit])
    (ours,) = await gw_client.push_batch(GATEWAY, [visit])
    assert (theirs.status, ours.status) == ("accepted", "accepted")
