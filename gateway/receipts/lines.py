"""A receipt's item lines as the loyalty domain weighs them: amounts with categories.

Category multipliers (`[loyalty.earn] category_multiplier_pct`, e.g. tobacco 0 %) apply to
the lines that name a category. A line whose category the rules do not list earns at the
base rate, like a line without one; it is counted, because it usually means a till or a
template speaks of a category the programme has not priced yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from gateway.loyalty import LoyaltyRules, SaleLine
from gateway.receipts.model import Line


def sale_lines(lines: Iterable[Line]) -> tuple[SaleLine, ...]:
    return tuple(SaleLine(x.amount_fen, x.category) for x in lines)


def stored_sale_lines(lines: Sequence[dict[str, Any]]) -> tuple[SaleLine, ...]:
    """The lines of a receipt's stored JSON (`ParsedReceipt.to_json`)."""
    return tuple(SaleLine(int(x["amount_fen"]), x.get("category")) for x in lines)


def unknown_categories(lines: Iterable[Line], rules: LoyaltyRules) -> int:
    """Lines naming a category the rules do not list: they earn at the base rate."""
    known = rules.earn.category_multiplier_pct
    return sum(1 for x in lines if x.category is not None and x.category not in known)
