"""Kiosk sessions: the proof a write on a member follows an identification at that kiosk.

`member.identify` answers with a session token bound to the kiosk that asked and to the
member it found, valid for `[kiosk] session_s`; `checkin`, `redeem`, `offer.claim` and
`receipt.claim` name the member by that token. A bare member id read off a screen, a
token from another kiosk, a token for another member or an expired one moves no points.

The token is signed, not stored: `s1.{kiosk}.{member}.{expires_unix}.{signature}`, the
ids base64url-encoded and the signature the unpadded base64url HMAC-SHA256 of everything
before the last dot, under a key the gateway makes once and keeps in its store
(`gateway_secrets`). An identification therefore costs no write, and a session issued
before a crash still authorizes the request the broker redelivers after the restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import sqlite3
from datetime import datetime, timedelta

from gateway.loyalty.wire import to_text
from gateway.operations.model import Refused

# The writes that name their member by a session rather than by a bare member id.
# The writes on a member, and `coupon.list`: a coupon's code is what a till takes, so a
# member's codes are shown only to a kiosk the member identified at.
SESSION_OPS = frozenset({"checkin", "redeem", "offer.claim", "receipt.claim", "coupon.list"})
SECRET_NAME = "kiosk_session_key"  # noqa: S105 - the row's name, not a secret
_KEY_BYTES = 32
_TOKEN = re.compile(r"^s1\.(?P<kiosk>[A-Za-z0-9_-]{1,128})\.(?P<member>[A-Za-z0-9_-]{1,128})"
                    r"\.(?P<exp>\d{1,12})\.(?P<sig>[A-Za-z0-9_-]{43})$")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")


class Sessions:
    """Issues and checks kiosk sessions under one key."""

    def __init__(self, key: bytes, ttl_s: int) -> None:
        self._key = key
        self.ttl_s = ttl_s

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def issue(self, kiosk: str, member_id: str, now: datetime) -> tuple[str, datetime]:
        """A session for `member_id` at `kiosk` and when it expires."""
        expires = now + timedelta(seconds=self.ttl_s)
        body = (f"s1.{_b64(kiosk.encode())}.{_b64(member_id.encode())}"
                f".{int(expires.timestamp())}")
        return f"{body}.{self._sign(body)}", expires

    def member_of(self, token: str | None, kiosk: str, now: datetime) -> str:
        """The member a valid session of `kiosk` names; `Refused` with the reason otherwise."""
        if not token:
            raise Refused("session_required", "this operation needs the session "
                          "member.identify returned; identify the member first")
        match = _TOKEN.match(token)
        if match is None:
            raise Refused("session_invalid", "not a session token")
        body = token[: token.rindex(".")]
        if not hmac.compare_digest(self._sign(body), match["sig"]):
            raise Refused("session_invalid", "session signature does not match")
        try:
            owner, member_id = _unb64(match["kiosk"]), _unb64(match["member"])
        except (binascii.Error, UnicodeDecodeError):
            raise Refused("session_invalid", "not a session token") from None
        if owner != kiosk:
            raise Refused("session_wrong_kiosk", "this session was issued to another kiosk; "
                          "identify the member at this kiosk")
        if int(match["exp"]) < now.timestamp():
            raise Refused("session_expired", "the session has expired; identify the member "
                          "again")
        return member_id


def session_key(conn: sqlite3.Connection, now: datetime) -> bytes:
    """The gateway's session key: made on first use and kept in the store (in the caller's
    writer op, so two starts cannot make two keys)."""
    conn.execute("INSERT INTO gateway_secrets (name, secret, created_at) VALUES (?, ?, ?) "
                 "ON CONFLICT (name) DO NOTHING",
                 (SECRET_NAME, secrets.token_bytes(_KEY_BYTES), to_text(now)))
    row = conn.execute("SELECT secret FROM gateway_secrets WHERE name = ?",
                       (SECRET_NAME,)).fetchone()
    return bytes(row[0])
