"""Applying central's operations to the edge store: idempotent, newest version wins."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from gateway.members import erase_member, upsert_member, upsert_members
from gateway.store.db import open_memory
from gateway.store.migrations import migrate
from sync.apply import apply_changes


@pytest.fixture
def conn() -> sqlite3.Connection:
    connection = open_memory()
    migrate(connection)
    return connection


def view(version: int, card: str, tier: str = "normal") -> dict[str, Any]:
    return {"member_id": "M1", "account_id": "A1", "display_name_masked": "张*", "tier": tier,
            "tags": ["会员"], "identifiers": [{"kind": "card", "value": card}],
            "version": version}


def cards(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT value FROM member_identifiers ORDER BY 1")]


def test_a_newer_version_replaces_profile_and_identifiers(conn: sqlite3.Connection) -> None:
    upsert_member(conn, view(1, "C1"), "t1")
    upsert_member(conn, view(3, "C3", "gold"), "t2")
    upsert_member(conn, view(2, "C2", "silver"), "t3")  # late and older: ignored
    upsert_member(conn, view(3, "C3", "gold"), "t4")  # again: changes nothing
    assert conn.execute("SELECT tier, central_version, tags FROM members").fetchall() == [
        ("gold", 3, '["会员"]')]
    assert cards(conn) == ["C3"]


def test_every_field_is_stored_as_given_with_its_type(conn: sqlite3.Connection) -> None:
    full = {"member_id": "M1", "account_id": "A1", "display_name_masked": '王"小\\明\n',
            "tier": "gold", "tier_anniversary": "2026-03-01", "birth_month": 2,
            "birth_day": 29, "tags": ["会员", 'a"b', "é\u2028"], "opt_outs": ["sms"],
            "version": "7", "identifiers": [{"kind": "card", "value": "C1"},
                                            {"kind": "phone_hash", "value": "h1"}]}
    bare = {"member_id": "M2", "account_id": "A2", "tier": "", "tags": None}
    upsert_members(conn, [full, bare], "t1")
    rows = conn.execute(
        "SELECT id, account_id, display_name_masked, tier, tier_anniversary, birth_month, "
        "typeof(birth_month), birth_day, tags, opt_outs, central_version, "
        "typeof(central_version), updated_at FROM members ORDER BY id").fetchall()
    assert rows == [
        ("M1", "A1", '王"小\\明\n', "gold", "2026-03-01", 2, "integer", 29,
         '["会员","a\\"b","é\u2028"]', '["sms"]', 7, "integer", "t1"),
        ("M2", "A2", None, "normal", None, None, "null", None, "[]", "[]", 0, "integer", "t1")]
    assert conn.execute("SELECT id, owner_member_id FROM accounts ORDER BY id").fetchall() \
        == [("A1", "M1"), ("A2", "M2")]
    assert conn.execute("SELECT kind, value, member_id FROM member_identifiers "
                        "ORDER BY kind").fetchall() == [("card", "C1", "M1"),
                                                        ("phone_hash", "h1", "M1")]


def test_erasure_removes_every_trace_but_keeps_receipts_unlinked(
    conn: sqlite3.Connection,
) -> None:
    upsert_member(conn, view(1, "C1"), "t1")
    conn.execute("INSERT INTO receipts (store_id, pos_id, receipt_no, business_date, raw, "
                 "parse_status, member_id, received_at) VALUES "
                 "('S', 'P', 'R', '2026-05-01', x'00', 'ok', 'M1', 't')")
    assert erase_member(conn, "M1")
    assert conn.execute("SELECT count(*) FROM members").fetchone() == (0,)
    assert cards(conn) == []
    assert conn.execute("SELECT member_id FROM receipts").fetchall() == [(None,)]
    assert not erase_member(conn, "M1")  # a repeated tombstone does nothing


def test_a_page_applied_twice_changes_nothing(conn: sqlite3.Connection) -> None:
    changes = [{"server_seq": 1, "kind": "member.upsert", "key": "M1", "payload": view(1, "C1")},
               {"server_seq": 2, "kind": "offer.upsert", "key": "o1",
                "payload": {"key": "o1", "title": "Coffee"}},
               {"server_seq": 3, "kind": "something.new", "key": "x", "payload": {}}]
    first = apply_changes(conn, changes, {"A1": 80}, cursor=3, at="t")
    second = apply_changes(conn, changes, {"A1": 80}, cursor=3, at="t")
    assert (first.members, first.documents, first.skipped) == (1, 1, ["something.new"])
    assert second.members == 1 and cards(conn) == ["C1"]
    assert conn.execute("SELECT points, granted_seq FROM offline_allowances").fetchall() == [
        (80, 3)]
    assert conn.execute("SELECT cursor FROM sync_cursor").fetchall() == [("3",)]
