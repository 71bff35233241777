"""The gateways' activity events (`visit`, `offer.claimed`) on every storage backend."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import asyncpg

from cloud_api.client import CentralClient
from cloud_api.server.postgres_store import PostgresStorage
from cloud_api.server.sqlite_store import SqliteStorage
from cloud_api.server.storage import Storage
from tests.cloud_api.central import GATEWAY, MALL, Central, entry, event


def visit(event_id: str, member: str = "M1", **payload: Any) -> str:
    body = {"member_id": member, "account_id": "A1", "zone": "atrium",
            "arrived_at": "2026-05-01T20:15:00+08:00", "via": "ibeacon_token",
            "offer_id": None, **payload}
    return json.dumps({"event_id": event_id, "type": "visit", "payload": body})


def claimed(event_id: str, member: str = "M1", **payload: Any) -> str:
    body = {"member_id": member, "account_id": "A1", "offer_id": "welcome-1",
            "coupon_code": "WC-7Q2K", "kiosk_id": "K3",
            "claimed_at": "2026-05-01T12:16:30Z", **payload}
    return json.dumps({"event_id": event_id, "type": "offer.claimed", "payload": body})


async def stored(storage: Storage, member: str) -> list[tuple[str, str, str, str]]:
    """`(event_id, type, gateway_id, occurred_at)` of the member's stored activity events,
    read from the database itself."""
    sql = ("SELECT event_id, type, gateway_id, occurred_at FROM activity_events "
           "WHERE mall_id = {0} AND member_id = {1} ORDER BY event_id")
    if isinstance(storage, SqliteStorage):
        with sqlite3.connect(storage.path) as conn:
            return [tuple(row) for row in conn.execute(sql.format("?", "?"), (MALL, member))]
    assert isinstance(storage, PostgresStorage)
    conn = await asyncpg.connect(storage.dsn)
    try:
        return [tuple(row) for row in await conn.fetch(sql.format("$1", "$2"), MALL, member)]
    finally:
        await conn.close()


async def test_activity_is_accepted_once_and_a_replay_is_a_duplicate(
    central: Central, gw_client: CentralClient, admin: CentralClient,
) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    batch = [visit("v-1"), claimed("c-1"), event(entry(10, "s1")), visit("v-1")]
    verdicts = await gw_client.push_batch(GATEWAY, batch)
    assert [(v.event_id, v.status) for v in verdicts] == [
        ("v-1", "accepted"), ("c-1", "accepted"), (verdicts[2].event_id, "accepted"),
        ("v-1", "duplicate")]
    assert verdicts[0].server_seq is None and verdicts[2].server_seq is not None
    again = await gw_client.push_batch(GATEWAY, [claimed("c-1"), visit("v-1")])
    assert [(v.status, v.code) for v in again] == [("duplicate", None)] * 2
    assert await stored(central.storage, "M1") == [
        ("c-1", "offer.claimed", GATEWAY, "2026-05-01T12:16:30.000000+00:00"),
        ("v-1", "visit", GATEWAY, "2026-05-01T12:15:00.000000+00:00")]
    # Activity is not a ledger fact: nothing of it goes down the change feed.
    page = await gw_client.changes(GATEWAY, 0)
    assert [c["kind"] for c in page.changes] == ["member.upsert"]
    state = await admin.get_member(MALL, "M1")
    assert [(a["event_id"], a["type"]) for a in state["activity"]] == [
        ("c-1", "offer.claimed"), ("v-1", "visit")]
    assert state["activity"][1]["payload"]["zone"] == "atrium"


async def test_missing_or_mistyped_fields_are_rejected_with_a_clear_reason(
    central: Central, gw_client: CentralClient,
) -> None:
    no_zone = json.loads(visit("bad-1"))
    del no_zone["payload"]["zone"]
    batch = [
        json.dumps(no_zone),
        visit("bad-2", via="gps"),
        visit("bad-3", arrived_at="2026-05-01 20:15"),
        visit("bad-4", member=7),  # type: ignore[arg-type]
        claimed("bad-5", coupon_code=None),
        json.dumps({"event_id": "bad-6", "type": "offer.claimed", "payload": "M1"}),
        json.dumps({"event_id": 12, "type": "visit",
                    "payload": json.loads(visit("x"))["payload"]}),
        visit("good-1", offer_id="welcome-1"),
    ]
    verdicts = await gw_client.push_batch(GATEWAY, batch)
    assert [v.status for v in verdicts] == ["rejected"] * 7 + ["accepted"]
    assert {v.code for v in verdicts[:7]} == {"invalid_event"}
    messages = [v.message or "" for v in verdicts[:7]]
    for message, word in zip(messages, ["zone", "via", "arrived_at", "member_id",
                                        "coupon_code", "payload", "event_id"], strict=True):
        assert word in message, message
    assert "RFC 3339" in messages[2]
    assert [row[0] for row in await stored(central.storage, "M1")] == ["good-1"]


async def test_erasing_a_member_deletes_their_activity_and_keeps_none_after(
    central: Central, gw_client: CentralClient, admin: CentralClient,
) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    await admin.create_member(MALL, {"member_id": "M2", "account_id": "A2"})
    verdicts = await gw_client.push_batch(
        GATEWAY, [visit("v-1"), claimed("c-1"), visit("v-2", member="M2")])
    assert [v.status for v in verdicts] == ["accepted"] * 3
    await admin.erase_member(MALL, "M1")
    assert await stored(central.storage, "M1") == []
    assert [row[0] for row in await stored(central.storage, "M2")] == ["v-2"]
    # A gateway still holding the erased member's events: acknowledged, not kept.
    late = await gw_client.push_batch(GATEWAY, [visit("v-1"), visit("v-3")])
    assert [v.status for v in late] == ["accepted", "accepted"]
    assert await stored(central.storage, "M1") == []
