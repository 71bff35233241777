"""Which offer a member gets: targeting, priority, quiet hours; pure, with fixed clocks."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from gateway.offers.model import Offer, OfferDefinition, Targeting
from gateway.offers.select import MemberFacts, Moment, choose, in_quiet_hours, matches

SHANGHAI = ZoneInfo("Asia/Shanghai")


def member(**overrides: object) -> MemberFacts:
    values: dict[str, object] = {
        "member_id": "m1", "account_id": "a1", "display_name": "Li *1", "tier": "gold",
        "birth_month": 3, "birth_day": 14, "tags": frozenset({"loyal"}),
        "opt_outs": frozenset()}
    values.update(overrides)
    return MemberFacts(**values)  # type: ignore[arg-type]


def moment(local: datetime, zone: str = "entrance-north", kind: str = "entrance",
           member_day: int = 18) -> Moment:
    return Moment(zone=zone, zone_kind=kind, at=local.astimezone(UTC), local=local,
                  member_day=member_day)


def offer(offer_id: str, priority: int = 0, **target: object) -> Offer:
    return Offer(id=offer_id, definition=OfferDefinition(
        title=offer_id, priority=priority, target=Targeting.model_validate(target)))


NOON = datetime(2026, 11, 20, 12, 0, tzinfo=SHANGHAI)  # a Friday


@pytest.mark.parametrize(("target", "fits"), [
    ({}, True),
    ({"tiers": ["gold", "diamond"]}, True),
    ({"tiers": ["silver"]}, False),
    ({"zones": ["entrance-north"]}, True),
    ({"zones": ["atrium"]}, False),
    ({"zone_kinds": ["store"]}, False),
    ({"tags_any": ["loyal", "new"]}, True),
    ({"tags_any": ["new"]}, False),
    ({"tags_none": ["loyal"]}, False),
    ({"weekdays": [5]}, True),
    ({"weekdays": [6, 7]}, False),
    ({"hours_from": "11:00", "hours_until": "14:00"}, True),
    ({"hours_from": "12:01"}, False),
    ({"hours_until": "12:00"}, False),  # the end is exclusive
    ({"birthday": True}, False),
    ({"member_day": True}, False),
])
def test_each_condition_of_the_targeting(target: dict[str, object], fits: bool) -> None:
    assert matches(Targeting.model_validate(target), member(), moment(NOON)) is fits


def test_birthday_and_member_day_offers_fit_on_their_day_only() -> None:
    birthday = datetime(2026, 3, 14, 15, 0, tzinfo=SHANGHAI)
    assert matches(Targeting(birthday=True), member(), moment(birthday))
    leapling = member(birth_month=2, birth_day=29)
    assert matches(Targeting(birthday=True), leapling,
                   moment(datetime(2026, 2, 28, 10, 0, tzinfo=SHANGHAI)))
    assert not matches(Targeting(birthday=True), member(birth_month=None, birth_day=None),
                       moment(birthday))
    member_day = datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI)
    assert matches(Targeting(member_day=True), member(), moment(member_day))
    assert not matches(Targeting(member_day=True), member(), moment(member_day, member_day=0))


def test_the_local_day_decides_not_the_utc_day() -> None:
    # 00:30 on the 14th in Shanghai is still the 13th in UTC.
    just_after_midnight = datetime(2026, 3, 14, 0, 30, tzinfo=SHANGHAI)
    assert matches(Targeting(birthday=True), member(), moment(just_after_midnight))


def test_priority_then_specificity_then_id_choose_the_offer() -> None:
    general, vip = offer("b-general"), offer("a-vip", priority=5, tiers=["gold"])
    assert choose([general, vip], member(), moment(NOON)) == vip
    member_day = datetime(2026, 11, 18, 12, 0, tzinfo=SHANGHAI)
    special = offer("z-member-day", member_day=True)
    assert choose([general, special], member(), moment(member_day)) == special
    assert choose([offer("b"), offer("a")], member(), moment(NOON)).id == "a"  # type: ignore[union-attr]
    assert choose([offer("x", tiers=["silver"])], member(), moment(NOON)) is None


def test_offers_outside_their_validity_are_not_chosen() -> None:
    expired = Offer(id="old", definition=OfferDefinition(
        title="old", valid_until=datetime(2026, 11, 1, tzinfo=UTC)))
    future = Offer(id="new", definition=OfferDefinition(
        title="new", valid_from=datetime(2026, 12, 1, tzinfo=UTC)))
    assert choose([expired, future], member(), moment(NOON)) is None


@pytest.mark.parametrize(("local", "quiet", "inside"), [
    (time(12, 0), (time(21, 30), time(10, 0)), False),
    (time(22, 0), (time(21, 30), time(10, 0)), True),
    (time(3, 0), (time(21, 30), time(10, 0)), True),
    (time(10, 0), (time(21, 30), time(10, 0)), False),  # the end is exclusive
    (time(13, 0), (time(12, 0), time(14, 0)), True),
    (time(14, 0), (time(12, 0), time(14, 0)), False),
    (time(13, 0), None, False),
])
def test_quiet_hours_may_span_midnight(local: time, quiet: tuple[time, time] | None,
                                       inside: bool) -> None:
    assert in_quiet_hours(local, quiet) is inside


def test_unknown_fields_from_a_newer_central_are_ignored_and_bad_ones_refused() -> None:
    parsed = OfferDefinition.model_validate_json(
        '{"title": "Hi", "colour": "red", "target": {"tiers": ["gold"], "beacon": 1}}')
    assert parsed.target.tiers == ("gold",)
    with pytest.raises(ValueError, match="weekdays"):
        Targeting(weekdays=(0,))
