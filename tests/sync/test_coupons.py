"""Coupons both ways between a gateway and the real central, on every storage backend:
issued centrally they reach the edge; redeemed at the till they reach central; voided
centrally the edge refuses them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cloud_api.client import CentralClient
from devices.kiosk.protocol import REPLIES, default_contract
from gateway.coupons import CouponIssuer
from gateway.holds import AuthorizeRequest, BasketLine
from gateway.holds.service import Holds
from gateway.ids import new_ulid
from gateway.members import IdentityKeys
from gateway.operations.model import OperationRequest
from gateway.operations.service import Operations
from gateway.receipts import ReceiptPipeline
from gateway.settings import Settings
from tests.cloud_api.central import MALL, Central
from tests.sync.edge import Edge

LATTE = (BasketLine("latte", 3000, "food", "LATTE"),)
CONTRACT = default_contract()


def pipeline_of(edge: Edge, path: str) -> ReceiptPipeline:
    from gateway.app.pos import receipt_parser  # noqa: PLC0415 - the app's own parser

    settings = Settings.model_validate_json(json.dumps(
        {"site": {"mall_id": MALL, "gateway_id": "gw-test"}, "store": {"path": path}}))
    return ReceiptPipeline(edge.ledger, receipt_parser(settings), reader=edge.reader)


async def test_coupons_travel_both_ways(central: Central, admin: CentralClient,
                                        edge: Edge) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1", "tier": "gold"})
    await admin.put_coupon_campaign(MALL, "gold-coffee", {
        "terms": {"kind": "free_item", "sku": "LATTE"}, "valid_days": 7,
        "per_member_limit": 2})
    issued = await admin.issue_coupons(MALL, "gold-coffee", tiers=["gold"])
    await admin.issue_coupons(MALL, "gold-coffee", tiers=["gold"])
    first, second = sorted(await admin.member_coupons(MALL, "M1"), key=lambda c: c["code"])
    assert issued["issued"]
    await edge.engine.sync_now()
    rows = await edge.read(lambda c: c.execute(
        "SELECT code, status, member_id FROM coupons ORDER BY code").fetchall())
    assert rows == [(first["code"], "issued", "M1"), (second["code"], "issued", "M1")]

    # At the till: authorized and captured at the edge, then pushed.
    holds = Holds(edge.ledger, central_online=lambda: True, expiry_s=120, mall=MALL,
                  site="gw-test")
    reply = await holds.authorize(AuthorizeRequest(
        store_id="S01", pos_id="P1", request_id="pay-1", member_code="M1", total_fen=3000,
        coupon_codes=(first["code"],), points=0, lines=LATTE))
    assert reply["status"] == "granted", reply
    sale = {"receipt_no": "R1", "occurred_at": datetime.now(UTC).isoformat(),
            "total_fen": 3000, "member_code": "M1", "hold_id": reply["hold_id"],
            "coupon_codes": [first["code"]],
            "lines": [{"name": "latte", "amount_fen": 3000, "sku": "LATTE"}]}
    path = await edge.read(lambda c: c.execute("PRAGMA database_list").fetchone()[2])
    outcome = await pipeline_of(edge, path).ingest(
        store_id="S01", pos_id="P1", mode="http", raw=json.dumps(sale).encode())
    assert outcome.status == "sale"
    await admin.void_coupon(MALL, second["coupon_id"], "campaign withdrawn")
    await edge.engine.sync_now()
    at_central = {c["code"]: c for c in await admin.member_coupons(MALL, "M1")}
    assert (at_central[first["code"]]["status"],
            at_central[first["code"]]["redeemed_by"]) == ("redeemed", reply["hold_id"])
    # The void reached the edge: the till is refused.
    refused = await holds.authorize(AuthorizeRequest(
        store_id="S01", pos_id="P1", request_id="pay-2", member_code="M1", total_fen=3000,
        coupon_codes=(second["code"],), points=0, lines=LATTE))
    assert refused["error"] == "voided"
    # Each fact once at the edge: two issued, held and redeemed, voided.
    assert await edge.scalar("SELECT count(*) FROM coupon_facts") == 5


async def test_a_kiosk_buys_a_campaigns_coupon_with_points(central: Central,
                                                           admin: CentralClient,
                                                           edge: Edge) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    await admin.adjust(MALL, "M1", request_id="gift", points=500, reason="welcome")
    await admin.put_coupon_campaign(MALL, "voucher-for-points", {
        "terms": {"kind": "cash_voucher", "off_fen": 1000}, "valid_days": 30,
        "per_member_limit": 1})
    await edge.engine.sync_now()
    ops = Operations(ledger=edge.ledger, reader=edge.reader, writer=edge.writer,
                     keys=IdentityKeys(None, None, 30), replies=REPLIES,
                     central_online=lambda: True, claim_days=7, sessions=None, site="gw-test",
                     coupons=CouponIssuer(MALL, "gw-test", b"coupon key"))

    def redeem(request_id: str, item: str = "voucher-for-points") -> OperationRequest:
        return OperationRequest(op="redeem", key=f"k1/{request_id}", id=request_id,
                                kiosk="k1", data={"member_id": "M1", "points": 200,
                                                  "kind": "coupon", "item": item})

    first = new_ulid()
    bought, _ = await ops.handle(redeem(first))
    assert bought["status"] == "ok", bought
    assert CONTRACT.schema_error("#/components/schemas/RedeemReply", bought) is None
    coupon = bought["data"]["coupon"]
    assert (coupon["terms"]["off_fen"], bought["data"]["available"]) == (1000, 300)
    assert (await ops.handle(redeem(first)))[0] == bought  # a retry: the same coupon
    limit, _ = await ops.handle(redeem(new_ulid()))
    assert limit["error"]["code"] == "member_limit"
    unknown, _ = await ops.handle(redeem(new_ulid(), item="no-such-campaign"))
    assert unknown["error"]["code"] == "unknown_campaign"
    assert await edge.scalar("SELECT -sum(points) FROM ledger WHERE kind = 'BURN'") == 200
    await edge.engine.sync_now()
    [at_central] = await admin.member_coupons(MALL, "M1")
    assert (at_central["coupon_id"], at_central["status"]) == (coupon["coupon_id"], "issued")
