"""The tier a spend stream gives, replayed from nothing, as if no tier had ever been
recorded: upgrade at once, one step down at each anniversary the window no longer holds.
The running programme applies the same two rules as events come
(`gateway.loyalty.tier_review`); the fold's property tests use this replay."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway.loyalty.calendar import add_months
from gateway.loyalty.fold import Qualifying
from gateway.loyalty.rules import LoyaltyRules, Tier
from gateway.loyalty.tiers import ANNIVERSARY_MONTHS, qualified_index


@dataclass(frozen=True, slots=True)
class TierState:
    tier: Tier
    index: int
    since: datetime | None  # when the current tier was reached (None: the base tier)
    anniversary: datetime | None  # next review date; None on the base tier
    qualifying_fen: int  # spend in the window ending at the evaluation time



class _Window:
    def __init__(self, stream: list[Qualifying], rules: LoyaltyRules) -> None:
        self.stream = stream
        self.rules = rules

    def spend_at(self, at: datetime) -> int:
        """Spend in the rolling window (at - window, at]."""
        start = add_months(at, -self.rules.tiers.window_months, self.rules.tz)
        return sum(q.fen for q in self.stream if start < q.at <= at)


def tier_at(
    qualifying: Iterable[Qualifying], rules: LoyaltyRules, as_of: datetime,
    *, member_id: str | None = None,
) -> TierState:
    """The member's tier at `as_of` (only `member_id`'s spend counts when given)."""
    stream = sorted(
        (q for q in qualifying
         if q.at <= as_of and (member_id is None or q.member_id == member_id)),
        key=lambda q: q.at,
    )
    window = _Window(stream, rules)
    tz = rules.tz
    index, since, anniversary = 0, None, None

    def review_until(limit: datetime) -> None:
        nonlocal index, anniversary, since
        while anniversary is not None and anniversary <= limit:
            if qualified_index(window.spend_at(anniversary), rules) < index:
                index -= 1
                since = anniversary
            anniversary = add_months(anniversary, ANNIVERSARY_MONTHS, tz) if index else None

    for q in stream:
        review_until(q.at)
        reached = qualified_index(window.spend_at(q.at), rules)
        if reached > index:
            index, since = reached, q.at
            anniversary = add_months(q.at, ANNIVERSARY_MONTHS, tz)
    review_until(as_of)
    return TierState(
        tier=rules.tiers.tiers[index], index=index, since=since, anniversary=anniversary,
        qualifying_fen=window.spend_at(as_of),
    )
