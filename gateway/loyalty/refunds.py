"""Refunds: take back earned points in proportion, give back points the sale spent.

Amounts are computed on the *cumulative* refunded share of the sale, so two partial
refunds of a 3-point sale take back 1 and then 2 points rather than 1 and 1. The fold
caps every reversal again at what is not yet reversed, so refunds recorded at two sites
can never take back more than the sale earned. A shortfall (the points were already
spent) becomes debt in the fold: never forgiven silently, never blocking the refund.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import partial

from gateway.loyalty.calendar import expiry_for
from gateway.loyalty.entries import Entry, EntryKind
from gateway.loyalty.errors import InvalidSale
from gateway.loyalty.rules import FEN_PER_YUAN, LoyaltyRules

REFUND_SOURCE = "pos_refund"


@dataclass(frozen=True, slots=True, kw_only=True)
class Refund:
    store_id: str
    pos_id: str
    refund_no: str
    business_date: date
    occurred_at: datetime
    refund_fen: int  # the share of the original sale's total being returned

    def __post_init__(self) -> None:
        if self.refund_fen <= 0:
            raise InvalidSale(f"refund {self.key}: refund_fen must be positive")
        if self.occurred_at.utcoffset() is None:
            raise InvalidSale(f"refund {self.key}: occurred_at must be timezone-aware")

    @property
    def key(self) -> str:
        return f"{self.store_id}:{self.pos_id}:{self.refund_no}:{self.business_date.isoformat()}"


def _share(amount: int, part_fen: int, total_fen: int) -> int:
    return amount * part_fen // total_fen if total_fen else 0


def refund_entries(
    refund: Refund, *, sale_total_fen: int, earn: Entry | None, burn: Entry | None,
    prior_refunded_fen: int, rules: LoyaltyRules, actor: str = "pos",
) -> list[Entry]:
    """The entries a refund writes against the sale's EARN and (if any) BURN entries."""
    if prior_refunded_fen < 0:
        raise InvalidSale(f"refund {refund.key}: prior refunded amount is negative")
    before = min(prior_refunded_fen, sale_total_fen)
    after = min(prior_refunded_fen + refund.refund_fen, sale_total_fen)
    original = earn or burn
    if original is None:
        return []  # a sale that earned nothing and spent nothing: nothing to take back
    account, member = original.account_id, original.member_id
    money = f"¥{refund.refund_fen // FEN_PER_YUAN}.{refund.refund_fen % FEN_PER_YUAN:02d}"
    refund_entry = partial(
        Entry, account_id=account, member_id=member, source_type=REFUND_SOURCE,
        source_key=refund.key, effective_at=refund.occurred_at, rule_version=rules.version,
        actor=actor,
    )
    entries: list[Entry] = []
    if earn is not None:
        points = _share(earn.points, after, sale_total_fen) - _share(earn.points, before,
                                                                     sale_total_fen)
        fen = (_share(earn.qual_fen, after, sale_total_fen)
               - _share(earn.qual_fen, before, sale_total_fen))
        if points or fen:
            entries.append(refund_entry(
                kind=EntryKind.REVERSE, points=-points, qual_fen=-fen,
                ref_entry_id=earn.entry_id,
                reason=f"Refund {money} of receipt {earn.source_key}: points taken back",
            ))
    if burn is not None and rules.redemption.restore_points_on_refund:
        used = -burn.points
        points = _share(used, after, sale_total_fen) - _share(used, before, sale_total_fen)
        if points:
            entries.append(refund_entry(
                kind=EntryKind.RESTORE, points=points, ref_entry_id=burn.entry_id,
                expires_at=expiry_for(refund.occurred_at, rules.expiry, rules.tz),
                reason=f"Refund {money} of receipt {burn.source_key}: points paid restored",
            ))
    return entries
