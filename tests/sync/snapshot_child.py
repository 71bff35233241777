"""A gateway that resyncs from central's snapshot, killed with SIGKILL after a chunk.

    python -m tests.sync.snapshot_child DB URL TOKEN CHUNK [NTH]

Applies the snapshot `CHUNK` lines per transaction and dies right after the `NTH` chunk
committed (never, without NTH); prints "done" when the resync finished.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import sync.engine
from tests.sync.edge import open_edge


async def main(db: Path, url: str, token: str, nth: int) -> None:
    async with open_edge(db, url, token) as edge:
        engine = edge.engine
        apply = engine._apply_snapshot
        applied = [0]

        async def apply_then_maybe_die(lines: list[dict[str, Any]]) -> None:
            await apply(lines)
            applied[0] += 1
            if applied[0] == nth:
                os.kill(os.getpid(), signal.SIGKILL)

        engine._apply_snapshot = apply_then_maybe_die  # type: ignore[method-assign]
        await engine.sync_now()
        await engine.resync()
    print("done", applied[0], flush=True)


if __name__ == "__main__":
    db, url, token, chunk = sys.argv[1:5]
    sync.engine.SNAPSHOT_CHUNK = int(chunk)
    asyncio.run(main(Path(db), url, token, int(sys.argv[5]) if len(sys.argv) > 5 else 0))
