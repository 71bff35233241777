"""The local API's view of the parts the core does not know: device states, sync's state
and the POS replay, handed to `gateway/http` as its `Sources`; and the API's routes."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from gateway.app.keys import BLE, KIOSK, LEDGER, POS, SETTINGS, SOURCES, SYNC
from gateway.http import routes
from gateway.http.sources import Json
from gateway.receipts import Outcome, ReceiptPipeline


class AppSources:
    """Reads each part through its key, so a part the configuration does not enable is
    simply absent from what the API shows."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def devices(self) -> dict[str, list[Json]]:
        app = self._app
        pos = app.get(POS)
        kiosks = app.get(KIOSK)
        ble = app.get(BLE)
        return {
            "pos": pos.states() if pos is not None else [],
            "kiosks": [{"id": kid, "online": state.online, "boot": state.boot,
                        "since": state.since.isoformat(),
                        "last_seen": state.last_seen.isoformat()}
                       for kid, state in sorted(kiosks.kiosks.items())] if kiosks else [],
            "ble_receivers": [
                {"id": rid, "zone": state.zone, "online": state.online,
                 "batches": state.batches, "adverts": state.adverts,
                 # last_seen is on the service's monotonic clock: shown as an age
                 "seen_s_ago": (round(ble.clock() - state.last_seen, 1)
                                if state.last_seen is not None else None)}
                for rid, state in sorted(ble.receivers.items())] if ble else [],
        }

    async def sync_status(self) -> Json | None:
        engine = self._app.get(SYNC)
        if engine is None:
            return None
        status = (await engine.status()).as_json()
        return {**status, "online": engine.online}

    async def replay(self, ids: Sequence[int]) -> list[Outcome]:
        pos = self._app.get(POS)
        if pos is not None:
            pipeline = pos.pipeline
        else:  # no port configured: templates of the settings all the same, as the CLI
            from gateway.app.pos import receipt_parser  # noqa: PLC0415 - loads devices.pos

            pipeline = ReceiptPipeline(self._app[LEDGER],
                                       receipt_parser(self._app[SETTINGS]))
        return await pipeline.replay_dead_letters(ids)


def setup(app: web.Application) -> None:
    app[SOURCES] = AppSources(app)
    routes.add_routes(app)
