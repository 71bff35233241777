"""Coupons and campaigns in central's snapshot, on every storage backend: a gateway that
resyncs after central purged their changes has them, its kiosk lists and checks them and
a till authorizes one; an interrupted snapshot resumes in the coupon phase; a coupon the
edge holds with facts central has not had keeps them."""

from __future__ import annotations

import json
from typing import Any

from cloud_api.client import CentralClient
from devices.kiosk.protocol import REPLIES
from gateway.coupons import CouponIssuer
from gateway.holds import AuthorizeRequest, BasketLine
from gateway.holds.service import Holds
from gateway.ids import new_ulid
from gateway.loyalty.wire import to_text
from gateway.members import IdentityKeys
from gateway.operations.model import OperationRequest
from gateway.operations.service import Operations
from sync.apply import SNAPSHOT_STATE, apply_snapshot_lines, get_state
from tests.cloud_api.central import MALL, Central
from tests.sync.edge import Edge

LATTE = (BasketLine("latte", 3000, "food", "LATTE"),)
BASKET = {"total_fen": 3000, "lines": [{"amount_fen": 3000, "category": "food",
                                        "sku": "LATTE"}]}


async def issued_then_purged(central: Central, admin: CentralClient) -> dict[str, Any]:
    """Two members with coupons of two campaigns, one voided, and central's change log
    purged: only the snapshot still has them. The coupons of M1 by code."""
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1", "tier": "gold"})
    await admin.create_member(MALL, {"member_id": "M2", "account_id": "A2"})
    await admin.put_coupon_campaign(MALL, "gold-coffee", {
        "terms": {"kind": "free_item", "sku": "LATTE"}, "valid_days": 7,
        "per_member_limit": 2})
    await admin.put_coupon_campaign(MALL, "voucher", {
        "terms": {"kind": "cash_voucher", "off_fen": 500}, "valid_days": 30,
        "per_member_limit": 1})
    await admin.issue_coupons(MALL, "gold-coffee", member_ids=["M1"])
    await admin.issue_coupons(MALL, "gold-coffee", member_ids=["M1"])
    await admin.issue_coupons(MALL, "voucher", member_ids=["M1", "M2"])
    coupons = {c["code"]: c for c in await admin.member_coupons(MALL, "M1")}
    voided = min(c["coupon_id"] for c in coupons.values() if c["campaign_id"] == "gold-coffee")
    await admin.void_coupon(MALL, voided, "withdrawn")
    assert await central.storage.purge_changes(MALL, older_than_s=-1) > 0
    return {c["code"]: c for c in await admin.member_coupons(MALL, "M1")}


def kiosk(edge: Edge) -> Operations:
    return Operations(ledger=edge.ledger, reader=edge.reader, writer=edge.writer,
                      keys=IdentityKeys(None, None, 30), replies=REPLIES,
                      central_online=lambda: True, claim_days=7, sessions=None,
                      site="gw-test", coupons=CouponIssuer(MALL, "gw-test", b"coupon key"))


def request(op: str, data: dict[str, Any]) -> OperationRequest:
    request_id = new_ulid()
    return OperationRequest(op=op, key=f"k1/{request_id}", id=request_id, kiosk="k1",
                            data=data)


async def test_a_new_gateway_gets_central_coupons_from_the_snapshot(
    central: Central, admin: CentralClient, edge: Edge,
) -> None:
    at_central = await issued_then_purged(central, admin)
    status = await edge.engine.sync_now()
    assert edge.engine.counters["resyncs"] == 1 and status.cursor_lag == 0
    assert await edge.read(lambda c: [r[0] for r in c.execute(
        "SELECT id FROM coupon_campaigns ORDER BY id")]) == ["gold-coffee", "voucher"]
    assert await edge.scalar("SELECT count(*) FROM coupons") == 4
    assert await edge.scalar("SELECT count(*) FROM dead_letters") == 0

    ops = kiosk(edge)
    listed, _ = await ops.handle(request("coupon.list", {"member_id": "M1"}))
    assert listed["status"] == "ok", listed
    assert {c["code"].replace("-", ""): c["status"] for c in listed["data"]["coupons"]} == {
        code: c["status"] for code, c in at_central.items()}
    [latte] = [code for code, c in at_central.items()
               if c["campaign_id"] == "gold-coffee" and c["status"] == "issued"]
    [voided] = [code for code, c in at_central.items() if c["status"] == "voided"]
    checked, _ = await ops.handle(request("coupon.check", {"member_id": "M1", "code": latte,
                                                           **BASKET}))
    assert (checked["status"], checked["data"]["discount_fen"]) == ("ok", 3000), checked
    refused, _ = await ops.handle(request("coupon.check", {"member_id": "M1",
                                                           "code": voided, **BASKET}))
    assert refused["error"]["code"] == "voided", refused

    holds = Holds(edge.ledger, central_online=lambda: True, expiry_s=120, mall=MALL,
                  site="gw-test")
    reply = await holds.authorize(AuthorizeRequest(
        store_id="S01", pos_id="P1", request_id="pay-1", member_code="M1", total_fen=3000,
        coupon_codes=(latte,), points=0, lines=LATTE))
    assert reply["status"] == "granted", reply


async def test_an_interrupted_snapshot_resumes_among_the_coupons(
    central: Central, admin: CentralClient, edge: Edge,
) -> None:
    await issued_then_purged(central, admin)
    lines = [line async for line in edge.client.snapshot(edge.engine.gateway_id)]
    kinds = [line["type"] for line in lines]
    assert kinds == ["header", "member", "member", "coupon_campaign", "coupon_campaign",
                     "coupon", "coupon", "coupon", "coupon", "end"]
    first = lines[:7]  # up to the second coupon, then the connection broke
    at = to_text(edge.ledger.now()) or ""
    await edge.writer.submit(lambda c: apply_snapshot_lines(c, first, at))
    progress = await edge.read(lambda c: get_state(c, SNAPSHOT_STATE))
    assert (progress["phase"], progress["after"]) == ("coupon", lines[6]["key"])
    assert await edge.scalar("SELECT count(*) FROM coupons") == 2

    await edge.engine.sync_now()  # finishes the snapshot from the third coupon on
    status = await edge.engine.status()
    assert not status.resync_in_progress and status.cursor_lag == 0
    assert edge.engine.counters["resyncs"] == 1
    assert await edge.read(lambda c: sorted(r[0] for r in c.execute(
        "SELECT id FROM coupons"))) == sorted(line["key"] for line in lines[5:9])
    assert await edge.scalar("SELECT count(*) FROM dead_letters") == 0


async def test_a_snapshot_keeps_the_coupon_facts_the_edge_has_not_pushed(
    central: Central, admin: CentralClient, edge: Edge,
) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    await admin.put_coupon_campaign(MALL, "voucher", {
        "terms": {"kind": "cash_voucher", "off_fen": 500}, "valid_days": 30})
    await admin.issue_coupons(MALL, "voucher", member_ids=["M1"])
    await edge.engine.sync_now()
    [coupon] = await admin.member_coupons(MALL, "M1")
    holds = Holds(edge.ledger, central_online=lambda: True, expiry_s=120, mall=MALL,
                  site="gw-test")
    reply = await holds.authorize(AuthorizeRequest(
        store_id="S01", pos_id="P1", request_id="pay-1", member_code="M1", total_fen=3000,
        coupon_codes=(coupon["code"],), points=0, lines=LATTE))
    assert reply["status"] == "granted", reply
    # The hold is not pushed yet when central's snapshot arrives.
    lines = [line async for line in edge.client.snapshot(edge.engine.gateway_id)]
    at = to_text(edge.ledger.now()) or ""
    await edge.writer.submit(lambda c: apply_snapshot_lines(c, lines, at))
    await edge.writer.submit(lambda c: apply_snapshot_lines(c, lines, at))  # twice: same
    assert await edge.read(lambda c: c.execute(
        "SELECT status FROM coupons").fetchall()) == [("held",)]
    assert await edge.read(lambda c: sorted(r[0] for r in c.execute(
        "SELECT kind FROM coupon_facts"))) == ["held", "issued"]
    assert await edge.scalar("SELECT count(*) FROM outbox WHERE event_type = 'coupon.fact'") == 1
    refused = await holds.authorize(AuthorizeRequest(
        store_id="S01", pos_id="P1", request_id="pay-2", member_code="M1", total_fen=3000,
        coupon_codes=(coupon["code"],), points=0, lines=LATTE))
    assert refused["error"] == "already_held", refused
    await edge.engine.sync_now()
    assert await edge.scalar("SELECT count(*) FROM outbox") == 0


async def test_bad_coupon_lines_are_refused_and_the_rest_applied(
    central: Central, admin: CentralClient, edge: Edge,
) -> None:
    await issued_then_purged(central, admin)
    lines = [line async for line in edge.client.snapshot(edge.engine.gateway_id)]
    campaign = next(i for i, line in enumerate(lines) if line["type"] == "coupon_campaign")
    coupon = next(i for i, line in enumerate(lines) if line["type"] == "coupon")
    bad_terms = {**lines[campaign]["data"], "terms": {"kind": "free_lunch"}}
    lines[campaign] = {**lines[campaign], "data": bad_terms}
    other = lines[coupon + 1]["key"]
    lines[coupon] = {**lines[coupon], "key": other}  # its facts name another coupon
    at = to_text(edge.ledger.now()) or ""
    applied = await edge.writer.submit(lambda c: apply_snapshot_lines(c, lines, at))
    assert (applied.refused, applied.coupons) == (2, 3)
    letters = await edge.read(lambda c: [(r[0], json.loads(r[1])["kind"]) for r in c.execute(
        "SELECT error_code, context FROM dead_letters WHERE source = 'sync' ORDER BY id")])
    assert letters == [("invalid_document", "snapshot.coupon_campaign"),
                       ("invalid_change", "snapshot.coupon")]
    assert await edge.scalar("SELECT count(*) FROM coupon_campaigns") == 1
    assert await edge.scalar("SELECT count(*) FROM coupons") == 3
    assert await edge.read(lambda c: get_state(c, SNAPSHOT_STATE)) is None  # it ended
