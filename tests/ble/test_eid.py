"""Eddystone-EID: the published vectors, the iBeacon token, and the resolver table over time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.ble.eid import (
    EidResolver,
    IdentityKeyError,
    MemberKey,
    ephemeral_id,
    ibeacon_token,
    identity_key_from_exchange,
)
from tests.scale import examples

EID: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "vectors.json").read_text())["eddystone_eid"]
K10 = 1024


def key(n: int, **overrides: Any) -> MemberKey:
    return MemberKey(f"m{n}", identity_key=n.to_bytes(16, "big"), **overrides)


@pytest.mark.parametrize("vector", EID["vectors"], ids=lambda v: str(v["counter"]))
def test_published_eid_vectors(vector: dict[str, Any]) -> None:
    eid = ephemeral_id(bytes.fromhex(vector["identity_key"]), vector["rotation_exponent"],
                       vector["counter"])
    assert eid.hex() == vector["eid"]


def test_key_exchange_vector() -> None:
    exchange = EID["key_exchange"]
    derived = identity_key_from_exchange(bytes.fromhex(exchange["resolver_private"]),
                                         bytes.fromhex(exchange["beacon_public"]))
    assert derived.hex() == exchange["identity_key"]


def test_eid_is_constant_within_a_window_and_changes_across() -> None:
    ik = bytes(range(16))
    assert ephemeral_id(ik, 10, 2048) == ephemeral_id(ik, 10, 2048 + 1023)
    assert ephemeral_id(ik, 10, 2048) != ephemeral_id(ik, 10, 2048 + 1024)


def test_ibeacon_token_is_the_first_four_eid_bytes() -> None:
    assert ibeacon_token(bytes.fromhex("a9b76a71c5f89290")) == (0xA9B7, 0x6A71)


def test_bad_keys_are_refused_with_the_member_named() -> None:
    with pytest.raises(IdentityKeyError) as short:
        MemberKey("m1", identity_key=b"\x01" * 15)
    assert short.value.member_id == "m1"
    with pytest.raises(IdentityKeyError):
        MemberKey("m2", identity_key=bytes(16), rotation_exponent=16)


def test_resolves_the_published_member_across_windows() -> None:
    vector_key = MemberKey("gold", bytes.fromhex(EID["vectors"][0]["identity_key"]))
    resolver = EidResolver()
    resolver.upsert(vector_key, now=0)
    assert resolver.resolve_eid(bytes.fromhex("a9b76a71c5f89290")) == "gold"
    assert resolver.resolve_eid(bytes.fromhex("4144413e45fefa58")) == "gold"  # window +1
    resolver.advance(2000)  # window 1: now windows 0, 1, 2 are held
    assert resolver.resolve_eid(bytes.fromhex("a9b76a71c5f89290")) == "gold"
    assert resolver.resolve_eid(bytes.fromhex("4144413e45fefa58")) == "gold"
    resolver.advance(3 * K10)  # window 3: windows 2, 3, 4; window 0 has gone
    assert resolver.resolve_eid(bytes.fromhex("a9b76a71c5f89290")) is None


def test_window_plus_and_minus_one_resolve_and_two_away_do_not() -> None:
    resolver = EidResolver()
    member = key(7)
    now = 50 * K10 + 10
    resolver.upsert(member, now)
    ik = member.identity_key
    for window, expected in [(48, None), (49, "m7"), (50, "m7"), (51, "m7"), (52, None)]:
        assert resolver.resolve_eid(ephemeral_id(ik, 10, window * K10)) == expected, window
        major, minor = ibeacon_token(ephemeral_id(ik, 10, window * K10))
        assert resolver.resolve_token(major, minor) == expected, window


def test_advance_between_turns_computes_nothing() -> None:
    resolver = EidResolver()
    resolver.upsert_many([key(n) for n in range(50)], now=10 * K10)
    computed = resolver.stats.computed
    assert resolver.advance(10 * K10 + 1023) == 0
    assert resolver.stats.computed == computed
    assert resolver.advance(11 * K10) == 50
    assert resolver.table_size == 150


def test_a_turn_and_a_full_rebuild_agree() -> None:
    turned = EidResolver()
    turned.upsert_many([key(n) for n in range(40)], now=100)
    for step in range(1, 80):  # crosses a temporary-key boundary (every 64 windows at K=10)
        turned.advance(100 + step * K10)
    fresh = EidResolver()
    fresh.upsert_many([key(n) for n in range(40)], now=100 + 79 * K10)
    assert turned._eids.unique == fresh._eids.unique
    assert turned._tokens.unique == fresh._tokens.unique


def test_key_change_and_removal_touch_only_that_member() -> None:
    resolver = EidResolver()
    resolver.upsert_many([key(n) for n in range(20)], now=5 * K10)
    computed = resolver.stats.computed
    old_eid = ephemeral_id(key(3).identity_key, 10, 5 * K10)
    new_key = MemberKey("m3", identity_key=b"\xee" * 16)
    resolver.upsert(new_key, now=5 * K10 + 1)
    assert resolver.stats.computed - computed <= 3 + resolver.lookahead
    assert resolver.resolve_eid(old_eid) is None
    assert resolver.resolve_eid(ephemeral_id(new_key.identity_key, 10, 5 * K10)) == "m3"
    resolver.upsert(new_key, now=5 * K10 + 2)  # unchanged: nothing computed
    resolver.remove("m3")
    resolver.remove("m3")  # twice is harmless
    assert "m3" not in resolver
    assert len(resolver) == 19
    assert resolver.table_size == 19 * 3
    assert resolver.resolve_eid(ephemeral_id(key(4).identity_key, 10, 5 * K10)) == "m4"


def test_members_with_their_own_clock_and_exponent_turn_on_their_own() -> None:
    resolver = EidResolver()
    card = key(1, rotation_exponent=4, clock_offset_s=5)  # turns every 16 s
    phone = key(2)
    resolver.upsert_many([card, phone], now=1000)
    assert resolver.advance(1011) == 1  # the card's counter reached 1016
    assert resolver.resolve_eid(ephemeral_id(card.identity_key, 4, 1016)) == "m1"
    assert resolver.resolve_eid(ephemeral_id(card.identity_key, 4, 1032)) == "m1"
    assert resolver.resolve_eid(ephemeral_id(phone.identity_key, 10, 1024)) == "m2"


def test_a_cohort_that_leaves_and_returns_is_not_turned_twice() -> None:
    resolver = EidResolver()
    resolver.upsert(key(1), now=100)
    resolver.remove("m1")
    resolver.upsert(key(1), now=200)
    assert resolver.advance(K10) == 1
    assert len(resolver._turns) == 1


def test_counter_wrap_keeps_the_neighbouring_windows() -> None:
    resolver = EidResolver()
    member = key(9, clock_offset_s=2**32 - 10)  # counter 2**32 - 10 at t=0
    resolver.upsert(member, now=0)
    ik = member.identity_key
    assert resolver.resolve_eid(ephemeral_id(ik, 10, 2**32 - 1)) == "m9"
    assert resolver.resolve_eid(ephemeral_id(ik, 10, 0)) == "m9"
    resolver.advance(20)
    assert resolver.resolve_eid(ephemeral_id(ik, 10, 0)) == "m9"
    assert resolver.resolve_eid(ephemeral_id(ik, 10, 2**32 - 1)) == "m9"
    assert resolver.resolve_eid(ephemeral_id(ik, 10, K10)) == "m9"


def test_a_clashing_token_resolves_to_nobody_and_is_counted() -> None:
    resolver = EidResolver()
    resolver._tokens.add(b"\x00\x01\x00\x02", "a")
    resolver._tokens.add(b"\x00\x01\x00\x02", "b")
    assert resolver.resolve_token(1, 2) is None
    assert resolver.stats.ambiguous == 1
    resolver._tokens.discard(b"\x00\x01\x00\x02", "a")
    assert resolver.resolve_token(1, 2) == "b"


@settings(max_examples=examples(25), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "remove", "rekey", "advance"]),
                          st.integers(0, 5), st.integers(0, 3000)), max_size=25))
def test_incremental_table_matches_a_fresh_build(steps: list[tuple[str, int, int]]) -> None:
    resolver = EidResolver()
    keys: dict[int, MemberKey] = {}
    now = 1_000_000
    for action, n, amount in steps:
        if action == "add":
            keys[n] = key(n, rotation_exponent=8 + n % 3)
            resolver.upsert(keys[n], now)
        elif action == "remove":
            keys.pop(n, None)
            resolver.remove(f"m{n}")
        elif action == "rekey":
            keys[n] = MemberKey(f"m{n}", bytes([amount % 256]) * 16)
            resolver.upsert(keys[n], now)
        else:
            now += amount
            resolver.advance(now)
    fresh = EidResolver()
    fresh.upsert_many(keys.values(), now)
    assert resolver._eids.unique == fresh._eids.unique
    assert resolver._tokens.unique == fresh._tokens.unique


def test_a_three_way_clash_unwinds_one_member_at_a_time() -> None:
    resolver = EidResolver()
    index = resolver._tokens
    for member in ("a", "b", "c"):
        index.add(b"tokn", member)
    index.add(b"tokn", "a")  # again: no change
    assert resolver.resolve_token(*ibeacon_token(b"tokn")) is None
    index.discard(b"tokn", "b")
    assert resolver.resolve_token(*ibeacon_token(b"tokn")) is None
    index.discard(b"tokn", "c")
    assert resolver.resolve_token(*ibeacon_token(b"tokn")) == "a"
    index.discard(b"tokn", "z")  # not an owner: no change
    index.discard(b"tokn", "a")
    assert len(index) == 0
