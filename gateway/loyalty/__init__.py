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
    new_member_entry,
    profile_completed_entry,
    profile_is_complete,
    referral_entries,
)
from gateway.loyalty.earn import Sale, SaleLine, quote_sale, sale_entries
from gateway.loyalty.entries import Entry, EntryKind, entry_id_for
from gateway.loyalty.errors import (
    BasketTooSmall,
    ImplausibleEntry,
    ImplausibleSale,
    InsufficientPoints,
    InvalidEntry,
    InvalidPhone,
    InvalidRules,
    InvalidSale,
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
from gateway.loyalty.versions import RuleBook, RuleVersion, parse_version

__all__ = [
    "AccountState", "BasketTooSmall", "Entry", "EntryKind", "ImplausibleEntry",
    "ImplausibleSale", "InsufficientPoints", "InvalidEntry", "InvalidPhone",
    "InvalidRules", "InvalidSale", "JournalLine", "Lot", "LotStatus", "LoyaltyError",
    "LoyaltyRules", "OfflineLimitExceeded", "Plausibility", "RedemptionRefused",
    "Refund", "RuleBook", "RuleVersion", "Sale", "SaleLine", "Totals", "birthday_entry",
    "check_redemption", "checkin_entry", "entry_id_for", "fold", "fold_totals",
    "grant_points", "new_member_entry", "offline_allowance", "parse_version",
    "profile_completed_entry", "profile_is_complete", "quote_sale", "redemption_entry",
    "referral_entries", "refund_entries", "reminders_due", "sale_entries",
]
