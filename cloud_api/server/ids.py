"""The identifiers central makes: member ids and bearer tokens, the same on every backend."""

from __future__ import annotations

import hashlib
import secrets


def new_member_id() -> str:
    """A member id for a member created without one: 32 lower-case hex characters (128
    random bits), the shape of an entry id."""
    return secrets.token_hex(16)


def new_token() -> str:
    return "mgt_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens are stored only as this hash: a leaked database holds no usable credential."""
    return hashlib.sha256(token.encode()).hexdigest()
