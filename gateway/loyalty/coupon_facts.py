"""A coupon's life as facts, and the fold that gives its state.

Facts are what happened to a coupon: issued, held by a till's hold, released (the hold
voided or captured without it), redeemed by a captured hold, restored by a refund,
voided, expired. Each has a deterministic id from `(coupon, kind, ref)`, so the same fact
recorded at the edge and at central is one fact and merging them is a set union.

`fold` reads the set, never its order: which redemption counts is the earliest by
`(at, fact id)`, a hold is open until a release or a redemption names it or its time runs
out. So any arrival order, any duplicates and any split between two sites fold to the
same state at the same instant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

_ID_NAMESPACE = "mallgate/coupon-fact/v1"
_NEVER = datetime.max.replace(tzinfo=UTC)


class FactKind(StrEnum):
    ISSUED = "issued"  # until: the coupon's valid_until
    HELD = "held"  # ref: the hold id; until: the hold's expiry
    RELEASED = "released"  # ref: the hold id that no longer holds it (voided, expired)
    REDEEMED = "redeemed"  # ref: the hold id captured (or central's redemption id)
    RESTORED = "restored"  # ref: the refund's key; of_ref: the redemption it undoes
    VOIDED = "voided"  # ref: why (an operator, a campaign withdrawn)
    EXPIRED = "expired"  # recorded when noticed; the fold also derives it from the time


class CouponStatus(StrEnum):
    ISSUED = "issued"
    HELD = "held"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    VOIDED = "voided"


def fact_id_for(coupon_id: str, kind: FactKind, ref: str) -> str:
    digest = hashlib.sha256(
        "\x1f".join((_ID_NAMESPACE, coupon_id, kind.value, ref)).encode()).hexdigest()
    return digest[:32]


@dataclass(frozen=True, slots=True, kw_only=True)
class CouponFact:
    coupon_id: str
    kind: FactKind
    at: datetime
    ref: str = ""
    until: datetime | None = None
    of_ref: str | None = None
    site: str = ""  # who recorded it; not part of its identity

    def __post_init__(self) -> None:
        if self.at.utcoffset() is None:
            raise ValueError("a coupon fact's time is timezone-aware")
        if self.kind in (FactKind.HELD, FactKind.RELEASED, FactKind.REDEEMED) and not self.ref:
            raise ValueError(f"a {self.kind} fact names its hold")
        if self.kind is FactKind.RESTORED and not (self.ref and self.of_ref):
            raise ValueError("a restored fact names the refund and the redemption it undoes")

    @property
    def fact_id(self) -> str:
        return fact_id_for(self.coupon_id, self.kind, self.ref)

    def to_wire(self) -> dict[str, Any]:
        return {"fact_id": self.fact_id, "coupon_id": self.coupon_id, "kind": self.kind.value,
                "ref": self.ref, "at": self.at.isoformat(),
                "until": self.until.isoformat() if self.until else None,
                "of_ref": self.of_ref, "site": self.site}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> CouponFact:
        """A fact from its wire object; `ValueError` (or `KeyError`) if it is not one, or
        its `fact_id` is not the id of its content."""
        until = data.get("until")
        fact = cls(coupon_id=str(data["coupon_id"]), kind=FactKind(data["kind"]),
                   ref=str(data.get("ref") or ""), at=datetime.fromisoformat(data["at"]),
                   until=datetime.fromisoformat(until) if until else None,
                   of_ref=data.get("of_ref"), site=str(data.get("site") or ""))
        if data.get("fact_id") not in (None, fact.fact_id):
            raise ValueError(f"fact {data.get('fact_id')} does not match its content")
        return fact


@dataclass(frozen=True, slots=True)
class CouponState:
    coupon_id: str
    status: CouponStatus
    hold_id: str | None = None  # the open hold, when held
    redeemed_by: str | None = None  # the hold (or central redemption) that redeemed it
    redeemed_at: datetime | None = None
    # Redemptions beyond the first that no refund undid: 0 unless two sites redeemed the
    # same coupon, which the single writer per mall and central-only group coupons prevent;
    # counted so such a merge is seen, not hidden.
    conflicts: int = 0


def _order(fact: CouponFact) -> tuple[datetime, datetime, str, str]:
    return (fact.at, fact.until or _NEVER, fact.of_ref or "", fact.site)


def _first(facts: Iterable[CouponFact]) -> CouponFact | None:
    return min(facts, key=lambda fact: (fact.at, fact.fact_id), default=None)


def fold_coupon(facts: Iterable[CouponFact], *, as_of: datetime) -> CouponState | None:
    """The state of one coupon at `as_of` from its facts; None before it is known to have
    been issued. Independent of the facts' order and of duplicates."""
    by_id: dict[str, CouponFact] = {}
    for fact in facts:
        # The same fact recorded twice with different details (two sites' clocks): the
        # earliest recording stands, whichever arrived first.
        known = by_id.get(fact.fact_id)
        if known is None or _order(fact) < _order(known):
            by_id[fact.fact_id] = fact
    unique = by_id.values()
    issued = [fact for fact in unique if fact.kind is FactKind.ISSUED]
    if not issued:
        return None
    coupon_id = issued[0].coupon_id
    of_kind: dict[FactKind, list[CouponFact]] = {kind: [] for kind in FactKind}
    for fact in unique:
        of_kind[fact.kind].append(fact)
    undone = {fact.of_ref for fact in of_kind[FactKind.RESTORED]}
    standing = [fact for fact in of_kind[FactKind.REDEEMED] if fact.ref not in undone]
    first = _first(standing)
    if first is not None:
        return CouponState(coupon_id, CouponStatus.REDEEMED, redeemed_by=first.ref,
                           redeemed_at=first.at, conflicts=len(standing) - 1)
    if of_kind[FactKind.VOIDED]:
        return CouponState(coupon_id, CouponStatus.VOIDED)
    closed = ({fact.ref for fact in of_kind[FactKind.RELEASED]}
              | {fact.ref for fact in of_kind[FactKind.REDEEMED]})
    hold = _first(fact for fact in of_kind[FactKind.HELD]
                  if fact.ref not in closed and (fact.until is None or as_of < fact.until))
    if hold is not None:
        return CouponState(coupon_id, CouponStatus.HELD, hold_id=hold.ref)
    ends = [fact.until for fact in issued if fact.until is not None]
    if of_kind[FactKind.EXPIRED] or (ends and as_of >= min(ends)):
        return CouponState(coupon_id, CouponStatus.EXPIRED)
    return CouponState(coupon_id, CouponStatus.ISSUED)
