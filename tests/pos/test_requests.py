"""The till's requests without I/O: reading authorize and void, and the documented bytes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from devices.pos.errors import FrameError
from devices.pos.framing import (
    ACK,
    NAK,
    FrameDecoder,
    LineDecoder,
    Message,
    frame_answer,
    line_refused,
    line_reply,
)
from devices.pos.requests import authorize_request, message_type, void_request
from gateway.holds import hold_id_for
from gateway.loyalty import display_code, normalise_code

DOCS = Path(__file__).resolve().parents[2] / "docs" / "pos.md"
TILL = {"store_id": "S01", "pos_id": "P1"}


def authorize(**change: Any) -> dict[str, Any]:
    return {"type": "authorize", "request_id": "r1", "member_code": "M1", "total_fen": 1000,
            "points": 300, "lines": [{"name": "a", "amount_fen": 600, "category": "food"}],
            "coupon_codes": ["C1"]} | change


def test_an_authorize_names_its_till_and_hold() -> None:
    request = authorize_request(authorize(), **TILL)
    assert request.hold_id == hold_id_for("S01", "P1", "r1")
    assert len(request.hold_id) == 24 and request.partial
    assert request.lines[0].category == "food" and request.coupon_codes == ("C1",)
    assert authorize_request(authorize(partial=False), **TILL).partial is False
    # Coupons alone, without points; a line may name its item and quantity.
    coupons_only = authorize_request(authorize(points=0, lines=[
        {"name": "latte", "amount_fen": 600, "sku": "LATTE", "quantity": 2}]), **TILL)
    assert coupons_only.points == 0 and coupons_only.lines[0].quantity == 2
    assert authorize_request({k: v for k, v in authorize().items() if k != "points"},
                             **TILL).points == 0


@pytest.mark.parametrize("change", [
    {"points": 0, "coupon_codes": []}, {"points": -1}, {"points": True}, {"total_fen": "10"},
    {"request_id": ""}, {"request_id": "x" * 65}, {"member_code": 5},
    {"lines": [{"name": "a", "amount_fen": 2000}]}, {"lines": "a"}, {"lines": [5]},
    {"lines": [{"name": 1, "amount_fen": 1}]}, {"coupon_codes": [""]},
    {"coupon_codes": "C1"}, {"partial": "no"},
    {"lines": [{"name": "a", "amount_fen": 1, "quantity": 0}]},
    {"lines": [{"name": "a", "amount_fen": 1, "sku": 5}]},
])
def test_a_malformed_authorize_is_a_bad_request(change: dict[str, Any]) -> None:
    with pytest.raises(FrameError) as caught:
        authorize_request(authorize(**change), **TILL)
    assert caught.value.code == "bad_request"


def test_message_types_and_void() -> None:
    assert message_type({}) == "sale"
    assert message_type({"type": "void"}) == "void"
    assert message_type({"type": "refund"}) is None
    assert void_request({"hold_id": "H1"}, **TILL).hold_id == "H1"
    with pytest.raises(FrameError):
        void_request({}, **TILL)


def test_answers_carry_their_reply_behind_the_ack_or_nak() -> None:
    answer = frame_answer(False, 10, {"error": "hold_required", "msg": "authorize first"})
    assert answer[:2] == bytes([NAK, 10])
    (event,) = FrameDecoder().receive(answer[2:], 0.0)
    assert isinstance(event, Message) and event.seq == 10
    assert event.payload == {"error": "hold_required", "msg": "authorize first"}
    assert frame_answer(True, 3) == bytes([ACK, 3])
    assert line_reply(7, {"status": "voided"}) == b'{"ack": 7, "reply": {"status": "voided"}}\n'
    assert line_refused(8, "hold_expired", "late") == (
        b'{"nak": 8, "error": "hold_expired", "msg": "late"}\n')


def test_the_documented_examples_are_valid_bytes() -> None:
    text = DOCS.read_text()
    lines = re.findall(r"^→ (\{.*\})$", text, re.MULTILINE)
    assert len(lines) == 4
    messages = []
    for line in lines:
        (event,) = LineDecoder().receive(line.encode() + b"\n", 0.0)
        assert isinstance(event, Message), event
        messages.append(event)
    # The coupon example: its code reads, and its framed bytes carry the jsonl request.
    coupon_authorize = messages[2]
    [code] = coupon_authorize.payload["coupon_codes"]
    assert display_code(normalise_code(code)) == code
    framed = text.split("The same `authorize` on the framed line, seq 11")[1].split("```")[1]
    (event,) = FrameDecoder().receive(bytes.fromhex(framed.replace("\n", " ")), 0.0)
    assert isinstance(event, Message) and event.seq == 11
    assert event.payload == {k: v for k, v in coupon_authorize.payload.items()
                             if k not in ("seq", "crc")}
    assert authorize_request(event.payload, **TILL).coupon_codes == (code,)
    hexed = text.split("A refused sale, seq 10")[1].split("```")[1]
    raw = bytes.fromhex(hexed.replace("\n", " "))
    assert raw == frame_answer(False, 10, {"error": "hold_required",
                                           "msg": "authorize first"})
