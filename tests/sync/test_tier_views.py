"""Central's member views with tiers: checked on arrival, and an upgrade made at the edge
outlives a profile central sent before it knew of it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.loyalty.fold import qualifying_of
from gateway.loyalty.tier_review import Standing, upgrade_after
from gateway.members import upsert_member
from gateway.members.tiers import record_upgrade
from gateway.store.migrations import migrate
from sync.checks import Refused, check_member
from tests.loyalty.helpers import RULES, at, earn

AT = "2026-03-01T00:00:00.000000+00:00"


def view(version: int, tier: str = "normal", **more: Any) -> dict[str, Any]:
    return {"member_id": "M1", "account_id": "A1", "tier": tier, "version": version, **more}


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(tmp_path / "gw.db", isolation_level=None)
    migrate(db)
    yield db
    db.close()


def tier(conn: sqlite3.Connection) -> tuple[str, str | None]:
    row = conn.execute("SELECT tier, tier_provisional_at FROM members").fetchone()
    return row[0], row[1]


def test_a_provisional_upgrade_survives_an_older_profile_and_central_confirms_it(
        conn: sqlite3.Connection) -> None:
    upsert_member(conn, view(1), AT)
    sale = earn(600, at(2026, 3, 2), key="big", qual_fen=60_000)
    change = upgrade_after(Standing("normal"), qualifying_of([sale]), RULES,
                           member_id="M1", trigger=sale)
    assert change is not None
    assert record_upgrade(conn, change, account_id="A1", recorded_at=AT)
    assert tier(conn)[0] == "silver"
    # A name change central made before it saw the sale: the tier stays silver.
    upsert_member(conn, view(2, display_name_masked="L*"), AT)
    assert tier(conn)[0] == "silver" and tier(conn)[1] is not None
    # Central's own upgrade, with the same change: confirmed, one fact.
    since = conn.execute("SELECT at FROM tier_changes").fetchone()[0]
    payload = {"change_id": change.change_id, "member_id": "M1", "account_id": "A1",
               "from_tier": "normal", "to_tier": "silver", "direction": "upgrade",
               "changed_at": since}
    upsert_member(conn, check_member(view(3, "silver", tier_since=since,
                                          tier_change=payload), "M1"), AT)
    assert tier(conn) == ("silver", None)
    assert conn.execute("SELECT origin, confirmed FROM tier_changes").fetchall() == [
        ("edge", "confirmed")]


def test_a_later_decision_of_central_replaces_the_provisional_tier(
        conn: sqlite3.Connection) -> None:
    upsert_member(conn, view(1), AT)
    sale = earn(600, at(2026, 3, 2), key="big", qual_fen=60_000)
    change = upgrade_after(Standing("normal"), qualifying_of([sale]), RULES,
                           member_id="M1", trigger=sale)
    assert change is not None
    record_upgrade(conn, change, account_id="A1", recorded_at=AT)
    upsert_member(conn, view(2, "normal", tier_since="2026-03-03T00:00:00.000000+00:00"), AT)
    assert tier(conn) == ("normal", None)
    assert conn.execute("SELECT confirmed FROM tier_changes").fetchone()[0] == "superseded"


@pytest.mark.parametrize("bad", [
    {"tier_since": 5}, {"tier_change": "x"},
    {"tier_change": {"change_id": "t1", "member_id": "M2", "account_id": "A1",
                     "from_tier": "normal", "to_tier": "silver", "direction": "upgrade",
                     "changed_at": AT}},
    {"tier_change": {"change_id": "t1", "member_id": "M1", "account_id": "A1",
                     "from_tier": "normal", "to_tier": "silver", "direction": "sideways",
                     "changed_at": AT}},
])
def test_a_malformed_tier_in_a_view_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(Refused, match="tier_"):
        check_member(view(1, **bad), "M1")
