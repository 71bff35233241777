"""The sync engine's mode, the one table of how it may change, and when central is online.

Like h11's `_state.py`, this is a plain object with no I/O: the engine tells it when
central answered or failed and what time it is, and carries out the changes it decides
(the log line, the `sync_state` row). Every change of mode is checked against
`TRANSITIONS`; a change not in the table is a bug and raises.

Online is not a mode some loop declares but a fact read from the evidence: central answered
a push (or heartbeat) and a pull, both within `fresh_s` of now. Old evidence is no evidence,
so `online()` turns false by itself when central falls silent; the mode follows at the
engine's next look (`due`), which is when the change is logged and stored.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final


class Mode(enum.StrEnum):
    STOPPED = "stopped"  # the engine is not running: it vouches for nothing
    STARTING = "starting"  # running, central not yet heard both ways
    ONLINE = "online"  # central answered both ways recently
    OFFLINE = "offline"  # central failed, or has not answered within the bound
    RESYNCING = "resyncing"  # the change feed expired: applying central's snapshot
    AUTH_FAILED = "auth_failed"  # central refused the token: waits for an operator


class Direction(enum.Enum):
    PUSH = "push"  # outbox batches and heartbeats
    PULL = "pull"  # the change feed and the snapshot


_ANY_RUNNING: Final = frozenset({Mode.ONLINE, Mode.OFFLINE, Mode.RESYNCING,
                                 Mode.AUTH_FAILED, Mode.STOPPED})

# From each mode, the modes it may change to. A refused token stays the mode until central
# answers both ways again: a network failure meanwhile says nothing about the token, and
# an operator must still see why sync stopped.
TRANSITIONS: Final[Mapping[Mode, frozenset[Mode]]] = MappingProxyType({
    Mode.STOPPED: frozenset({Mode.STARTING}),
    Mode.STARTING: _ANY_RUNNING,
    Mode.ONLINE: _ANY_RUNNING - {Mode.ONLINE},
    Mode.OFFLINE: _ANY_RUNNING - {Mode.OFFLINE},
    Mode.RESYNCING: _ANY_RUNNING - {Mode.RESYNCING},
    Mode.AUTH_FAILED: frozenset({Mode.ONLINE, Mode.RESYNCING, Mode.STOPPED}),
})


class IllegalTransition(RuntimeError):
    """A change of mode the table does not allow: a bug in the engine, never a fault of
    central's."""

    def __init__(self, old: Mode, new: Mode) -> None:
        super().__init__(f"sync mode cannot change from {old} to {new}")
        self.old = old
        self.new = new


@dataclass(frozen=True, slots=True)
class Change:
    old: Mode
    new: Mode
    at: datetime
    # Set when central comes back: how long since sync went offline or lost its token.
    outage_s: float | None = None


class SyncMode:
    def __init__(self, fresh_s: float) -> None:
        self.fresh_s = fresh_s
        self.mode = Mode.STOPPED
        self.since: datetime | None = None
        self.last_error: str | None = None
        self._answered: dict[Direction, datetime] = {}
        self._outage_since: datetime | None = None

    @property
    def running(self) -> bool:
        return self.mode is not Mode.STOPPED

    # -- evidence -----------------------------------------------------------------------
    def answered(self, direction: Direction, now: datetime) -> None:
        self._answered[direction] = now

    def failed(self, direction: Direction) -> None:
        """Central did not answer in `direction`: what it said before no longer counts,
        or an answer the other way would bring sync back online while this one fails."""
        self._answered.pop(direction, None)

    def note(self, error: str) -> None:
        """The latest error, whatever the mode; stored with the next change of mode."""
        self.last_error = error

    def fresh(self, direction: Direction, now: datetime) -> bool:
        at = self._answered.get(direction)
        if at is None:
            return False
        # An answer from the future is a clock stepped back: not trusted until the next.
        return 0.0 <= (now - at).total_seconds() <= self.fresh_s

    def online(self, now: datetime) -> bool:
        return (self.mode is Mode.ONLINE and self.fresh(Direction.PUSH, now)
                and self.fresh(Direction.PULL, now))

    # -- what the evidence calls for ----------------------------------------------------
    def due(self, now: datetime, *, resynced: bool = False) -> tuple[Mode, str | None] | None:
        """The change the evidence calls for at `now`, with the reason for going offline;
        None when the mode is right. A resync keeps its mode until it ends (`resynced`)."""
        if not self.running or (self.mode is Mode.RESYNCING and not resynced):
            return None
        stale = [d.value for d in Direction if not self.fresh(d, now)]
        if not stale:
            return None if self.mode is Mode.ONLINE else (Mode.ONLINE, None)
        silent = f"no answer from central to a {' or a '.join(stale)} within {self.fresh_s:g} s"
        if self.mode in {Mode.ONLINE, Mode.RESYNCING}:
            return Mode.OFFLINE, silent
        if self.mode is Mode.STARTING and self.since is not None \
                and (now - self.since).total_seconds() > self.fresh_s:
            return Mode.OFFLINE, silent
        return None

    def after_failure(self, *, refused: bool) -> Mode | None:
        """The mode after central failed to answer (`refused`: it refused the token)."""
        if not self.running:
            return None  # a one-off sync outside `run`: its caller gets the error
        if refused:
            return Mode.AUTH_FAILED
        if self.mode is Mode.AUTH_FAILED:
            return None
        return Mode.OFFLINE

    # -- the one way the mode changes ---------------------------------------------------
    def move(self, new: Mode, now: datetime, error: str | None = None) -> Change | None:
        """Change to `new` at `now` (None if already there), keeping `error` as the last
        one. Raises `IllegalTransition` for a change not in `TRANSITIONS`."""
        if error is not None:
            self.last_error = error
        old = self.mode
        if new is old:
            return None
        if new not in TRANSITIONS[old]:
            raise IllegalTransition(old, new)
        outage_s = None
        if new in {Mode.OFFLINE, Mode.AUTH_FAILED} and self._outage_since is None:
            self._outage_since = now
        elif new is Mode.ONLINE and self._outage_since is not None:
            outage_s = (now - self._outage_since).total_seconds()
            self._outage_since = None
        elif new in {Mode.STARTING, Mode.STOPPED}:
            self._outage_since = None
        if new is Mode.STOPPED:
            self._answered.clear()
        self.mode, self.since = new, now
        return Change(old, new, now, outage_s)


def describe(change: Change, last_error: str | None) -> tuple[int, str]:
    """The log level and message of a change: one line per change, never per retry."""
    new = change.new
    if new is Mode.ONLINE:
        if change.outage_s is not None:
            return logging.INFO, f"sync with central recovered after {change.outage_s:.0f} s"
        return logging.INFO, "sync with central online"
    if new is Mode.OFFLINE:
        return logging.WARNING, f"sync with central offline: {last_error}"
    if new is Mode.AUTH_FAILED:
        return logging.ERROR, (f"central refused this gateway's token ({last_error}): "
                               "sync waits until it is fixed")
    if new is Mode.RESYNCING:
        return logging.INFO, "sync applying central's snapshot"
    return logging.INFO, f"sync {new}"
