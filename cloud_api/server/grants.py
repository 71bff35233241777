"""Offline allowances: which accounts a change page grants afresh, and how often."""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet

# How often a gateway gets a fresh offline allowance for one account, at most.
GRANT_REFRESH_S = 30.0
GRANTS_PER_PAGE = 500  # folds one change page may cost, at most
GRANT_MEMORY = 200_000  # (mall, gateway, account) remembered before old ones are dropped


def to_grant(others: set[str], own: set[str], caught_up: bool) -> set[str]:
    """Accounts whose offline allowance a change page grants afresh.

    Accounts touched by other channels always (their spending must reach the edge's
    limit). Accounts touched only by the gateway's own entries only once it is caught up:
    a stale grant is safe (the edge subtracts its burns central had not counted), and
    folding every account of a bulk backlog page by page would cost central dearly.
    """
    return others | own if caught_up else set(others)


class GrantThrottle:
    """At most one fresh allowance per gateway and account every `every_s` seconds, and
    none lost.

    Granting folds the account's whole ledger. A stale grant is safe (the edge subtracts
    every burn central had not counted when it granted), so a gateway draining a backlog,
    or a busy account, does not make central fold the same ledgers page after page. But a
    grant that comes too soon is deferred, not dropped: it is given by a later pull of the
    gateway once due, even a pull with nothing new (a long poll returns with it). Changes
    made centrally (an adjustment, an online redemption, a member's profile) are rare and
    are what an operator expects to see at the edge at once: they are granted at once.
    Deferred grants live in this worker's memory; a gateway whose pulls reach another
    worker gets them there when the account changes next.
    """

    def __init__(self, every_s: float = GRANT_REFRESH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._last: dict[tuple[str, str, str], float] = {}
        self._pending: dict[tuple[str, str], set[str]] = {}

    def due(self, mall: str, gateway: str, accounts: set[str], *,
            urgent: AbstractSet[str] = frozenset()) -> list[str]:
        """The accounts to grant now: every `urgent` one, and of `accounts` and those
        deferred before, the ones not granted within `every_s` (at most
        `GRANTS_PER_PAGE`); the rest are deferred."""
        now = self._clock()
        if len(self._last) > GRANT_MEMORY:
            self._last = {k: t for k, t in self._last.items() if now - t < self.every_s}
        pending = self._pending.setdefault((mall, gateway), set())
        pending |= accounts - urgent
        due = sorted(urgent)
        for account in sorted(pending):
            last = self._last.get((mall, gateway, account))
            if len(due) < GRANTS_PER_PAGE and (last is None or now - last >= self.every_s):
                due.append(account)
        pending.difference_update(due)
        if len(pending) > GRANT_MEMORY:  # a stale grant is safe: forget the excess
            self._pending[(mall, gateway)] = set(sorted(pending)[:GRANT_MEMORY])
        for account in due:
            self._last[(mall, gateway, account)] = now
        return due
