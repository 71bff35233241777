"""The single writer: one thread owns the write connection and commits in groups.

Producers on the event loop `await writer.submit(fn)`. The writer thread takes as many
queued operations as are ready, runs each `fn(conn)` inside its own SAVEPOINT of one
transaction, and COMMITs once, so a burst of events costs one fsync instead of one each.
A producer's future resolves only after that COMMIT returned: when `submit` returns, the
write is durable, and the caller may acknowledge its source.

    async with Writer(path) as writer:
        entry_id = await writer.submit(lambda conn: insert_entry(conn, entry))
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from importlib.resources.abc import Traversable
from types import TracebackType
from typing import Any, Self, TypeVar, cast

from gateway.store.checkpointer import Checkpointer, CheckpointStats
from gateway.store.db import StrPath, open_writer
from gateway.store.errors import StoreError, WriterClosedError
from gateway.store.migrations import migrate

T = TypeVar("T")

# Large enough to amortise one fsync over a burst, small enough that one batch's
# transaction stays short and readers see new data promptly.
DEFAULT_BATCH_MAX = 512
# After the first op arrives, wait this long for more before running the batch. Zero
# takes whatever is queued: ops pile up while the previous batch commits, so batches
# grow with the load by themselves, and in measurements any wait only added latency.
# A few ms trade latency for fewer fsyncs under light load.
DEFAULT_BATCH_WAIT_MS = 0.0
# Ops submitted but not yet committed. Beyond this, `submit` waits (back-pressure):
# sales and redemptions are never dropped.
DEFAULT_QUEUE_MAX = 10_000


@dataclass
class WriterStats:
    """Counters for metrics. `Writer.stats` returns a snapshot.

    A batch's counters are updated before its producers resume.
    """

    batches: int = 0  # batches committed
    batches_failed: int = 0  # batches rolled back as a whole (BEGIN or COMMIT failed)
    ops: int = 0  # operations committed
    ops_failed: int = 0  # operations that raised, or whose batch was rolled back
    last_batch_size: int = 0
    queue_depth: int = 0  # operations submitted and not yet taken by the writer thread


@dataclass(eq=False, slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Outcome:
    op: _Op
    value: Any = None
    error: BaseException | None = None


class _State(Enum):
    NEW = auto()
    OPEN = auto()
    CLOSING = auto()
    CLOSED = auto()


class Writer:
    """Owns the database's only write connection; see the module docstring.

    Bound to the event loop that opened it. Opening runs pending migrations; closing waits
    for every operation already submitted, then closes the connection.
    """

    def __init__(
        self,
        path: StrPath,
        *,
        batch_max: int = DEFAULT_BATCH_MAX,
        batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
        queue_max: int = DEFAULT_QUEUE_MAX,
        migrations_dir: Traversable | None = None,
    ) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        if batch_wait_ms < 0:
            raise ValueError("batch_wait_ms must not be negative")
        if queue_max < 1:
            raise ValueError("queue_max must be at least 1")
        self.path = path
        self.batch_max = batch_max
        self.batch_wait_ms = batch_wait_ms
        self.queue_max = queue_max
        self.migrations_applied: list[int] = []
        self._checkpointer = Checkpointer(path)
        self._migrations_dir = migrations_dir
        self._stats = WriterStats()
        self._state = _State.NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Bounds ops submitted and not yet resolved; a full writer makes `submit` wait.
        self._slots = asyncio.Semaphore(queue_max)
        # Loop side: ops submitted during the current loop iteration. They are handed to
        # the thread as one list, so the thread wakes once per iteration, not once per op
        # (each wake-up is a fight for the GIL with the producers).
        self._outgoing: list[_Op] = []
        self._inbox: queue.Queue[list[_Op] | None] = queue.Queue()
        # Thread side: ops received and not yet run; None in the inbox asks it to stop.
        self._received: collections.deque[_Op] = collections.deque()
        self._stop_requested = False
        # Guards "is the thread still taking ops" together with handing ops over, so no
        # op can be handed over after the thread stopped.
        self._accepting_lock = threading.Lock()
        self._accepting = True
        self._submitted = 0
        self._taken = 0
        self._active_submits = 0
        self._no_active_submits = asyncio.Event()
        self._closed = asyncio.Event()
        self._thread_ended = asyncio.Event()  # set on the loop once the thread is gone

    @property
    def checkpoints(self) -> CheckpointStats:
        return dataclasses.replace(self._checkpointer.stats)

    @property
    def stats(self) -> WriterStats:
        return dataclasses.replace(self._stats, queue_depth=self._submitted - self._taken)

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
        """Start the writer thread, open the database and apply pending migrations."""
        if self._state is not _State.NEW:
            raise StoreError("a Writer can be opened only once")
        self._loop = asyncio.get_running_loop()
        ready: asyncio.Future[list[int]] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._thread_main,
            args=(ready,),
            name="store-writer",
            # A process that exits without closing the writer loses only unacknowledged
            # ops; it must not hang on this thread.
            daemon=True,
        )
        self._state = _State.OPEN
        self._thread.start()
        try:
            self.migrations_applied = await ready
        except BaseException:
            self._state = _State.CLOSED
            self._closed.set()
            self._inbox.put(None)  # stops the thread if it is still starting
            raise
        self._checkpointer.start()

    async def submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in the next batch; return its result once the batch is committed.

        If `fn` raises, only its own changes are rolled back and the exception is raised
        here. If the batch cannot commit, every op in it gets the commit's exception and
        nothing of it was written. `fn` runs on the writer thread and must not BEGIN,
        COMMIT or ROLLBACK. Cancelling the caller stops the wait, not the write: an op
        already queued still runs.
        """
        if self._state is not _State.OPEN:
            raise WriterClosedError("the writer is not open")
        if asyncio.get_running_loop() is not self._loop:
            raise StoreError("submit() called from an event loop other than the writer's")
        self._active_submits += 1
        try:
            await self._slots.acquire()
            future: asyncio.Future[Any] = self._loop.create_future()
            self._outgoing.append(_Op(fn, future))
            self._submitted += 1
            if len(self._outgoing) == 1:
                self._loop.call_soon(self._hand_over)
            return cast(T, await future)
        finally:
            self._active_submits -= 1
            if self._active_submits == 0:
                self._no_active_submits.set()

    async def wait_stopped(self) -> None:
        """Return once the writer thread has ended: after `close()`, or by itself when the
        database failed under it. The gateway treats the latter as fatal."""
        await self._thread_ended.wait()

    async def close(self) -> None:
        """Refuse new ops, wait for every submitted op to commit, then close the database."""
        if self._state is _State.NEW:
            self._state = _State.CLOSED
            self._closed.set()
        if self._state is not _State.OPEN:
            await self._closed.wait()
            return
        self._state = _State.CLOSING
        while self._active_submits:
            self._no_active_submits.clear()
            await self._no_active_submits.wait()
        self._hand_over()  # the op of a producer cancelled just now may still be here
        self._inbox.put(None)
        await asyncio.to_thread(self._checkpointer.stop)
        if self._thread is not None:
            # Closing the last connection checkpoints what is left and removes the WAL.
            await asyncio.to_thread(self._thread.join)
        self._state = _State.CLOSED
        self._closed.set()

    def _hand_over(self) -> None:
        """Give the ops submitted in this loop iteration to the writer thread."""
        ops, self._outgoing = self._outgoing, []
        if not ops:
            return
        with self._accepting_lock:
            if self._accepting:
                self._inbox.put(ops)
                return
        self._taken += len(ops)
        self._stats.ops_failed += len(ops)
        self._resolve([_Outcome(op, error=WriterClosedError("the writer stopped")) for op in ops])

    # --- writer thread -------------------------------------------------------------

    def _thread_main(self, ready: asyncio.Future[list[int]]) -> None:
        conn = self._open_database(ready)
        if conn is None:
            self._stop_accepting()
            return
        try:
            self._serve(conn)
        finally:
            self._stop_accepting()
            _close_quietly(conn)
            self._call_on_loop(self._thread_ended.set)

    def _open_database(self, ready: asyncio.Future[list[int]]) -> sqlite3.Connection | None:
        """Open and migrate the database, reporting the outcome to `open()`."""
        try:
            conn = open_writer(self.path)
        except BaseException as exc:
            self._call_on_loop(_settle, ready, None, exc)
            return None
        try:
            applied = migrate(conn, self._migrations_dir)
            # Checkpoints run on the checkpointer's connection, never inside a commit.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException as exc:
            conn.close()
            self._call_on_loop(_settle, ready, None, exc)
            return None
        self._call_on_loop(_settle, ready, applied, None)
        return conn

    def _serve(self, conn: sqlite3.Connection) -> None:
        while True:
            batch = self._next_batch()
            if batch:
                self._run_batch(conn, batch)
            elif self._stop_requested:
                return

    def _next_batch(self) -> list[_Op]:
        """Up to `batch_max` ops: block until some arrive, then wait `batch_wait_ms` for more."""
        if not self._received and not self._stop_requested:
            self._receive(self._inbox.get())
        deadline = time.monotonic() + self.batch_wait_ms / 1000
        while len(self._received) < self.batch_max and not self._stop_requested:
            remaining = deadline - time.monotonic()
            try:
                handed = self._inbox.get(block=remaining > 0, timeout=max(remaining, 0))
            except queue.Empty:
                break
            self._receive(handed)
        size = min(len(self._received), self.batch_max)
        batch = [self._received.popleft() for _ in range(size)]
        self._taken += size
        return batch

    def _receive(self, handed: list[_Op] | None) -> None:
        if handed is None:
            self._stop_requested = True
        else:
            self._received.extend(handed)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [_run_op(conn, op) for op in batch]
            conn.execute("COMMIT")
        except BaseException as exc:
            # Nothing of this batch is durable: every producer gets the error.
            _rollback_quietly(conn)
            self._stats.batches_failed += 1
            self._stats.ops_failed += len(batch)
            self._stats.last_batch_size = len(batch)
            self._call_on_loop(self._resolve, [_Outcome(op, error=exc) for op in batch])
            if not isinstance(exc, Exception):
                raise
            return
        failed = sum(1 for outcome in outcomes if outcome.error is not None)
        self._stats.batches += 1
        self._stats.ops += len(batch) - failed
        self._stats.ops_failed += failed
        self._stats.last_batch_size = len(batch)
        self._call_on_loop(self._resolve, outcomes)

    def _stop_accepting(self) -> None:
        """Called when the thread ends: fail whatever is still queued, accept nothing more."""
        with self._accepting_lock:
            self._accepting = False
        while True:
            try:
                self._receive(self._inbox.get_nowait())
            except queue.Empty:
                break
        leftovers = [
            _Outcome(op, error=WriterClosedError("the writer stopped")) for op in self._received
        ]
        self._received.clear()
        if leftovers:
            self._taken += len(leftovers)
            self._stats.ops_failed += len(leftovers)
            self._call_on_loop(self._resolve, leftovers)

    def _call_on_loop(self, callback: Callable[..., None], *args: Any) -> None:
        if self._loop is None:
            return
        # RuntimeError means the loop is closed: nobody is left to receive the result.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    # --- back on the event loop ----------------------------------------------------

    def _resolve(self, outcomes: list[_Outcome]) -> None:
        for outcome in outcomes:
            future = outcome.op.future
            # A cancelled producer stopped waiting; its op still ran (or failed) anyway.
            if not future.done():
                if outcome.error is None:
                    future.set_result(outcome.value)
                else:
                    future.set_exception(outcome.error)
            self._slots.release()


def _run_op(conn: sqlite3.Connection, op: _Op) -> _Outcome:
    """Run one op in its own savepoint so its failure rolls back only its own changes."""
    conn.execute("SAVEPOINT op")
    try:
        value = op.fn(conn)
    except Exception as exc:
        if not conn.in_transaction:
            # SQLite rolled the whole transaction back (disk full, I/O error):
            # the earlier ops of the batch are gone too.
            raise
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        return _Outcome(op, error=exc)
    if not conn.in_transaction:
        raise StoreError("an operation ended the batch transaction (COMMIT/ROLLBACK in fn)")
    conn.execute("RELEASE op")
    return _Outcome(op, value=value)


def _settle(
    future: asyncio.Future[list[int]], value: list[int] | None, error: BaseException | None
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value or [])


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # The original error is what callers need to see, not a failed rollback.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _close_quietly(conn: sqlite3.Connection) -> None:
    # Lets SQLite refresh the query-planner statistics it found worth refreshing.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA optimize")
    conn.close()
