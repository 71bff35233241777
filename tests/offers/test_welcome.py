"""Arrivals on a real store: visits for sync, showings with cooldowns, quiet hours,
opt-outs, and claims that issue one coupon per showing."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.coupons import CouponIssuer
from gateway.loyalty import verify_code
from gateway.loyalty.rules import LoyaltyRules
from gateway.loyalty.wire import to_text
from gateway.offers.store import (
    CLAIM_EVENT,
    VISIT_EVENT,
    Claimed,
    OfferClaimError,
    claim_offer,
)
from gateway.offers.welcome import Welcome
from gateway.settings.ble import BleSettings
from gateway.store import Reader, Writer

NOON = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai, the rules' default zone
SETTINGS = BleSettings.model_validate_json(json.dumps({
    "enabled": True,
    "zones": [{"id": "entrance-north", "kind": "entrance", "kiosks": ["k1", "k2"]},
              {"id": "atrium", "kiosks": ["k3"]},
              {"id": "car-park"}],
    "welcome": {"cooldown_s": 86400, "quiet_start": "21:30", "quiet_end": "10:00"},
}))
GOLD_COFFEE = {"title": "Welcome, gold member", "message": "A coffee on us", "priority": 5,
               "target": {"tiers": ["gold"]},
               "reward": {"kind": "free_item", "description": "One coffee", "valid_days": 3,
                          "sku": "COFFEE"}}
EVERYONE = {"title": "Welcome", "target": {}}
ISSUER = CouponIssuer(mall="mall-1", site="gw-1", key=b"coupon key")


async def add_member(writer: Writer, member_id: str, *, tier: str = "gold",
                     opt_outs: tuple[str, ...] = ()) -> None:
    def insert(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO members (id, account_id, display_name_masked, tier, opt_outs, "
                     "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                     (member_id, f"acct-{member_id}", "Li *1", tier, json.dumps(opt_outs),
                      to_text(NOON)))
    await writer.submit(insert)


async def put_offer(writer: Writer, offer_id: str, definition: Mapping[str, object]) -> None:
    await writer.submit(lambda conn: conn.execute(
        "INSERT OR REPLACE INTO offers (id, title, definition, updated_at) VALUES (?, ?, ?, ?)",
        (offer_id, definition["title"], json.dumps(definition), to_text(datetime.now(UTC)))))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[Writer, Reader]]:
    async with Writer(tmp_path / "gw.db") as writer, Reader(tmp_path / "gw.db") as reader:
        await add_member(writer, "m-gold")
        await put_offer(writer, "gold-coffee", GOLD_COFFEE)
        await put_offer(writer, "welcome", EVERYONE)
        yield writer, reader


def welcome(store: tuple[Writer, Reader], settings: BleSettings = SETTINGS) -> Welcome:
    writer, reader = store
    return Welcome(writer=writer, reader=reader, site="gw-1", settings=settings,
                   rules=LoyaltyRules(), now=lambda: NOON)


async def outbox(reader: Reader) -> list[tuple[str, dict[str, object]]]:
    rows = await reader.run(lambda conn: conn.execute(
        "SELECT event_type, payload FROM outbox ORDER BY seq").fetchall())
    return [(kind, json.loads(payload)) for kind, payload in rows]


async def test_an_arrival_shows_the_best_offer_once_per_zone_per_cooldown(
        store: tuple[Writer, Reader]) -> None:
    w = welcome(store)
    first = await w.arrive("m-gold", "entrance-north", NOON, "eid")
    assert first.offer is not None and first.offer.id == "gold-coffee"
    assert first.kiosks == ("k1", "k2")
    assert first.claim_until == NOON + timedelta(hours=1)
    again = await w.arrive("m-gold", "entrance-north", NOON + timedelta(hours=3), "eid")
    assert (again.offer, again.skipped) == (None, "cooldown")
    elsewhere = await w.arrive("m-gold", "atrium", NOON + timedelta(hours=3), "eid")
    assert elsewhere.offer is not None
    next_day = await w.arrive("m-gold", "entrance-north", NOON + timedelta(days=1, minutes=1),
                              "eid")
    assert next_day.offer is not None
    events = await outbox(store[1])
    assert [kind for kind, _ in events] == [VISIT_EVENT] * 4
    assert [payload["offer_id"] for _, payload in events] == [
        "gold-coffee", None, "gold-coffee", "gold-coffee"]
    assert w.stats.shown == 3 and w.stats.skipped["cooldown"] == 1


async def test_no_offer_in_quiet_hours_without_kiosks_or_when_opted_out(
        store: tuple[Writer, Reader]) -> None:
    writer, reader = store
    w = welcome(store)
    night = NOON + timedelta(hours=11)  # 23:00 local
    assert (await w.arrive("m-gold", "entrance-north", night, "eid")).skipped == "quiet_hours"
    assert (await w.arrive("m-gold", "car-park", NOON, "eid")).skipped == "no_kiosk"
    await add_member(writer, "m-no-offers", opt_outs=("offers",))
    assert (await w.arrive("m-no-offers", "atrium", NOON, "eid")).skipped == "opted_out"
    await add_member(writer, "m-untracked", opt_outs=("proximity",))
    assert (await w.arrive("m-untracked", "atrium", NOON, "eid")).skipped == "opted_out"
    assert (await w.arrive("m-erased", "atrium", NOON, "eid")).skipped == "unknown_member"
    visits = [payload["member_id"] for _, payload in await outbox(reader)]
    # every arrival of a tracked member is a visit; the untracked and unknown leave none
    assert visits == ["m-gold", "m-gold", "m-no-offers"]
    # quiet hours did not use up the cooldown: the morning arrival gets its offer
    morning = NOON + timedelta(hours=23)  # 11:00 local the next day
    assert (await w.arrive("m-gold", "entrance-north", morning, "eid")).offer is not None


async def test_offers_changed_by_sync_are_picked_up_and_a_bad_one_skipped(
        store: tuple[Writer, Reader]) -> None:
    writer, _ = store
    w = welcome(store)
    await add_member(writer, "m-silver", tier="silver")
    assert (await w.arrive("m-silver", "atrium", NOON, "eid")).offer.id == "welcome"  # type: ignore[union-attr]
    await put_offer(writer, "silver-cake", {"title": "Cake", "priority": 9,
                                            "target": {"tiers": ["silver"]}})
    await put_offer(writer, "broken", {"title": "", "target": {"weekdays": [9]}})
    shown = await w.arrive("m-silver", "entrance-north", NOON, "eid")
    assert shown.offer is not None and shown.offer.id == "silver-cake"
    assert w.stats.invalid_offers == 1


async def test_a_showing_is_claimed_once_within_the_window(
        store: tuple[Writer, Reader]) -> None:
    writer, reader = store
    w = welcome(store)
    shown = await w.arrive("m-gold", "entrance-north", NOON, "eid")
    assert shown.offer is not None

    def claim(at: datetime, offer_id: str = "gold-coffee") -> Awaitable[Claimed]:
        return writer.submit(lambda conn: claim_offer(
            conn, site="gw-1", member_id="m-gold", account_id="acct-m-gold",
            offer_id=offer_id, kiosk_id="k1", claim_s=3600, now=at, issuer=ISSUER))

    claimed = await claim(NOON + timedelta(minutes=5))
    assert claimed.title == "Welcome, gold member"
    assert claimed.expires_at == NOON + timedelta(minutes=5, days=3)
    code = claimed.coupon_code
    # A random code under the mall's key: nothing about the showing derives it.
    assert verify_code(ISSUER.key, ISSUER.mall, code) == code
    assert claimed.coupon.terms.sku == "COFFEE"
    with pytest.raises(OfferClaimError) as twice:
        await claim(NOON + timedelta(minutes=6))
    assert twice.value.code == "offer_already_claimed"
    with pytest.raises(OfferClaimError) as never_shown:
        await claim(NOON, offer_id="welcome")
    assert never_shown.value.code == "offer_not_available"
    coupons = await reader.run(lambda conn: conn.execute(
        "SELECT code, member_id, status FROM coupons").fetchall())
    assert coupons == [(code, "m-gold", "issued")]
    claims = [p for kind, p in await outbox(reader) if kind == CLAIM_EVENT]
    assert [(c["coupon_code"], c["kiosk_id"]) for c in claims] == [(code, "k1")]


async def test_a_late_claim_is_refused(store: tuple[Writer, Reader]) -> None:
    writer, _ = store
    await welcome(store).arrive("m-gold", "entrance-north", NOON, "eid")
    with pytest.raises(OfferClaimError) as late:
        await writer.submit(lambda conn: claim_offer(
            conn, site="gw-1", member_id="m-gold", account_id="acct-m-gold",
            offer_id="gold-coffee", kiosk_id="k1", claim_s=3600,
            now=NOON + timedelta(hours=2), issuer=ISSUER))
    assert late.value.code == "offer_not_available"
