"""Child process of the crash test: writes events until killed.

Usage: python crash_child.py DB_PATH PREFIX PRODUCERS

Each producer prints an event's id on stdout only after `submit` returned, i.e. after
the batch holding it was committed. The parent kills this process with SIGKILL at an
arbitrary moment and checks that every printed id is in the database.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Callable

from gateway.store import Writer

# A few KiB per event makes each commit write and fsync more, widening the window in
# which a writer that acknowledged too early would be caught.
PAYLOAD = '{"pad": "' + "x" * 4_000 + '"}'


def insert_event(event_id: str) -> Callable[[sqlite3.Connection], None]:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO outbox (event_id, event_type, payload, created_at) "
            "VALUES (?, 'crash_test', ?, '2024-01-01T00:00:00Z')",
            (event_id, PAYLOAD),
        )

    return op


async def produce(writer: Writer, prefix: str, producer: int) -> None:
    n = 0
    while True:
        event_id = f"{prefix}-{producer}-{n}"
        await writer.submit(insert_event(event_id))
        # One write per id keeps each line whole in the pipe (far below PIPE_BUF).
        sys.stdout.write(event_id + "\n")
        sys.stdout.flush()
        n += 1


async def main(path: str, prefix: str, producers: int) -> None:
    async with Writer(path) as writer, asyncio.TaskGroup() as group:
        for producer in range(producers):
            group.create_task(produce(writer, prefix, producer))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
