"""Kiosk sessions: the proof a write on a member follows an identification at that kiosk.

`member.identify` answers with a session token bound to the kiosk that asked and to the
member it found, valid for `[kiosk] session_s`; `checkin`, `redeem`, `offer.claim` and
`receipt.claim` name the member by that token. A bare member id read off a screen, a
token from another kiosk, a token for another member or an expired one moves no points.

Each session records how the member was identified, its proof (`Proof`): a card, the
member's own app's QR token, an enrolment (its code checked by central, or provisional),
a bare phone number, or a phone number proved by the code central texted. Knowing
someone's number is not proof of being them, so the writes that move points out of the
account (`SPEND_OPS`) refuse a session whose proof is a bare phone number
(`session_unverified`); check-in and claims, which only add points, accept it.

The token is signed, not stored: `s2.{kiosk}.{member}.{proof}.{expires_unix}.{signature}`,
the ids base64url-encoded and the signature the unpadded base64url HMAC-SHA256 of
everything before the last dot, under a key the gateway makes once and keeps in its store
(`gateway_secrets`); the proof is signed with the rest, so it cannot be raised. An
identification therefore costs no write, and a session issued before a crash still
authorizes the request the broker redelivers after the restart. A session issued before
proofs existed (`s1.`, without one) still names its member, with the weakest proof.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast, get_args

from gateway.loyalty.wire import to_text
from gateway.operations.model import Refused

# The writes that name their member by a session rather than by a bare member id.
# The writes on a member, and `coupon.list`: a coupon's code is what a till takes, so a
# member's codes are shown only to a kiosk the member identified at.
SESSION_OPS = frozenset({"checkin", "redeem", "offer.claim", "receipt.claim", "coupon.list"})
# Those that move value out of the account (points, or the coupon codes a till takes): a
# bare phone number, which anyone may know, is not enough for them.
SPEND_OPS = frozenset({"redeem", "coupon.list"})
SECRET_NAME = "kiosk_session_key"  # noqa: S105 - the row's name, not a secret
_KEY_BYTES = 32

# How the member was identified: `card`; `qr` (the token of the member's own app);
# `enrolment` (enrolled with central's code) or `provisional` (enrolled offline: a new
# account of their own); `phone` (a number typed in); `phone_code` (a number proved by the
# code central texted to it).
Proof = Literal["card", "qr", "enrolment", "provisional", "phone", "phone_code"]
PROOFS: frozenset[str] = frozenset(get_args(Proof))
# Proofs that do not let a session spend points.
UNVERIFIED: frozenset[Proof] = frozenset({"phone"})
# What a session issued before proofs existed counts as: the weakest there is.
LEGACY_PROOF: Proof = "phone"

_ID = r"[A-Za-z0-9_-]{1,128}"
_TOKEN = re.compile(rf"^s2\.(?P<kiosk>{_ID})\.(?P<member>{_ID})\.(?P<proof>[a-z_]{{1,32}})"
                    r"\.(?P<exp>\d{1,12})\.(?P<sig>[A-Za-z0-9_-]{43})$")
_LEGACY_TOKEN = re.compile(rf"^s1\.(?P<kiosk>{_ID})\.(?P<member>{_ID})"
                           r"\.(?P<exp>\d{1,12})\.(?P<sig>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class Session:
    """What a valid session says: its member and how they were identified."""

    member_id: str
    proof: Proof

    def spend_check(self, op: str) -> None:
        """`Refused` `session_unverified` if `op` spends points and the proof cannot."""
        if op in SPEND_OPS and self.proof in UNVERIFIED:
            raise Refused("session_unverified", "a phone number alone cannot spend points: "
                          "identify the member by their card, the QR code of their app, or "
                          "the code texted to their phone")


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

    def issue(self, kiosk: str, member_id: str, proof: Proof,
              now: datetime) -> tuple[str, datetime]:
        """A session for `member_id` at `kiosk`, identified by `proof`, and when it
        expires."""
        expires = now + timedelta(seconds=self.ttl_s)
        body = (f"s2.{_b64(kiosk.encode())}.{_b64(member_id.encode())}.{proof}"
                f".{int(expires.timestamp())}")
        return f"{body}.{self._sign(body)}", expires

    def session_of(self, token: str | None, kiosk: str, now: datetime) -> Session:
        """The member and proof of a valid session of `kiosk`; `Refused` with the reason
        otherwise."""
        if not token:
            raise Refused("session_required", "this operation needs the session "
                          "member.identify returned; identify the member first")
        match = _TOKEN.match(token) or _LEGACY_TOKEN.match(token)
        if match is None:
            raise Refused("session_invalid", "not a session token")
        body = token[: token.rindex(".")]
        if not hmac.compare_digest(self._sign(body), match["sig"]):
            raise Refused("session_invalid", "session signature does not match")
        proof = match.groupdict().get("proof") or LEGACY_PROOF
        if proof not in PROOFS:
            raise Refused("session_invalid", "not a session token")
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
        return Session(member_id, cast(Proof, proof))


def session_key(conn: sqlite3.Connection, now: datetime) -> bytes:
    """The gateway's session key: made on first use and kept in the store (in the caller's
    writer op, so two starts cannot make two keys)."""
    conn.execute("INSERT INTO gateway_secrets (name, secret, created_at) VALUES (?, ?, ?) "
                 "ON CONFLICT (name) DO NOTHING",
                 (SECRET_NAME, secrets.token_bytes(_KEY_BYTES), to_text(now)))
    row = conn.execute("SELECT secret FROM gateway_secrets WHERE name = ?",
                       (SECRET_NAME,)).fetchone()
    return bytes(row[0])
