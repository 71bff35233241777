"""The gateways' activity events: a member arriving in a zone, a welcome offer claimed, a
tier changed, a coupon issued or one of its facts.

Central keeps them once per `event_id` (a replayed event is a duplicate), keyed by member
so that erasing a member removes them. They are not ledger facts: they take no
`server_seq` and are not sent down the change feed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.loyalty import CouponFact, FactKind, coupon_from_wire, fact_id_for
from gateway.loyalty.wire import to_text

MAX_ID_CHARS = 200
# The columns of `activity_events`, in the order of `Activity.row`.
ACTIVITY_COLUMNS = ("mall_id, event_id, gateway_id, type, member_id, payload, occurred_at, "
                    "received_at")


def _rfc3339(value: str) -> str:
    """An RFC 3339 timestamp with its offset, as fixed-width UTC text."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an RFC 3339 timestamp") from None
    if at.tzinfo is None:
        raise ValueError("must be an RFC 3339 timestamp with a UTC offset")
    return to_text(at) or ""


Id = Field(min_length=1, max_length=MAX_ID_CHARS)


class _Payload(BaseModel):
    # Unknown fields are kept in the stored payload but not checked: newer gateways may
    # send more than this server knows.
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    member_id: str = Id
    account_id: str = Id


class VisitPayload(_Payload):
    """`visit`: a member detected arriving in a zone."""

    zone: str = Id
    arrived_at: str
    via: Literal["eid", "ibeacon_token", "static"]
    offer_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)

    @field_validator("arrived_at")
    @classmethod
    def _arrived(cls, value: str) -> str:
        return _rfc3339(value)

    @property
    def occurred_at(self) -> str:
        return self.arrived_at


class OfferClaimedPayload(_Payload):
    """`offer.claimed`: a member claimed a welcome offer at a kiosk."""

    offer_id: str = Id
    coupon_code: str = Id
    kiosk_id: str = Id
    claimed_at: str

    @field_validator("claimed_at")
    @classmethod
    def _claimed(cls, value: str) -> str:
        return _rfc3339(value)

    @property
    def occurred_at(self) -> str:
        return self.claimed_at


class TierChangedPayload(_Payload):
    """`tier.changed`: a gateway upgraded a member's tier after a sale (provisional until
    central's own recomputation, which records the same change under the same id)."""

    from_tier: str = Id
    to_tier: str = Id
    direction: Literal["upgrade", "downgrade"]
    changed_at: str
    reason: str = Field(max_length=500)

    @field_validator("changed_at")
    @classmethod
    def _changed(cls, value: str) -> str:
        return _rfc3339(value)

    @property
    def occurred_at(self) -> str:
        return self.changed_at


class CouponIssuedPayload(_Payload):
    """`coupon.issued`: a gateway issued a member a coupon (a welcome offer claimed, points
    redeemed); `coupon` is its wire object (`gateway.loyalty.coupon_wire`)."""

    coupon: dict[str, Any]

    @field_validator("coupon")
    @classmethod
    def _coupon(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            coupon_from_wire(value)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a coupon: {exc}") from None
        return value

    @property
    def occurred_at(self) -> str:
        return _rfc3339(str(self.coupon["issued_at"]))


class CouponFactPayload(_Payload):
    """`coupon.fact`: held, released, redeemed, restored, voided or expired at a gateway;
    `fact` is its wire object, whose id is the event's."""

    fact: dict[str, Any]

    @field_validator("fact")
    @classmethod
    def _fact(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            CouponFact.from_wire(value)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a coupon fact: {exc}") from None
        return value

    @property
    def occurred_at(self) -> str:
        return _rfc3339(str(self.fact["at"]))


PAYLOADS: dict[str, type[VisitPayload] | type[OfferClaimedPayload]
               | type[TierChangedPayload] | type[CouponIssuedPayload]
               | type[CouponFactPayload]] = {
    "visit": VisitPayload,
    "offer.claimed": OfferClaimedPayload,
    "tier.changed": TierChangedPayload,
    "coupon.issued": CouponIssuedPayload,
    "coupon.fact": CouponFactPayload,
}
COUPON_EVENTS = frozenset({"coupon.issued", "coupon.fact"})
ACTIVITY_TYPES = frozenset(PAYLOADS)


@dataclass(frozen=True, slots=True)
class Activity:
    """One activity event, checked, as it is stored."""

    event_id: str
    type: str
    member_id: str
    occurred_at: str  # fixed-width UTC text
    payload: str  # the payload as JSON text, as the gateway sent it

    def row(self, mall_id: str, gateway_id: str, received_at: str) -> tuple[str, ...]:
        """The `activity_events` row, in column order."""
        return (mall_id, self.event_id, gateway_id, self.type, self.member_id,
                self.payload, self.occurred_at, received_at)


# What a member's back-office view shows of their activity: the latest events, newest first.
MEMBER_ACTIVITY_SHOWN = 100
ACTIVITY_VIEW = "event_id, type, gateway_id, occurred_at, payload"


def activity_json(event_id: str, event_type: str, gateway_id: str, occurred_at: str,
                  payload: str) -> dict[str, Any]:
    """One stored activity event as the back office sees it (columns of `ACTIVITY_VIEW`)."""
    return {"event_id": event_id, "type": event_type, "gateway_id": gateway_id,
            "occurred_at": occurred_at, "payload": json.loads(payload)}


class InvalidActivity(ValueError):
    """The event's fields are missing or of the wrong type; the message says which."""


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


def _check_coupon_event_id(event_id: str,
                           checked: CouponIssuedPayload | CouponFactPayload) -> None:
    """A coupon event's id is its fact's, so each fact is kept once however it travels."""
    if isinstance(checked, CouponIssuedPayload):
        expected = fact_id_for(str(checked.coupon["coupon_id"]), FactKind.ISSUED, "")
    else:
        expected = CouponFact.from_wire(checked.fact).fact_id
    if event_id != expected:
        raise InvalidActivity(f"event_id must be the coupon fact's id {expected}")


def parse_activity(event_id: Any, event_type: str, payload: Any) -> Activity:
    """The activity event of type `event_type` (one of `ACTIVITY_TYPES`), or
    `InvalidActivity` naming every missing or mistyped field."""
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID_CHARS:
        raise InvalidActivity(f"event_id must be a string of 1 to {MAX_ID_CHARS} characters")
    if not isinstance(payload, dict):
        raise InvalidActivity("payload must be an object")
    try:
        checked = PAYLOADS[event_type].model_validate(payload)
    except ValidationError as exc:
        raise InvalidActivity(f"invalid {event_type} payload: {_describe(exc)}") from None
    if isinstance(checked, CouponIssuedPayload | CouponFactPayload):
        _check_coupon_event_id(event_id, checked)
    return Activity(event_id, event_type, checked.member_id, checked.occurred_at,
                    json.dumps(payload, ensure_ascii=False, separators=(",", ":")))
