"""Keeping a rejected input: redacted, bounded, and the same for every producer."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.deadletters import (
    MAX_CONTEXT_CHARS,
    MAX_ERROR_CHARS,
    MAX_RAW_BYTES,
    keep,
    keep_with,
    redact,
    reword,
)
from gateway.store import Writer, migrate, open_memory

AT = "2026-11-22T08:00:00.000000Z"


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    db = open_memory()
    migrate(db)
    yield db
    db.close()


def row(conn: sqlite3.Connection, letter_id: int) -> tuple[str, bytes, str, str, dict[str, object]]:
    source, raw, code, error, context = conn.execute(
        "SELECT source, raw, error_code, error, context FROM dead_letters WHERE id = ?",
        (letter_id,)).fetchone()
    return source, raw, code, error, json.loads(context)


@pytest.mark.parametrize(("text", "kept"), [
    ("call 13800138000 now", "call 138****8000 now"),
    ("+8613912345678", "+86139****5678"),
    ("0086 139 1234 5678", "0086 139 **** 5678"),
    ("138-0013-8000", "138-****-8000"),
    ('{"by":"phone","value":19987654321}', '{"by":"phone","value":199****4321}'),
])
def test_mainland_mobile_numbers_are_masked(text: str, kept: str) -> None:
    assert redact(text) == kept
    assert redact(text.encode()) == kept.encode()


@pytest.mark.parametrize("text", [
    "12800138000",  # 12x is no mobile prefix
    "1380013800012345678901",  # 22 digits: neither a phone nor a card
    "1380013800",  # 10 digits
    "receipt 20261122-0001 total 138.00",
])
def test_other_digit_runs_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_a_number_in_a_gb18030_receipt_is_masked_even_after_a_four_byte_character() -> None:
    receipt = "会员手机 13800138000\n㐀13912345678\n".encode("gb18030")
    assert "㐀".encode("gb18030")[-1:].isdigit()  # the trail byte of a 4-byte character
    assert redact(receipt).decode("gb18030") == "会员手机 138****8000\n㐀139****5678\n"


@given(st.binary(max_size=200))
def test_redaction_keeps_the_length_and_leaves_no_mobile_number(data: bytes) -> None:
    kept = redact(data)
    assert len(kept) == len(data)
    assert redact(kept) == kept


def test_keep_stores_the_input_redacted_with_its_reason_and_context(
        conn: sqlite3.Connection) -> None:
    letter = keep(conn, source="kiosk", raw=b'{"phone": "13800138000"}', code="invalid_payload",
                  error="bad phone 13800138000", context={"topic": "t/13800138000", "seq": 7,
                                                          "member": 13800138000}, at=AT)
    source, raw, code, error, context = row(conn, letter)
    assert (source, code) == ("kiosk", "invalid_payload")
    assert raw == b'{"phone": "*******8000"}'  # a personal field: all but its last four
    assert error == "bad phone *******8000"
    assert context == {"topic": "t/138****8000", "seq": 7, "member": "138****8000"}
    assert b"13800138000" not in b"".join(
        str(v).encode() for v in conn.execute("SELECT * FROM dead_letters").fetchone())


def test_what_is_kept_is_bounded_and_a_cut_raw_input_says_its_size(
        conn: sqlite3.Connection) -> None:
    flood = b"x" * (MAX_RAW_BYTES - 5) + b"13800138000" + b"y" * 100_000
    letter = keep(conn, source="kiosk", raw=flood, code="too_large", error="e" * 50_000,
                  context={"topic": "t" * 10_000}, at=AT)
    _, raw, _, error, context = row(conn, letter)
    assert len(raw) == MAX_RAW_BYTES
    assert raw.endswith(b"x138**")  # the number the cut crosses is masked, not halved
    assert len(error) == MAX_ERROR_CHARS
    assert len(str(context["topic"])) == MAX_CONTEXT_CHARS
    assert context["raw_size"] == len(flood)
    small = keep(conn, source="kiosk", raw="short", code="c", error="e", at=AT)
    assert "raw_size" not in row(conn, small)[4]
    with pytest.raises(ValueError, match="at most"):
        keep(conn, source="kiosk", raw=b"", code="c", error="e",
             context={f"k{n}": n for n in range(100)}, at=AT)


def test_reword_keeps_a_new_reason_under_the_same_rules(conn: sqlite3.Connection) -> None:
    letter = keep(conn, source="pos", raw=b"r", code="missing_field", error="total", at=AT)
    reword(conn, letter, code="bad_amount", error="13800138000 is no amount" + "!" * 5000)
    _, _, code, error, _ = row(conn, letter)
    assert code == "bad_amount"
    assert error.startswith("138****8000 is no amount") and len(error) == MAX_ERROR_CHARS


def test_a_kiosk_payload_is_kept_with_its_card_and_phone_masked_also_in_the_error(
        conn: sqlite3.Connection) -> None:
    payload = json.dumps({"v": 1, "id": "01J0000000000000000000000A", "data": {
        "by": "card", "value": "DEMO 0001"}}).encode()
    letter = keep(conn, source="kiosk", raw=payload, code="invalid_payload",
                  error="data/value: 'DEMO 0001' does not match", at=AT)
    _, raw, _, error, _ = row(conn, letter)
    assert json.loads(raw)["data"] == {"by": "card", "value": "*****0001"}
    assert b"DEMO" not in raw and "DEMO" not in error
    spaced = keep(conn, source="kiosk", raw=b'{"data": {"by": "phone", "value": "139 1234 5678"}}',
                  code="invalid_payload", error="139 1234 5678 is not allowed", at=AT)
    _, raw, _, error, _ = row(conn, spaced)
    assert b"1234" not in raw and "1234" not in error
    card = keep(conn, source="pos", raw=b"CARD 6222021234567890\n", code="unreadable",
                error="e", at=AT)
    assert row(conn, card)[1] == b"CARD ************7890\n"


async def test_keep_with_commits_through_the_writer(tmp_path: Path) -> None:
    async with Writer(tmp_path / "gw.db") as writer:
        letter = await keep_with(writer, source="sync.push", raw="{}", code="rejected",
                                 error="no", context={"event_id": "e1"}, at=AT)
    db = sqlite3.connect(tmp_path / "gw.db")
    try:
        assert row(db, letter)[0] == "sync.push"
    finally:
        db.close()
