"""Phone numbers as both the edge and central see them: one normal form, one keyed hash,
one masked form for display."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gateway.loyalty.errors import InvalidPhone
from gateway.loyalty.phones import mask_phone, normalise_phone, phone_hash


@pytest.mark.parametrize("typed", ["13800138000", "+86 138 0013 8000", "0086-138-0013-8000",
                                   "(138) 0013-8000"])
def test_every_way_of_typing_a_mainland_number_is_the_same_number(typed: str) -> None:
    assert normalise_phone(typed) == "13800138000"
    assert mask_phone(typed) == "138****8000"
    expected = hmac.new(b"k", b"13800138000", hashlib.sha256).hexdigest()
    assert phone_hash(b"k", typed) == expected


@pytest.mark.parametrize(("typed", "masked"), [
    ("85291234567", "852****4567"), ("447700900123", "447*****0123"), ("12345", "***45"),
    ("0755123456", "********56")])
def test_a_masked_number_shows_at_most_its_first_three_and_last_four_digits(
    typed: str, masked: str,
) -> None:
    assert mask_phone(typed) == masked


@pytest.mark.parametrize("typed", ["1234", "139-abc-5678", "1" * 21, ""])
def test_a_malformed_number_is_refused(typed: str) -> None:
    with pytest.raises(InvalidPhone):
        normalise_phone(typed)
    with pytest.raises(ValueError):  # also a ValueError, for callers that catch those
        mask_phone(typed)
