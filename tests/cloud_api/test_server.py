"""The reference central server over loopback, through the typed client."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from cloud_api.client import CentralClient
from cloud_api.errors import (
    CentralAuthError,
    CentralRejected,
    CursorExpired,
    PayloadTooLarge,
)
from tests.cloud_api.central import GATEWAY, MALL, Central, entry, event


async def test_health_needs_no_token_and_everything_else_does(central: Central) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(central.url + "/healthz") as response:
            assert response.status == 200
        async with session.get(central.url + f"/v1/gateways/{GATEWAY}/changes") as response:
            assert response.status == 401
            body = await response.json()
            assert body["error"]["code"] == "unauthorized"
    async with CentralClient(central.url, "mgt_wrong") as wrong:
        with pytest.raises(CentralAuthError):
            await wrong.changes(GATEWAY, 0)


async def test_tokens_are_scoped(central: Central, gw_client: CentralClient,
                                 admin: CentralClient) -> None:
    with pytest.raises(CentralAuthError) as other_gateway:
        await gw_client.changes("gw-other", 0)
    assert other_gateway.value.status == 403
    with pytest.raises(CentralAuthError):
        await gw_client.create_member(MALL, {"name": "张三"})
    with pytest.raises(CentralAuthError):
        await admin.changes(GATEWAY, 0)
    with pytest.raises(CentralAuthError):
        await admin.create_member("other-mall", {"name": "张三"})


async def test_push_gives_a_verdict_per_event_and_is_idempotent(
    gw_client: CentralClient,
) -> None:
    good, other = entry(100, "r1"), entry(50, "r2", seq=2)
    broken = json.dumps({"event_id": "x", "type": "ledger.entry", "payload": {"points": 1}})
    unknown = json.dumps({"event_id": "y", "type": "beacon.sighting", "payload": {}})
    verdicts = await gw_client.push_batch(GATEWAY, [event(good), broken, unknown,
                                                     event(other)])
    assert [v.status for v in verdicts] == ["accepted", "rejected", "rejected", "accepted"]
    assert [v.code for v in verdicts[1:3]] == ["invalid_entry", "unknown_type"]
    seqs = [verdicts[0].server_seq, verdicts[3].server_seq]
    assert seqs[0] is not None and seqs[1] is not None and seqs[0] < seqs[1]
    again = await gw_client.push_batch(GATEWAY, [event(good), event(other)])
    assert [(v.status, v.server_seq) for v in again] == [("duplicate", s) for s in seqs]


async def test_the_same_fact_from_two_gateways_is_recorded_once(
    central: Central, gw_client: CentralClient,
) -> None:
    token = await central.storage.add_token(MALL, "gateway", "gw-two")
    first = entry(10, "checkin:M1:2026-05-01")
    second = entry(10, "checkin:M1:2026-05-01", site="gw-two", seq=7)
    (v1,) = await gw_client.push_batch(GATEWAY, [event(first)])
    async with CentralClient(central.url, token) as two:
        (v2,) = await two.push_batch("gw-two", [event(second)])
    assert (v1.status, v2.status) == ("accepted", "duplicate")
    assert v1.server_seq == v2.server_seq


async def test_event_id_must_be_the_entrys_id(gw_client: CentralClient) -> None:
    e = entry(5, "r9")
    forged = json.loads(event(e)) | {"event_id": "0" * 32}
    (verdict,) = await gw_client.push_batch(GATEWAY, [json.dumps(forged)])
    assert (verdict.status, verdict.code) == ("rejected", "invalid_entry")


async def test_members_flow_down_without_personal_data(
    gw_client: CentralClient, admin: CentralClient,
) -> None:
    created = await admin.create_member(MALL, {
        "member_id": "M1", "account_id": "A1", "name": "张三丰", "phone": "13800138000",
        "tier": "silver", "identifiers": [{"kind": "card", "value": "C-1"}]})
    assert created["version"] == 1
    page = await gw_client.changes(GATEWAY, 0)
    (change,) = page.changes
    assert change["kind"] == "member.upsert"
    view = change["payload"]
    assert view["display_name_masked"] == "张**"
    assert "13800138000" not in json.dumps(page.changes)
    assert view["identifiers"] == [{"kind": "card", "value": "C-1"}]
    assert page.next_cursor == change["server_seq"] == page.head
    assert page.allowances == {"A1": 0}


async def test_own_entries_are_not_echoed_but_other_channels_are(
    gw_client: CentralClient, admin: CentralClient,
) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1", "name": "李"})
    await gw_client.push_batch(GATEWAY, [event(entry(300, "sale-1"))])
    await admin.adjust(MALL, "M1", request_id="adj-1", points=20, reason="goodwill")
    page = await gw_client.changes(GATEWAY, 0)
    kinds = [(c["kind"], c["payload"].get("source_type")) for c in page.changes]
    assert kinds == [("member.upsert", None), ("ledger.entry", "central.adjust")]
    assert page.allowances == {"A1": 320}
    rest = await gw_client.changes(GATEWAY, page.next_cursor)
    assert rest.changes == [] and rest.next_cursor == page.next_cursor


async def test_pages_follow_the_cursor(gw_client: CentralClient) -> None:
    await gw_client.push_batch(GATEWAY, [event(entry(1, f"k{i}", seq=i)) for i in range(5)])
    page = await gw_client.changes(GATEWAY, 0, limit=2)
    assert page.changes == []  # the gateway's own entries only: filtered, yet the cursor moves
    assert page.next_cursor == 2 and page.head == 5


async def test_long_poll_returns_when_a_change_commits(
    gw_client: CentralClient, admin: CentralClient,
) -> None:
    poll = asyncio.create_task(gw_client.changes(GATEWAY, 0, wait_s=20))
    await asyncio.sleep(0.05)
    assert not poll.done()
    await admin.create_member(MALL, {"member_id": "M9", "name": "王"})
    page = await asyncio.wait_for(poll, 10)
    assert [c["key"] for c in page.changes] == ["M9"]


async def test_member_balance_ledger_and_online_redemption(
    gw_client: CentralClient, admin: CentralClient,
) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1", "name": "赵"})
    await gw_client.push_batch(GATEWAY, [event(entry(100, "s1"))])
    state = await admin.get_member(MALL, "M1")
    assert state["balance"]["available"] == 100
    assert [e["points"] for e in state["ledger"]] == [100]
    with pytest.raises(CentralRejected) as refused:
        await admin.redeem(MALL, "M1", request_id="rq1", cost=150, item="mug")
    assert refused.value.code == "insufficient_points"
    done = await admin.redeem(MALL, "M1", request_id="rq2", cost=60, item="mug")
    assert done["verdict"]["status"] == "accepted" and done["balance"]["available"] == 40
    retry = await admin.redeem(MALL, "M1", request_id="rq2", cost=60, item="mug")
    assert retry["verdict"]["status"] == "duplicate" and retry["balance"]["available"] == 40


async def test_an_offline_overdraft_is_flagged_as_debt(
    gw_client: CentralClient, admin: CentralClient,
) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    await gw_client.push_batch(GATEWAY, [event(entry(100, "s1")), event(entry(-30, "b1"))])
    await admin.redeem(MALL, "M1", request_id="online", cost=70, item="bag")
    await gw_client.push_batch(GATEWAY, [event(entry(-40, "b2", seq=3))])
    state = await admin.get_member(MALL, "M1")
    assert state["balance"]["debt"] == 40
    assert [d["debt"] for d in state["flagged_debts"]] == [40]


async def test_erasure_scrubs_the_profile_and_sends_a_tombstone(
    gw_client: CentralClient, admin: CentralClient,
) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "name": "钱多多",
                                     "phone": "13900139000"})
    await admin.update_member(MALL, "M1", {"tier": "gold"})
    await admin.erase_member(MALL, "M1")
    with pytest.raises(CentralRejected) as gone:
        await admin.get_member(MALL, "M1")
    assert gone.value.status == 404
    page = await gw_client.changes(GATEWAY, 0)
    assert [c["kind"] for c in page.changes] == ["member.upsert", "member.upsert",
                                                   "member.erased"]
    assert "钱" not in json.dumps(page.changes)


async def test_profile_validation_is_a_clear_error(admin: CentralClient) -> None:
    with pytest.raises(CentralRejected) as bad:
        await admin.create_member(MALL, {"identifiers": [{"kind": "iris", "value": "x"}]})
    assert bad.value.code == "invalid_member"
    with pytest.raises(CentralRejected) as dup:
        await admin.create_member(MALL, {"member_id": "M1"})
        await admin.create_member(MALL, {"member_id": "M1"})
    assert dup.value.status == 409


async def test_an_expired_cursor_is_gone(central: Central, gw_client: CentralClient,
                                         admin: CentralClient) -> None:
    await admin.create_member(MALL, {"member_id": "M1"})
    await admin.create_member(MALL, {"member_id": "M2"})
    assert await central.storage.purge_changes(MALL, older_than_s=-1) == 2
    with pytest.raises(CursorExpired):
        await gw_client.changes(GATEWAY, 0)
    page = await gw_client.changes(GATEWAY, 2)
    assert page.changes == [] and page.head == 2


async def test_snapshot_streams_members_and_entries_from_a_cursor(
    gw_client: CentralClient, admin: CentralClient,
) -> None:
    for n in range(3):
        await admin.create_member(MALL, {"member_id": f"M{n}", "name": "孙"})
    await gw_client.push_batch(GATEWAY, [event(entry(5, f"s{i}", seq=i)) for i in range(4)])
    lines = [line async for line in gw_client.snapshot(GATEWAY)]
    assert lines[0] == {"type": "header", "cursor": "7", "format": 2, "rule_versions": []}
    assert [line["key"] for line in lines if line["type"] == "member"] == ["M0", "M1", "M2"]
    ledger = [line for line in lines if line["type"] == "ledger"]
    assert len(ledger) == 4 and all(line["server_seq"] for line in ledger)
    assert lines[-1] == {"type": "end", "cursor": "7"}
    resumed = [line async for line in gw_client.snapshot(GATEWAY, cursor=7, phase="member",
                                                         after="M1")]
    assert [line.get("key") for line in resumed][:2] == [None, "M2"]
    assert len(resumed) == 1 + 1 + 4 + 1


async def test_too_large_a_batch_is_413(gw_client: CentralClient) -> None:
    events = [event(entry(1, "x" * 3000 + str(i), seq=i)) for i in range(800)]
    with pytest.raises(PayloadTooLarge):
        await gw_client.push_batch(GATEWAY, events)


async def test_heartbeat_reports_server_time(gw_client: CentralClient) -> None:
    reply = await gw_client.heartbeat(GATEWAY, {"outbox_depth": 3})
    assert "server_time" in reply
    assert gw_client.clock_offset_ms is not None
