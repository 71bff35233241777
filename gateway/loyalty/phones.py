"""Members' phone numbers, the same at the edge and centrally: one normal form, the keyed
hash a member is looked up by, and the masked form shown in their place.

A phone number names a person, so neither side keeps it in clear: both hash it with the
mall's phone hash key (HMAC-SHA256 over the normal form), which central puts in the
member's `phone_hash` identifier and a kiosk computes from the number typed in. Without
the key the hash cannot be reversed by trying every number (a mainland mobile number has
only about 10^9 candidates, which a plain hash would give up in seconds).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from gateway.loyalty.errors import InvalidPhone

_SEPARATORS = re.compile(r"[\s()+-]")
# Mainland numbers are 11 digits, typed with or without the country code.
_COUNTRY_PREFIXES = ("0086", "86")
_MAINLAND_DIGITS = 11
# A masked number shows its operator prefix and its last four digits ("138****8000"),
# what a member recognises as theirs and a service desk reads back; a short number shows
# only its last two.
_SHOWN_HEAD, _SHOWN_TAIL, _SHORT_TAIL = 3, 4, 2


def normalise_phone(number: str) -> str:
    """Digits only, without the +86 / 0086 country prefix of mainland numbers;
    `InvalidPhone` unless 5 to 20 digits remain."""
    digits = _SEPARATORS.sub("", number)
    if not digits.isascii() or not digits.isdigit() or not 5 <= len(digits) <= 20:
        raise InvalidPhone("a phone number is 5 to 20 digits")
    for prefix in _COUNTRY_PREFIXES:
        if digits.startswith(prefix) and len(digits) == len(prefix) + _MAINLAND_DIGITS:
            return digits[len(prefix):]
    return digits


def phone_hash(key: bytes, number: str) -> str:
    """The keyed hash of the number: a member's `phone_hash` identifier (hex)."""
    return hmac.new(key, normalise_phone(number).encode("ascii"), hashlib.sha256).hexdigest()


def mask_phone(number: str) -> str:
    """The number for display: `138****8000`."""
    digits = normalise_phone(number)
    if len(digits) >= _MAINLAND_DIGITS:
        hidden = len(digits) - _SHOWN_HEAD - _SHOWN_TAIL
        return digits[:_SHOWN_HEAD] + "*" * hidden + digits[-_SHOWN_TAIL:]
    return "*" * (len(digits) - _SHORT_TAIL) + digits[-_SHORT_TAIL:]
