"""Rule versions: the rules in force at an instant, and documents checked with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.loyalty import InvalidRules, LoyaltyRules, RuleBook, RuleVersion, parse_version
from gateway.loyalty.versions import rules_document

BASE = LoyaltyRules(version="local")
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def version(name: str, at: datetime, rate: int = 2) -> RuleVersion:
    document = rules_document(BASE) | {"version": name}
    document["earn"] |= {"points_per_yuan": rate}
    return parse_version(name, at.isoformat(), document)


def test_the_base_until_the_first_version_then_the_latest_in_force() -> None:
    book = RuleBook.of(BASE, [version("b", T0 + timedelta(days=2), 3), version("a", T0, 2)])
    assert book.at(T0 - timedelta(microseconds=1)).version == "local"
    assert book.at(T0).version == "a" and book.at(T0).earn.points_per_yuan == 2
    assert book.at(T0 + timedelta(days=2)).version == "b"
    assert [v.version for v in book.versions] == ["a", "b"]


@given(st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=8),
       st.integers(min_value=-10, max_value=110))
def test_the_rules_in_force_are_those_of_the_latest_effective_version(
        days: list[int], probe: int) -> None:
    versions = [version(f"v{i}", T0 + timedelta(days=d)) for i, d in enumerate(days)]
    book = RuleBook.of(BASE, versions)
    at = T0 + timedelta(days=probe)
    effective = {d: f"v{i}" for i, d in enumerate(days)}  # the last listed of a day wins
    past = [d for d in effective if d <= probe]
    assert book.at(at).version == (effective[max(past)] if past else "local")


@pytest.mark.parametrize(("payload", "effective_at", "reason"), [
    ({"earn": {"points_per_yuan": "2"}}, "2026-03-01T00:00:00Z", "earn.points_per_yuan"),
    ({"tiers": {"tiers": []}}, "2026-03-01T00:00:00Z", "at least one tier"),
    ({"timezone": "Mars/Olympus"}, "2026-03-01T00:00:00Z", "unknown IANA time zone"),
    ({"version": "other"}, "2026-03-01T00:00:00Z", "the document says version"),
    ({}, "2026-03-01T00:00:00", "needs its UTC offset"),
    ({}, None, "effective_at must be"),
    ("rules", "2026-03-01T00:00:00Z", "must be an object"),
])
def test_a_document_that_cannot_be_applied_says_why(
        payload: object, effective_at: object, reason: str) -> None:
    with pytest.raises(InvalidRules) as refused:
        parse_version("v9", effective_at, payload)
    assert reason in refused.value.reason
