"""What the local API needs from the parts the core does not know: device and sync states,
the replay of a POS dead letter, and the tills' sales and requests posted over HTTP (read
with the POS device's own functions). The composition root passes one in (`SOURCES`)."""

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

    async def pos_sale(self, store_id: str, pos_id: str, raw: bytes) -> Outcome:
        """Read a sale posted by a till (the body, as on framed and jsonl) and commit it
        through the receipt pipeline; a duplicate's outcome carries the first one's points
        and member."""
        ...

    async def pos_request(self, kind: str, store_id: str, pos_id: str,
                          payload: Json) -> Json:
        """Answer a till's `authorize` or `void` (docs/pos.md) with the core's holds."""
        ...
