"""What a receiver relies on: the signature covers the timestamp and the exact body, and
the retry delays grow as the gateway's backoff does, bounded."""

from __future__ import annotations

import hashlib
import hmac

from cloud_api.server.webhooks import DeliveryPolicy, sign, verify

SECRET = b"shared-secret"
BODY = b'{"notice_id":"n1","kind":"tier.up"}'


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1767225600, BODY) == f"v1={expected}"
    assert verify(SECRET, "1767225600", BODY, f"v1={expected}")


def test_a_changed_body_timestamp_or_secret_fails_verification() -> None:
    signature = sign(SECRET, 1767225600, BODY)
    assert not verify(SECRET, "1767225600", BODY.replace(b"up", b"down"), signature)
    assert not verify(SECRET, "1767225601", BODY, signature)
    assert not verify(b"another-secret", "1767225600", BODY, signature)
    assert not verify(SECRET, "not-a-number", BODY, signature)


def test_retry_delays_double_from_the_initial_up_to_the_cap_with_full_jitter() -> None:
    policy = DeliveryPolicy(retry_initial_s=30, retry_max_s=600)
    highest = [policy.retry_delay(n, rand=lambda low, high: high) for n in range(1, 8)]
    assert highest == [30, 60, 120, 240, 480, 600, 600]
    assert policy.retry_delay(3, rand=lambda low, high: low) == 0  # full jitter: from 0
    # a receiver's Retry-After is honoured, up to the longest delay
    assert policy.retry_delay(1, 90, rand=lambda low, high: low) == 90
    assert policy.retry_delay(1, 10_000, rand=lambda low, high: low) == 600
