"""How a member names themself, checked without I/O: QR tokens, card numbers, phone numbers.

The member app shows a QR code holding a short-lived token that central signs:
`v1.{member_id}.{expires_unix}.{signature}`, where the signature is the unpadded base64url
HMAC-SHA256 of everything before the last dot under the key central shares with the
gateway. A copied or photographed QR code therefore stops working within minutes, and a
channel never handles a member id it could forge.

Phone numbers never reach the store: central keeps a keyed hash of each, and the gateway
looks the member up by the same hash of the number typed in (`gateway.loyalty.phones`,
the one definition both sides use).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway.loyalty.errors import InvalidPhone
from gateway.loyalty.phones import phone_hash

_QR = re.compile(r"^v1\.(?P<member>[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,63})\.(?P<exp>\d{1,12})"
                 r"\.(?P<sig>[A-Za-z0-9_-]{43})$")

# The longest a QR token may be valid for. Central issues them for minutes; one valid for
# longer than a day is a leaked key or a broken issuer, and a photograph of it would work
# for as long as it says.
QR_MAX_VALIDITY_S = 24 * 3600

# The codes are those a kiosk gets in its reply (docs/kiosk.md).
IdentityCode = Literal["invalid_token", "token_expired", "invalid_payload"]
# `member` is a member id itself; the others are `member_identifiers` kinds.
LookupKind = Literal["member", "card", "phone_hash", "qr_token", "ble_key"]


class IdentityError(Exception):
    """A member identity that cannot be used: a bad or expired token, a malformed number."""

    def __init__(self, code: IdentityCode, msg: str) -> None:
        super().__init__(msg)
        self.code: IdentityCode = code
        self.msg = msg


@dataclass(frozen=True, slots=True)
class IdentityKeys:
    """The keys central shares for identities: QR token signatures and phone hashes."""

    qr_key: bytes | None
    phone_key: bytes | None
    skew_s: int  # a token this long past its expiry still passes (clocks differ)


@dataclass(frozen=True, slots=True)
class Lookup:
    """Where to find the member: a direct member id, or an identifier row of that kind."""

    kind: LookupKind
    value: str


def _sign(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_qr_token(key: bytes, member_id: str, expires: datetime) -> str:
    """A token as central issues it (for tests, the simulator and the demo)."""
    body = f"v1.{member_id}.{int(expires.timestamp())}"
    return f"{body}.{_sign(key, body)}"


def verify_qr_token(key: bytes | None, token: str, now: datetime, skew_s: int) -> str:
    """The member id of a valid, unexpired token; `IdentityError` otherwise."""
    if key is None:
        raise IdentityError("invalid_token", "QR identification is not configured here")
    match = _QR.match(token)
    if match is None:
        raise IdentityError("invalid_token", "not a member QR token")
    body = token[: token.rindex(".")]
    if not hmac.compare_digest(_sign(key, body), match["sig"]):
        raise IdentityError("invalid_token", "QR token signature does not match")
    if int(match["exp"]) + skew_s < now.timestamp():
        raise IdentityError("token_expired", "QR token has expired; refresh it in the app")
    if int(match["exp"]) - now.timestamp() > QR_MAX_VALIDITY_S + skew_s:
        raise IdentityError("invalid_token", "QR token is valid for more than 24 h; central "
                            "must issue tokens valid for minutes")
    return match["member"]


def lookup_for(by: str, value: str, keys: IdentityKeys, now: datetime) -> Lookup:
    """Where to find the member a channel names `by` ("qr", "card" or "phone") `value`."""
    if by == "qr":
        return Lookup("member", verify_qr_token(keys.qr_key, value, now, keys.skew_s))
    if by == "card":
        return Lookup("card", value)
    if keys.phone_key is None:
        raise IdentityError("invalid_token", "identification by phone is not configured here")
    try:
        return Lookup("phone_hash", phone_hash(keys.phone_key, value))
    except InvalidPhone as exc:
        raise IdentityError("invalid_payload", str(exc)) from None
