"""What the core knows of central: is it answering right now?

Offline rules (redeem only within central's grant) apply whenever a central is configured
and sync has not just heard from it. Devices ask this object; sync attaches its engine's
view when it starts, so devices never depend on the sync package.
"""

from __future__ import annotations

from collections.abc import Callable


class CentralStatus:
    def __init__(self, *, configured: bool) -> None:
        self.configured = configured
        self._probe: Callable[[], bool] | None = None

    def attach(self, probe: Callable[[], bool]) -> None:
        """Sync reports reachability through `probe` from now on."""
        self._probe = probe

    def detach(self) -> None:
        self._probe = None

    def online(self) -> bool:
        # Standalone, the local ledger is the authority; with a central, only what sync
        # has just confirmed counts as reachable.
        if not self.configured:
            return True
        return self._probe is not None and self._probe()
