"""Points for a purchase: integer fen in, integer points out, one floor per transaction.

All multipliers (store or category, tier, member day, spend threshold) are integer
percentages multiplied together as one fraction, and the division happens once, at the
end. A purchase never loses a point to intermediate rounding and never gains one either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial

from gateway.loyalty.calendar import expiry_for, local_date
from gateway.loyalty.entries import Entry, EntryKind
from gateway.loyalty.errors import InvalidSale
from gateway.loyalty.rules import FEN_PER_YUAN, PERCENT, LoyaltyRules, SpendBonus, Tier

SALE_SOURCE = "pos_sale"


@dataclass(frozen=True, slots=True)
class SaleLine:
    amount_fen: int
    category: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sale:
    """A completed purchase as the POS reports it.

    `total_fen` is the whole bill; `points_paid_fen` the part of it paid with points
    (`points_used` points), which neither earns points nor counts towards tiers.
    """

    store_id: str
    pos_id: str
    receipt_no: str
    business_date: date
    occurred_at: datetime
    total_fen: int
    points_paid_fen: int = 0
    points_used: int = 0
    lines: tuple[SaleLine, ...] = ()

    def __post_init__(self) -> None:
        if self.total_fen < 0 or self.points_paid_fen < 0 or self.points_used < 0:
            raise InvalidSale(f"sale {self.key}: amounts must not be negative")
        if self.points_paid_fen > self.total_fen:
            raise InvalidSale(f"sale {self.key}: points paid exceed the total")
        if (self.points_used == 0) != (self.points_paid_fen == 0):
            raise InvalidSale(f"sale {self.key}: points_used and points_paid_fen go together")
        if any(line.amount_fen < 0 for line in self.lines):
            raise InvalidSale(f"sale {self.key}: item lines must not be negative")
        if self.occurred_at.utcoffset() is None:
            raise InvalidSale(f"sale {self.key}: occurred_at must be timezone-aware")

    @property
    def key(self) -> str:
        """The sale's identity: (store, pos, receipt number, business date)."""
        return f"{self.store_id}:{self.pos_id}:{self.receipt_no}:{self.business_date.isoformat()}"

    @property
    def cash_fen(self) -> int:
        """What the member paid in money: the qualifying, point-earning spend."""
        return self.total_fen - self.points_paid_fen


@dataclass(frozen=True, slots=True)
class EarnQuote:
    points: int
    qual_fen: int
    reason: str


def _line_weight(sale: Sale, rules: LoyaltyRules) -> tuple[int, int]:
    """Category multipliers as one fraction: sum(line * pct) / sum(line).

    Lines say how the bill splits across categories; the money that earns is the cash
    paid, so the split is applied to `cash_fen` rather than to the (pre-discount) lines.
    """
    pct_of = rules.earn.category_multiplier_pct
    lines_total = sum(line.amount_fen for line in sale.lines)
    if lines_total == 0:
        return PERCENT, 1
    weighted = sum(
        line.amount_fen * pct_of.get(line.category or "", PERCENT) for line in sale.lines
    )
    return weighted, lines_total


def _spend_bonus(cash_fen: int, rules: LoyaltyRules) -> SpendBonus | None:
    reached = [b for b in rules.earn.spend_bonuses if cash_fen >= b.min_fen]
    return max(reached, key=lambda b: b.min_fen, default=None)


def is_member_day(at: datetime, rules: LoyaltyRules) -> bool:
    day = rules.earn.member_day
    return day != 0 and local_date(at, rules.tz).day == day


def quote_sale(sale: Sale, tier: Tier, rules: LoyaltyRules) -> EarnQuote:
    """Points a member of `tier` earns for `sale` (their tier at the time of the sale)."""
    cash = sale.cash_fen
    line_num, line_den = _line_weight(sale, rules)
    store_pct = rules.earn.store_multiplier_pct.get(sale.store_id, PERCENT)
    member_day = is_member_day(sale.occurred_at, rules)
    day_pct = rules.earn.member_day_multiplier_pct if member_day else PERCENT
    bonus = _spend_bonus(cash, rules)
    bonus_pct = bonus.multiplier_pct if bonus else PERCENT

    numerator = (cash * rules.earn.points_per_yuan * line_num * store_pct
                 * tier.earn_multiplier_pct * day_pct * bonus_pct)
    denominator = FEN_PER_YUAN * line_den * PERCENT**5
    points = numerator // denominator + (bonus.bonus_points if bonus else 0)

    notes = [f"{tier.name} x{tier.earn_multiplier_pct / PERCENT:.2f}"]
    if member_day:
        notes.append(f"member day x{day_pct / PERCENT:.2f}")
    if store_pct != PERCENT:
        notes.append(f"store x{store_pct / PERCENT:.2f}")
    if bonus:
        notes.append(f"spend bonus from ¥{bonus.min_fen // FEN_PER_YUAN}")
    reason = (f"Purchase ¥{cash // FEN_PER_YUAN}.{cash % FEN_PER_YUAN:02d} at {sale.store_id} "
              f"receipt {sale.receipt_no} ({', '.join(notes)})")
    return EarnQuote(points=points, qual_fen=cash, reason=reason)


def sale_entries(
    sale: Sale, *, account_id: str, member_id: str, tier: Tier, rules: LoyaltyRules,
    actor: str = "pos",
) -> list[Entry]:
    """The entries a member's sale writes: its earn lot and, if paid with points, the burn."""
    quote = quote_sale(sale, tier, rules)
    pending = rules.earn.pending_days
    sale_entry = partial(
        Entry, account_id=account_id, member_id=member_id, source_type=SALE_SOURCE,
        source_key=sale.key, effective_at=sale.occurred_at, rule_version=rules.version,
        actor=actor,
    )
    entries = [
        sale_entry(
            kind=EntryKind.EARN, points=quote.points, qual_fen=quote.qual_fen,
            reason=quote.reason,
            expires_at=expiry_for(sale.occurred_at, rules.expiry, rules.tz),
            available_at=sale.occurred_at + timedelta(days=pending) if pending else None,
        )
    ]
    if sale.points_used:
        entries.append(sale_entry(
            kind=EntryKind.BURN, points=-sale.points_used,
            reason=f"Points used as payment at {sale.store_id} receipt {sale.receipt_no}",
        ))
    return entries
