"""Welcome offers in the edge store: reading offers and members, recording showings and
visits, claiming. Each write runs inside the caller's transaction (the single writer), so a
showing, its visit event for sync and its cooldown are one fact, and a claim, its coupon,
its event and the kiosk's stored reply commit together.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from gateway.coupons import CouponIssuer
from gateway.loyalty import Campaign, Coupon
from gateway.loyalty.wire import to_text
from gateway.members import profile
from gateway.offers.model import Offer, OfferDefinition
from gateway.offers.select import MemberFacts

log = logging.getLogger(__name__)

VISIT_EVENT = "visit"
CLAIM_EVENT = "offer.claimed"


def event_id_for(*parts: str) -> str:
    """A deterministic event id: the same fact gets the same id however often it is
    recorded, so central keeps it once."""
    return hashlib.sha256("\x1f".join(("mallgate.event.v1", *parts)).encode()).hexdigest()[:32]


# -- reads ---------------------------------------------------------------------------------

def offers_version(conn: sqlite3.Connection) -> tuple[int, str | None]:
    """Changes whenever an offer is added or changed: (count, newest update)."""
    count, newest = conn.execute("SELECT count(*), max(updated_at) FROM offers").fetchone()
    return int(count), newest


def load_offers(conn: sqlite3.Connection) -> tuple[list[Offer], list[tuple[str, str]]]:
    """Every offer that reads as a welcome offer, and (id, reason) of those that do not."""
    offers: list[Offer] = []
    invalid: list[tuple[str, str]] = []
    for offer_id, definition in conn.execute("SELECT id, definition FROM offers ORDER BY id"):
        try:
            parsed = OfferDefinition.model_validate_json(definition)
        except ValidationError as exc:
            invalid.append((offer_id, str(exc.errors(include_url=False)[0]["msg"])))
            continue
        offers.append(Offer(id=offer_id, definition=parsed))
    return offers, invalid


def member_facts(conn: sqlite3.Connection, member_id: str) -> MemberFacts | None:
    return profile(conn, member_id)


# -- arrivals -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Recorded:
    visit_event_id: str
    delivery_id: int | None  # the showing, when an offer is shown
    cooled_down: bool  # an offer was due but the member had one here within the cooldown


def record_arrival(conn: sqlite3.Connection, *, site: str, member: MemberFacts, zone: str,
                   via: str, at: datetime, offer: Offer | None, cooldown_s: int,
                   now: datetime) -> Recorded:
    """The visit event for sync and, if `offer` is given and the member had no offer in this
    zone within the cooldown, its showing. Checked and written in one transaction, so two
    arrivals racing cannot both show an offer."""
    at_text = to_text(at) or ""
    event_id = event_id_for(VISIT_EVENT, site, member.member_id, zone, at_text)
    delivery_id: int | None = None
    cooled = False
    if offer is not None:
        cutoff = to_text(at - timedelta(seconds=cooldown_s))
        cooled = cooldown_s > 0 and conn.execute(
            "SELECT 1 FROM offer_deliveries WHERE member_id = ? AND zone_id = ? "
            "AND delivered_at > ? LIMIT 1", (member.member_id, zone, cutoff)).fetchone() is not None
        if not cooled:
            delivery_id = conn.execute(
                "INSERT INTO offer_deliveries (member_id, zone_id, offer_id, delivered_at, "
                "visit_event_id) VALUES (?, ?, ?, ?, ?)",
                (member.member_id, zone, offer.id, at_text, event_id)).lastrowid
    payload = {"member_id": member.member_id, "account_id": member.account_id, "zone": zone,
               "arrived_at": at_text, "via": via,
               "offer_id": offer.id if delivery_id is not None and offer else None}
    _outbox(conn, event_id, VISIT_EVENT, member.account_id, payload=payload, now=now)
    return Recorded(event_id, delivery_id, cooled)


def _outbox(conn: sqlite3.Connection, event_id: str, event_type: str, account_id: str, *,
            payload: dict[str, Any], now: datetime) -> None:
    conn.execute(
        "INSERT INTO outbox (event_id, event_type, account_id, payload, created_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
        (event_id, event_type, account_id, json.dumps(payload, ensure_ascii=False),
         to_text(now)))


# -- claims ---------------------------------------------------------------------------------

ClaimRefusal = Literal["offer_not_available", "offer_already_claimed"]


class OfferClaimError(Exception):
    def __init__(self, code: ClaimRefusal, message: str) -> None:
        super().__init__(message)
        self.code: ClaimRefusal = code


@dataclass(frozen=True, slots=True)
class Claimed:
    offer_id: str
    title: str
    description: str
    coupon_code: str
    coupon_id: str
    expires_at: datetime
    coupon: Coupon


def claim_offer(conn: sqlite3.Connection, *, site: str, member_id: str, account_id: str,
                offer_id: str, kiosk_id: str, claim_s: int, now: datetime,
                issuer: CouponIssuer) -> Claimed:
    """Issue the coupon of the newest unclaimed showing of `offer_id` to the member within
    the claim window; refuses with a stable code otherwise."""
    cutoff = to_text(now - timedelta(seconds=claim_s))
    shown = conn.execute(
        "SELECT d.id, c.id IS NOT NULL, d.visit_event_id FROM offer_deliveries d "
        "LEFT JOIN coupons c ON c.delivery_id = d.id "
        "WHERE d.member_id = ? AND d.offer_id = ? AND d.delivered_at >= ? "
        "ORDER BY c.id IS NOT NULL, d.delivered_at DESC LIMIT 1",
        (member_id, offer_id, cutoff)).fetchone()
    if shown is None:
        raise OfferClaimError("offer_not_available",
                              "this offer was not shown to this member recently")
    if shown[1]:
        raise OfferClaimError("offer_already_claimed", "this offer is already claimed")
    row = conn.execute("SELECT definition FROM offers WHERE id = ?", (offer_id,)).fetchone()
    definition = OfferDefinition.model_validate_json(row[0]) if row else None
    if definition is None or definition.reward is None:
        raise OfferClaimError("offer_not_available", "this offer has nothing to claim")
    delivery_id = int(shown[0])
    # The showing's visit event id includes the site, member, zone and instant: the
    # coupon's id made from it is unique across gateways and survives a rebuilt store
    # reusing row ids; its code is random.
    campaign = Campaign(campaign_id=f"offer:{offer_id}", mall=issuer.mall,
                        terms=definition.reward.terms, valid_days=definition.reward.valid_days,
                        per_member_limit=None)
    coupon = issuer.issue_in(conn, campaign, member_id=member_id,
                             source_key=shown[2] or f"{site}/{delivery_id}", now=now,
                             offer_id=offer_id, delivery_id=delivery_id)
    _outbox(conn, event_id_for(CLAIM_EVENT, coupon.coupon_id), CLAIM_EVENT, account_id,
            payload={"member_id": member_id, "account_id": account_id, "offer_id": offer_id,
                     "coupon_id": coupon.coupon_id, "coupon_code": coupon.code,
                     "kiosk_id": kiosk_id, "claimed_at": to_text(now)},
            now=now)
    return Claimed(offer_id=offer_id, title=definition.title,
                   description=definition.reward.description, coupon_code=coupon.code,
                   coupon_id=coupon.coupon_id, expires_at=coupon.valid_until, coupon=coupon)
