"""A member arrived in a zone: record the visit and decide the welcome offer.

Reads (the member, the offers) go through a reader connection; the cooldown check, the
showing and the visit event for sync commit in one transaction of the single writer, and
only then is the decision returned, so a `cmd/offer.show` is never published for a showing
that is not durable. If the gateway dies between that commit and the publish, the member
misses that one showing (the cooldown counts it): an offer shown twice is worse for a mall
than one not shown.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.loyalty.rules import LoyaltyRules
from gateway.offers.model import Offer
from gateway.offers.select import (
    OPT_OUT_OFFERS,
    OPT_OUT_PROXIMITY,
    MemberFacts,
    Moment,
    Skip,
    choose,
    in_quiet_hours,
)
from gateway.offers.store import load_offers, member_facts, offers_version, record_arrival
from gateway.settings.ble import BleSettings
from gateway.store import Reader, Writer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    member_id: str
    zone: str
    at: datetime
    member: MemberFacts | None  # None: not a member here (erased, or not synced yet)
    offer: Offer | None  # the offer shown, if any
    delivery_id: int | None
    skipped: Skip | None
    claim_until: datetime | None
    kiosks: tuple[str, ...]


@dataclass(slots=True)
class WelcomeStats:
    arrivals: int = 0
    visits: int = 0
    shown: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    invalid_offers: int = 0


class Welcome:
    def __init__(self, *, writer: Writer, reader: Reader, site: str, settings: BleSettings,
                 rules: LoyaltyRules | Callable[[datetime], LoyaltyRules],
                 now: Callable[[], datetime]) -> None:
        """`rules`: fixed, or the rules in force at an instant (the ledger's rule book:
        member day and time zone follow the version central published)."""
        self.writer = writer
        self.reader = reader
        self.site = site
        self.settings = settings
        self.rules_at: Callable[[datetime], LoyaltyRules] = (
            (lambda _at: rules) if isinstance(rules, LoyaltyRules) else rules)
        self.now = now
        self.stats = WelcomeStats()
        self._zones = {zone.id: zone for zone in settings.zones}
        self._offers: list[Offer] = []
        self._offers_version: OffersVersion | None = None

    async def arrive(self, member_id: str, zone: str, at: datetime, via: str) -> Decision:
        self.stats.arrivals += 1
        known = self._offers_version
        member, version, offers = await self.reader.run(
            lambda conn: _read(conn, member_id, known))
        if offers is not None:
            self._use_offers(version, offers)
        zone_settings = self._zones.get(zone)
        kiosks = zone_settings.kiosks if zone_settings else ()
        zone_kind = zone_settings.kind if zone_settings else "area"
        if member is None or OPT_OUT_PROXIMITY in member.opt_outs:
            skip: Skip = "unknown_member" if member is None else "opted_out"
            self.stats.skipped[skip] += 1
            return Decision(member_id, zone, at, member, None, None, skip, None, kiosks)
        rules = self.rules_at(at)
        offer, why_not = self._candidate(member, Moment(
            zone=zone, zone_kind=zone_kind, at=at, local=at.astimezone(rules.tz),
            member_day=rules.earn.member_day), kiosks)
        welcome = self.settings.welcome
        recorded = await self.writer.submit(lambda conn: record_arrival(
            conn, site=self.site, member=member, zone=zone, via=via, at=at, offer=offer,
            cooldown_s=welcome.cooldown_s, now=self.now()))
        self.stats.visits += 1
        if recorded.delivery_id is None:
            skip = "cooldown" if recorded.cooled_down else why_not or "no_offer"
            self.stats.skipped[skip] += 1
            return Decision(member_id, zone, at, member, None, None, skip, None, kiosks)
        self.stats.shown += 1
        return Decision(member_id, zone, at, member, offer, recorded.delivery_id, None,
                        at + timedelta(seconds=welcome.claim_s), kiosks)

    def _candidate(self, member: MemberFacts, moment: Moment,
                   kiosks: tuple[str, ...]) -> tuple[Offer | None, Skip | None]:
        welcome = self.settings.welcome
        if not welcome.enabled:
            return None, "disabled"
        if OPT_OUT_OFFERS in member.opt_outs:
            return None, "opted_out"
        if not kiosks:
            return None, "no_kiosk"
        if in_quiet_hours(moment.local.time(), welcome.quiet_hours):
            return None, "quiet_hours"
        offer = choose(self._offers, member, moment)
        return offer, None if offer is not None else "no_offer"

    def _use_offers(self, version: OffersVersion,
                    offers: tuple[list[Offer], list[tuple[str, str]]]) -> None:
        self._offers, invalid = offers
        self._offers_version = version
        self.stats.invalid_offers = len(invalid)
        for offer_id, reason in invalid:
            log.warning("offer %s skipped: not a welcome offer this gateway reads (%s)",
                        offer_id, reason)


OffersVersion = tuple[int, str | None]


def _read(conn: sqlite3.Connection, member_id: str, known: OffersVersion | None
          ) -> tuple[MemberFacts | None, OffersVersion,
                     tuple[list[Offer], list[tuple[str, str]]] | None]:
    """The member, and the offers when they changed since `known`, in one read."""
    version = offers_version(conn)
    offers = load_offers(conn) if version != known else None
    return member_facts(conn, member_id), version, offers
