"""Stored replies: each request's answer kept under its key, for retries.

Kept in `kiosk_requests` (request key -> reply) in the same transaction as what the
request changed; the reply-pruning loop forgets them after their retention.

A stored reply answers only the request it was stored for: with it is kept a fingerprint
of the request's operation and data, and a request that reuses the key for another
operation or other data is refused with `id_conflict` rather than handed the first
request's reply (which may be another member's).
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime
from typing import cast

import orjson

from gateway.loyalty.wire import to_text
from gateway.operations.model import OperationRequest, Refused, Reply


def fingerprint(request: OperationRequest) -> str:
    """A digest of what the request asks: its operation and its data in canonical form
    (keys sorted), so the same request sent again gives the same fingerprint."""
    canonical = orjson.dumps([request.op, request.data], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def store_reply(conn: sqlite3.Connection, request: OperationRequest, reply: Reply,
                now: datetime) -> Reply:
    """Keep `reply` as the answer to `request`, unless one is already kept: return the kept
    (or raise `Refused("id_conflict")` if it was kept for another request)."""
    inserted = conn.execute(
        "INSERT INTO kiosk_requests (request_id, kiosk_id, op, reply, created_at, fingerprint) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING",
        (request.key, request.kiosk, request.op, orjson.dumps(reply).decode(),
         to_text(now), fingerprint(request)),
    ).rowcount
    if inserted:
        return reply
    kept = stored_reply(conn, request)
    assert kept is not None  # noqa: S101 - the insert just found it
    return kept


def stored_reply(conn: sqlite3.Connection, request: OperationRequest) -> Reply | None:
    """The reply kept for `request`'s key, if any; `Refused("id_conflict")` if it was kept
    for a request with another operation or other data."""
    row = conn.execute("SELECT reply, op, fingerprint FROM kiosk_requests "
                       "WHERE request_id = ?", (request.key,)).fetchone()
    if row is None:
        return None
    reply, op, kept_print = row
    if op != request.op or (kept_print is not None and kept_print != fingerprint(request)):
        raise Refused("id_conflict", f"id {request.id} was already used for another "
                      "request; send a new id for a new request")
    return cast(Reply, orjson.loads(reply))


def forget_replies_of(conn: sqlite3.Connection, member_id: str) -> int:
    """Delete the stored replies that name an erased member (its id, and with it the
    coupon codes and balances the reply gave); how many went. A retry of one of those
    requests is served afresh, and finds no member."""
    return conn.execute("DELETE FROM kiosk_requests WHERE reply ->> '$.data.member_id' = ?",
                        (member_id,)).rowcount
