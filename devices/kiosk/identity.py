"""How a kiosk names a member, checked without I/O: QR tokens, card numbers, phone numbers.

The member app shows a QR code holding a short-lived token that central signs:
`v1.{member_id}.{expires_unix}.{signature}`, where the signature is the unpadded base64url
HMAC-SHA256 of everything before the last dot under the key central shares with the
gateway. A copied or photographed QR code therefore stops working within minutes, and the
kiosk never handles a member id it could forge.

Phone numbers never reach the store: central keeps a keyed hash of each, and the gateway
looks the member up by the same hash of the number typed at the kiosk.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

from devices.kiosk.protocol import KioskError

_QR = re.compile(r"^v1\.(?P<member>[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,63})\.(?P<exp>\d{1,12})"
                 r"\.(?P<sig>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class Lookup:
    """Where to find the member: a direct member id, or an identifier row of that kind."""

    kind: str  # "member" | "card" | "phone_hash"
    value: str


def _sign(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_qr_token(key: bytes, member_id: str, expires: datetime) -> str:
    """A token as central issues it (for tests, the simulator and the demo)."""
    body = f"v1.{member_id}.{int(expires.timestamp())}"
    return f"{body}.{_sign(key, body)}"


def verify_qr_token(key: bytes | None, token: str, now: datetime, skew_s: int) -> str:
    """The member id of a valid, unexpired token; `KioskError` otherwise."""
    if key is None:
        raise KioskError("invalid_token", "QR identification is not configured here")
    match = _QR.match(token)
    if match is None:
        raise KioskError("invalid_token", "not a member QR token")
    body = token[: token.rindex(".")]
    if not hmac.compare_digest(_sign(key, body), match["sig"]):
        raise KioskError("invalid_token", "QR token signature does not match")
    if int(match["exp"]) + skew_s < now.timestamp():
        raise KioskError("token_expired", "QR token has expired; refresh it in the app")
    return match["member"]


def normalise_phone(number: str) -> str:
    """Digits only, without the +86 / 0086 country prefix of mainland numbers."""
    digits = re.sub(r"[\s()+-]", "", number)
    if not digits.isdigit() or not 5 <= len(digits) <= 20:
        raise KioskError("invalid_payload", "a phone number is 5 to 20 digits")
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            return digits[len(prefix):]
    return digits


def phone_hash(key: bytes, number: str) -> str:
    """The keyed hash central stores as the member's `phone_hash` identifier."""
    return hmac.new(key, normalise_phone(number).encode("ascii"), hashlib.sha256).hexdigest()


def lookup_for(by: str, value: str, *, qr_key: bytes | None, phone_key: bytes | None,
               now: datetime, skew_s: int) -> Lookup:
    if by == "qr":
        return Lookup("member", verify_qr_token(qr_key, value, now, skew_s))
    if by == "card":
        return Lookup("card", value)
    if phone_key is None:
        raise KioskError("invalid_token", "identification by phone is not configured here")
    return Lookup("phone_hash", phone_hash(phone_key, value))
