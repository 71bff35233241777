"""Redemption: spend points on gifts, coupons or cash offset, within what the rules allow.

Online, a redemption needs the available balance. Offline, it also needs the allowance
central granted at the last sync (escrow): the edge can never spend more of a member's
points than central set aside for it, so overdrafts found at merge stay small and become
visible debt in the fold.
"""

from __future__ import annotations

from datetime import datetime

from gateway.loyalty.entries import Entry, EntryKind
from gateway.loyalty.errors import BasketTooSmall, InsufficientPoints, OfflineLimitExceeded
from gateway.loyalty.rules import LoyaltyRules

REDEEM_SOURCE = "redeem"


def offline_allowance(available: int, rules: LoyaltyRules) -> int:
    """What central grants an edge for a member's offline redemptions."""
    return max(0, min(available, rules.redemption.offline_allowance_cap))


def check_redemption(
    *, cost: int, available: int, online: bool, allowance_left: int | None,
) -> None:
    """Raise the refusal a redemption of `cost` points meets, or return if it may go ahead.

    `allowance_left` is the offline allowance minus what was already redeemed offline
    since it was granted; None means no allowance was ever granted (nothing offline).
    """
    if cost <= 0:
        raise ValueError("a redemption costs a positive number of points")
    if cost > available:
        raise InsufficientPoints(f"needs {cost} points, {available} available",
                                 cost=cost, available=available)
    if not online and cost > (allowance_left or 0):
        raise OfflineLimitExceeded(
            f"central is unreachable and the offline allowance left is {allowance_left or 0}",
            cost=cost, available=available,
        )


def grant_points(
    *, asked: int, available: int, online: bool, allowance_left: int | None,
    payable_fen: int, fen_per_point: int, partial: bool = True,
) -> int:
    """Points a till may reserve to pay with: never more than asked, than available, than
    the offline allowance left (offline), nor than the basket lets points pay for.

    Raises the refusal when not one point can be granted, or, with `partial` False (the
    till takes all it asked or nothing), when fewer than asked can be. `available` and
    `allowance_left` already exclude points other open holds reserve.
    """
    if asked <= 0:
        raise ValueError("a till asks for a positive number of points")
    if available <= 0:
        raise InsufficientPoints(f"asks {asked} points, none available",
                                 cost=asked, available=available)
    limits = [asked, available, payable_fen // fen_per_point]
    if not online:
        if not allowance_left or allowance_left <= 0:
            raise OfflineLimitExceeded(
                "central is unreachable and no offline allowance is left",
                cost=asked, available=available)
        limits.append(allowance_left)
    granted = min(limits)
    if not partial and granted < asked:
        if granted == available:
            raise InsufficientPoints(f"asks {asked} points, {available} available",
                                     cost=asked, available=available)
        if not online and granted == allowance_left:
            raise OfflineLimitExceeded(
                f"central is unreachable and the offline allowance left is {allowance_left}",
                cost=asked, available=available)
        raise BasketTooSmall(f"a basket of {payable_fen} fen cannot take {asked} points",
                             cost=asked, available=available)
    if granted <= 0:
        raise BasketTooSmall(f"a basket of {payable_fen} fen cannot take a point",
                             cost=asked, available=available)
    return granted


def redemption_entry(
    *, account_id: str, member_id: str, request_id: str, cost: int, item: str,
    at: datetime, rules: LoyaltyRules, actor: str = "kiosk",
) -> Entry:
    """The BURN of a redemption, keyed by the request id so a retry is a duplicate."""
    return Entry(
        kind=EntryKind.BURN, points=-cost, account_id=account_id, member_id=member_id,
        source_type=REDEEM_SOURCE, source_key=request_id, reason=f"Redeemed: {item}",
        effective_at=at, rule_version=rules.version, actor=actor,
    )
