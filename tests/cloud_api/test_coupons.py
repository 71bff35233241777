"""Coupons at central on every storage backend: campaigns issued within their limits,
online redemption once, voids, the gateways' coupon facts, and the change feed."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud_api.client import CentralClient
from cloud_api.errors import CentralRejected
from cloud_api.server.sqlite_store import SqliteStorage
from gateway.loyalty import (
    Campaign,
    CouponFact,
    CouponKind,
    CouponTerms,
    FactKind,
    coupon_to_wire,
    issue_coupon,
    issued_fact,
    new_code,
    verify_code,
)
from tests.cloud_api.central import GATEWAY, MALL, Central, running_central

VOUCHER = {"kind": "cash_voucher", "off_fen": 500, "min_spend_fen": 2000}
BASKET = {"total_fen": 3000, "lines": [{"amount_fen": 3000, "category": "food"}]}


async def members(admin: CentralClient) -> None:
    for member, tier, tags in (("M1", "gold", ["loyal"]), ("M2", "normal", ["loyal"]),
                               ("M3", "silver", [])):
        await admin.create_member(MALL, {"member_id": member, "account_id": f"A-{member}",
                                         "tier": tier, "tags": tags})


async def coupon_changes(gw: CentralClient, gateway: str = GATEWAY) -> list[dict[str, object]]:
    page = await gw.changes(gateway, 0, limit=500)
    return [c for c in page.changes if c["kind"] == "coupon.upsert"]


async def test_a_campaign_issues_within_its_limits_and_redeems_once(
        central: Central, admin: CentralClient, gw_client: CentralClient) -> None:
    await members(admin)
    await admin.put_coupon_campaign(MALL, "spring", {
        "terms": VOUCHER, "valid_days": 30, "per_member_limit": 1, "total_limit": 2})
    first = await admin.issue_coupons(MALL, "spring", tiers=["gold"], tags=["loyal"])
    assert sorted(c["member_id"] for c in first["issued"]) == ["M1", "M2"]
    again = await admin.issue_coupons(MALL, "spring", member_ids=["M1", "M3"])
    assert again["issued"] == []
    assert sorted((r["member_id"], r["code"]) for r in again["refused"]) == [
        ("M1", "member_limit"), ("M3", "campaign_limit")]
    [mine] = await admin.member_coupons(MALL, "M1")
    assert mine["status"] == "issued" and mine["terms"]["off_fen"] == 500
    # Down the change feed to the mall's gateways, with the issued fact.
    changes = await coupon_changes(gw_client)
    assert sorted(str(c["key"]) for c in changes) == sorted(
        c["coupon_id"] for c in first["issued"])

    code = mine["code"]
    redeemed = await admin.redeem_coupon(MALL, code, redemption_id="r-1", basket=BASKET,
                                         member_id="M1")
    assert redeemed["discount_fen"] == 500 and redeemed["coupon"]["status"] == "redeemed"
    repeat = await admin.redeem_coupon(MALL, code, redemption_id="r-1", basket=BASKET)
    assert repeat["duplicate"] is True
    with pytest.raises(CentralRejected) as twice:
        await admin.redeem_coupon(MALL, code, redemption_id="r-2", basket=BASKET)
    assert (twice.value.code, twice.value.details["reason"]) == (
        "coupon_refused", "already_redeemed")
    with pytest.raises(CentralRejected) as small:
        [other] = await admin.member_coupons(MALL, "M2")
        await admin.redeem_coupon(MALL, other["code"], redemption_id="r-3",
                                  basket={"total_fen": 1000})
    assert small.value.details["reason"] == "below_minimum_spend"
    with pytest.raises(CentralRejected) as void_redeemed:
        await admin.void_coupon(MALL, mine["coupon_id"], "mistake")
    assert void_redeemed.value.status == 409
    voided = await admin.void_coupon(MALL, other["coupon_id"], "withdrawn")
    assert voided["status"] == "voided"
    feed = {c["key"]: c for c in await coupon_changes(gw_client)}
    facts = feed[other["coupon_id"]]["payload"]["facts"]  # type: ignore[index]
    assert sorted(f["kind"] for f in facts) == ["issued", "voided"]


async def test_a_group_wide_coupon_is_redeemed_at_central(central: Central,
                                                          admin: CentralClient) -> None:
    await members(admin)
    await admin.put_coupon_campaign(MALL, "group", {"terms": VOUCHER, "valid_days": 7,
                                                    "group_wide": True})
    [coupon] = (await admin.issue_coupons(MALL, "group", member_ids=["M2"]))["issued"]
    assert coupon["mall"] == "*"
    done = await admin.redeem_coupon(MALL, coupon["code"], redemption_id="g-1",
                                     basket=BASKET, member_id="M2")
    assert done["discount_fen"] == 500
    with pytest.raises(CentralRejected) as again:
        await admin.redeem_coupon(MALL, coupon["code"], redemption_id="g-2", basket=BASKET)
    assert again.value.details["reason"] == "already_redeemed"


async def test_racing_online_redemptions_one_wins(central: Central,
                                                  admin: CentralClient) -> None:
    await members(admin)
    await admin.put_coupon_campaign(MALL, "race", {"terms": VOUCHER, "valid_days": 7})
    issued = await admin.issue_coupons(MALL, "race", member_ids=["M1"])
    code = issued["issued"][0]["code"]
    results = await asyncio.gather(*(admin.redeem_coupon(
        MALL, code, redemption_id=f"race-{n}", basket=BASKET) for n in range(4)),
        return_exceptions=True)
    won = [r for r in results if isinstance(r, dict)]
    assert len(won) == 1 and all(isinstance(r, CentralRejected) for r in results
                                 if r not in won)


def _event(event_type: str, fact_id: str, member: str, **body: object) -> str:
    return json.dumps({"event_id": fact_id, "type": event_type,
                       "payload": {"member_id": member, "account_id": f"A-{member}", **body}})


async def test_a_gateways_coupon_facts_reach_central_and_the_other_gateways(
        central: Central, admin: CentralClient, gw_client: CentralClient) -> None:
    await members(admin)
    other_token = await central.storage.add_token(MALL, "gateway", "gw-other")
    at = datetime(2026, 5, 1, 12, tzinfo=UTC)
    campaign = Campaign(campaign_id="offer:welcome", mall=MALL, valid_days=7,
                        terms=CouponTerms(kind=CouponKind.FREE_ITEM, sku="LATTE"))
    coupon = issue_coupon(campaign, member_id="M1", source_key="visit-1",
                          code=new_code(b"k", MALL), at=at)
    held = CouponFact(coupon_id=coupon.coupon_id, kind=FactKind.HELD, ref="H1", at=at,
                      until=at + timedelta(minutes=2), site=GATEWAY)
    spent = CouponFact(coupon_id=coupon.coupon_id, kind=FactKind.REDEEMED, ref="H1", at=at,
                       site=GATEWAY)
    batch = [_event("coupon.issued", issued_fact(coupon).fact_id, "M1",
                    coupon=coupon_to_wire(coupon)),
             _event("coupon.fact", held.fact_id, "M1", fact=held.to_wire()),
             _event("coupon.fact", spent.fact_id, "M1", fact=spent.to_wire()),
             _event("coupon.fact", "not-its-id", "M1", fact=spent.to_wire())]
    verdicts = await gw_client.push_batch(GATEWAY, batch)
    assert [v.status for v in verdicts] == ["accepted"] * 3 + ["rejected"]
    assert verdicts[3].code == "invalid_event"
    again = await gw_client.push_batch(GATEWAY, batch[:3])
    assert [v.status for v in again] == ["duplicate"] * 3
    [listed] = await admin.member_coupons(MALL, "M1")
    assert (listed["status"], listed["redeemed_by"]) == ("redeemed", "H1")
    # Not sent back to the gateway that pushed them; sent to the mall's other gateway.
    assert await coupon_changes(gw_client) == []
    async with CentralClient(central.url, other_token, timeout_s=5) as other:
        changes = await coupon_changes(other, "gw-other")
    assert changes and {f["kind"] for f in changes[-1]["payload"]["facts"]} == {  # type: ignore[index]
        "issued", "held", "redeemed"}


async def test_erasing_a_member_removes_their_coupons_everywhere_at_central(
        central: Central, admin: CentralClient, gw_client: CentralClient) -> None:
    await members(admin)
    await admin.put_coupon_campaign(MALL, "bye", {"terms": VOUCHER, "valid_days": 7})
    await admin.issue_coupons(MALL, "bye", member_ids=["M1", "M2"])
    await admin.erase_member(MALL, "M1")
    assert await admin.member_coupons(MALL, "M1") == []
    assert len(await admin.member_coupons(MALL, "M2")) == 1
    feed = await coupon_changes(gw_client)
    assert sum(1 for c in feed if c["payload"] == {}) == 1  # scrubbed, still in order
    assert "M1" not in json.dumps([c["payload"] for c in feed])
    # A gateway's late coupon event of the erased member: acknowledged, not kept.
    coupon = issue_coupon(Campaign(campaign_id="late", mall=MALL, valid_days=7,
                                   terms=CouponTerms(kind=CouponKind.CASH_VOUCHER,
                                                     off_fen=100)),
                          member_id="M1", source_key="late", code=new_code(b"k", MALL),
                          at=datetime(2026, 5, 1, tzinfo=UTC))
    [verdict] = await gw_client.push_batch(GATEWAY, [_event(
        "coupon.issued", issued_fact(coupon).fact_id, "M1", coupon=coupon_to_wire(coupon))])
    assert verdict.status == "accepted"
    assert await admin.member_coupons(MALL, "M1") == []


async def test_codes_issued_centrally_carry_the_malls_key(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "central.db", coupon_keys={MALL: b"mall coupon key"})
    async with running_central(storage) as server, \
            CentralClient(server.url, server.admin_token, timeout_s=5) as admin:
        await members(admin)
        await admin.put_coupon_campaign(MALL, "keyed", {"terms": VOUCHER, "valid_days": 7})
        [coupon] = (await admin.issue_coupons(MALL, "keyed", member_ids=["M3"]))["issued"]
        # A well-formed code under another key (forged, or another mall's) is unknown:
        # refused by its tag, before any lookup.
        forged = new_code(b"some other key", MALL)
        with pytest.raises(CentralRejected) as refused:
            await admin.redeem_coupon(MALL, forged, redemption_id="r-forged", basket=BASKET)
        assert refused.value.status == 404
        redeemed = await admin.redeem_coupon(MALL, coupon["code"], redemption_id="r-keyed",
                                             basket=BASKET)
        assert redeemed["discount_fen"] > 0
    # A gateway of the mall, configured with the same [site] coupon_key, checks the tag.
    assert verify_code(b"mall coupon key", MALL, coupon["code"]) == coupon["code"]
