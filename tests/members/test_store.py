"""Members in the edge store through the package's functions: found by every identifier,
upserted by central's version, erased everywhere, beacon keys followed by change time."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from gateway.members import (
    Lookup,
    Member,
    NewMember,
    add_members,
    ble_key_count,
    ble_keys_changed_since,
    erase_member,
    find_by_code,
    find_member,
    give_identifiers,
    has_members,
    ids_after,
    members_without,
    profile,
    upsert_member,
    upsert_members,
    versions_between,
)
from gateway.store.db import open_memory
from gateway.store.migrations import migrate

T1, T2 = "2026-01-01T00:00:00.000000+00:00", "2026-01-02T00:00:00.000000+00:00"


@pytest.fixture
def conn() -> sqlite3.Connection:
    connection = open_memory()
    migrate(connection)
    return connection


def view(member_id: str, version: int = 1, **fields: Any) -> dict[str, Any]:
    return {"member_id": member_id, "account_id": f"A-{member_id}", "version": version,
            "display_name_masked": "李*", "tier": "silver", **fields}


def test_a_member_is_found_by_id_and_by_each_identifier(conn: sqlite3.Connection) -> None:
    assert not has_members(conn)
    upsert_member(conn, view("M1", identifiers=[
        {"kind": "card", "value": "C1"}, {"kind": "phone_hash", "value": "ph"},
        {"kind": "qr_token", "value": "QR1"}, {"kind": "ble_key", "value": "static:1"}]), T1)
    m1 = Member(id="M1", account_id="A-M1", display_name="李*", tier="silver")
    assert has_members(conn)
    for lookup in (Lookup("member", "M1"), Lookup("card", "C1"), Lookup("phone_hash", "ph"),
                   Lookup("qr_token", "QR1"), Lookup("ble_key", "static:1")):
        assert find_member(conn, lookup) == m1, lookup
    assert find_member(conn, Lookup("card", "QR1")) is None  # the kind is part of the key
    assert find_member(conn, Lookup("member", "M2")) is None
    # a receipt's member code: an id, a card or a QR token, never a phone hash
    assert [find_by_code(conn, code) for code in ("M1", "C1", "QR1", "ph")] == [
        m1, m1, m1, None]


def test_the_profile_offers_read(conn: sqlite3.Connection) -> None:
    upsert_member(conn, view("M1", birth_month=2, birth_day=29, tags=["loyal", "vip"],
                             opt_outs=["offers"]), T1)
    found = profile(conn, "M1")
    assert found is not None
    assert (found.tier, found.birth_month, found.birth_day) == ("silver", 2, 29)
    assert found.tags == {"loyal", "vip"} and found.opt_outs == {"offers"}
    assert profile(conn, "M9") is None


def test_central_versions_decide_and_identifiers_follow(conn: sqlite3.Connection) -> None:
    upsert_members(conn, [view("M1", 2, identifiers=[{"kind": "card", "value": "C1"}]),
                          view("M2", 1, identifiers=[{"kind": "card", "value": "C2"}])], T1)
    upsert_member(conn, view("M1", 1, tier="gold",
                             identifiers=[{"kind": "card", "value": "OLD"}]), T2)  # older
    upsert_member(conn, view("M2", 3, tier="gold",
                             identifiers=[{"kind": "card", "value": "C1"}]), T2)  # takes C1
    assert versions_between(conn, "", "M9") == {"M1": 2, "M2": 3}
    assert versions_between(conn, "M1", "M2") == {"M2": 3}
    assert find_member(conn, Lookup("card", "C1")) == Member("M2", "A-M2", "李*", "gold")
    assert find_member(conn, Lookup("card", "C2")) is None
    assert find_member(conn, Lookup("card", "OLD")) is None
    assert ids_after(conn, "") == ["M1", "M2"] and ids_after(conn, "M1") == ["M2"]


def test_an_erasure_purges_the_member_and_keeps_the_account(
        conn: sqlite3.Connection) -> None:
    upsert_member(conn, view("M1", identifiers=[{"kind": "card", "value": "C1"}]), T1)
    assert erase_member(conn, "M1")
    assert find_member(conn, Lookup("card", "C1")) is None and not has_members(conn)
    assert conn.execute("SELECT id FROM accounts").fetchall() == [("A-M1",)]
    assert not erase_member(conn, "M1")  # a repeated tombstone does nothing


def test_demo_members_and_their_beacon_keys(conn: sqlite3.Connection) -> None:
    add_members(conn, [
        NewMember("m-demo-1", "a-1", "Demo *01", "normal", (("card", "D1"),)),
        NewMember("m-demo-2", "a-2", "Demo *02", "gold"),
        NewMember("other", "a-3", "", "normal")], T1)
    assert find_member(conn, Lookup("card", "D1")) == Member("m-demo-1", "a-1", "Demo *01",
                                                             "normal")
    assert members_without(conn, "ble_key", id_prefix="m-demo-") == ["m-demo-1", "m-demo-2"]
    assert ble_key_count(conn) == 0
    assert len(list(ble_keys_changed_since(conn, ""))) == 3

    give_identifiers(conn, "ble_key", {"m-demo-2": "static:2"}, T2)
    assert members_without(conn, "ble_key", id_prefix="m-demo-") == ["m-demo-1"]
    assert ble_key_count(conn) == 1
    # the member with the new key counts as changed; the others are not read again
    assert list(ble_keys_changed_since(conn, T2)) == [("m-demo-2", T2, "static:2")]
