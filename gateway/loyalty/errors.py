"""The loyalty domain's errors; each carries the data a caller needs to answer precisely."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.loyalty.entries import Entry


class LoyaltyError(Exception):
    """Base of every error the pure loyalty domain raises."""


class InvalidEntry(LoyaltyError, ValueError):
    def __init__(self, entry: Entry, reason: str) -> None:
        super().__init__(f"invalid {entry.kind} entry {entry.source_type}:{entry.source_key}: "
                         f"{reason}")
        self.entry = entry
        self.reason = reason


class InvalidSale(LoyaltyError, ValueError):
    """A sale or refund whose amounts cannot be right (negative, lines above total...)."""


class ImplausibleEntry(InvalidEntry):
    """An entry beyond the plausibility limits (`gateway.loyalty.limits`)."""

    code = "implausible_entry"


class ImplausibleSale(InvalidSale):
    """A sale or refund beyond the plausibility limits: dead-lettered, never credited."""

    code = "implausible_sale"


class InvalidPhone(LoyaltyError, ValueError):
    """A phone number that is not one: fewer than 5 or more than 20 digits, or letters."""


class RedemptionRefused(LoyaltyError):
    """A redemption the rules do not allow; `code` is the stable code shown to kiosks."""

    code = "redemption_refused"

    def __init__(self, message: str, *, cost: int, available: int) -> None:
        super().__init__(message)
        self.cost = cost
        self.available = available


class InsufficientPoints(RedemptionRefused):
    code = "insufficient_points"


class OfflineLimitExceeded(RedemptionRefused):
    code = "offline_limit"


class BasketTooSmall(RedemptionRefused):
    """A till asked to pay with points for a basket worth less than one point."""

    code = "basket_too_small"


class InvalidRules(LoyaltyError, ValueError):
    """A loyalty rules document that cannot be applied, with the reason."""

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"rules version {version!r}: {reason}")
        self.version = version
        self.reason = reason
