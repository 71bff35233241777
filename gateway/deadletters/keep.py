"""Keeping rejected input: one function every producer calls, inside its own transaction.

Policy for what is kept (DESIGN.md section 4, "Nothing is dropped silently" and "Secure by
default"):

- The raw input, redacted (`gateway.redaction`: mobile and card numbers masked, and the
  personal fields of a JSON payload such as a kiosk's `member.identify`), and cut to
  `MAX_RAW_BYTES`. A cut letter says so in its context (`raw_size`: the size received).
  64 KiB holds a whole POS frame and any kiosk payload the broker lets through; more is a
  flood, not something to diagnose byte by byte.
- The error text, redacted (a parser may quote what it refused: the personal values found
  in the input are masked in it too) and cut to `MAX_ERROR_CHARS`.
- A flat context of at most `MAX_CONTEXT_KEYS` scalar values (where the input came from, a
  capture or event id), strings redacted and cut to `MAX_CONTEXT_CHARS`. A number that
  looks like a mobile number is kept masked, as text.

Replays do not read the kept raw bytes: a POS dead letter is replayed from its capture
(`pos_captures`), so masking and cutting here never change what a replay parses.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from functools import partial

from gateway.redaction import mask_known, personal_values, redact, redact_payload
from gateway.store import Writer

MAX_RAW_BYTES = 64 * 1024
MAX_ERROR_CHARS = 1000
MAX_CONTEXT_KEYS = 32
MAX_CONTEXT_CHARS = 512

Scalar = str | int | float | bool | None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def bounded_error(error: str, personal: list[str] | None = None) -> str:
    """An error text as a dead letter keeps it; `personal`: values of the input to mask."""
    return _cut(redact(mask_known(error, personal or [])), MAX_ERROR_CHARS)


def bounded_raw(raw: bytes | str) -> bytes:
    """Raw input as a dead letter keeps it (without the note of its size when cut)."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    if len(data) <= MAX_RAW_BYTES:
        return redact_payload(data)[:MAX_RAW_BYTES]
    # Too large to be a whole message: text rules, a little past the cut, so a number the
    # cut crosses is masked, not halved.
    return redact(data[:MAX_RAW_BYTES + 32])[:MAX_RAW_BYTES]


def _value(value: Scalar) -> Scalar:
    if isinstance(value, str):
        return _cut(redact(value), MAX_CONTEXT_CHARS)
    if isinstance(value, int) and not isinstance(value, bool):
        masked = redact(str(value))
        return value if masked == str(value) else masked
    return value


def bounded_context(context: Mapping[str, Scalar], raw_size: int | None = None) -> str:
    """A letter's context as JSON; `raw_size` is noted when the raw input was cut."""
    if len(context) > MAX_CONTEXT_KEYS:
        raise ValueError(f"a dead letter's context has at most {MAX_CONTEXT_KEYS} keys")
    kept = {_cut(key, MAX_CONTEXT_CHARS): _value(value) for key, value in context.items()}
    if raw_size is not None:
        kept["raw_size"] = raw_size
    return json.dumps(kept, ensure_ascii=False)


def keep(conn: sqlite3.Connection, *, source: str, raw: bytes | str, code: str, error: str,
         context: Mapping[str, Scalar] | None = None, at: str) -> int:
    """Keep one rejected input with why; returns the dead letter's id.

    Runs inside the caller's write transaction (a writer op), so the letter commits with
    whatever else refused the input. `at` is the store's UTC text of when it was received.
    """
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    size = len(data)
    personal = personal_values(data) if size <= MAX_RAW_BYTES else []
    cursor = conn.execute(
        "INSERT INTO dead_letters (source, raw, error_code, error, context, received_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (source, bounded_raw(data), _cut(code, 64), bounded_error(error, personal),
         bounded_context(context or {}, size if size > MAX_RAW_BYTES else None), at))
    return int(cursor.lastrowid or 0)


def reword(conn: sqlite3.Connection, letter_id: int, *, code: str, error: str) -> None:
    """A pending letter failed again (a replay): keep the new reason, under the same rules."""
    conn.execute("UPDATE dead_letters SET error_code = ?, error = ? WHERE id = ?",
                 (_cut(code, 64), bounded_error(error), letter_id))


async def keep_with(writer: Writer, *, source: str, raw: bytes | str, code: str, error: str,
                    context: Mapping[str, Scalar] | None = None, at: str) -> int:
    """`keep` as one writer op of its own, for a producer with nothing else to commit."""
    return await writer.submit(partial(keep, source=source, raw=raw, code=code, error=error,
                                       context=context, at=at))
