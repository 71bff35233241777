"""What a channel hands the operations and what it gets back, as pure values.

A channel (the kiosk link) maps its own request to an `OperationRequest` and gives the
operations its `Replies`, the way it words an answer; the worded answer is what is stored
for retries and returned, so a retry gets back exactly what the first attempt got.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

# The channel's reply as it is sent and stored (JSON-able).
Reply = dict[str, Any]

RefusalCode = Literal[
    "invalid_payload", "unknown_member", "invalid_token", "token_expired",
    "insufficient_points", "offline_limit", "already_checked_in", "receipt_not_found",
    "receipt_already_claimed", "receipt_claim_expired", "offer_not_available",
    "offer_already_claimed", "id_conflict", "internal",
    # A write on a member without a valid session of this kiosk (`sessions.py`).
    "session_required", "session_invalid", "session_expired", "session_wrong_kiosk",
    # member.enroll (`enrol.py`): central's answers to a code, and the gateway's own.
    "invalid_code", "code_expired", "too_many_attempts", "already_member",
    "enrolment_unavailable",
    # coupons (gateway.loyalty.coupons.CouponRefusal, the codes' errors, campaigns)
    "coupon_code_mistyped", "coupon_unknown", "not_this_mall", "needs_online",
    "not_this_member", "voided", "already_redeemed", "already_held", "expired", "not_yet_valid",
    "not_eligible", "below_minimum_spend", "item_not_in_basket", "unknown_campaign",
    "member_limit", "campaign_limit", "campaign_closed", "redeem_at_central",
]

# Refusals that are the answer to the request as it stands: stored, so a retry gets the
# same answer. Anything else (a malformed field, internal errors) is answered but not
# stored, and a retry is served afresh.
STORED_ERRORS: frozenset[str] = frozenset({
    "unknown_member", "invalid_token", "token_expired", "insufficient_points",
    "offline_limit", "already_checked_in", "receipt_already_claimed", "receipt_claim_expired",
    "offer_not_available", "offer_already_claimed", "already_member",
})


@dataclass(frozen=True, slots=True)
class OperationRequest:
    op: str  # "member.identify", "balance.query", "checkin", "redeem", ...
    key: str  # the idempotency key: unique per channel and request
    id: str  # the channel's request id, which its reply quotes
    data: dict[str, Any]  # the operation's fields, already validated by the channel
    kiosk: str  # where the request came from (kiosk id), kept with the stored reply


class Refused(Exception):
    """An operation the store or the rules refuse, with a stable code and, for some, data
    the channel shows (e.g. the available balance)."""

    def __init__(self, code: RefusalCode, msg: str, *,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.code: RefusalCode = code
        self.msg = msg
        self.data = data


@dataclass(frozen=True, slots=True)
class Replies:
    """How a channel words an answer to its request `id`: its data, or a refusal."""

    ok: Callable[[str, dict[str, Any]], Reply]
    refused: Callable[[str, Refused], Reply]
