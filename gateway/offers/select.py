"""Which welcome offer, if any, a member arriving in a zone gets: pure, clock passed in.

The decision runs in this order, and the first reason that stops it is reported:
opt-out, quiet hours, cooldown (decided by the caller, which owns the deliveries), then the
best matching offer: highest priority first, then the more specific offer (a birthday or
member-day offer beats a general one at equal priority), then the offer id, so the same
inputs always give the same offer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal

from gateway.members.lookup import Profile
from gateway.offers.model import Offer, Targeting

# Opt-outs a member can set (central syncs them in `members.opt_outs`):
OPT_OUT_OFFERS = "offers"  # no welcome offers; visits are still recorded
OPT_OUT_PROXIMITY = "proximity"  # not tracked at all: no visit, no offer

# Why an arrival got no offer ("unknown_member": not a member here, erased or not synced).
Skip = Literal["unknown_member", "opted_out", "quiet_hours", "cooldown", "no_offer",
               "disabled", "no_kiosk"]


# What offers are chosen by: the member's profile as the core keeps it.
MemberFacts = Profile


@dataclass(frozen=True, slots=True)
class Moment:
    """Where and when: the zone and the local wall clock of the arrival."""

    zone: str
    zone_kind: str
    at: datetime  # aware
    local: datetime  # `at` in the mall's time zone
    member_day: int  # day of month, 0 = none


def in_quiet_hours(local: time, quiet: tuple[time, time] | None) -> bool:
    """Whether `local` falls in [start, end); a window whose end is before its start spans
    midnight (21:30-10:00)."""
    if quiet is None:
        return False
    start, end = quiet
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def matches(target: Targeting, member: MemberFacts, moment: Moment) -> bool:
    local = moment.local
    hours = target.hours
    checks = (
        not target.tiers or member.tier in target.tiers,
        not target.zones or moment.zone in target.zones,
        not target.zone_kinds or moment.zone_kind in target.zone_kinds,
        not target.tags_any or not member.tags.isdisjoint(target.tags_any),
        member.tags.isdisjoint(target.tags_none),
        not target.weekdays or local.isoweekday() in target.weekdays,
        hours is None or hours[0] <= local.time() < hours[1],
        not target.birthday or member.birthday_on(local.date()),
        not target.member_day or (moment.member_day != 0 and local.day == moment.member_day),
    )
    return all(checks)


def choose(offers: Iterable[Offer], member: MemberFacts, moment: Moment) -> Offer | None:
    """The offer this member gets here and now, or None when none fits."""
    fitting = [offer for offer in offers
               if offer.definition.valid_at(moment.at)
               and matches(offer.definition.target, member, moment)]
    if not fitting:
        return None
    return min(fitting, key=lambda offer: (
        -offer.definition.priority,
        -(offer.definition.target.birthday + offer.definition.target.member_day),
        offer.id))
