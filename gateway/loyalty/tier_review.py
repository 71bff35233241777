"""A member's tier kept live: re-evaluated after each qualifying entry, reviewed at its anniversary.

A running programme holds each member's *standing* (tier and anniversary, central's record)
and changes it by two rules, rather than replaying a whole spend stream from nothing:

- `upgrade_after`: after an entry that counts towards tiers (a sale, a refund), the
  spend of the rolling window ending at that entry decides; a higher tier applies at once
  and its anniversary is set a year on. Never lower: a refund does not downgrade.
- `review_at_anniversary`: once the anniversary day is over, one step down if the spend of
  the 12 months ending with that day no longer holds the tier (the upgrading day itself,
  a year before, is outside it), else the tier is kept for another year.

Both return the change as a fact whose id is a hash of what decided it (the member, the new
tier and the triggering entry or the anniversary), so the same change computed at the edge
and at central is one fact. The gateway applies only upgrades; central applies both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from gateway.loyalty.calendar import add_months, local_date, start_of_day
from gateway.loyalty.entries import Entry
from gateway.loyalty.fold import Qualifying
from gateway.loyalty.rules import LoyaltyRules, Tier
from gateway.loyalty.tiers import ANNIVERSARY_MONTHS, qualified_index

Direction = Literal["upgrade", "downgrade"]


@dataclass(frozen=True, slots=True)
class Standing:
    """A member's tier as recorded: its code and the date of its next review."""

    tier: str
    anniversary: date | None = None


@dataclass(frozen=True, slots=True)
class TierChange:
    change_id: str
    member_id: str
    from_tier: str
    to_tier: str
    direction: Direction
    at: datetime  # the triggering entry's time, or the end of the anniversary day
    anniversary: date | None  # the new tier's next review (None on the base tier)
    qualifying_fen: int  # the window's spend that decided
    trigger: str  # the triggering entry's id, or "anniversary:YYYY-MM-DD"
    reason: str

    @property
    def standing(self) -> Standing:
        return Standing(self.to_tier, self.anniversary)


def tier_change_id(member_id: str, to_tier: str, trigger: str) -> str:
    digest = hashlib.sha256(f"tier\x1f{member_id}\x1f{to_tier}\x1f{trigger}".encode())
    return "t" + digest.hexdigest()[:31]


def tier_index(rules: LoyaltyRules, code: str) -> int:
    """A tier's rank; a code the rules no longer have ranks as the base tier."""
    try:
        return rules.tiers.index_of(code)
    except KeyError:
        return 0


def tier_of(rules: LoyaltyRules, code: str) -> Tier:
    return rules.tiers.tiers[tier_index(rules, code)]


def window_spend(qualifying: Iterable[Qualifying], rules: LoyaltyRules, at: datetime,
                 member_id: str, *, known_as: Collection[str] = ()) -> int:
    """The member's qualifying spend in the rolling window (at - window, at]. `known_as`:
    the ids the member had before (a provisional member merged under central's id): their
    entries keep the id they were recorded under, and are the member's spend all the same."""
    start = add_months(at, -rules.tiers.window_months, rules.tz)
    ids = {member_id, *known_as}
    return sum(q.fen for q in qualifying if q.member_id in ids and start < q.at <= at)


def _next_anniversary(at: datetime, rules: LoyaltyRules) -> date:
    return local_date(add_months(at, ANNIVERSARY_MONTHS, rules.tz), rules.tz)


def upgrade_after(standing: Standing, qualifying: Iterable[Qualifying], rules: LoyaltyRules,
                  *, member_id: str, trigger: Entry,
                  known_as: Collection[str] = ()) -> TierChange | None:
    """The upgrade `trigger` (an entry just recorded, its spend in `qualifying`) earns the
    member, possibly over several tiers; None if the spend holds no higher tier.
    `known_as`: the member's former ids (`window_spend`)."""
    spend = window_spend(qualifying, rules, trigger.effective_at, member_id,
                         known_as=known_as)
    return upgrade_for_spend(standing, spend, rules, member_id=member_id, trigger=trigger)


def upgrade_for_spend(standing: Standing, spend: int, rules: LoyaltyRules, *,
                      member_id: str, trigger: Entry) -> TierChange | None:
    """`upgrade_after` given the window's spend at the trigger, for a caller that sums it
    itself (the edge, with an indexed query)."""
    at = trigger.effective_at
    reached = qualified_index(spend, rules)
    if reached <= tier_index(rules, standing.tier):
        return None
    to = rules.tiers.tiers[reached]
    # Named by the member the trigger was recorded under: a provisional member's upgrade at
    # the edge and central's, once it confirmed the member under another id, are one fact.
    return TierChange(
        change_id=tier_change_id(trigger.member_id or member_id, to.code, trigger.entry_id),
        member_id=member_id,
        from_tier=standing.tier, to_tier=to.code, direction="upgrade", at=at,
        anniversary=_next_anniversary(at, rules), qualifying_fen=spend,
        trigger=trigger.entry_id,
        reason=f"qualifying spend {spend // 100} yuan in {rules.tiers.window_months} months "
               f"reaches {to.name} ({to.qualifying_fen // 100} yuan)")


def review_at_anniversary(standing: Standing, qualifying: Iterable[Qualifying],
                          rules: LoyaltyRules, *, member_id: str, today: date,
                          known_as: Collection[str] = ()) -> tuple[Standing, list[TierChange]]:
    """Every anniversary review due by `today` (an anniversary day that is over): one
    step down each if the window's spend (ending with the anniversary day) no longer holds
    the tier, else another year kept. Returns the new standing and the downgrades, oldest
    first; the same on every run, as it depends on whole past days only. `known_as`: the
    member's former ids (`window_spend`)."""
    ids = {member_id, *known_as}
    stream = [q for q in qualifying if q.member_id in ids]
    changes: list[TierChange] = []
    while standing.anniversary is not None and standing.anniversary < today:
        day = standing.anniversary
        at = start_of_day(day + timedelta(days=1), rules.tz)
        index = tier_index(rules, standing.tier)
        spend = window_spend(stream, rules, at, member_id, known_as=known_as)
        following = _next_anniversary(start_of_day(day, rules.tz), rules)
        if qualified_index(spend, rules) >= index:
            standing = Standing(standing.tier, following)
            continue
        to = rules.tiers.tiers[index - 1]
        anniversary = following if index - 1 else None
        trigger = f"anniversary:{day.isoformat()}"
        changes.append(TierChange(
            change_id=tier_change_id(member_id, to.code, trigger), member_id=member_id,
            from_tier=standing.tier, to_tier=to.code, direction="downgrade", at=at,
            anniversary=anniversary, qualifying_fen=spend, trigger=trigger,
            reason=f"anniversary {day.isoformat()}: qualifying spend {spend // 100} yuan "
                   f"no longer holds {tier_of(rules, standing.tier).name}; one step down"))
        standing = Standing(to.code, anniversary)
    return standing, changes


def benefits(tier: Tier) -> dict[str, object]:
    """What a tier gives, as replies to tills and kiosks carry it."""
    return {"tier": tier.code, "tier_name": tier.name, "discount_pct": tier.discount_pct,
            "earn_multiplier_pct": tier.earn_multiplier_pct,
            "parking_hours": tier.parking_hours}
