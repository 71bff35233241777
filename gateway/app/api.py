"""The local API's view of the parts the core does not know: device states, sync's state,
the POS replay and the tills' sales and requests over HTTP, handed to `gateway/http` as
its `Sources`; and the API's routes."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace

from aiohttp import web

from gateway.app.keys import BLE, CENTRAL, KIOSK, LEDGER, POS, READER, SETTINGS, SOURCES, SYNC
from gateway.holds.service import Holds
from gateway.http import routes
from gateway.http.sources import Json
from gateway.loyalty import EntryKind
from gateway.receipts import Capture, Outcome, ReceiptPipeline, sale_key


class AppSources:
    """Reads each part through its key, so a part the configuration does not enable is
    simply absent from what the API shows."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._own: tuple[ReceiptPipeline, Holds] | None = None

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

    def _pos(self) -> tuple[ReceiptPipeline, Holds]:
        """The POS part's pipeline and holds; without ports, one of each made as the POS
        part would (templates of the settings all the same, as the CLI)."""
        pos = self._app.get(POS)
        if pos is not None and pos.holds is not None:
            return pos.pipeline, pos.holds
        if self._own is None:
            from gateway.app.pos import receipt_parser  # noqa: PLC0415 - loads devices.pos

            app = self._app
            settings, online = app[SETTINGS], app[CENTRAL].online
            self._own = (
                ReceiptPipeline(app[LEDGER], receipt_parser(settings), reader=app[READER],
                                central_online=online,
                                refund_window_days=settings.pos.refund_window_days,
                                refund_restores_coupons=settings.pos.refund_restores_coupons),
                Holds(app[LEDGER], central_online=online, expiry_s=settings.pos.hold_s,
                      mall=settings.site.mall_id, site=settings.site.gateway_id))
        return self._own

    async def replay(self, ids: Sequence[int]) -> list[Outcome]:
        return await self._pos()[0].replay_dead_letters(ids)

    async def pos_sale(self, store_id: str, pos_id: str, raw: bytes) -> Outcome:
        pipeline, _ = self._pos()
        outcome = await pipeline.ingest(store_id=store_id, pos_id=pos_id, mode="http",
                                        raw=raw)
        if outcome.status != "duplicate":
            return outcome
        # The first result: the stored receipt's member and what its sale earned.
        receipt = pipeline.parser(Capture(0, store_id, pos_id, "http", raw, ""))
        key = sale_key(store_id, pos_id, receipt.receipt_no, receipt.business_date)

        def first(conn: sqlite3.Connection) -> tuple[str | None, int]:
            row = conn.execute("SELECT member_id FROM receipts WHERE store_id = ? AND "
                               "pos_id = ? AND receipt_no = ? AND business_date = ?",
                               (store_id, pos_id, receipt.receipt_no,
                                receipt.business_date.isoformat())).fetchone()
            earned = conn.execute("SELECT coalesce(sum(points), 0) FROM ledger WHERE "
                                  "source_key = ? AND kind = ?",
                                  (key, EntryKind.EARN.value)).fetchone()
            return (row[0] if row else None), int(earned[0])

        member_id, points = await self._app[READER].run(first)
        return replace(outcome, member_id=member_id, points=points)

    async def pos_request(self, kind: str, store_id: str, pos_id: str,
                          payload: Json) -> Json:
        from devices.pos.errors import FrameError  # noqa: PLC0415 - loads devices.pos
        from devices.pos.requests import authorize_request, void_request  # noqa: PLC0415

        _, holds = self._pos()
        try:
            if kind == "authorize":
                return await holds.authorize(authorize_request(
                    payload, store_id=store_id, pos_id=pos_id))
            return await holds.void(void_request(payload, store_id=store_id, pos_id=pos_id))
        except FrameError as exc:
            return {"type": kind, "status": "refused", "error": exc.code, "msg": exc.reason}


def setup(app: web.Application) -> None:
    app[SOURCES] = AppSources(app)
    routes.add_routes(app)
