"""Coupon codes: random, secret, keyed by the mall, checksummed, short enough to type.

A code is 12 Crockford base32 characters and one check character, shown in groups of four
(`7KQ2-M9XD-4HT0-V`) and put in a QR as the bare 13 characters:

- 8 characters (40 bits) are random: nothing public (a member, a visit, a time) derives
  a code, and guessing one among a mall's coupons takes ~10^12 tries on average;
- 4 characters (20 bits) are an HMAC-SHA256 tag of those random bits under the mall's
  coupon key and the mall id: a gateway tells a forged or another mall's code from a real
  one without a lookup, and the tag never checks without the key;
- the check character (Damm's algorithm over GF(32)) catches every single mistyped
  character and every swap of two different neighbours, so a typo is answered "mistyped", apart from
  a well-formed code nobody issued.

Crockford's alphabet has no I, L, O or U; when reading, I and L count as 1, O as 0, case
and hyphens or spaces do not matter.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from gateway.loyalty.errors import CouponCodeMistyped, CouponCodeUnknown

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {char: value for value, char in enumerate(ALPHABET)}
_VALUE.update({"I": 1, "L": 1, "O": 0})
_BASE = len(ALPHABET)
_RANDOM_CHARS = 8  # 40 random bits
_TAG_CHARS = 4  # 20 bits of the keyed tag
CODE_CHARS = _RANDOM_CHARS + _TAG_CHARS + 1
_GROUP = 4
_TAG_CONTEXT = b"mallgate/coupon-code/v1"
_GF32_MODULUS = 0b100101
_SEPARATORS = str.maketrans("", "", "- ")


def _encode(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, _BASE)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def _double(value: int) -> int:
    """`value` times x in GF(32) (modulo x^5 + x^2 + 1)."""
    value <<= 1
    return value ^ _GF32_MODULUS if value & _BASE else value


def _check_value(values: list[int]) -> int:
    """Damm's check over the quasigroup a * b = 2a + b of GF(32): the value that brings the
    running check back to 0. A changed character changes it by a non-zero multiple, and
    swapped neighbours a, b by 3(a + b), non-zero whenever a != b."""
    interim = 0
    for value in values:
        interim = _double(interim) ^ value
    return _double(interim)


def _tag(key: bytes, mall: str, random_part: str) -> str:
    message = b"\x1f".join((_TAG_CONTEXT, mall.encode(), random_part.encode("ascii")))
    digest = hmac.new(key, message, hashlib.sha256).digest()
    bits = int.from_bytes(digest[:3], "big") >> (24 - 5 * _TAG_CHARS)
    return _encode(bits, _TAG_CHARS)


def new_code(key: bytes, mall: str) -> str:
    """A fresh code for a coupon of `mall`, in its normal (bare, upper-case) form."""
    if not key:
        raise ValueError("a coupon code needs the mall's coupon key")
    random_part = _encode(secrets.randbits(5 * _RANDOM_CHARS), _RANDOM_CHARS)
    body = random_part + _tag(key, mall, random_part)
    return body + ALPHABET[_check_value([_VALUE[c] for c in body])]


def normalise_code(text: str) -> str:
    """The code as typed or scanned, in its normal form; `CouponCodeMistyped` when it is
    not 13 characters of the alphabet or its check character does not match."""
    code = text.translate(_SEPARATORS).upper()
    if len(code) != CODE_CHARS or any(char not in _VALUE for char in code):
        raise CouponCodeMistyped(f"a coupon code is {CODE_CHARS} letters and digits")
    values = [_VALUE[char] for char in code]
    if _check_value(values[:-1]) != values[-1]:
        raise CouponCodeMistyped("the code's check character does not match: mistyped")
    return "".join(ALPHABET[value] for value in values)


def verify_code(key: bytes, mall: str, text: str) -> str:
    """The normal form of a code this mall's key issued. `CouponCodeMistyped` for a typo,
    `CouponCodeUnknown` for a well-formed code whose tag this key did not make (forged,
    or another mall's)."""
    code = normalise_code(text)
    random_part, tag = code[:_RANDOM_CHARS], code[_RANDOM_CHARS:-1]
    if not hmac.compare_digest(tag, _tag(key, mall, random_part)):
        raise CouponCodeUnknown("no coupon of this mall has this code")
    return code


def display_code(code: str) -> str:
    """A normal code in groups of four, for a screen or a receipt."""
    return "-".join(code[i:i + _GROUP] for i in range(0, len(code), _GROUP))
