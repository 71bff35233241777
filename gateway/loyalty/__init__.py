"""The loyalty domain: pure functions over integer points and fen, no I/O.

An entry's shared definition lives here too: its wire form (`wire`) and the hybrid
logical clock that stamps it (`hlc`); so does the keyed phone hash members are looked up
by (`phones`). The central server imports this package and nothing
else of the gateway, so the edge and central count, encode and stamp the same way. It
depends on the standard library only.
"""

from gateway.loyalty.activities import (
    birthday_entry,
    checkin_entry,
    profile_completed_entry,
    referral_entries,
)
from gateway.loyalty.coupon_codes import display_code, new_code, normalise_code, verify_code
from gateway.loyalty.coupon_facts import (
    CouponFact,
    CouponState,
    CouponStatus,
    FactKind,
    fact_id_for,
    fold_coupon,
)
from gateway.loyalty.coupon_wire import (
    basket_from_wire,
    campaign_from_wire,
    coupon_from_wire,
    coupon_to_wire,
    terms_from_wire,
    terms_to_wire,
)
from gateway.loyalty.coupons import (
    GROUP_WIDE,
    Basket,
    BasketLine,
    Campaign,
    Coupon,
    CouponKind,
    CouponRefusal,
    CouponTerms,
    Grant,
    Where,
    check_coupon,
    check_coupons,
    check_issue,
    coupon_id_for,
    issue_coupon,
    issued_fact,
)
from gateway.loyalty.earn import Sale, SaleLine, quote_sale, sale_entries
from gateway.loyalty.entries import Entry, EntryKind, entry_id_for
from gateway.loyalty.errors import (
    BasketTooSmall,
    CouponCodeMistyped,
    CouponCodeUnknown,
    CouponError,
    CouponRefused,
    ImplausibleEntry,
    ImplausibleSale,
    InsufficientPoints,
    InvalidEntry,
    InvalidPhone,
    InvalidSale,
    IssueRefused,
    LoyaltyError,
    OfflineLimitExceeded,
    RedemptionRefused,
)
from gateway.loyalty.fold import (
    AccountState,
    JournalLine,
    Lot,
    LotStatus,
    Totals,
    fold,
    fold_totals,
    reminders_due,
)
from gateway.loyalty.limits import Plausibility
from gateway.loyalty.redemption import (
    check_redemption,
    grant_points,
    offline_allowance,
    redemption_entry,
)
from gateway.loyalty.refunds import Refund, refund_entries
from gateway.loyalty.rules import LoyaltyRules
from gateway.loyalty.tiers import TierState, tier_at

__all__ = [
    "GROUP_WIDE", "AccountState", "Basket", "BasketLine", "BasketTooSmall", "Campaign",
    "Coupon", "CouponCodeMistyped", "CouponCodeUnknown", "CouponError", "CouponFact",
    "CouponKind", "CouponRefusal", "CouponRefused", "CouponState", "CouponStatus",
    "CouponTerms", "Entry", "EntryKind", "FactKind", "Grant", "ImplausibleEntry",
    "ImplausibleSale", "InsufficientPoints", "InvalidEntry", "InvalidPhone", "InvalidSale",
    "IssueRefused", "JournalLine", "Lot", "LotStatus", "LoyaltyError", "LoyaltyRules",
    "OfflineLimitExceeded", "Plausibility", "RedemptionRefused", "Refund", "Sale", "SaleLine",
    "TierState", "Totals", "Where", "basket_from_wire", "birthday_entry", "campaign_from_wire",
    "check_coupon", "check_coupons", "check_issue", "check_redemption", "checkin_entry",
    "coupon_from_wire", "coupon_id_for", "coupon_to_wire", "display_code", "entry_id_for",
    "fact_id_for", "fold", "fold_coupon", "fold_totals", "grant_points", "issue_coupon",
    "issued_fact", "new_code", "normalise_code", "offline_allowance",
    "profile_completed_entry", "quote_sale", "redemption_entry", "referral_entries",
    "refund_entries", "reminders_due", "sale_entries", "terms_from_wire", "terms_to_wire",
    "tier_at", "verify_code",
]
