"""Personal data out of what the core keeps and logs: phones, cards, personal JSON fields."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.redaction import mask_value, personal_values, redact, redact_payload


@pytest.mark.parametrize(("text", "kept"), [
    ("card 6222021234567890 paid", "card ************7890 paid"),
    ("6222 0212 3456 7890", "**** **** **** 7890"),
    ("member 123456789012", "member ********9012"),  # 12 digits: a member card
    ("6222021234567890123", "***************0123"),  # 19 digits
])
def test_card_shaped_digit_runs_keep_only_their_last_four_digits(text: str, kept: str) -> None:
    assert redact(text) == kept
    assert redact(text.encode()) == kept.encode()


@pytest.mark.parametrize("text", [
    "12345678901234567890",  # 20 digits: no card
    "receipt 20261122-0001 total 138.00",
    "at 2026-11-22 10:00:00",
])
def test_other_digit_runs_are_not_cards(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(("text", "kept"), [
    ('{"by": "card", "value": "DEMO0001"}', '{"by": "card", "value": "****0001"}'),
    ("data/value: 'DEMO 0001' does not match", "data/value: '*****0001' does not match"),
    ('{"card":"VIP-77"}', '{"card":"***-77"}'),
    ('{"name": "张三丰"}', '{"name": "张**"}'),
])
def test_values_of_personal_keys_are_masked_in_any_text(text: str, kept: str) -> None:
    assert redact(text) == kept


def test_mask_value_shows_at_most_four_characters_and_at_most_half() -> None:
    assert mask_value("DEMO0001") == "****0001"
    assert mask_value("+8613800000003") == "**********0003"
    assert mask_value("C9") == "*9"
    assert mask_value("") == ""


def test_a_kiosk_payload_has_its_personal_fields_masked_and_the_rest_kept() -> None:
    payload = json.dumps({"v": 1, "id": "01J0000000000000000000000A", "data": {
        "by": "card", "value": "DEMO0001", "note": "call 13800138000"}}).encode()
    kept = json.loads(redact_payload(payload))
    assert kept["data"] == {"by": "card", "value": "****0001", "note": "call 138****8000"}
    assert kept["id"] == "01J0000000000000000000000A"
    qr = json.dumps({"data": {"by": "qr", "value": "TOKEN-abcdef"}}).encode()
    assert redact_payload(qr) == qr  # a QR token is short-lived and names no person


def test_a_payload_that_is_not_json_is_redacted_as_text() -> None:
    assert redact_payload(b'{"by":"phone","value":"138 0013 8000"') == \
        b'{"by":"phone","value":"*********8000"'
    assert redact_payload(b"\xff\xfe card 6222021234567890") == \
        b"\xff\xfe card ************7890"


def test_personal_values_names_what_a_payload_carries() -> None:
    payload = b'{"data": {"by": "phone", "value": "138 0013 8000", "phone": "x1", "name": "Li"}}'
    assert sorted(personal_values(payload)) == ["138 0013 8000", "Li", "x1"]
    assert personal_values(b"{not json") == []


@given(st.binary(max_size=300))
def test_text_redaction_keeps_the_length_and_is_stable(data: bytes) -> None:
    kept = redact(data)
    assert len(kept) == len(data)
    assert redact(kept) == kept


@given(st.text(max_size=200))
def test_redacting_text_is_stable(text: str) -> None:
    kept = redact(text)
    assert redact(kept) == kept
