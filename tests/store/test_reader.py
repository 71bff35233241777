"""Read-only connections and the async reader pool."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import Reader, StoreError, Writer, open_reader

HANG_GUARD_S = 30


@pytest.fixture
async def db_path(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "store.db"
    async with Writer(path) as writer:
        await writer.submit(
            lambda conn: conn.execute("INSERT INTO counters (name, value) VALUES ('a', 1)")
        )
        yield path


async def test_run_returns_what_the_function_returns(db_path: Path) -> None:
    async with Reader(db_path) as reader:
        value = await reader.run(
            lambda conn: conn.execute("SELECT value FROM counters WHERE name = 'a'").fetchone()
        )
    assert value == (1,)


async def test_run_here_reads_the_last_commit_on_the_calling_thread(db_path: Path) -> None:
    async with Writer(db_path) as writer, Reader(db_path) as reader:
        threads: list[int] = []

        def read(conn: sqlite3.Connection) -> int:
            threads.append(threading.get_ident())
            return int(conn.execute("SELECT value FROM counters WHERE name = 'a'").fetchone()[0])

        assert reader.run_here(read) == 1
        await writer.submit(lambda conn: conn.execute(
            "UPDATE counters SET value = 2 WHERE name = 'a'"))
        assert reader.run_here(read) == 2
        assert threads == [threading.get_ident()] * 2


async def test_run_here_reads_one_snapshot_and_cannot_write(db_path: Path) -> None:
    def around_a_commit(conn: sqlite3.Connection) -> list[int]:
        before = conn.execute("SELECT count(*) FROM counters").fetchone()[0]
        other = sqlite3.connect(db_path, isolation_level=None)
        try:  # another connection commits between the two reads
            other.execute("INSERT INTO counters (name, value) VALUES ('b', 1)")
        finally:
            other.close()
        return [before, conn.execute("SELECT count(*) FROM counters").fetchone()[0]]

    async with Reader(db_path) as reader:
        assert reader.run_here(around_a_commit) == [1, 1]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.run_here(lambda conn: conn.execute("DELETE FROM counters"))
        # A failed read leaves no transaction open behind it: the next one sees the commit.
        assert reader.run_here(
            lambda conn: conn.execute("SELECT count(*) FROM counters").fetchone()[0]) == 2


async def test_reader_cannot_write(db_path: Path) -> None:
    async with Reader(db_path) as reader:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await reader.run(lambda conn: conn.execute("DELETE FROM counters"))


def test_open_reader_refuses_writes(db_path: Path) -> None:
    conn = open_reader(db_path)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("INSERT INTO counters (name, value) VALUES ('b', 2)")
    finally:
        conn.close()


async def test_a_cancelled_read_keeps_its_connection_until_it_finishes(db_path: Path) -> None:
    started, release = threading.Event(), threading.Event()

    def slow_read(conn: sqlite3.Connection) -> int:
        started.set()
        release.wait(HANG_GUARD_S)
        return 1

    async with Reader(db_path, connections=1) as reader:
        slow = asyncio.create_task(reader.run(slow_read))
        assert await asyncio.to_thread(started.wait, HANG_GUARD_S)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        # The only connection is still busy: the next read waits for it instead of
        # sharing it with the read that is still running.
        next_read = asyncio.create_task(reader.run(lambda conn: 2))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not next_read.done()
        release.set()
        assert await next_read == 2


async def test_closed_reader_refuses_reads(db_path: Path) -> None:
    reader = Reader(db_path)
    async with reader:
        pass
    with pytest.raises(StoreError):
        await reader.run(lambda conn: 1)
    with pytest.raises(StoreError):
        reader.run_here(lambda conn: 1)
