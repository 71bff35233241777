"""Offline allowances: which accounts a change page grants afresh, and how often."""

from __future__ import annotations

import time
from collections.abc import Callable

# How often a gateway gets a fresh offline allowance for one account, at most.
GRANT_REFRESH_S = 30.0
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
    """At most one fresh allowance per gateway and account every `every_s` seconds.

    Granting folds the account's whole ledger. A stale grant is safe (the edge subtracts
    every burn central had not counted when it granted), so a gateway draining a backlog,
    or a busy account, does not make central fold the same ledgers page after page.
    """

    def __init__(self, every_s: float = GRANT_REFRESH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._last: dict[tuple[str, str, str], float] = {}

    def due(self, mall: str, gateway: str, accounts: set[str]) -> list[str]:
        now = self._clock()
        if len(self._last) > GRANT_MEMORY:
            self._last = {k: t for k, t in self._last.items() if now - t < self.every_s}
        due = []
        for account in sorted(accounts):
            last = self._last.get((mall, gateway, account))
            if last is None or now - last >= self.every_s:
                self._last[(mall, gateway, account)] = now
                due.append(account)
        return due
