"""The loyalty rules: every number of the programme, with the defaults of the product brief.

These models are the single definition of the rules. The gateway's settings embed them
under `[loyalty]`, and central ships new versions down through sync. They are frozen and
validate themselves, so the pure domain functions can trust what they are given.

Money is integer fen (1 yuan = 100 fen); points are integers; multipliers are integer
percentages (200 = double points), so no float ever touches a balance.
"""

from __future__ import annotations

from datetime import tzinfo
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

FEN_PER_YUAN = 100
PERCENT = 100


class RuleModel(BaseModel):
    """Frozen, strict, closed: an unknown key or a wrong type is an error, not a guess."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Tier(RuleModel):
    code: str = Field(min_length=1, max_length=32, description="Stable tier code.")
    name: str = Field(min_length=1, max_length=32, description="Name shown to members.")
    qualifying_fen: int = Field(
        ge=0, description="Qualifying spend (fen) over the window needed to hold this tier."
    )
    discount_pct: int = Field(ge=0, le=100, description="Member discount in percent.")
    earn_multiplier_pct: int = Field(
        ge=0, le=10_000, description="Earn multiplier in percent (100 = no change)."
    )
    parking_hours: int = Field(ge=0, le=24, description="Free parking hours per visit.")


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier(code="normal", name="普通", qualifying_fen=0, discount_pct=0,
         earn_multiplier_pct=100, parking_hours=0),
    Tier(code="silver", name="银卡", qualifying_fen=500 * FEN_PER_YUAN, discount_pct=5,
         earn_multiplier_pct=110, parking_hours=2),
    Tier(code="gold", name="金卡", qualifying_fen=1500 * FEN_PER_YUAN, discount_pct=10,
         earn_multiplier_pct=125, parking_hours=3),
    Tier(code="diamond", name="钻石", qualifying_fen=3000 * FEN_PER_YUAN, discount_pct=15,
         earn_multiplier_pct=150, parking_hours=5),
)


class TierRules(RuleModel):
    tiers: tuple[Tier, ...] = Field(
        default=DEFAULT_TIERS,
        description="Tiers from lowest to highest; the first must need 0 qualifying spend.",
    )
    window_months: int = Field(
        default=12, ge=1, le=36, description="Rolling window of qualifying spend, in months."
    )

    @field_validator("tiers")
    @classmethod
    def _ordered(cls, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        if not tiers:
            raise ValueError("at least one tier is required")
        if tiers[0].qualifying_fen != 0:
            raise ValueError("the first (lowest) tier must have qualifying_fen = 0")
        spends = [t.qualifying_fen for t in tiers]
        if spends != sorted(set(spends)):
            raise ValueError("tiers must be listed by strictly increasing qualifying_fen")
        codes = [t.code for t in tiers]
        if len(codes) != len(set(codes)):
            raise ValueError("tier codes must be unique")
        return tiers

    def index_of(self, code: str) -> int:
        for i, tier in enumerate(self.tiers):
            if tier.code == code:
                return i
        raise KeyError(code)


class SpendBonus(RuleModel):
    min_fen: int = Field(gt=0, description="The transaction's eligible spend (fen) from which "
                                           "this bonus applies.")
    multiplier_pct: int = Field(default=100, ge=100, le=10_000,
                                description="Extra multiplier in percent applied before the floor.")
    bonus_points: int = Field(default=0, ge=0, le=1_000_000,
                              description="Flat points added to the transaction.")


class EarnRules(RuleModel):
    points_per_yuan: int = Field(default=1, ge=0, le=1000, description="Base earn rate.")
    member_day: int = Field(
        default=18, ge=0, le=28,
        description="Day of the month that is member day (local time); 0 for none.",
    )
    member_day_multiplier_pct: int = Field(default=200, ge=100, le=10_000,
                                           description="Member-day multiplier in percent.")
    store_multiplier_pct: dict[str, int] = Field(
        default_factory=dict, description="Per-store multiplier in percent, by store id."
    )
    category_multiplier_pct: dict[str, int] = Field(
        default_factory=dict,
        description="Per-category multiplier in percent, applied to item lines of that "
                    "category (0 excludes the category, e.g. tobacco).",
    )
    spend_bonuses: tuple[SpendBonus, ...] = Field(
        default=(), description="Spend-threshold bonuses; the highest threshold reached applies."
    )
    pending_days: int = Field(
        default=0, ge=0, le=90,
        description="Return window: days before earned points can be spent (0 = at once).",
    )

    @field_validator("store_multiplier_pct", "category_multiplier_pct")
    @classmethod
    def _pct_range(cls, value: dict[str, int]) -> dict[str, int]:
        for key, pct in value.items():
            if not 0 <= pct <= 10_000:
                raise ValueError(f"multiplier for {key!r} must be within 0..10000 percent")
        return value


class ExpiryRules(RuleModel):
    policy: Literal["end_of_next_year", "days", "never"] = Field(
        default="end_of_next_year",
        description="end_of_next_year: points expire at the end of the calendar year after "
                    "the year earned; days: after `days` days; never.",
    )
    days: int = Field(default=365, ge=1, le=3650, description="Lifetime when policy = days.")
    reminder_days: tuple[int, ...] = Field(
        default=(30, 7), description="Remind members this many days before points expire, "
                                      "and before a coupon of theirs expires unused."
    )


class CheckinRules(RuleModel):
    points: int = Field(default=5, ge=0, le=10_000, description="Points per daily check-in.")


# The profile fields the profile task can ask for (`birthday`: both month and day).
ProfileField = Literal["name", "phone", "birthday"]


class TaskRules(RuleModel):
    profile_completed_points: int = Field(default=50, ge=0, le=100_000,
                                          description="Once per member: profile completed.")
    referrer_points: int = Field(default=100, ge=0, le=100_000,
                                 description="To the member who invited a friend, per friend.")
    referee_points: int = Field(default=50, ge=0, le=100_000,
                                description="To the invited friend, once.")
    profile_fields: tuple[ProfileField, ...] = Field(
        default=("name", "phone", "birthday"), min_length=1,
        description="What a complete profile has (name, phone, birthday): the profile "
                    "task is granted once all of them are filled in.",
    )
    new_member_points: int = Field(
        default=0, ge=0, le=100_000,
        description="New-member gift: points given once when a member joins (0: none).",
    )


class BirthdayRules(RuleModel):
    points: int = Field(default=200, ge=0, le=100_000, description="Birthday gift points.")
    window: Literal["day", "month"] = Field(
        default="month", description="The gift can be granted on the birthday or in its month."
    )


class RedemptionRules(RuleModel):
    offline_allowance_cap: int = Field(
        default=500, ge=0,
        description="Most points a member may redeem at the edge while central is unreachable "
                    "(central may grant less).",
    )
    restore_points_on_refund: bool = Field(
        default=True, description="Refunding a sale paid partly with points restores them."
    )
    fen_per_point: int = Field(
        default=1, ge=1, le=10_000,
        description="Cash offset: what one point pays at a till, in fen (1: 100 points = "
                    "1 yuan).",
    )


class LoyaltyRules(RuleModel):
    version: str = Field(default="default-1", min_length=1, max_length=64,
                         description="Rule version recorded on every entry.")
    timezone: str = Field(default="Asia/Shanghai",
                          description="IANA time zone of local days (check-in, member day).")
    earn: EarnRules = EarnRules()
    expiry: ExpiryRules = ExpiryRules()
    checkin: CheckinRules = CheckinRules()
    tasks: TaskRules = TaskRules()
    birthday: BirthdayRules = BirthdayRules()
    tiers: TierRules = TierRules()
    redemption: RedemptionRules = RedemptionRules()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @cached_property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)
