"""What the core knows of central: is it answering right now?

Offline rules (redeem only within central's grant) apply whenever a central is configured
and sync has not just heard from it. Devices ask this object; the sync part attaches its
engine's view when it starts, so devices never depend on the sync package. It fails safe:
with no view attached, or with the sync part's task not running (it died and waits to be
restarted), central counts as offline, whatever the engine said last.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gateway.parts import Part


class EnrolmentRefused(Exception):
    """Central refused an enrolment for good: `code` is `invalid_code`, `code_expired`,
    `too_many_attempts` or another of its refusals."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class EnrolmentUnavailable(Exception):
    """Central could not be asked (unreachable, slow, failing): enrol offline instead."""


class EnrolmentPort(Protocol):
    """Central's enrolment calls, as the core needs them (`cloud_api` enrolMember and
    requestEnrolmentCode); both raise `EnrolmentRefused` or `EnrolmentUnavailable`."""

    async def request_code(self, phone: str) -> dict[str, Any]: ...

    async def enrol(self, enrolment: dict[str, Any]) -> dict[str, Any]: ...


class CentralStatus:
    def __init__(self, *, configured: bool) -> None:
        self.configured = configured
        self._probe: Callable[[], bool] | None = None
        self._part: Part | None = None
        self._enrolment: EnrolmentPort | None = None

    def attach(self, probe: Callable[[], bool], part: Part | None = None,
               enrolment: EnrolmentPort | None = None) -> None:
        """Sync reports reachability through `probe` from now on, while `part` runs, and
        lends central's enrolment calls."""
        self._probe, self._part, self._enrolment = probe, part, enrolment

    def detach(self) -> None:
        self._probe, self._part, self._enrolment = None, None, None

    def enrolment(self) -> EnrolmentPort | None:
        """Central's enrolment calls while central is reachable; None otherwise (a member
        then enrols provisionally, offline)."""
        if not self.configured or self._enrolment is None or not self.online():
            return None
        return self._enrolment

    def online(self) -> bool:
        # Standalone, the local ledger is the authority; with a central, only what sync
        # has just confirmed, from a sync task that is alive, counts as reachable.
        if not self.configured:
            return True
        if self._probe is None or (self._part is not None and not self._part.running):
            return False
        return self._probe()
