"""Sales, `authorize` and `void` posted by a till over HTTP: the same payloads, identity
and durability as on its serial line."""

from __future__ import annotations

import sqlite3

from pytest_aiohttp import AiohttpClient

from gateway.app import create_app
from gateway.app.keys import LEDGER, WRITER
from gateway.coupons import CouponIssuer
from gateway.loyalty import Campaign, CouponKind, CouponTerms
from gateway.settings import Settings
from tests.http.conftest import bearer
from tests.loyalty.helpers import at, earn
from tests.pos.helpers import add_members

TILL = "/api/v1/pos/S01/P1"
SALE = {"receipt_no": "H-1", "occurred_at": "2026-11-22T14:05:09+08:00", "total_fen": 6450,
        "member_code": "M12345678"}


def _rows(settings: Settings, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(settings.store.path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def _client(aiohttp_client: AiohttpClient, settings: Settings):  # type: ignore[no-untyped-def]
    app = create_app(settings)
    client = await aiohttp_client(app)
    add_members(settings.store.path)
    return app, client


async def test_a_sale_credits_its_member_once_and_a_resend_gets_the_first_result(
        aiohttp_client: AiohttpClient, api_settings: Settings) -> None:
    _, client = await _client(aiohttp_client, api_settings)
    first = await client.post(f"{TILL}/sales", json=SALE, headers=bearer("pos"))
    assert first.status == 201
    body = await first.json()
    assert body["status"] == "sale" and body["member_id"] == "M12345678"
    assert body["points"] > 0
    again = await client.post(f"{TILL}/sales", json=SALE, headers=bearer("pos"))
    assert again.status == 200
    assert {k: v for k, v in (await again.json()).items() if k not in ("status", "duplicate")} \
        == {k: v for k, v in body.items() if k not in ("status", "duplicate")}
    assert _rows(api_settings, "SELECT count(*) FROM ledger WHERE kind = 'EARN'") == [(1,)]
    assert _rows(api_settings, "SELECT count(*) FROM receipts") == [(1,)]
    staff = await client.post(f"{TILL}/sales", json=SALE, headers=bearer("staff"))
    assert staff.status == 403


async def test_a_malformed_sale_is_422_and_a_dead_letter(
        aiohttp_client: AiohttpClient, api_settings: Settings) -> None:
    _, client = await _client(aiohttp_client, api_settings)
    missing = {k: v for k, v in SALE.items() if k != "total_fen"}
    answer = await client.post(f"{TILL}/sales", json=missing, headers=bearer("pos"))
    assert answer.status == 422
    error = (await answer.json())["error"]
    assert error["code"] == "bad_payload" and "total_fen" in error["msg"]
    garbled = await client.post(f"{TILL}/sales", data=b"{not json", headers=bearer("pos"))
    assert garbled.status == 422
    letters = _rows(api_settings, "SELECT source, error_code FROM dead_letters ORDER BY id")
    assert letters == [("pos", "bad_payload"), ("pos", "bad_payload")]


async def test_authorize_then_a_sale_with_the_hold_spends_the_points_once(
        aiohttp_client: AiohttpClient, api_settings: Settings) -> None:
    app, client = await _client(aiohttp_client, api_settings)
    await app[LEDGER].record(earn(500, at(2026, 1, 1), key="seed", account="A1",
                                  member="M12345678"))
    granted = await client.post(f"{TILL}/authorize", headers=bearer("pos"), json={
        "request_id": "pay-1", "member_code": "M12345678", "total_fen": 6450,
        "points": 200})
    assert granted.status == 200
    reply = await granted.json()
    assert reply["status"] == "granted" and reply["points"] == 200
    sale = SALE | {"points_used": 200, "points_paid_fen": 200, "hold_id": reply["hold_id"]}
    for status in (201, 200):
        answer = await client.post(f"{TILL}/sales", json=sale, headers=bearer("pos"))
        assert answer.status == status
    spent = _rows(api_settings, "SELECT sum(points) FROM ledger WHERE points < 0")
    assert spent == [(-200,)]
    void = await client.post(f"{TILL}/void", json={"hold_id": reply["hold_id"]},
                             headers=bearer("pos"))
    assert (await void.json())["error"] == "hold_captured"


async def test_a_spend_without_a_hold_is_refused_and_kept(
        aiohttp_client: AiohttpClient, api_settings: Settings) -> None:
    app, client = await _client(aiohttp_client, api_settings)
    await app[LEDGER].record(earn(500, at(2026, 1, 1), key="seed", account="A1",
                                  member="M12345678"))
    sale = SALE | {"points_used": 200, "points_paid_fen": 200}
    answer = await client.post(f"{TILL}/sales", json=sale, headers=bearer("pos"))
    assert answer.status == 422
    assert (await answer.json())["error"]["code"] == "hold_required"
    assert _rows(api_settings, "SELECT count(*) FROM ledger WHERE points < 0") == [(0,)]
    assert _rows(api_settings, "SELECT error_code FROM dead_letters") == [("hold_required",)]


async def test_a_coupon_authorized_over_http_is_redeemed_once_by_the_sale(
        aiohttp_client: AiohttpClient, api_settings: Settings) -> None:
    app, client = await _client(aiohttp_client, api_settings)
    issuer = CouponIssuer(mall=api_settings.site.mall_id, site="gw", key=b"key")
    campaign = Campaign(campaign_id="camp", mall=issuer.mall, valid_days=7, terms=CouponTerms(
        kind=CouponKind.CASH_VOUCHER, off_fen=1000))
    now = app[LEDGER].now()
    coupon = await app[WRITER].submit(lambda conn: issuer.issue_in(
        conn, campaign, member_id="M12345678", source_key="k", now=now))
    body = {"request_id": "pay-1", "member_code": "M12345678", "total_fen": 6450,
            "coupon_codes": [coupon.code]}
    granted = await (await client.post(f"{TILL}/authorize", headers=bearer("pos"),
                                       json=body)).json()
    assert granted["status"] == "granted" and granted["discount_fen"] == 1000
    sale = SALE | {"total_fen": 5450, "hold_id": granted["hold_id"],
                   "coupon_codes": [coupon.code]}
    for status in (201, 200):
        answer = await client.post(f"{TILL}/sales", json=sale, headers=bearer("pos"))
        assert answer.status == status
    assert _rows(api_settings, "SELECT status FROM coupons") == [("redeemed",)]
    again = await (await client.post(f"{TILL}/authorize", headers=bearer("pos"),
                                     json=body | {"request_id": "pay-2"})).json()
    assert again["error"] == "already_redeemed"
    unheld = await client.post(f"{TILL}/sales", headers=bearer("pos"), json=SALE | {
        "receipt_no": "H-2", "coupon_codes": [coupon.code]})
    assert unheld.status == 422
    assert (await unheld.json())["error"]["code"] == "hold_required"
