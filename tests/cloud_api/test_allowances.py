"""Offline allowances follow the balance: whenever a change from another channel moves an
account's balance, the gateway's next pull grants a fresh allowance."""

from __future__ import annotations

import asyncio

from cloud_api.client import CentralClient
from tests.cloud_api.central import GATEWAY, MALL, Central, entry, event


async def allowance_now(admin: CentralClient) -> int:
    state = await admin.get_member(MALL, "M1")
    return int(state["balance"]["offline_allowance"])


async def test_an_adjustment_just_after_creation_refreshes_the_allowance(
    gw_client: CentralClient, admin: CentralClient,
) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    first = await gw_client.changes(GATEWAY, 0)
    assert first.allowances == {"A1": 0}
    await admin.adjust(MALL, "M1", request_id="adj-1", points=500, reason="welcome")
    expected = await allowance_now(admin)
    assert expected > 0
    second = await gw_client.changes(GATEWAY, first.next_cursor)
    assert second.allowances == {"A1": expected}
    await admin.redeem(MALL, "M1", request_id="rq-1", cost=200, item="mug")
    third = await gw_client.changes(GATEWAY, second.next_cursor)
    assert third.allowances == {"A1": await allowance_now(admin)}


async def test_another_gateways_entries_refresh_the_allowance_once_due(
    central: Central, gw_client: CentralClient, admin: CentralClient,
) -> None:
    """Entries of other gateways are granted at most every `every_s` per account; one
    that came too soon is granted later, by a pull with nothing new (a long poll returns
    with it), never dropped."""
    central.storage.grants.every_s = 0.5  # type: ignore[attr-defined]
    token = await central.storage.add_token(MALL, "gateway", "gw-two")
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    first = await gw_client.changes(GATEWAY, 0)
    async with CentralClient(central.url, token) as two:
        await two.push_batch("gw-two", [event(entry(800, "sale-1", site="gw-two"))])
    soon = await gw_client.changes(GATEWAY, first.next_cursor)
    assert soon.allowances == {}  # too soon after the last grant: deferred
    await asyncio.sleep(0.6)
    later = await asyncio.wait_for(gw_client.changes(GATEWAY, soon.next_cursor, wait_s=20), 5)
    assert later.changes == []
    assert later.allowances == {"A1": await allowance_now(admin)} and later.allowances["A1"] > 0
