"""Checkpoints run beside the writer, never inside one of its commits."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

from gateway.store import Writer

PAYLOAD = "x" * 2_000


def insert(n: int) -> Callable[[sqlite3.Connection], None]:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO outbox (event_id, event_type, payload, created_at) "
                     "VALUES (?, 'test', ?, 't')", (f"e{n}", PAYLOAD))
    return op


async def test_the_writer_leaves_checkpoints_to_the_checkpointer(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with Writer(path) as writer:
        (auto,) = await writer.submit(
            lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone())
        assert auto == 0
        await asyncio.gather(*(writer.submit(insert(n)) for n in range(2_000)))
        async with asyncio.timeout(30):
            # The checkpointer is a thread with plain counters: poll them.
            while not (writer.checkpoints.runs  # noqa: ASYNC110 and writer.checkpoints.last_copied_pages
                       and writer.checkpoints.last_copied_pages
                       == writer.checkpoints.last_wal_pages):
                await asyncio.sleep(0.05)
        assert writer.checkpoints.failures == 0
    assert not (tmp_path / "store.db-wal").exists()  # the last close folds the WAL in
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (2_000,)
    finally:
        conn.close()
