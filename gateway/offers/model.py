"""Welcome offers as central publishes them (`PUT /v1/malls/{mall}/offers/{offer}`).

An offer's JSON document is kept as central sent it (`offers.definition`) and read through
`OfferDefinition`. Unknown fields are ignored, so an older gateway still reads the offers
of a newer central; a document that does not fit is skipped and counted, never fatal.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.loyalty import CouponKind, CouponTerms
from gateway.loyalty.calendar import HH_MM_PATTERN

_TEXT = 200


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Targeting(_Model):
    """Who gets the offer, where and when. An empty list means any; every set condition
    must hold."""

    tiers: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    zone_kinds: tuple[Literal["entrance", "store", "area"], ...] = ()
    tags_any: tuple[str, ...] = ()  # the member has at least one of these tags
    tags_none: tuple[str, ...] = ()  # ... and none of these
    weekdays: tuple[int, ...] = ()  # ISO weekdays, 1 = Monday
    hours_from: str | None = Field(default=None, pattern=HH_MM_PATTERN)  # local time, inclusive
    hours_until: str | None = Field(default=None, pattern=HH_MM_PATTERN)  # local time, exclusive
    birthday: bool = False  # only on the member's birthday (local date)
    member_day: bool = False  # only on the programme's member day

    @field_validator("weekdays")
    @classmethod
    def _iso_weekdays(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= day <= 7 for day in value):
            raise ValueError("weekdays are ISO numbers 1 (Monday) .. 7 (Sunday)")
        return value

    @property
    def hours(self) -> tuple[time, time] | None:
        if self.hours_from is None and self.hours_until is None:
            return None
        return (time.fromisoformat(self.hours_from or "00:00"),
                time.fromisoformat(self.hours_until or "23:59"))


class CouponReward(_Model):
    """What claiming the offer gives: a single-use coupon of one of the programme's kinds,
    with the values of its kind (see `CouponTerms`): `threshold_fen` and `off_fen` for
    spend X get Y off, `percent` (and `cap_fen`) for a percentage, `off_fen` for a cash
    voucher, `sku` for a free item."""

    kind: Literal["spend_x_get_y", "percentage", "cash_voucher", "free_item"]
    description: str = Field(max_length=_TEXT)  # shown to the member, e.g. "10% off coffee"
    valid_days: int = Field(default=7, ge=1, le=366)
    threshold_fen: int = Field(default=0, ge=0)
    off_fen: int = Field(default=0, ge=0)
    percent: int = Field(default=0, ge=0, le=99)
    cap_fen: int | None = Field(default=None, ge=0)
    sku: str | None = Field(default=None, min_length=1, max_length=64)
    min_spend_fen: int = Field(default=0, ge=0)
    categories: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _has_its_values(self) -> CouponReward:
        self.terms  # noqa: B018 - raises ValueError when the kind misses its values
        return self

    @property
    def terms(self) -> CouponTerms:
        return CouponTerms(
            kind=CouponKind(self.kind), threshold_fen=self.threshold_fen,
            off_fen=self.off_fen, percent=self.percent, cap_fen=self.cap_fen, sku=self.sku,
            min_spend_fen=self.min_spend_fen, categories=self.categories)


class OfferDefinition(_Model):
    kind: Literal["welcome"] = "welcome"
    title: str = Field(min_length=1, max_length=_TEXT)
    message: str = Field(default="", max_length=500)
    priority: int = Field(default=0, ge=-1000, le=1000)
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    target: Targeting = Targeting()
    reward: CouponReward | None = None

    def valid_at(self, at: datetime) -> bool:
        return ((self.valid_from is None or self.valid_from <= at)
                and (self.valid_until is None or at < self.valid_until))


class Offer(_Model):
    """An offer as the gateway holds it: its id and its definition."""

    id: str
    definition: OfferDefinition
