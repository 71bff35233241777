"""Why a `framed` / `jsonl` receipt payload cannot be read, as a sentence naming the field.

The reason ends up in the dead letter an installer or a POS vendor reads, so it must say
which field is wrong and how (`the receipt has no total_fen field`), never a Python
exception (`'total_fen'`, a bare KeyError). `problem` looks at the payload before it is
read; `reason` words an error the reading raised anyway.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from gateway.receipts import ReceiptKind

REQUIRED = ("receipt_no", "occurred_at", "total_fen")
_COUNTS = ("total_fen", "points_used", "points_paid_fen")
_TEXTS = ("member_code", "original_no", "payment", "hold_id")
_KINDS = ", ".join(k.value for k in ReceiptKind)
_SHOW_MAX = 40


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 3] + "..."


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12


def problem(payload: dict[str, Any]) -> str | None:
    """The first thing wrong with a receipt payload, as a sentence; None if it reads."""
    return (_required_problem(payload) or _optional_problem(payload)
            or _lines_problem(payload.get("lines", [])))


def _required_problem(payload: dict[str, Any]) -> str | None:
    for name in REQUIRED:
        if name not in payload:
            return f"the receipt has no {name} field"
    receipt_no = payload["receipt_no"]
    if not isinstance(receipt_no, str) or not 0 < len(receipt_no) <= 64:
        return (f"the receipt's receipt_no must be a string of 1..64 characters, "
                f"not {_shown(receipt_no)}")
    occurred_at = payload["occurred_at"]
    try:
        datetime.fromisoformat(occurred_at)
    except (TypeError, ValueError):
        return f"the receipt's occurred_at is not an ISO 8601 date-time: {_shown(occurred_at)}"
    return None


def _optional_problem(payload: dict[str, Any]) -> str | None:
    kind = payload.get("kind", "sale")
    if not isinstance(kind, str) or kind not in {k.value for k in ReceiptKind}:
        return f"the receipt's kind must be one of {_KINDS}, not {_shown(kind)}"
    for name in _COUNTS:
        if name in payload and not _count(payload[name]):
            return (f"the receipt's {name} must be a non-negative integer, "
                    f"not {_shown(payload[name])}")
    for name in _TEXTS:
        value = payload.get(name)
        if value is not None and not isinstance(value, str):
            return f"the receipt's {name} must be a string, not {_shown(value)}"
    coupons = payload.get("coupon_codes", [])
    if not isinstance(coupons, list) or not all(isinstance(c, str) for c in coupons):
        return f"the receipt's coupon_codes must be a list of codes, not {_shown(coupons)}"
    return None


def _lines_problem(lines: object) -> str | None:
    if not isinstance(lines, list):
        return f"the receipt's lines must be a list, not {_shown(lines)}"
    for number, line in enumerate(lines, start=1):
        if not isinstance(line, dict):
            return f"line {number} of the receipt is not an object: {_shown(line)}"
        for name in ("name", "amount_fen"):
            if name not in line:
                return f"line {number} of the receipt has no {name} field"
        amount = line["amount_fen"]
        if not isinstance(amount, int) or isinstance(amount, bool):
            return (f"line {number} of the receipt: amount_fen must be an integer, "
                    f"not {_shown(amount)}")
    return None


def reason(exc: BaseException) -> str:
    """An error reading a payload raised, worded for the dead letter."""
    if isinstance(exc, KeyError) and exc.args:
        return f"the receipt has no {exc.args[0]} field"
    text = str(exc) or type(exc).__name__
    return f"the receipt cannot be read: {text}"
