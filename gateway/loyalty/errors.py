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
class CouponError(LoyaltyError):
    """Base of the coupon errors; `code` is the stable code tills and kiosks are shown."""

    code = "coupon_error"


class CouponCodeMistyped(CouponError, ValueError):
    """Not a code at all: wrong length, a letter outside the alphabet, or a check
    character that does not match (a typo)."""

    code = "coupon_code_mistyped"


class CouponCodeUnknown(CouponError, LookupError):
    """A well-formed code that no coupon here has (forged, another mall's, or not synced)."""

    code = "coupon_unknown"


class CouponRefused(CouponError):
    """A coupon that cannot be used on this basket now; `code` says why (see
    `gateway.loyalty.coupons.CouponRefusal`)."""

    def __init__(self, code: str, message: str, *, coupon_id: str) -> None:
        super().__init__(message)
        self.code = code
        self.coupon_id = coupon_id


class IssueRefused(CouponError):
    """A campaign cannot issue another coupon: `member_limit` or `campaign_limit`."""

    def __init__(self, code: str, message: str, *, campaign_id: str) -> None:
        super().__init__(message)
        self.code = code
        self.campaign_id = campaign_id
