"""The POS part of the gateway application: the receipt pipeline and one supervisor per port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from devices.pos.metrics import pos_families
from devices.pos.reading import CaptureReader
from devices.pos.transport import PortSupervisor
from gateway.keys import LEDGER, METRICS, POS, READER, SETTINGS
from gateway.receipts import ReceiptPipeline

log = logging.getLogger(__name__)


class PosService:
    """The running POS ports and their pipeline, for the dashboard and metrics."""

    def __init__(self, pipeline: ReceiptPipeline, supervisors: list[PortSupervisor]) -> None:
        self.pipeline = pipeline
        self.supervisors = supervisors

    def states(self) -> list[dict[str, object]]:
        return [s.state.as_dict() for s in self.supervisors]


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped", task.get_name(), exc_info=task.exception())


async def pos_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pos = settings.pos
    if not pos.ports:
        yield
        return
    pipeline = ReceiptPipeline(app[LEDGER], CaptureReader(pos, settings.loyalty.tz),
                               reader=app[READER])
    recovered = await pipeline.recover()
    if recovered:
        log.info("processed %s POS captures left from the last run", len(recovered))
    supervisors = [PortSupervisor(port, pipeline, reopen_max=pos.reopen_max_s,
                                  idle_gap=pos.idle_gap_s) for port in pos.ports]
    service = app[POS] = PosService(pipeline, supervisors)
    app[METRICS].add(lambda: pos_families(service))
    tasks = [asyncio.create_task(s.run(), name=f"pos-port:{s.port.path}") for s in supervisors]
    for task in tasks:
        task.add_done_callback(_report)
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
