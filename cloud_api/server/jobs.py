"""Central's hourly jobs: each runs for every mall once an hour, for as long as the app.

One mall's failure is logged and the others go on; a failure to list the malls (the
database away) is logged and tried again at the next hour. A job task never dies behind
a serving central.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from cloud_api.server.storage import Storage

log = logging.getLogger(__name__)

HOUR_S = 3600.0


async def every_hour_per_mall(storage: Storage, what: str,
                              job: Callable[[str], Awaitable[object]], *,
                              interval_s: float = HOUR_S) -> None:
    """Run `job(mall_id)` for every mall, then wait `interval_s`, for ever. `what` names
    the job in the log."""
    while True:
        try:
            malls = await storage.mall_ids()
        except Exception:  # the database away: the next hour tries again
            log.exception("%s: the malls could not be listed; retried in an hour", what)
            malls = []
        for mall_id in malls:
            try:
                await job(mall_id)
            except Exception:  # one mall's failure must not stop the others'
                log.exception("mall %s: %s failed; retried in an hour", mall_id, what)
        await asyncio.sleep(interval_s)
