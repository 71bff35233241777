"""Coupon codes: random, keyed by the mall, a typo told apart from an unknown code."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.loyalty import (
    CouponCodeMistyped,
    CouponCodeUnknown,
    display_code,
    new_code,
    normalise_code,
    verify_code,
)
from gateway.loyalty.coupon_codes import ALPHABET, CODE_CHARS
from tests.scale import examples

KEY = b"mall-a coupon key"


def test_a_code_is_short_random_and_verifies_only_with_its_mall_and_key() -> None:
    codes = {new_code(KEY, "mall-a") for _ in range(200)}
    assert len(codes) == 200
    code = codes.pop()
    assert len(code) == CODE_CHARS and set(code) <= set(ALPHABET)
    assert verify_code(KEY, "mall-a", code) == code
    with pytest.raises(CouponCodeUnknown):
        verify_code(b"another key", "mall-a", code)
    with pytest.raises(CouponCodeUnknown):
        verify_code(KEY, "mall-b", code)


def test_a_code_reads_however_it_is_typed() -> None:
    code = new_code(KEY, "mall-a")
    typed = display_code(code).lower().replace("0", "o").replace("1", "l")
    assert display_code(code).count("-") == 3
    assert verify_code(KEY, "mall-a", typed) == code


@settings(max_examples=examples(200), deadline=None)
@given(st.data())
def test_every_single_typo_and_neighbour_swap_is_caught_as_mistyped(data: st.DataObject) -> None:
    code = new_code(KEY, "mall-a")
    at = data.draw(st.integers(0, CODE_CHARS - 1))
    other = data.draw(st.sampled_from([c for c in ALPHABET if c != code[at]]))
    with pytest.raises(CouponCodeMistyped):
        normalise_code(code[:at] + other + code[at + 1:])
    at = data.draw(st.integers(0, CODE_CHARS - 2))
    if code[at] != code[at + 1]:
        swapped = code[:at] + code[at + 1] + code[at] + code[at + 2:]
        with pytest.raises(CouponCodeMistyped):
            normalise_code(swapped)


@settings(max_examples=examples(200), deadline=None)
@given(st.text(max_size=20))
def test_any_text_is_a_code_or_a_typed_refusal(text: str) -> None:
    with contextlib.suppress(CouponCodeMistyped, CouponCodeUnknown):
        verify_code(KEY, "mall-a", text)


def test_well_formed_codes_without_the_key_are_unknown_not_mistyped() -> None:
    forged = new_code(b"someone else's key", "mall-a")
    assert normalise_code(forged) == forged
    with pytest.raises(CouponCodeUnknown):
        verify_code(KEY, "mall-a", forged)
