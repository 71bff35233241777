"""Stored replies: each request's answer kept under its key, for retries.

Kept in `kiosk_requests` (request key -> reply) in the same transaction as what the
request changed; the reply-pruning loop forgets them after their retention.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import cast

import orjson

from gateway.loyalty.wire import to_text
from gateway.operations.model import OperationRequest, Reply


def store_reply(conn: sqlite3.Connection, request: OperationRequest, reply: Reply,
                now: datetime) -> Reply:
    """Keep `reply` as the answer to `request`, unless one is already kept: return the kept."""
    inserted = conn.execute(
        "INSERT INTO kiosk_requests (request_id, kiosk_id, op, reply, created_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING",
        (request.key, request.kiosk, request.op, orjson.dumps(reply).decode(),
         to_text(now)),
    ).rowcount
    if inserted:
        return reply
    row = conn.execute("SELECT reply FROM kiosk_requests WHERE request_id = ?",
                       (request.key,)).fetchone()
    return cast(Reply, orjson.loads(row[0]))


def stored_reply(conn: sqlite3.Connection, key: str) -> Reply | None:
    row = conn.execute("SELECT reply FROM kiosk_requests WHERE request_id = ?",
                       (key,)).fetchone()
    return cast(Reply, orjson.loads(row[0])) if row else None


def forget_replies_of(conn: sqlite3.Connection, member_id: str) -> int:
    """Delete the stored replies that name an erased member (its id, and with it the
    coupon codes and balances the reply gave); how many went. A retry of one of those
    requests is served afresh, and finds no member."""
    return conn.execute("DELETE FROM kiosk_requests WHERE reply ->> '$.data.member_id' = ?",
                        (member_id,)).rowcount
