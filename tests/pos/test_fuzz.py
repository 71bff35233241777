"""Every codec, fed arbitrary bytes: no exception but its own, every byte accounted for."""

from __future__ import annotations

import contextlib
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.pos.errors import ReceiptParseError
from devices.pos.escpos import Tokenizer
from devices.pos.framing import FrameDecoder, LineDecoder, encode_frame, encode_line
from devices.pos.jobs import Splitter
from devices.pos.printouts import DEFAULT_TEMPLATE
from devices.pos.templates import Template, parse_receipt, receipt_from_payload
from tests.pos.fixtures import own, shared
from tests.scale import examples

TZ = ZoneInfo("Asia/Shanghai")
TEMPLATE = Template.compile("S01", **DEFAULT_TEMPLATE)
SEEDS = [own("gb18030-raw-qr-member.bin"), shared("qr-code.bin"), shared("barcode.bin")[:600],
         shared("character-encodings.bin")[:400]]
ESCPOS_ALPHABET = st.sampled_from([0x1B, 0x1D, 0x1C, 0x10, 0x0A, 0x00, 0x28, 0x6B, 0x56,
                                   0x74, 0x26, 0x2E, 0x81, 0x30, 0xFE, 0x41])
# Bytes that look like ESC/POS: real streams cut, spliced and mutated.
escpos_bytes = st.one_of(
    st.binary(max_size=400),
    st.lists(ESCPOS_ALPHABET, max_size=300).map(bytes),
    st.tuples(st.sampled_from(SEEDS), st.integers(0, 400), st.integers(0, 400),
              st.binary(max_size=8)).map(lambda t: t[0][t[1]:t[1] + t[2]] + t[3]),
)
chunks = st.lists(st.integers(1, 64), min_size=1, max_size=20)


@settings(max_examples=examples(300), deadline=None)
@given(escpos_bytes, chunks, st.sampled_from(["gb18030", "cp437", "big5"]), st.booleans())
def test_tokenizer_accounts_for_every_byte(data: bytes, sizes: list[int], enc: str,
                                           decode: bool) -> None:
    tok = Tokenizer(enc, decode=decode)
    tokens = []
    i = 0
    for size in sizes * (len(data) // max(1, sum(sizes)) + 1):
        if i >= len(data):
            break
        tokens += tok.feed(data[i:i + size])
        i += size
    tokens += tok.flush()
    assert b"".join(t.raw for t in tokens) == data


@settings(max_examples=examples(200), deadline=None)
@given(escpos_bytes, chunks)
def test_splitter_accounts_for_every_byte(data: bytes, sizes: list[int]) -> None:
    splitter = Splitter("gb18030", max_bytes=256)
    jobs = []
    now, i = 0.0, 0
    while i < len(data):
        size = sizes[int(now) % len(sizes)]
        jobs += splitter.feed(data[i:i + size], now)
        i, now = i + size, now + 1.0
    jobs += splitter.flush()
    assert b"".join(job.raw for job in jobs) == data
    for job in jobs:  # and reading a job's text never raises but the codec's own error
        with contextlib.suppress(ReceiptParseError):
            parse_receipt(TEMPLATE, job.text, [c.decode("latin-1") for c in job.codes], TZ)


payloads = st.dictionaries(st.sampled_from(["receipt_no", "occurred_at", "total_fen", "kind",
                                            "points_used", "points_paid_fen", "lines",
                                            "member_code"]),
                           st.one_of(st.none(), st.integers(-5, 10**13), st.text(max_size=20),
                                     st.lists(st.integers(), max_size=2),
                                     st.just("2026-11-22T10:00:00"), st.just("sale")))


@settings(max_examples=examples(300), deadline=None)
@given(payloads)
def test_payload_reader_raises_only_its_own_error(payload: dict[str, object]) -> None:
    with contextlib.suppress(ReceiptParseError):
        receipt_from_payload(payload, TZ)


def _frames_and_noise() -> st.SearchStrategy[bytes]:
    frame = st.builds(encode_frame, st.integers(0, 255), st.just({"a": "中"}))
    mutated = st.tuples(frame, st.integers(0, 30), st.integers(0, 255)).map(
        lambda t: t[0][:t[1]] + bytes([t[2]]) + t[0][t[1] + 1:])
    return st.lists(st.one_of(frame, mutated, st.binary(max_size=20)), max_size=8).map(
        b"".join)


@settings(max_examples=examples(300), deadline=None)
@given(_frames_and_noise(), chunks)
def test_frame_decoder_accounts_for_every_byte(stream: bytes, sizes: list[int]) -> None:
    decoder = FrameDecoder()
    events = []
    i, now = 0, 0.0
    while i < len(stream):
        size = sizes[i % len(sizes)]
        events += decoder.receive(stream[i:i + size], now)
        i, now = i + size, now + 0.01
    events += decoder.expire(now + 10)
    assert b"".join(e.raw for e in events) == stream


def _lines_and_noise() -> st.SearchStrategy[bytes]:
    line = st.builds(encode_line, st.integers(0, 10**6), st.just({"a": "中"}))
    mutated = st.tuples(line, st.integers(0, 30), st.integers(0, 255)).map(
        lambda t: t[0][:t[1]] + bytes([t[2]]) + t[0][t[1] + 1:])
    return st.lists(st.one_of(line, mutated, st.binary(max_size=20)), max_size=8).map(
        b"".join)


@settings(max_examples=examples(300), deadline=None)
@given(_lines_and_noise(), chunks)
def test_line_decoder_accounts_for_every_byte(stream: bytes, sizes: list[int]) -> None:
    decoder = LineDecoder()
    events = []
    i = 0
    while i < len(stream):
        size = sizes[i % len(sizes)]
        events += decoder.receive(stream[i:i + size], 0.0)
        i += size
    events += decoder.expire(10.0)
    assert b"".join(e.raw for e in events) == stream
