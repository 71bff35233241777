"""The long-running parts of the gateway and the state each one is in.

A part is a task the configuration asked for (sync, the kiosk service, a POS port, a BLE
adapter...). Its state comes from two places: whether its task is alive, which the
application's supervisor knows, and, while it is, the part's own health check (a port
that is missing, a broker that does not answer, central that has gone quiet), which only
the part knows. `/readyz`, `/metrics` and the risk rules read the result here, so none of
them can say "up" about a part whose task has died.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum

from gateway.clock import Clock, utc_now


class PartState(StrEnum):
    STARTING = "starting"  # its task is starting, or waits to be restarted
    UP = "up"
    DEGRADED = "degraded"  # its task runs, but it cannot do its job (the reason says why)
    DOWN = "down"  # its task ended by an error; the reason is the error
    STOPPED = "stopped"  # shut down on purpose


class Policy(Enum):
    RESTART = "restart"  # start the task again after a backoff
    STOP_APP = "stop_app"  # without it the gateway must not serve: stop the application


@dataclass(frozen=True, slots=True)
class Restarts:
    """Full-jitter backoff between restarts of a part's task; a run that lasted
    `healthy_after_s` counts as healthy and starts the backoff afresh."""

    initial_s: float = 1.0
    max_s: float = 60.0
    healthy_after_s: float = 60.0


DEFAULT_RESTARTS = Restarts()


# A running part's own view of its health: None when it is doing its job, else the reason.
Check = Callable[[], "str | None"]


@dataclass(frozen=True, slots=True)
class PartStatus:
    name: str
    state: PartState
    reason: str | None
    since: datetime
    restarts: int

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state.value, "reason": self.reason,
                "since": self.since.isoformat(), "restarts": self.restarts}


class Part:
    """One part's state. The supervisor moves the task's state; `check` is the part's."""

    def __init__(self, name: str, *, check: Check | None = None,
                 now: Clock = utc_now) -> None:
        self.name = name
        self.check = check
        self._now = now
        self._state = PartState.STARTING
        self._reason: str | None = None
        self._since = now()
        self.restarts = 0

    @property
    def running(self) -> bool:
        """Its task is alive (whatever its own check says)."""
        return self._state is PartState.UP

    def _move(self, state: PartState, reason: str | None) -> None:
        if (state, reason) != (self._state, self._reason):
            self._state, self._reason, self._since = state, reason, self._now()

    def started(self) -> None:
        self._move(PartState.UP, None)

    def failed(self, reason: str) -> None:
        self._move(PartState.DOWN, reason)

    def restarting(self, reason: str) -> None:
        self.restarts += 1
        self._move(PartState.STARTING, reason)

    def stopped(self) -> None:
        self._move(PartState.STOPPED, None)

    def status(self) -> PartStatus:
        state, reason = self._state, self._reason
        if state is PartState.UP and self.check is not None:
            try:
                problem = self.check()
            except Exception as exc:
                problem = f"health check failed: {type(exc).__name__}: {exc}"
            if problem is not None:
                state, reason = PartState.DEGRADED, problem
        return PartStatus(self.name, state, reason, self._since, self.restarts)


class Parts:
    """Every part the configuration enabled, in the order they were added."""

    def __init__(self, *, now: Clock = utc_now) -> None:
        self._parts: dict[str, Part] = {}
        self._now = now

    def add(self, name: str, *, check: Check | None = None) -> Part:
        if name in self._parts:
            raise ValueError(f"part {name!r} is already registered")
        part = self._parts[name] = Part(name, check=check, now=self._now)
        return part

    def remove(self, part: Part) -> None:
        self._parts.pop(part.name, None)

    def get(self, name: str) -> Part | None:
        return self._parts.get(name)

    def __iter__(self) -> Iterator[Part]:
        return iter(list(self._parts.values()))

    def statuses(self) -> list[PartStatus]:
        return [part.status() for part in self]

    def not_up(self) -> list[PartStatus]:
        return [status for status in self.statuses() if status.state is not PartState.UP]
