from __future__ import annotations

import pytest

from devices.pos.framing import (
    ACK,
    NAK,
    FrameDecoder,
    LineDecoder,
    Message,
    Rejected,
    crc16_xmodem,
    encode_frame,
    encode_line,
    frame_ack,
    frame_nak,
    line_ack,
    line_nak,
)

PAYLOAD = {"receipt_no": "R1", "total_fen": 6450, "store_id": "S01", "note": "会员𠮷"}


def test_crc16_xmodem_check_value() -> None:
    assert crc16_xmodem(b"123456789") == 0x31C3  # the catalogue's check value


def test_frame_literal_bytes() -> None:
    frame = encode_frame(7, {"a": 1})
    assert frame == b"\x02\x00\x07\x07" + b'{"a":1}' + b"\x03" + frame[-2:]
    assert int.from_bytes(frame[-2:], "big") == crc16_xmodem(frame[1:-2])
    assert frame_ack(7) == bytes([ACK, 7]) and frame_nak(None) == bytes([NAK, 0])


def test_frame_round_trip_in_pieces_with_noise() -> None:
    stream = b"\xff\x00" + encode_frame(1, PAYLOAD) + encode_frame(2, PAYLOAD)
    decoder = FrameDecoder()
    events = []
    for i in range(len(stream)):
        events += decoder.receive(stream[i:i + 1], i * 0.001)
    messages = [e for e in events if isinstance(e, Message)]
    assert [(m.seq, m.payload) for m in messages] == [(1, PAYLOAD), (2, PAYLOAD)]
    assert b"".join(e.raw for e in events) == stream


def test_a_resent_frame_is_recognised_by_seq_once_committed() -> None:
    decoder = FrameDecoder()
    (first,) = decoder.receive(encode_frame(9, PAYLOAD), 0.0)
    assert isinstance(first, Message) and not first.duplicate
    decoder.committed(9)
    (again,) = decoder.receive(encode_frame(9, PAYLOAD), 0.1)
    assert isinstance(again, Message) and again.duplicate


def test_bad_crc_is_rejected_with_its_seq_and_the_stream_recovers() -> None:
    bad = bytearray(encode_frame(3, PAYLOAD))
    bad[-1] ^= 0xFF
    decoder = FrameDecoder()
    events = decoder.receive(bytes(bad) + encode_frame(4, PAYLOAD), 0.0)
    assert isinstance(events[0], Rejected) and events[0].code == "crc"
    assert events[0].seq == 3
    assert isinstance(events[1], Message) and events[1].seq == 4


def test_non_json_payload_is_rejected() -> None:
    inner = b"\x00\x03\x05abc\x03"
    frame = b"\x02" + inner + crc16_xmodem(inner).to_bytes(2, "big")
    (event,) = FrameDecoder().receive(frame, 0.0)
    assert isinstance(event, Rejected) and event.code == "json"


def test_inter_byte_timeout_drops_a_partial_frame() -> None:
    frame = encode_frame(5, PAYLOAD)
    decoder = FrameDecoder(inter_byte_timeout=0.2)
    assert decoder.receive(frame[:10], 0.0) == []
    events = decoder.receive(frame, 1.0)
    assert isinstance(events[0], Rejected) and events[0].code == "timeout"
    assert events[0].raw == frame[:10]
    assert isinstance(events[1], Message)


def test_line_literal_and_round_trip() -> None:
    line = encode_line(3, {"a": 1})
    assert line.startswith(b'{"seq":3,"a":1,"crc":"') and line.endswith(b'"}\n')
    decoder = LineDecoder()
    events = decoder.receive(b"\r\n" + encode_line(1, PAYLOAD) + line, 0.0)
    assert isinstance(events[0], Rejected)
    assert [(e.seq, e.payload) for e in events[1:] if isinstance(e, Message)] == [
        (1, PAYLOAD), (3, {"a": 1})]
    assert line_ack(3) == b'{"ack": 3}\n'
    assert line_nak(3, "crc") == b'{"nak": 3, "error": "crc"}\n'


@pytest.mark.parametrize("line", [
    b'{"seq":1,"a":1}\n',
    b'{"seq":1,"a":1,"crc":"0000"}\n',
    b'{"seq":1,"a":1,"crc":"zzzz"}\n',
    b'[1,2],"crc":"0000"}\n',
])
def test_bad_lines_are_rejected(line: bytes) -> None:
    (event,) = LineDecoder().receive(line, 0.0)
    assert isinstance(event, Rejected)
    assert event.raw == line


def test_line_without_seq_is_rejected() -> None:
    body = b'{"a":1'
    line = body + b',"crc":"' + f"{crc16_xmodem(body):04x}".encode() + b'"}\n'
    (event,) = LineDecoder().receive(line, 0.0)
    assert isinstance(event, Rejected) and event.code == "json"


def test_over_long_line_is_rejected_and_the_next_line_reads() -> None:
    decoder = LineDecoder()
    junk = b"x" * 200_000
    events = decoder.receive(junk, 0.0) + decoder.receive(b"\n" + encode_line(2, {}), 0.0)
    assert b"".join(e.raw for e in events) == junk + b"\n" + encode_line(2, {})
    assert isinstance(events[-1], Message) and events[-1].seq == 2
