"""Sans-io codecs of the two structured POS protocols: `framed` and `jsonl`.

framed — for POS vendors who integrate directly:

    STX | len (2, big-endian) | seq (1) | payload (len bytes, UTF-8 JSON) | ETX | CRC (2, BE)

The CRC is CRC-16/XMODEM over everything between STX and ETX inclusive of both length and
ETX bytes (`len seq payload ETX`). The gateway answers `ACK seq` (0x06, seq) only after the
receipt is committed, `NAK seq` (0x15, seq) for a damaged frame; a sender that gets no ACK
resends the same frame with the same seq, which the decoder recognises.

jsonl — for simple integrations and tests: one JSON object per line, `\\n`-terminated, whose
last member is `"crc":"hhhh"` — CRC-16/XMODEM (4 hex digits) of the line's bytes before
`,"crc":`. Replies are lines too: `{"ack":seq}` or `{"nak":seq,"error":code}`.

Both decoders account for every byte: each event carries the raw bytes it consumed.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from typing import Any

from devices.pos.const import INTER_BYTE_TIMEOUT_S, MAX_FRAME_PAYLOAD, MAX_JSON_LINE

STX, ETX, ACK, NAK = 0x02, 0x03, 0x06, 0x15
_HEADER = 4  # STX len len seq
_TRAILER = 3  # ETX crc crc
_CRC_MARK = b',"crc":"'


def crc16_xmodem(data: bytes) -> int:
    """CRC-16/XMODEM (poly 0x1021, init 0): `binascii.crc_hqx` computes exactly this."""
    return binascii.crc_hqx(data, 0)


@dataclass(frozen=True, slots=True)
class Message:
    """A frame or line that passed its checks. `duplicate`: a resend of the last seq."""

    seq: int
    payload: dict[str, Any]
    raw: bytes
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """Bytes that did not form a valid message: noise, a bad CRC, a timeout, bad JSON."""

    code: str
    reason: str
    raw: bytes
    seq: int | None = None  # known when the frame header arrived intact


Event = Message | Rejected


def _json_object(data: bytes) -> dict[str, Any]:
    value = json.loads(data.decode("utf-8"))
    if not isinstance(value, dict):
        raise TypeError("not a JSON object")
    return value


class _Decoder:
    def __init__(self, inter_byte_timeout: float) -> None:
        self.timeout = inter_byte_timeout
        self._buf = b""
        self._last_byte_at = 0.0
        self._committed: int | None = None

    def committed(self, seq: int) -> None:
        """The message `seq` is durable: a later resend of it is a duplicate."""
        self._committed = seq

    def expire(self, now: float) -> list[Event]:
        """A partial message older than the inter-byte timeout is dropped (and reported)."""
        if self._buf and now - self._last_byte_at > self.timeout:
            raw, self._buf = self._buf, b""
            return [Rejected("timeout", "inter-byte timeout inside a message", raw)]
        return []

    @property
    def pending(self) -> int:
        return len(self._buf)

    def _message(self, seq: int, payload: dict[str, Any], raw: bytes) -> Message:
        return Message(seq, payload, raw, duplicate=seq == self._committed)


class FrameDecoder(_Decoder):
    """Decoder of the `framed` protocol."""

    def __init__(self, inter_byte_timeout: float = INTER_BYTE_TIMEOUT_S) -> None:
        super().__init__(inter_byte_timeout)

    def receive(self, data: bytes, now: float) -> list[Event]:
        events = self.expire(now)
        if data:
            self._last_byte_at = now
        self._buf += data
        while self._buf:
            event = self._next()
            if event is None:
                break
            events.append(event)
        return events

    def _next(self) -> Event | None:  # noqa: PLR0911 - one return per frame verdict
        buf = self._buf
        if buf[0] != STX:
            start = buf.find(bytes([STX]))
            cut = start if start >= 0 else len(buf)
            self._buf = buf[cut:]
            return Rejected("noise", "bytes outside a frame", buf[:cut])
        if len(buf) < _HEADER:
            return None
        length = int.from_bytes(buf[1:3], "big")
        seq = buf[3]
        if length > MAX_FRAME_PAYLOAD:
            self._buf = buf[1:]  # not a real header: resynchronise on the next STX
            return Rejected("too_long", f"declared length {length} exceeds the limit",
                            buf[:1], seq)
        size = _HEADER + length + _TRAILER
        if len(buf) < size:
            return None
        frame, self._buf = buf[:size], buf[size:]
        if frame[size - 3] != ETX:
            self._buf = frame[1:] + self._buf
            return Rejected("framing", "no ETX where the length says", frame[:1], seq)
        if crc16_xmodem(frame[1:size - 2]) != int.from_bytes(frame[size - 2:], "big"):
            return Rejected("crc", "CRC mismatch", frame, seq)
        try:
            payload = _json_object(frame[_HEADER:_HEADER + length])
        except (UnicodeDecodeError, ValueError, TypeError) as exc:
            return Rejected("json", f"payload is not a UTF-8 JSON object: {exc}", frame, seq)
        return self._message(seq, payload, frame)


def encode_frame(seq: int, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME_PAYLOAD:
        raise ValueError("payload too long for one frame")
    inner = len(body).to_bytes(2, "big") + bytes([seq & 0xFF]) + body + bytes([ETX])
    return bytes([STX]) + inner + crc16_xmodem(inner).to_bytes(2, "big")


def frame_ack(seq: int) -> bytes:
    return bytes([ACK, seq & 0xFF])


def frame_nak(seq: int | None) -> bytes:
    return bytes([NAK, (seq or 0) & 0xFF])


class LineDecoder(_Decoder):
    """Decoder of the `jsonl` protocol."""

    def __init__(self, inter_byte_timeout: float = INTER_BYTE_TIMEOUT_S) -> None:
        super().__init__(inter_byte_timeout)
        self._discarding = False

    def receive(self, data: bytes, now: float) -> list[Event]:
        events = self.expire(now)
        if data:
            self._last_byte_at = now
        self._buf += data
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > MAX_JSON_LINE:
                    raw, self._buf = self._buf, b""
                    if not self._discarding:
                        events.append(Rejected("too_long", "line exceeds the limit", raw))
                    else:
                        events.append(Rejected("too_long", "rest of an over-long line", raw))
                    self._discarding = True
                return events
            line, self._buf = self._buf[:end + 1], self._buf[end + 1:]
            if self._discarding:
                self._discarding = False
                events.append(Rejected("too_long", "end of an over-long line", line))
                continue
            events.append(self._line(line))

    def expire(self, now: float) -> list[Event]:
        events = super().expire(now)
        if events:
            self._discarding = False
        return events

    def _line(self, line: bytes) -> Event:  # noqa: PLR0911 - one return per line verdict
        body = line.rstrip(b"\r\n")
        if not body.strip():
            return Rejected("noise", "empty line", line)
        mark = body.rfind(_CRC_MARK)
        if mark < 0 or not body.endswith(b'"}') or len(body) - mark != len(_CRC_MARK) + 6:
            return Rejected("crc", 'no trailing "crc" member', line)
        try:
            expected = int(body[mark + len(_CRC_MARK):-2], 16)
        except ValueError:
            return Rejected("crc", "crc is not 4 hex digits", line)
        if crc16_xmodem(body[:mark]) != expected:
            return Rejected("crc", "CRC mismatch", line)
        try:
            payload = _json_object(body)
        except (UnicodeDecodeError, ValueError, TypeError) as exc:
            return Rejected("json", f"not a UTF-8 JSON object: {exc}", line)
        seq = payload.pop("seq", None)
        payload.pop("crc", None)
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= 0xFFFF_FFFF:
            return Rejected("json", "seq must be a non-negative integer", line)
        return self._message(seq, payload, line)


def encode_line(seq: int, payload: dict[str, Any]) -> bytes:
    body = json.dumps({"seq": seq, **payload}, ensure_ascii=False,
                      separators=(",", ":")).encode()
    head = body[:-1]
    return head + _CRC_MARK + f"{crc16_xmodem(head):04x}".encode() + b'"}\n'


def line_ack(seq: int) -> bytes:
    return json.dumps({"ack": seq}).encode() + b"\n"


def line_nak(seq: int | None, code: str) -> bytes:
    return json.dumps({"nak": seq, "error": code}).encode() + b"\n"


def frame_answer(ok: bool, seq: int, body: dict[str, Any] | None = None) -> bytes:
    """`ACK seq` or `NAK seq`, followed by a reply frame with the same seq when there is a
    body: the decision on an `authorize` or `void`, or why a sale was refused."""
    head = frame_ack(seq) if ok else frame_nak(seq)
    return head if body is None else head + encode_frame(seq, body)


def line_reply(seq: int, body: dict[str, Any]) -> bytes:
    """The reply line to an `authorize` or `void`: `{"ack": seq, "reply": {...}}`."""
    return json.dumps({"ack": seq, "reply": body}, ensure_ascii=False).encode() + b"\n"


def line_refused(seq: int, code: str, msg: str) -> bytes:
    """A sale refused as it stands (resending it unchanged gets the same answer)."""
    return json.dumps({"nak": seq, "error": code, "msg": msg},
                      ensure_ascii=False).encode() + b"\n"
