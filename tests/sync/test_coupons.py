"""Coupons both ways between a gateway and the real central, on every storage backend:
issued centrally they reach the edge; redeemed at the till they reach central; voided
centrally the edge refuses them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cloud_api.client import CentralClient
from gateway.holds import AuthorizeRequest, BasketLine
from gateway.holds.service import Holds
from gateway.receipts import ReceiptPipeline
from gateway.settings import Settings
from tests.cloud_api.central import MALL, Central
from tests.sync.edge import Edge

LATTE = (BasketLine("latte", 3000, "food", "LATTE"),)


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
