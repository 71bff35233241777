"""Loyalty rules as versions published at central, on every storage backend: a bad
version is refused with its reason and the old rules stay; a good one is applied by
everything central computes itself, by the version in force at the time concerned."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from unittest.mock import ANY

import aiohttp
import pytest

from cloud_api.client import CentralClient
from cloud_api.errors import CentralAuthError, CentralRejected
from gateway.loyalty import Entry, EntryKind, LoyaltyRules
from gateway.loyalty.versions import rules_document
from tests.cloud_api.central import GATEWAY, MALL, Central
from tests.loyalty.canonical import entry_to_json

SALE_AT = datetime(2026, 5, 1, 12, tzinfo=UTC)


def rules(version: str, **changes: Any) -> dict[str, Any]:
    """The default rules as a document, with `changes` per section merged in."""
    document = rules_document(LoyaltyRules())
    for section, values in changes.items():
        document[section] = {**document[section], **values}
    return document | {"version": version}


def cheap_silver(version: str) -> dict[str, Any]:
    tiers = rules_document(LoyaltyRules())["tiers"]
    tiers["tiers"][1]["qualifying_fen"] = 10_000  # silver from 100 yuan
    return rules(version) | {"tiers": tiers}


def sale(fen: int, key: str, seq: int, *, member: str = "M1",
         at: datetime = SALE_AT) -> str:
    entry = Entry(kind=EntryKind.EARN, points=fen // 100, qual_fen=fen,
                  account_id=member.replace("M", "A"), member_id=member,
                  source_type="pos.sale", source_key=key, reason="purchase", effective_at=at,
                  rule_version="default-1")
    stamped = entry.stamped(origin_site=GATEWAY, origin_seq=seq,
                            hlc=f"{seq:013d}-0000-{GATEWAY}", recorded_at=at)
    return json.dumps({"event_id": stamped.entry_id, "type": "ledger.entry",
                       "payload": json.loads(entry_to_json(stamped))})


async def test_a_bad_version_is_refused_with_its_reason_and_the_old_rules_stay(
        admin: CentralClient, gw_client: CentralClient) -> None:
    await admin.put_config(MALL, "loyalty", "v1", rules("v1", earn={"points_per_yuan": 2}),
                           effective_at="2026-01-01T00:00:00+08:00")
    bad = [
        (rules("v2", earn={"points_per_yuan": -1}), "earn.points_per_yuan"),
        ({**rules("v2"), "surprise": 1}, "surprise"),
        (rules("other"), "the document says version 'other'"),
        ([1, 2], "must be an object"),
    ]
    for payload, reason in bad:
        with pytest.raises(CentralRejected) as refused:
            await admin.put_config(MALL, "loyalty", "v2", payload)
        assert refused.value.status == 400 and refused.value.code == "invalid_rules"
        assert reason in refused.value.details["reason"], refused.value.details
    with pytest.raises(CentralRejected) as undated:
        await admin.put_config(MALL, "loyalty", "v2", rules("v2"), effective_at="tomorrow")
    assert undated.value.code == "invalid_rules"
    page = await gw_client.changes(GATEWAY, 0)
    versions = [c for c in page.changes if c["kind"] == "config.version"]
    assert [(c["key"], c["payload"]["version"]) for c in versions] == [("loyalty", "v1")]
    assert versions[0]["payload"]["payload"]["earn"]["points_per_yuan"] == 2
    assert versions[0]["payload"]["effective_at"] == "2025-12-31T16:00:00.000000+00:00"


async def test_a_version_is_published_once(admin: CentralClient) -> None:
    document = rules("v1", checkin={"points": 9})
    first = await admin.put_config(MALL, "loyalty", "v1", document,
                                   effective_at="2026-01-01T00:00:00Z")
    again = await admin.put_config(MALL, "loyalty", "v1", document,
                                   effective_at="2026-01-01T00:00:00Z")
    assert again == first
    with pytest.raises(CentralRejected) as other:
        await admin.put_config(MALL, "loyalty", "v1", rules("v1"),
                               effective_at="2026-01-01T00:00:00Z")
    assert other.value.status == 409 and other.value.code == "rules_version_exists"


async def test_the_answer_says_whether_the_version_was_new(admin: CentralClient) -> None:
    document = rules("v1")
    first = await admin.publish_rules(MALL, "v1", document,
                                      effective_at="2026-01-01T08:00:00+08:00")
    assert (first.version, first.effective_at, first.duplicate) == (
        "v1", "2026-01-01T00:00:00.000000+00:00", False)
    again = await admin.publish_rules(MALL, "v1", document,
                                      effective_at="2026-01-01T00:00:00Z")
    assert again.duplicate and again.server_seq == first.server_seq
    # "Now" again: the same rules are the version published, not a conflict.
    now_again = await admin.publish_rules(MALL, "v1", document)
    assert now_again == again
    with pytest.raises(CentralRejected) as changed:
        await admin.publish_rules(MALL, "v1", rules("v1", checkin={"points": 9}))
    assert changed.value.code == "rules_version_exists"


async def test_the_versions_are_listed_with_the_one_in_force_now(
        central: Central, admin: CentralClient, gw_client: CentralClient) -> None:
    central.storage.now = lambda: SALE_AT  # type: ignore[attr-defined]
    assert await admin.list_rules(MALL) == {
        "versions": [], "in_force": None, "server_time": ANY}
    for version, at in (("next", "2026-06-01T00:00:00Z"), ("old", "2026-01-01T00:00:00Z"),
                        ("now", "2026-04-30T00:00:00Z")):
        await admin.put_config(MALL, "loyalty", version, rules(version), effective_at=at)
    listed = await admin.list_rules(MALL)
    assert listed["in_force"] == "now"
    assert [(v["version"], v["effective_at"][:10], v["in_force"])
            for v in listed["versions"]] == [
        ("old", "2026-01-01", False), ("now", "2026-04-30", True),
        ("next", "2026-06-01", False)]
    seq = {v["version"]: v["server_seq"] for v in listed["versions"]}
    assert seq["next"] < seq["old"] < seq["now"]  # listed by effective time, not by seq
    with pytest.raises(CentralAuthError):
        await gw_client.list_rules(MALL)


async def test_only_loyalty_versions_are_listed(central: Central) -> None:
    headers = {"Authorization": f"Bearer {central.admin_token}"}
    async with aiohttp.ClientSession(headers=headers) as session, \
            session.get(f"{central.url}/v1/malls/{MALL}/config/offers") as answer:
        assert answer.status == 404
        assert (await answer.json())["error"]["code"] == "not_found"


async def test_online_redemption_and_allowances_follow_the_published_rules(
        admin: CentralClient, gw_client: CentralClient) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    await admin.adjust(MALL, "M1", request_id="adj-1", points=1000, reason="welcome")
    first = await gw_client.changes(GATEWAY, 0)
    assert first.allowances == {"A1": 500}  # the server's own cap until a mall publishes
    await admin.put_config(MALL, "loyalty", "cap-120",
                           rules("cap-120", redemption={"offline_allowance_cap": 120}),
                           effective_at="2020-01-01T00:00:00Z")
    await admin.redeem(MALL, "M1", request_id="rq-1", cost=100, item="mug")
    state = await admin.get_member(MALL, "M1")
    burns = [e for e in state["ledger"] if e["kind"] == "BURN"]
    assert [b["rule_version"] for b in burns] == ["cap-120"]
    assert state["balance"]["offline_allowance"] == 120
    second = await gw_client.changes(GATEWAY, first.next_cursor)
    assert second.allowances == {"A1": 120}


async def test_tier_upgrades_take_the_rules_in_force_at_the_sale(
        admin: CentralClient, gw_client: CentralClient) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1",
                                     "tier": "normal"})
    # In force only after the sale: the sale of 200 yuan is judged by the defaults.
    await admin.put_config(MALL, "loyalty", "later", cheap_silver("later"),
                           effective_at="2026-06-01T00:00:00Z")
    await gw_client.push_batch(GATEWAY, [sale(20_000, "S-1", 1)])
    assert (await admin.get_member(MALL, "M1"))["member"]["tier"] == "normal"
    # In force since before the sale of the next one: silver from 100 yuan.
    await admin.put_config(MALL, "loyalty", "earlier", cheap_silver("earlier"),
                           effective_at="2026-04-01T00:00:00Z")
    await gw_client.push_batch(GATEWAY, [sale(1_000, "S-2", 2)])
    assert (await admin.get_member(MALL, "M1"))["member"]["tier"] == "silver"


async def test_the_anniversary_review_takes_the_rules_in_force(
        central: Central, admin: CentralClient, gw_client: CentralClient) -> None:
    """Silver until 1 April, 200 yuan spent in the year: one step down under the default
    rules (silver needs 500), kept under a version in force that asks 100."""
    review_day = datetime(2026, 4, 3, 12, tzinfo=UTC)
    central.storage.now = lambda: review_day  # type: ignore[attr-defined]
    spent_at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    for n, member in enumerate(("M1", "M2")):
        await admin.create_member(MALL, {"member_id": member, "account_id": f"A{n + 1}",
                                         "tier": "silver", "tier_anniversary": "2026-04-01"})
        await gw_client.push_batch(GATEWAY, [sale(20_000, f"Y-{member}", n + 1,
                                                  member=member, at=spent_at)])
        if member == "M1":
            assert await central.storage.review_tiers(MALL) == 1
        else:
            await admin.put_config(MALL, "loyalty", "cheap", cheap_silver("cheap"),
                                   effective_at="2026-01-01T00:00:00Z")
            assert await central.storage.review_tiers(MALL) == 0
    assert (await admin.get_member(MALL, "M1"))["member"]["tier"] == "normal"
    kept = (await admin.get_member(MALL, "M2"))["member"]
    assert kept["tier"] == "silver" and kept["tier_anniversary"] > "2026-04-01"
