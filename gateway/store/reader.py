"""Read-only access to the store from async code.

Reads run on a small pool of read-only connections in their own threads, so they never
block the event loop and never wait behind the writer (WAL lets them read the last
committed state while a batch is being written). Point lookups that take a fraction of a
millisecond may instead run on the event loop's own thread (`run_here`), where they skip
the hop to a pool thread and back, which costs more than such a read.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self, TypeVar, cast

from gateway.store.db import StrPath, open_reader
from gateway.store.errors import StoreError

T = TypeVar("T")

# Reads at the edge are small lookups (member by identifier, balance fold); two
# connections let one slow report run without stalling a kiosk lookup.
DEFAULT_CONNECTIONS = 2


class Reader:
    """A pool of read-only connections; `await reader.run(fn)` runs `fn(conn)` in a thread.

    Each `run` sees one consistent snapshot of the database. The database must already
    exist (the `Writer` creates and migrates it).
    """

    def __init__(self, path: StrPath, *, connections: int = DEFAULT_CONNECTIONS) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self.path = path
        self.connections = connections
        self._executor: ThreadPoolExecutor | None = None
        self._idle: asyncio.Queue[sqlite3.Connection] = asyncio.Queue()
        self._here: sqlite3.Connection | None = None  # for `run_here`, on the loop's thread
        self._open = False

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        if self._executor is not None:
            raise StoreError("a Reader can be opened only once")
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(self.connections, thread_name_prefix="store-reader")
        try:
            for _ in range(self.connections):
                conn = await loop.run_in_executor(self._executor, open_reader, self.path)
                self._idle.put_nowait(conn)
            self._here = open_reader(self.path)
        except BaseException:
            await self._close_connections(self._idle.qsize())
            raise
        self._open = True

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on a free connection in one read transaction and return its result."""
        if not self._open or self._executor is None:
            raise StoreError("the reader is not open")
        conn = await self._idle.get()
        job = asyncio.get_running_loop().run_in_executor(self._executor, _read_snapshot, conn, fn)

        def give_back(done: asyncio.Future[Any]) -> None:
            # Only once the thread is finished with it, even if the caller was cancelled.
            if not done.cancelled():
                done.exception()  # retrieved here so a cancelled caller's error is not logged
            self._idle.put_nowait(conn)

        job.add_done_callback(give_back)
        return cast(T, await asyncio.shield(job))

    def run_here(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` right here, on the event loop's thread, in one read transaction.

        For point lookups answered in a fraction of a millisecond (a kiosk's member and
        balance): the hop to a pool thread and back costs more than such a read, and with
        Python running one thread at a time the pool thread would mostly hold the loop up
        anyway. Anything that may scan or sort belongs in `run`, which keeps the loop free.
        Call it from the event loop's thread only; `fn` must not call back into the reader.
        """
        if not self._open or self._here is None:
            raise StoreError("the reader is not open")
        return _read_snapshot(self._here, fn)

    async def close(self) -> None:
        """Wait for running reads, then close every connection."""
        if not self._open:
            return
        self._open = False
        if self._here is not None:
            self._here.close()
            self._here = None
        await self._close_connections(self.connections)

    async def _close_connections(self, count: int) -> None:
        executor = self._executor
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        for _ in range(count):
            conn = await self._idle.get()
            await loop.run_in_executor(executor, conn.close)
        await asyncio.to_thread(executor.shutdown)


def _read_snapshot(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    # An explicit transaction makes every statement of `fn` read the same snapshot.
    conn.execute("BEGIN")
    try:
        return fn(conn)
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
