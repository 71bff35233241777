"""The POS part: the receipt pipeline and one supervised task per port."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web

from devices.pos.metrics import pos_families
from devices.pos.reading import CaptureReader
from devices.pos.service import PosService
from devices.pos.transport import PortSupervisor
from gateway.app.keys import CENTRAL, LEDGER, METRICS, POS, READER, SETTINGS
from gateway.app.supervisor import part_task
from gateway.holds.service import Holds
from gateway.receipts import ReceiptPipeline
from gateway.receipts.pipeline import Parser
from gateway.settings import Settings

log = logging.getLogger(__name__)


def _port_check(supervisor: PortSupervisor) -> str | None:
    state = supervisor.state
    if state.up:
        return None
    return f"port {state.path} closed: {state.last_error or 'not opened yet'}"


def receipt_parser(settings: Settings) -> Parser:
    """How the POS part reads a capture: its ports' protocols and the stores' templates.

    The running gateway and `mallgate deadletters replay` parse with the same one."""
    return CaptureReader(settings.pos, settings.loyalty.tz)


async def pos_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pos = settings.pos
    online = app[CENTRAL].online
    pipeline = ReceiptPipeline(app[LEDGER], receipt_parser(settings), reader=app[READER],
                               central_online=online,
                               refund_window_days=pos.refund_window_days,
                               refund_restores_coupons=pos.refund_restores_coupons)
    holds = Holds(app[LEDGER], central_online=online, expiry_s=pos.hold_s,
                  mall=settings.site.mall_id, site=settings.site.gateway_id)
    recovered = await pipeline.recover()
    if recovered:
        log.info("processed %s POS captures left from the last run", len(recovered))
    supervisors = [PortSupervisor(port, pipeline, reopen_max=pos.reopen_max_s,
                                  idle_gap=pos.idle_gap_s, holds=holds)
                   for port in pos.ports]
    service = app[POS] = PosService(pipeline, supervisors, holds)
    app[METRICS].add(lambda: pos_families(service))
    async with contextlib.AsyncExitStack() as stack:
        for supervisor in supervisors:
            await stack.enter_async_context(part_task(
                app, f"pos:{supervisor.port.path}", supervisor.run,
                check=partial(_port_check, supervisor)))
        yield
