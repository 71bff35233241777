"""What the local API needs from the parts the core does not know: device and sync states,
and the replay of a POS dead letter. The composition root passes one in (`SOURCES`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.receipts import Outcome

# JSON-ready values: what a source hands over goes out as it is.
Json = dict[str, object]


class Sources(Protocol):
    def devices(self) -> dict[str, list[Json]]:
        """`pos` ports, `kiosks` and `ble_receivers`, each a list of states; a kind the
        configuration does not enable is an empty list."""
        ...

    async def sync_status(self) -> Json | None:
        """Sync's state (mode, lag, outbox depth...), or None when sync does not run."""
        ...

    async def replay(self, ids: Sequence[int]) -> list[Outcome]:
        """Run these POS dead letters through the current receipt templates again."""
        ...
