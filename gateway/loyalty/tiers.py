"""Tiers from rolling qualifying spend: upgrade at once, downgrade one step at the anniversary.

Qualifying spend is its own stream (cash paid, minus refunds), taken from the fold. The
running programme applies its two rules as events come (`tier_review`); the tests keep a
replay of a whole stream from nothing (`tests/loyalty/tier_replay.py`)."""

from __future__ import annotations

from gateway.loyalty.rules import LoyaltyRules

ANNIVERSARY_MONTHS = 12


def qualified_index(spend_fen: int, rules: LoyaltyRules) -> int:
    """The highest tier whose threshold the spend reaches."""
    index = 0
    for i, tier in enumerate(rules.tiers.tiers):
        if spend_fen >= tier.qualifying_fen:
            index = i
    return index
