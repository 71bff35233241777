"""What can go wrong talking to central, classed by what the caller should do about it.

- `CentralUnavailable` (also a `TimeoutError`/`ConnectionError` family member): retry later
  with backoff; nothing was decided.
- `CentralAuthError`: stop and alert; the token is wrong, revoked or for another mall.
- `CentralRejected`: permanent; the request itself is wrong and a retry gets the same answer.
- `CursorExpired` (410): the change feed no longer reaches back to the cursor; resync.
- `PayloadTooLarge` (413): send less at once.
"""

from __future__ import annotations

from typing import Any


class CentralError(Exception):
    """An error from (or on the way to) the central member API, with its HTTP status."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, code: str = "error",
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details or {}


class CentralUnavailable(CentralError, TimeoutError):
    """Central did not answer in time, refused the connection or answered 5xx / 429."""

    retryable = True

    def __init__(self, message: str, *, status: int | None = None, code: str = "unavailable",
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class CentralAuthError(CentralError):
    """401 or 403: the gateway's credential is not accepted for this resource."""


class CentralRejected(CentralError):
    """4xx other than auth: a permanent refusal of this request."""


class CursorExpired(CentralRejected):
    """410 Gone: the cursor is older than the change log's retention; resync from a snapshot."""


class PayloadTooLarge(CentralRejected):
    """413: the request body is over central's limit; split it."""
