"""Beacon keys from the store into the resolver: as sync adds, changes and erases them."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from devices.ble.eid import EidResolver, MemberKey, ephemeral_id
from devices.ble.identity import Identifier, ble_key_value
from devices.ble.keyring import Keyring
from gateway.store.db import open_writer
from gateway.store.migrations import migrate

NOW = 1_000_000_000.0
CARD = "ibeacon:426c7565-4368-6172-6d42-6561636f6e73:3838:4949"


def key(member_id: str, byte: int) -> MemberKey:
    return MemberKey(member_id, identity_key=bytes([byte]) * 16)


def eid_of(k: MemberKey) -> bytes:
    return ephemeral_id(k.identity_key, k.rotation_exponent, k.counter_at(NOW))


def put_member(conn: sqlite3.Connection, member_id: str, keys: list[str], at: str) -> None:
    conn.execute("INSERT INTO members (id, account_id, tier, updated_at) VALUES (?, ?, "
                 "'normal', ?) ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at",
                 (member_id, f"a-{member_id}", at))
    conn.execute("DELETE FROM member_identifiers WHERE member_id = ? AND kind = 'ble_key'",
                 (member_id,))
    conn.executemany("INSERT INTO member_identifiers (kind, value, member_id) "
                     "VALUES ('ble_key', ?, ?)", [(k, member_id) for k in keys])


def test_keys_follow_the_store(tmp_path: Path) -> None:
    conn = open_writer(tmp_path / "gw.db")
    migrate(conn)
    identifier = Identifier(EidResolver(), mall_uuid=uuid.uuid4())
    keyring = Keyring(identifier)
    phone, card_member = key("m1", 1), key("m2", 2)
    put_member(conn, "m1", [ble_key_value(phone), f"static:{CARD}"], "2026-01-01T00:00:01")
    put_member(conn, "m2", [ble_key_value(card_member)], "2026-01-01T00:00:01")
    put_member(conn, "m3", ["eid:not-hex:10"], "2026-01-01T00:00:01")
    keyring.refresh(conn, NOW)
    resolver = identifier.resolver
    assert resolver.resolve_eid(eid_of(phone)) == "m1"
    assert identifier.static_ids[CARD] == "m1"  # a phone and a legacy card, both kept
    assert resolver.resolve_eid(eid_of(card_member)) == "m2"
    assert keyring.stats.invalid == 1 and keyring.stats.static_ids == 1

    # sync changes m2's key: the old id stops resolving, the new one resolves
    new = key("m2", 3)
    put_member(conn, "m2", [ble_key_value(new)], "2026-01-01T00:00:02")
    keyring.refresh(conn, NOW)
    assert resolver.resolve_eid(eid_of(card_member)) is None
    assert resolver.resolve_eid(eid_of(new)) == "m2"

    # m1 is erased: its row and identifiers are gone, not updated
    conn.execute("DELETE FROM members WHERE id = 'm1'")
    keyring.refresh(conn, NOW)
    assert resolver.resolve_eid(eid_of(phone)) is None and CARD not in identifier.static_ids
    assert keyring.stats.full_reloads == 1

    # nothing changed: no further full reload, the bad key is not counted again
    keyring.refresh(conn, NOW)
    keyring.refresh(conn, NOW)
    assert keyring.stats.full_reloads == 1 and keyring.stats.invalid == 1
    conn.close()
