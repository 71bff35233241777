"""Personal data out of what a dead letter keeps: mainland mobile numbers are masked.

A mobile number is 11 digits, `1[3-9]` then nine more, optionally written `138 0013 8000`
or `138-0013-8000` and optionally after a `+86`, `0086` or `86` prefix, and not part of a
longer run of digits. It is kept in the masked form members see elsewhere (`138****8000`):
enough to tell two numbers apart while diagnosing, never the number. A run of exactly 11
such digits inside an id or a hash is masked as well; a dead letter loses a little detail
rather than keep a number.

Raw bytes are masked in place (same length), so a kept receipt or payload keeps its shape
and its encoding. In GB18030 the second and fourth bytes of a four-byte character may be
ASCII digits: a number right after such a character is still found.
"""

from __future__ import annotations

import re
from typing import overload

_NUMBER = rb"1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}"
_PREFIX = rb"(?:(?:\+|00)?86[ -]?)?"
# Not preceded by a digit, unless that digit follows a byte >= 0x81 (the trail of a
# GB18030 four-byte character, not part of the number); not followed by a digit.
_BYTES = re.compile(rb"(?:(?<![0-9])|(?<=[\x81-\xfe][0-9]))" + _PREFIX
                    + rb"(?P<number>" + _NUMBER + rb")(?![0-9])")
_TEXT = re.compile(r"(?<![0-9])" + _PREFIX.decode() + "(?P<number>" + _NUMBER.decode()
                   + ")(?![0-9])")
_SHOWN_FIRST = 3  # digits shown at the start and the end of a masked number
_SHOWN_LAST = 4


def _masked(number: str) -> str:
    hidden = range(_SHOWN_FIRST, sum(c.isdigit() for c in number) - _SHOWN_LAST)
    out = []
    digits = 0
    for char in number:
        if char.isdigit():
            out.append("*" if digits in hidden else char)
            digits += 1
        else:
            out.append(char)
    return "".join(out)


def _mask_text(match: re.Match[str]) -> str:
    start, end = match.span("number")
    whole = match.group(0)
    offset = match.start()
    return whole[:start - offset] + _masked(match["number"]) + whole[end - offset:]


def _mask_bytes(match: re.Match[bytes]) -> bytes:
    start, end = match.span("number")
    whole = match.group(0)
    offset = match.start()
    masked = _masked(match["number"].decode("ascii")).encode("ascii")
    return whole[:start - offset] + masked + whole[end - offset:]


@overload
def redact(data: str) -> str: ...
@overload
def redact(data: bytes) -> bytes: ...
def redact(data: str | bytes) -> str | bytes:
    """`data` with every mainland mobile number masked, its length unchanged."""
    if isinstance(data, bytes):
        return _BYTES.sub(_mask_bytes, data)
    return _TEXT.sub(_mask_text, data)
