"""What the core knows of central: is it answering right now?

Offline rules (redeem only within central's grant) apply whenever a central is configured
and sync has not just heard from it. Devices ask this object; the sync part attaches its
engine's view when it starts, so devices never depend on the sync package. It fails safe:
with no view attached, or with the sync part's task not running (it died and waits to be
restarted), central counts as offline, whatever the engine said last.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.parts import Part


class CentralStatus:
    def __init__(self, *, configured: bool) -> None:
        self.configured = configured
        self._probe: Callable[[], bool] | None = None
        self._part: Part | None = None

    def attach(self, probe: Callable[[], bool], part: Part | None = None) -> None:
        """Sync reports reachability through `probe` from now on, while `part` runs."""
        self._probe, self._part = probe, part

    def detach(self) -> None:
        self._probe, self._part = None, None

    def online(self) -> bool:
        # Standalone, the local ledger is the authority; with a central, only what sync
        # has just confirmed, from a sync task that is alive, counts as reachable.
        if not self.configured:
            return True
        if self._probe is None or (self._part is not None and not self._part.running):
            return False
        return self._probe()
