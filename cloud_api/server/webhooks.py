"""Webhooks central delivers member notices to: their configuration and their signature.

A webhook file (`mallgate central serve --webhook-file`) lists one webhook per line,
`mall_id name url secret`, and must be readable by its owner only (it holds the secrets).
`name` identifies the webhook's deliveries: changing its URL keeps what was delivered.
URLs are `https://`; plain `http://` only to a loopback address (a receiver on the same
host), never a silent plaintext hop across a network.

Every delivery is a `POST` of the notice as JSON with these headers:

- `X-Mallgate-Notice-Id`: the notice id (also `notice_id` in the body): the receiver's
  idempotency key, the same on every attempt;
- `X-Mallgate-Timestamp`: Unix seconds when this attempt was signed;
- `X-Mallgate-Signature`: `v1=` and the hex HMAC-SHA256, under the webhook's secret, of
  the timestamp, a `.`, and the raw body bytes (the receiver checks it, and rejects a
  timestamp too far from its clock to stop replays);
- `X-Mallgate-Attempt`: which attempt this is (1 for the first).

A 2xx reply is a delivery; anything else (or no reply within the timeout) is retried.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cloud_api.server.phones import SecretFileError, read_secret
from gateway.backoff import full_jitter

NOTICE_ID_HEADER = "X-Mallgate-Notice-Id"
TIMESTAMP_HEADER = "X-Mallgate-Timestamp"
SIGNATURE_HEADER = "X-Mallgate-Signature"
ATTEMPT_HEADER = "X-Mallgate-Attempt"
SIGNATURE_VERSION = "v1"
# A delivery's lease, in attempt timeouts: long enough that a live worker's send (one
# timeout at most, and the database writes around it) never outlasts its claim.
LEASE_PER_TIMEOUT = 6


@dataclass(frozen=True, slots=True)
class Webhook:
    mall_id: str
    name: str
    url: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How central delivers: attempts before a delivery is dead, the backoff between
    them, and how long one attempt may take."""

    max_attempts: int = 12
    # Full-jitter exponential backoff between attempts (`gateway.backoff`, the gateway's
    # own), computed from the stored attempt count so that it survives a restart and
    # holds across workers: the 12th attempt comes at most about 15 h after
    # the first (half that on average), so a receiver down overnight loses nothing.
    retry_initial_s: float = 30.0
    retry_max_s: float = 6 * 3600.0
    timeout_s: float = 10.0
    # A claimed delivery is another worker's to retry only after this: longer than one
    # attempt can take, so a live worker's send is never doubled.
    lease_s: float = 10.0 * LEASE_PER_TIMEOUT
    # How often a worker looks for due deliveries when nothing wakes it.
    poll_s: float = 1.0
    batch: int = 50

    @classmethod
    def with_timeout(cls, timeout_s: float, **other: int) -> DeliveryPolicy:
        """A policy whose attempts may take `timeout_s`, with a lease as many times longer
        as the default's (a claim outlives its slowest send several times over)."""
        return cls(timeout_s=timeout_s, lease_s=timeout_s * LEASE_PER_TIMEOUT, **other)

    def retry_delay(self, attempts: int, retry_after_s: float | None = None,
                    rand: Callable[[float, float], float] = random.uniform) -> float:
        """The delay after the `attempts`-th failed attempt (1 for the first)."""
        return full_jitter(attempts - 1, self.retry_initial_s, self.retry_max_s,
                           retry_after_s, rand)


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `X-Mallgate-Signature` value of `body` sent at `timestamp`."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and the tests): recompute and compare in constant time."""
    try:
        expected = sign(secret, int(timestamp), body)
    except ValueError:
        return False
    return hmac.compare_digest(expected, signature)


def _check_url(url: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        try:
            loopback = parts.hostname == "localhost" or \
                ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return
        raise SecretFileError(f"{where}: {parts.hostname} over plain http; use https "
                              "(http only to a loopback address)")
    raise SecretFileError(f"{where}: not an https:// URL")


def parse_webhooks(text: str, source: str = "webhook file") -> dict[str, list[Webhook]]:
    """`mall_id name url secret` per line (blank lines and `#` comments skipped); the
    webhooks by mall. Errors name the line, never a secret."""
    found: dict[str, list[Webhook]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        where = f"{source}, line {number}"
        if len(parts) != 4:
            raise SecretFileError(f"{where}: expected `mall_id name url secret`")
        mall, name, url, secret = parts
        _check_url(url, where)
        if any(w.name == name for w in found.get(mall, [])):
            raise SecretFileError(f"{where}: webhook {name} of mall {mall} again")
        found.setdefault(mall, []).append(Webhook(mall, name, url, secret.encode()))
    return found


def load_webhooks(path: Path | None) -> Mapping[str, list[Webhook]]:
    """The webhooks of a file only its owner can read (none without a file)."""
    if path is None:
        return {}
    return parse_webhooks(read_secret(path), str(path))
