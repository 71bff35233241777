"""Personal data out of what the core keeps or logs: one set of rules for dead letters and logs.

Two levels:

- `redact` (text or bytes, any input): mainland mobile numbers keep their first three and
  last four digits (`138****8000`, as members see them elsewhere); card-shaped digit runs
  (12 to 19 digits, bank and member cards, also in groups of four) keep their last four;
  the quoted values of personal keys (`card`, `phone`, `name`, and `value` where the text
  identifies by card or phone, or names it by a path such as `data/value`) keep at most
  their last four characters (a name only its first). Bytes keep their length, so a kept
  receipt keeps its shape and encoding.
- `redact_payload` (a kiosk message): JSON-aware. The values of the personal fields
  (`card`, `phone`, `name`, and `value` beside `by` card or phone: the member.identify
  request) are masked wherever they are in the document, and secrets whole (a `session`,
  and the one-time `code` of a request that names a phone); then the text rules apply to
  the rest. Input that is not JSON gets the text rules.

A mobile number is 11 digits, `1[3-9]` then nine more, optionally written `138 0013 8000` or
`138-0013-8000` and optionally after a `+86`, `0086` or `86` prefix, and not part of a
longer run of digits. A run of 11 or of 12 to 19 such digits inside an id or a hash is
masked as well: what is kept loses a little detail rather than keep a number.

In GB18030 the second and fourth bytes of a four-byte character may be ASCII digits: a
number right after such a character is still found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, overload

_NUMBER = r"1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}"
_PREFIX = r"(?:(?:\+|00)?86[ -]?)?"
_CARD = r"[0-9]{12,19}|[0-9]{4}(?:[ -][0-9]{4}){2,3}(?:[ -][0-9]{1,3})?"
# Not preceded by a digit, unless that digit follows a byte >= 0x81 (the trail of a
# GB18030 four-byte character, not part of the number); not followed by a digit.
_BYTES_START = rb"(?:(?<![0-9])|(?<=[\x81-\xfe][0-9]))"
_PHONE_BYTES = re.compile(_BYTES_START + _PREFIX.encode() + rb"(?P<number>"
                          + _NUMBER.encode() + rb")(?![0-9])")
_PHONE_TEXT = re.compile(r"(?<![0-9])" + _PREFIX + "(?P<number>" + _NUMBER + ")(?![0-9])")
_CARD_BYTES = re.compile(_BYTES_START + rb"(?P<number>" + _CARD.encode() + rb")(?![0-9])")
_CARD_TEXT = re.compile(r"(?<![0-9])(?P<number>" + _CARD + r")(?![0-9])")
# `card: 'x'`, `"phone": "x"`, `name='x'`, `data/value: 'x'`: a quoted value of a key.
_KEYED = (r"(?<![A-Za-z0-9_])(?P<key>card|phone|name|value)(?P<sep>[\"']?\s*[:=]\s*)"
          r"(?P<q>[\"'])(?P<number>[^\"'\\\n]*)(?P=q)")
_KEYED_TEXT = re.compile(_KEYED)
_KEYED_BYTES = re.compile(_KEYED.encode())
# A text that says it identifies by card or phone: its `value` keys are personal.
_BY_TEXT = re.compile(r"[\"']?by[\"']?\s*[:=]\s*[\"'](?:card|phone)[\"']")
_BY_BYTES = re.compile(_BY_TEXT.pattern.encode())

PERSONAL_KEYS = frozenset({"card", "phone", "name"})
IDENTIFIED_BY = frozenset({"card", "phone"})  # member.identify `by` whose `value` is personal
# Secrets a kiosk message may carry, masked whole: the session `member.identify` opens (a
# bearer token), and the one-time `code` texted to a phone, in a request that names the
# phone (`member.enroll`, or `member.identify` by phone); elsewhere `code` is an error's.
SECRET_KEYS = frozenset({"session"})
_SHOWN_FIRST = 3  # digits shown at the start and the end of a masked mobile number
_SHOWN_LAST = 4


def mask_value(value: str) -> str:
    """An identifier with all but its last characters masked: at most four are shown, and
    at most half of them (a short code is not left nearly whole)."""
    shown = min(_SHOWN_LAST, len(value) // 2)
    return "*" * (len(value) - shown) + (value[-shown:] if shown else "")


def mask_name(name: str) -> str:
    """A name as the edge shows it: its first character, the rest masked (`张**`)."""
    return name[:1] + "*" * (len(name) - 1)


def _masked_digits(number: str, first: int) -> str:
    """`number` with its digits masked but the first `first` and the last four."""
    hidden = range(first, sum(c.isdigit() for c in number) - _SHOWN_LAST)
    out = []
    digits = 0
    for char in number:
        if char.isdigit():
            out.append("*" if digits in hidden else char)
            digits += 1
        else:
            out.append(char)
    return "".join(out)


def _masked_key(key: str, value: str) -> str:
    if key in SECRET_KEYS or key == "code":
        return "*" * len(value)
    return mask_name(value) if key == "name" else mask_value(value)


def _kept_back(node: dict[str, Any], key: str, value: object) -> bool:
    """Whether the field `key` of a kiosk document is personal data or a secret."""
    if not isinstance(value, str):
        return False
    if key in PERSONAL_KEYS or key in SECRET_KEYS:
        return True
    if key == "value":
        return node.get("by") in IDENTIFIED_BY
    return key == "code" and ("phone" in node or "by" in node)


def _substitute_text(mask: Callable[[re.Match[str]], str],
                     ) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        start, end = match.span("number")
        whole, offset = match.group(0), match.start()
        return whole[:start - offset] + mask(match) + whole[end - offset:]
    return replace


def _substitute_bytes(mask: Callable[[re.Match[bytes]], bytes],
                      ) -> Callable[[re.Match[bytes]], bytes]:
    def replace(match: re.Match[bytes]) -> bytes:
        start, end = match.span("number")
        whole, offset = match.group(0), match.start()
        return whole[:start - offset] + mask(match) + whole[end - offset:]
    return replace


def _keyed_bytes(match: re.Match[bytes]) -> bytes:
    value = match["number"]
    if not value.isascii():  # the same length in bytes: a non-ASCII value is all masked
        return b"*" * len(value)
    return _masked_key(match["key"].decode(), value.decode()).encode()


_phone_text = _substitute_text(lambda m: _masked_digits(m["number"], _SHOWN_FIRST))
_card_text = _substitute_text(lambda m: _masked_digits(m["number"], 0))
_keyed_text = _substitute_text(lambda m: _masked_key(m["key"], m["number"]))
_phone_bytes = _substitute_bytes(
    lambda m: _masked_digits(m["number"].decode(), _SHOWN_FIRST).encode())
_card_bytes = _substitute_bytes(lambda m: _masked_digits(m["number"].decode(), 0).encode())
_keyed_bytes_sub = _substitute_bytes(_keyed_bytes)


def _personal_key_text(match: re.Match[str], by_personal: bool) -> str:
    if match["key"] == "value" and not (by_personal or match.string[:match.start()]
                                        .endswith("/")):
        return match.group(0)
    return _keyed_text(match)


def _personal_key_bytes(match: re.Match[bytes], by_personal: bool) -> bytes:
    if match["key"] == b"value" and not (by_personal or match.string[:match.start()]
                                         .endswith(b"/")):
        return match.group(0)
    return _keyed_bytes_sub(match)


@overload
def redact(data: str) -> str: ...
@overload
def redact(data: bytes) -> bytes: ...
def redact(data: str | bytes) -> str | bytes:
    """`data` with mobile numbers, card numbers and personal keyed values masked; bytes keep
    their length."""
    if isinstance(data, bytes):
        data = _CARD_BYTES.sub(_card_bytes, _PHONE_BYTES.sub(_phone_bytes, data))
        by_bytes = _BY_BYTES.search(data) is not None
        return _KEYED_BYTES.sub(lambda m: _personal_key_bytes(m, by_bytes), data)
    data = _CARD_TEXT.sub(_card_text, _PHONE_TEXT.sub(_phone_text, data))
    by_text = _BY_TEXT.search(data) is not None
    return _KEYED_TEXT.sub(lambda m: _personal_key_text(m, by_text), data)


def _personal_fields(node: Any, found: list[tuple[str, str]]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if _kept_back(node, key, value):
                found.append((key, value))
            else:
                _personal_fields(value, found)
    elif isinstance(node, list):
        for item in node:
            _personal_fields(item, found)


def _fields_of(data: str | bytes) -> list[tuple[str, str]] | None:
    """The personal fields of a JSON document, or None if `data` is not JSON."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    found: list[tuple[str, str]] = []
    _personal_fields(document, found)
    return found


def personal_values(data: str | bytes) -> list[str]:
    """The values of the personal fields of a JSON payload (none if it is not JSON): what
    else quotes the payload (an error about it) must not show either."""
    return [value for _, value in _fields_of(data) or []]


def _mask_document(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: (_masked_key(key, value) if _kept_back(node, key, value)
                      else _mask_document(value)) for key, value in node.items()}
    if isinstance(node, list):
        return [_mask_document(item) for item in node]
    return node


@overload
def redact_payload(data: str) -> str: ...
@overload
def redact_payload(data: bytes) -> bytes: ...
def redact_payload(data: str | bytes) -> str | bytes:
    """A kiosk (JSON) payload with its personal fields masked, then the text rules applied.

    The document keeps its bytes but for the masked values; only a value the payload
    escapes in an unusual way makes it re-encoded (compact JSON) instead."""
    fields = _fields_of(data)
    if not fields:
        return redact(data)
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:  # JSON in UTF-16 or -32: re-encoded
        text = json.dumps(_mask_document(json.loads(data)), ensure_ascii=False)
    for key, value in fields:
        masked = json.dumps(_masked_key(key, value), ensure_ascii=False)
        for written in {json.dumps(value), json.dumps(value, ensure_ascii=False)}:
            text = text.replace(written, masked)
    if any(_masked_key(key, value) != value for key, value in _fields_of(text) or []):
        text = json.dumps(_mask_document(json.loads(text)), ensure_ascii=False,
                          separators=(",", ":"))
    kept = redact(text)
    return kept.encode("utf-8") if isinstance(data, bytes) else kept


def mask_known(text: str, values: list[str]) -> str:
    """`text` with each of `values` (personal values of the input it talks about) masked."""
    for value in sorted(set(values), key=len, reverse=True):
        if value:
            text = text.replace(value, mask_value(value))
    return text
