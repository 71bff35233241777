"""Plausibility limits: amounts no real entry or sale comes near, refused wherever seen.

A bug or bad data (a POS sending fen as yuan times 100 twice, a central sending a corrupt
entry) must not credit a member millions of points. The limits are deliberately far above
anything real, so they refuse only what cannot be true; the gateway's `[limits]` settings
give them, and the ledger, the receipt pipeline and sync check against the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.loyalty.entries import Entry

# 10,000,000 points is ¥10,000,000 of spend at the default earn rate: no single entry of a
# mall's loyalty programme comes near it.
DEFAULT_MAX_ENTRY_POINTS = 10_000_000
# ¥10,000,000 in fen: more than any single sale in a shopping mall.
DEFAULT_MAX_SALE_FEN = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Plausibility:
    max_entry_points: int = DEFAULT_MAX_ENTRY_POINTS
    max_sale_fen: int = DEFAULT_MAX_SALE_FEN

    def entry_problem(self, entry: Entry) -> str | None:
        """Why the entry cannot be real (points or qualifying spend beyond the limits)."""
        if abs(entry.points) > self.max_entry_points:
            return (f"{entry.points} points in one entry, more than the limit of "
                    f"{self.max_entry_points}")
        if abs(entry.qual_fen) > self.max_sale_fen:
            return (f"qual_fen {entry.qual_fen} in one entry, more than the limit of "
                    f"{self.max_sale_fen} fen")
        return None

    def sale_problem(self, total_fen: int) -> str | None:
        """Why a sale of `total_fen` cannot be real."""
        if abs(total_fen) > self.max_sale_fen:
            return (f"a sale of {total_fen} fen, more than the limit of "
                    f"{self.max_sale_fen} fen")
        return None


DEFAULT_LIMITS = Plausibility()
