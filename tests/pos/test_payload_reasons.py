"""A receipt payload that cannot be read is dead-lettered with a sentence naming the field."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devices.pos.errors import ReceiptParseError
from devices.pos.templates import receipt_from_payload

TZ = ZoneInfo("Asia/Shanghai")
GOOD: dict[str, Any] = {"receipt_no": "A-1", "occurred_at": "2026-11-22T14:05:09+08:00",
                        "total_fen": 6450}


def reason_for(payload: dict[str, Any]) -> str:
    with pytest.raises(ReceiptParseError) as caught:
        receipt_from_payload(payload, TZ)
    assert caught.value.code == "bad_payload"
    return caught.value.reason


@pytest.mark.parametrize(("change", "reason"), [
    ({"total_fen": None}, "the receipt has no total_fen field"),
    ({"receipt_no": None}, "the receipt has no receipt_no field"),
    ({"total_fen": -1}, "the receipt's total_fen must be a non-negative integer, not -1"),
    ({"total_fen": "64.50"}, "the receipt's total_fen must be a non-negative integer, "
                             'not "64.50"'),
    ({"occurred_at": "yesterday"},
     'the receipt\'s occurred_at is not an ISO 8601 date-time: "yesterday"'),
    ({"receipt_no": 7}, "the receipt's receipt_no must be a string of 1..64 characters, not 7"),
    ({"kind": "gift"}, "the receipt's kind must be one of sale, refund, copy, non_sale, "
                       'not "gift"'),
    ({"member_code": 123}, "the receipt's member_code must be a string, not 123"),
    ({"lines": [{"name": "latte"}]}, "line 1 of the receipt has no amount_fen field"),
    ({"lines": {"name": "latte"}}, 'the receipt\'s lines must be a list, not {"name": "latte"}'),
])
def test_each_unreadable_field_is_named_in_a_sentence(change: dict[str, Any],
                                                      reason: str) -> None:
    payload = {**GOOD, **change}
    payload = {k: v for k, v in payload.items() if v is not None}
    assert reason_for(payload) == reason


def test_a_readable_payload_still_reads() -> None:
    assert receipt_from_payload(GOOD, TZ).total_fen == 6450


def test_no_reason_is_a_bare_python_exception() -> None:
    assert "'total_fen'" not in reason_for({"receipt_no": "A", "occurred_at": "2026-11-22"})
