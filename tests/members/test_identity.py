"""Member identities without I/O: signed QR tokens, phone hashes, where a lookup goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.members import (
    IdentityError,
    IdentityKeys,
    Lookup,
    lookup_for,
    make_qr_token,
    normalise_phone,
    phone_hash,
    verify_qr_token,
)

KEY = b"qr-key"
NOW = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
KEYS = IdentityKeys(qr_key=KEY, phone_key=b"phone-key", skew_s=30)


@given(st.from_regex(r"[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,63}", fullmatch=True))
def test_a_token_central_signs_names_its_member(member_id: str) -> None:
    token = make_qr_token(KEY, member_id, NOW + timedelta(minutes=5))
    assert verify_qr_token(KEY, token, NOW, 30) == member_id


@pytest.mark.parametrize(("token", "code"), [
    (make_qr_token(KEY, "m1", NOW - timedelta(seconds=31)), "token_expired"),
    (make_qr_token(b"other", "m1", NOW + timedelta(minutes=5)), "invalid_token"),
    ("v1.m1.123", "invalid_token"),
    ("DEMO0001", "invalid_token"),
])
def test_a_bad_or_stale_token_is_refused_with_its_code(token: str, code: str) -> None:
    with pytest.raises(IdentityError) as refused:
        verify_qr_token(KEY, token, NOW, 30)
    assert refused.value.code == code


def test_a_token_within_the_clock_skew_still_passes() -> None:
    token = make_qr_token(KEY, "m1", NOW - timedelta(seconds=29))
    assert verify_qr_token(KEY, token, NOW, 30) == "m1"


def test_without_a_qr_key_no_token_passes() -> None:
    with pytest.raises(IdentityError, match="not configured"):
        verify_qr_token(None, make_qr_token(KEY, "m1", NOW), NOW, 30)


@pytest.mark.parametrize("typed", ["13912345678", "+86 139 1234 5678", "0086-139-1234-5678",
                                   "(139) 1234-5678"])
def test_a_mainland_number_hashes_the_same_however_typed(typed: str) -> None:
    assert normalise_phone(typed) == "13912345678"
    assert phone_hash(b"k", typed) == phone_hash(b"k", "13912345678")
    assert phone_hash(b"k", typed) != phone_hash(b"other", typed)


@pytest.mark.parametrize("typed", ["1234", "139-abc-5678", "1" * 21])
def test_a_malformed_number_is_an_invalid_payload(typed: str) -> None:
    with pytest.raises(IdentityError) as refused:
        lookup_for("phone", typed, KEYS, NOW)
    assert refused.value.code == "invalid_payload"


def test_lookup_for_each_way_a_member_names_themself() -> None:
    token = make_qr_token(KEY, "m1", NOW + timedelta(minutes=1))
    assert lookup_for("qr", token, KEYS, NOW) == Lookup("member", "m1")
    assert lookup_for("card", "C-1", KEYS, NOW) == Lookup("card", "C-1")
    assert lookup_for("phone", "13912345678", KEYS, NOW) == Lookup(
        "phone_hash", phone_hash(b"phone-key", "13912345678"))
    with pytest.raises(IdentityError, match="phone is not configured"):
        lookup_for("phone", "13912345678", IdentityKeys(KEY, None, 30), NOW)


def test_a_token_valid_for_longer_than_a_day_is_refused() -> None:
    # A token that works for 100 years is a leaked key or a broken issuer, not a QR code.
    token = make_qr_token(KEY, "m1", NOW + timedelta(days=365 * 100))
    with pytest.raises(IdentityError) as refused:
        verify_qr_token(KEY, token, NOW, 30)
    assert refused.value.code == "invalid_token" and "24 h" in refused.value.msg
    assert verify_qr_token(KEY, make_qr_token(KEY, "m1", NOW + timedelta(hours=23)),
                           NOW, 30) == "m1"
