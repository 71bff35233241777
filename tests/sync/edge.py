"""A gateway's store, ledger and sync engine, wired to a central under test."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from cloud_api.client import CentralClient
from gateway.clock import utc_now
from gateway.ledger import Ledger
from gateway.loyalty import LoyaltyRules
from gateway.loyalty.hlc import HybridClock
from gateway.settings.sync import SyncSettings
from gateway.store import Reader, Writer
from sync.engine import SyncEngine

T = TypeVar("T")
FAST = SyncSettings(long_poll_s=0, push_interval_s=0.05, backoff_initial_s=0.01,
                    backoff_max_s=0.2, heartbeat_s=0.5)


@dataclass
class Edge:
    writer: Writer
    reader: Reader
    ledger: Ledger
    client: CentralClient
    engine: SyncEngine

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self.reader.run(fn)

    async def scalar(self, sql: str, *args: Any) -> Any:
        return await self.reader.run(lambda c: c.execute(sql, args).fetchone()[0])


@contextlib.asynccontextmanager
async def open_edge(path: Path, url: str, token: str, *, gateway_id: str = "gw-test",
                    settings: SyncSettings = FAST, timeout_s: float = 5.0,
                    now: Callable[[], datetime] = utc_now) -> AsyncIterator[Edge]:
    clock = HybridClock(gateway_id)
    async with Writer(path) as writer, Reader(path) as reader, \
            CentralClient(url, token, timeout_s=timeout_s) as client:
        ledger = Ledger(writer, reader, site=gateway_id, clock=clock, rules=LoyaltyRules())
        engine = SyncEngine(client, writer, reader, gateway_id=gateway_id, settings=settings,
                            clock=clock, now=now)
        yield Edge(writer, reader, ledger, client, engine)
