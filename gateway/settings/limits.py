"""The `[limits]` section: amounts no real entry or sale reaches, refused wherever seen."""

from __future__ import annotations

from pydantic import Field

from gateway.loyalty.limits import DEFAULT_MAX_ENTRY_POINTS, DEFAULT_MAX_SALE_FEN, Plausibility
from gateway.settings.base import SettingsModel


class LimitsSettings(SettingsModel):
    """Plausibility limits: an entry or a sale beyond them is refused (a dead letter), never
    credited, whether it was recorded here or came from central."""

    max_entry_points: int = Field(
        default=DEFAULT_MAX_ENTRY_POINTS, ge=1, le=2**53,
        description="Most points one ledger entry may earn or spend.",
    )
    max_sale_fen: int = Field(
        default=DEFAULT_MAX_SALE_FEN, ge=1, le=2**53,
        description="Largest sale or refund, in fen (1/100 yuan); also the most qualifying "
        "spend one ledger entry may carry.",
    )

    def plausibility(self) -> Plausibility:
        return Plausibility(max_entry_points=self.max_entry_points,
                            max_sale_fen=self.max_sale_fen)
