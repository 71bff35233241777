"""Bearer tokens of the local API: made once, kept only as their SHA-256, matched in
constant time.

The configuration holds the hash of each token (`[[http.tokens]]`), so a copy of the file
or of a backup gives no one a token. Tokens are 32 random bytes: a plain SHA-256 of them
cannot be guessed back, so no slow password hash is needed on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from gateway.settings.model import ApiRole, HttpSettings

TOKEN_BYTES = 32
# The name the audit log gives the `[http] ops_token` (a token from the environment).
OPS_TOKEN_NAME = "ops_token"  # noqa: S105 - a name, not a secret


@dataclass(frozen=True, slots=True)
class Caller:
    """Who presented a valid token: the token's name and its role."""

    name: str
    role: ApiRole


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Tokens:
    """The tokens the API accepts: the configured hashes and the ops token."""

    def __init__(self, http: HttpSettings) -> None:
        self._known: list[tuple[bytes, Caller]] = [
            (bytes.fromhex(t.sha256), Caller(t.name, t.role)) for t in http.tokens]
        if http.ops_token is not None:
            digest = bytes.fromhex(token_hash(http.ops_token.get_secret_value()))
            self._known.append((digest, Caller(OPS_TOKEN_NAME, "ops")))

    def __bool__(self) -> bool:
        return bool(self._known)

    def match(self, token: str) -> Caller | None:
        """The caller `token` belongs to, or None. Every configured hash is compared, each
        in constant time, so the time taken says nothing about which one came close."""
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found: Caller | None = None
        for known, caller in self._known:
            if hmac.compare_digest(digest, known) and found is None:
                found = caller
        return found
