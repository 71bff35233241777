"""What the dashboard shows, as one JSON object: parts, devices, sync, events per minute,
dead letters, recent welcome offers and redemptions.

One snapshot is built at most once a second however many dashboards watch, and its store
reads are bounded (the newest rows only), so watching never slows the gateway down.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from gateway.app.keys import NOW, PARTS, READER, SETTINGS, SOURCES
from gateway.receipts.rows import utc_text

Json = dict[str, Any]

MINUTES = 30  # the chart's width
RECENT = 10  # welcome offers and redemptions listed
# Events per minute count ledger entries among the newest rows only: the ledger has no
# index on its recording time, and a busy mall records far fewer than this in 30 minutes.
SCAN_ROWS = 50_000
MAX_AGE_S = 1.0


def store_figures(conn: sqlite3.Connection, now: datetime) -> Json:
    start = (now - timedelta(minutes=MINUTES - 1)).replace(second=0, microsecond=0)
    counts = dict(conn.execute(
        "SELECT substr(recorded_at, 1, 16), count(*) FROM ledger WHERE rowid > "
        "(SELECT coalesce(max(rowid), 0) FROM ledger) - ? AND recorded_at >= ? GROUP BY 1",
        (SCAN_ROWS, utc_text(start))).fetchall())
    minutes = [utc_text(start + timedelta(minutes=i))[:16] for i in range(MINUTES)]
    (pending,) = conn.execute(
        "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL").fetchone()
    offers = conn.execute(
        "SELECT d.delivered_at, d.zone_id, d.offer_id, coalesce(o.title, ''), d.member_id "
        "FROM offer_deliveries d LEFT JOIN offers o ON o.id = d.offer_id "
        "ORDER BY d.id DESC LIMIT ?", (RECENT,)).fetchall()
    redemptions = conn.execute(
        "SELECT recorded_at, account_id, -points, source_type, reason FROM ledger "
        "WHERE rowid > (SELECT coalesce(max(rowid), 0) FROM ledger) - ? AND kind = 'BURN' "
        "ORDER BY rowid DESC LIMIT ?", (SCAN_ROWS, RECENT)).fetchall()
    return {
        "events_per_minute": [{"minute": m, "count": int(counts.get(m, 0))} for m in minutes],
        "dead_letters": {"pending": int(pending)},
        "welcome_offers": [{"at": r[0], "zone": r[1], "offer_id": r[2], "title": r[3],
                            "member_id": r[4]} for r in offers],
        "redemptions": [{"at": r[0], "account_id": r[1], "points": abs(int(r[2])),
                         "channel": r[3], "reason": r[4]} for r in redemptions],
    }


async def build(app: web.Application) -> Json:
    now: Callable[[], datetime] = app[NOW]
    at = now()
    settings = app[SETTINGS]
    sources = app.get(SOURCES)
    figures = await app[READER].run(lambda conn: store_figures(conn, at))
    return {
        "at": at.isoformat(),
        "site": {"mall_id": settings.site.mall_id, "gateway_id": settings.site.gateway_id,
                 "name": settings.site.name or settings.site.mall_id},
        "parts": [{"name": s.name, **s.as_dict()} for s in app[PARTS].statuses()],
        "devices": sources.devices() if sources else {"pos": [], "kiosks": [],
                                                      "ble_receivers": []},
        "sync": await sources.sync_status() if sources else None,
        **figures,
    }


class Snapshots:
    """The latest snapshot, rebuilt when older than `MAX_AGE_S`; concurrent callers share
    one build."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._latest: tuple[float, Json] | None = None
        self._lock = asyncio.Lock()
        # Set when the gateway shuts down: open event streams end at once rather than
        # hold the shutdown until their next tick.
        self.closing = asyncio.Event()

    async def get(self) -> Json:
        loop = asyncio.get_running_loop()
        async with self._lock:
            if self._latest is None or loop.time() - self._latest[0] > MAX_AGE_S:
                self._latest = (loop.time(), await build(self._app))
            return self._latest[1]
