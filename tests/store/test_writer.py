"""The group-commit writer, through its public surface."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.store import Reader, StoreError, Writer, WriterClosedError, open_reader

# Bounds a wait that only fails to finish when the code under test is broken.
HANG_GUARD_S = 30


class Gate:
    """An operation that holds the writer thread until released.

    While it is held, everything submitted queues up, so the test decides which
    operations share the next batch.
    """

    def __init__(self) -> None:
        self._entered = threading.Event()
        self._released = threading.Event()

    def __call__(self, conn: sqlite3.Connection) -> None:
        self._entered.set()
        self._released.wait(HANG_GUARD_S)

    async def entered(self) -> None:
        assert await asyncio.to_thread(self._entered.wait, HANG_GUARD_S)

    def release(self) -> None:
        self._released.set()


def insert_counter(name: str, value: int = 1) -> Callable[[sqlite3.Connection], int]:
    def op(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO counters (name, value) VALUES (?, ?)", (name, value))
        return value

    return op


async def queue_depth_reaches(writer: Writer, depth: int) -> None:
    async with asyncio.timeout(HANG_GUARD_S):
        # The writer thread updates this counter; there is no event to wait on.
        while writer.stats.queue_depth < depth:  # noqa: ASYNC110
            await asyncio.sleep(0)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
async def writer(db_path: Path) -> AsyncIterator[Writer]:
    async with Writer(db_path) as opened:
        yield opened


@pytest.fixture
async def reader(writer: Writer, db_path: Path) -> AsyncIterator[Reader]:
    async with Reader(db_path) as opened:
        yield opened


@pytest.fixture
def raw_reader(writer: Writer, db_path: Path) -> Iterator[sqlite3.Connection]:
    """A plain read-only connection, for use inside operations on the writer thread."""
    conn = open_reader(db_path)
    yield conn
    conn.close()


async def counter_names(reader: Reader) -> set[str]:
    rows = await reader.run(lambda conn: conn.execute("SELECT name FROM counters").fetchall())
    return {name for (name,) in rows}


async def test_concurrent_producers_all_commit_in_shared_batches(
    writer: Writer, reader: Reader
) -> None:
    async def producer(p: int) -> None:
        for i in range(20):
            assert await writer.submit(insert_counter(f"{p}-{i}", i)) == i

    async with asyncio.TaskGroup() as group:
        for p in range(200):
            group.create_task(producer(p))

    assert await counter_names(reader) == {f"{p}-{i}" for p in range(200) for i in range(20)}
    stats = writer.stats
    assert stats.ops == 4_000
    assert stats.ops_failed == 0
    assert stats.ops / stats.batches > 1  # group commit actually grouped


async def test_failing_op_rolls_back_only_itself(writer: Writer, reader: Reader) -> None:
    error = ValueError("bad receipt")

    def insert_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO counters (name, value) VALUES ('failed', 1)")
        raise error

    gate = Gate()
    held = asyncio.create_task(writer.submit(gate))
    await gate.entered()
    before = asyncio.create_task(writer.submit(insert_counter("before")))
    failing = asyncio.create_task(writer.submit(insert_then_fail))
    after = asyncio.create_task(writer.submit(insert_counter("after")))
    await queue_depth_reaches(writer, 3)
    gate.release()

    await held
    assert await before == 1
    assert await after == 1
    with pytest.raises(ValueError, match="bad receipt") as raised:
        await failing
    assert raised.value is error
    assert writer.stats.last_batch_size == 3
    assert writer.stats.ops_failed == 1
    assert await counter_names(reader) == {"before", "after"}


async def test_failed_commit_fails_every_op_of_the_batch(writer: Writer, reader: Reader) -> None:
    def dangling_reference(conn: sqlite3.Connection) -> None:
        # Deferred, the foreign key is checked at COMMIT, which then fails.
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute(
            "INSERT INTO member_identifiers (kind, value, member_id) "
            "VALUES ('card', 'C1', 'nobody')"
        )

    gate = Gate()
    held = asyncio.create_task(writer.submit(gate))
    await gate.entered()
    innocent = asyncio.create_task(writer.submit(insert_counter("innocent")))
    guilty = asyncio.create_task(writer.submit(dangling_reference))
    await queue_depth_reaches(writer, 2)
    gate.release()

    await held
    for task in (innocent, guilty):
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await task
    assert await counter_names(reader) == set()
    assert writer.stats.batches_failed == 1
    # The writer carries on with the next batch.
    assert await writer.submit(insert_counter("next")) == 1
    assert await counter_names(reader) == {"next"}


async def test_result_arrives_only_after_commit(
    writer: Writer, reader: Reader, raw_reader: sqlite3.Connection
) -> None:
    def visible(name: str) -> bool:
        row = raw_reader.execute("SELECT 1 FROM counters WHERE name = ?", (name,)).fetchone()
        return row is not None

    def insert_and_look(conn: sqlite3.Connection) -> bool:
        insert_counter("mine")(conn)
        return visible("mine")

    assert await writer.submit(insert_and_look) is False
    assert "mine" in await counter_names(reader)


async def test_no_producer_of_a_batch_resumes_before_its_commit(
    writer: Writer, raw_reader: sqlite3.Connection
) -> None:
    gate = Gate()
    held = asyncio.create_task(writer.submit(gate))
    await gate.entered()
    first = asyncio.create_task(writer.submit(insert_counter("first")))

    def later_in_same_batch(conn: sqlite3.Connection) -> tuple[bool, bool]:
        committed = raw_reader.execute("SELECT 1 FROM counters WHERE name = 'first'").fetchone()
        return first.done(), committed is not None

    later = asyncio.create_task(writer.submit(later_in_same_batch))
    await queue_depth_reaches(writer, 2)
    gate.release()

    await held
    assert await later == (False, False)
    assert await first == 1
    assert writer.stats.last_batch_size == 2


async def test_tiny_queue_applies_back_pressure_and_loses_nothing(
    db_path: Path, tmp_path: Path
) -> None:
    deepest = 0
    async with Writer(db_path, queue_max=4) as writer:
        done = asyncio.Event()

        async def watch_depth() -> None:
            nonlocal deepest
            while not done.is_set():
                deepest = max(deepest, writer.stats.queue_depth)
                await asyncio.sleep(0)

        async def producer(p: int) -> None:
            for i in range(20):
                await writer.submit(insert_counter(f"{p}-{i}"))

        watcher = asyncio.create_task(watch_depth())
        async with asyncio.TaskGroup() as group:
            for p in range(50):
                group.create_task(producer(p))
        done.set()
        await watcher
        assert writer.stats.ops == 1_000

    async with Reader(db_path) as reader:
        assert len(await counter_names(reader)) == 1_000
    assert 0 < deepest <= 4


async def test_submit_waits_while_the_queue_is_full(db_path: Path) -> None:
    async with Writer(db_path, queue_max=1) as writer:
        gate = Gate()
        held = asyncio.create_task(writer.submit(gate))
        await gate.entered()
        waiting = asyncio.create_task(writer.submit(insert_counter("waiting")))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done()
        assert writer.stats.queue_depth == 0  # waiting on the loop, not queued

        gate.release()
        await held
        assert await waiting == 1


async def test_close_drains_submitted_ops(db_path: Path) -> None:
    writer = Writer(db_path)
    await writer.open()
    gate = Gate()
    held = asyncio.create_task(writer.submit(gate))
    await gate.entered()
    pending = [asyncio.create_task(writer.submit(insert_counter(f"c{i}", i))) for i in range(500)]
    await queue_depth_reaches(writer, 500)
    closing = asyncio.create_task(writer.close())
    await asyncio.sleep(0)

    with pytest.raises(WriterClosedError):
        await writer.submit(insert_counter("too late"))
    gate.release()
    await closing

    assert held.done()
    assert [task.result() for task in pending] == list(range(500))
    with pytest.raises(WriterClosedError):
        await writer.submit(insert_counter("after close"))
    async with Reader(db_path) as reader:
        assert len(await counter_names(reader)) == 500


async def test_cancelled_producer_stops_waiting_but_its_op_still_runs(
    writer: Writer, reader: Reader
) -> None:
    gate = Gate()
    held = asyncio.create_task(writer.submit(gate))
    await gate.entered()
    impatient = asyncio.create_task(writer.submit(insert_counter("impatient")))
    patient = asyncio.create_task(writer.submit(insert_counter("patient")))
    await queue_depth_reaches(writer, 2)
    impatient.cancel()
    gate.release()

    await held
    assert await patient == 1
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert await counter_names(reader) == {"impatient", "patient"}


async def test_op_that_ends_the_transaction_is_reported(writer: Writer) -> None:
    def commits_itself(conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    with pytest.raises(StoreError, match="ended the batch transaction"):
        await writer.submit(commits_itself)
    assert await writer.submit(insert_counter("still works")) == 1


async def test_unopened_writer_refuses_ops(db_path: Path) -> None:
    with pytest.raises(WriterClosedError):
        await Writer(db_path).submit(insert_counter("x"))


@pytest.mark.parametrize("settings", [{"batch_max": 0}, {"batch_wait_ms": -1}, {"queue_max": 0}])
def test_invalid_settings_are_refused(db_path: Path, settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Writer(db_path, **settings)
