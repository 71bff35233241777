"""A gateway that records sales and syncs, killed with SIGKILL at a chosen step.

    python -m tests.sync.crash_child DB URL TOKEN COUNT [KILL_POINT NTH]

Kill points: after_record, before_send, after_reply (central committed, the edge has not
settled), reply_while_settling (central committed a batch while the edge was still to
settle the one before), after_settle, before_apply (a page received, not applied),
after_apply.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cloud_api.client import Verdict
from gateway.settings.sync import SyncSettings
from sync.outbox import OutboxEvent
from tests.sync.edge import FAST, open_edge
from tests.sync.test_faults import earn

SMALL = SyncSettings(**{**FAST.model_dump(), "batch_max_events": 7, "page_limit": 3})


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def killing(fn: Callable[..., Awaitable[Any]], nth: int, *,
            before: bool) -> Callable[..., Awaitable[Any]]:
    calls = [0]

    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if before and calls[0] == nth:
            die()
        result = await fn(*args, **kwargs)
        if not before and calls[0] == nth:
            die()
        return result
    return wrapped


async def main(db: Path, url: str, token: str, count: int, *, point: str, nth: int) -> None:
    async with open_edge(db, url, token, settings=SMALL) as edge:
        engine, client = edge.engine, edge.client
        hooks: dict[str, tuple[Any, str, bool]] = {
            "before_send": (client, "push_batch", True),
            "after_reply": (client, "push_batch", False),
            "after_settle": (engine, "_settle", False),
            "before_apply": (client, "changes", False),
            "after_apply": (engine, "pull_once", False),
        }
        if point == "reply_while_settling":
            settle = engine._settle

            async def settle_later(batch: list[OutboxEvent], verdicts: list[Verdict]) -> None:
                await asyncio.sleep(0.5)  # the next batch is sent and answered meanwhile
                await settle(batch, verdicts)

            engine._settle = settle_later  # type: ignore[method-assign]
            point = "after_reply"
        if point in hooks:
            target, name, before = hooks[point]
            setattr(target, name, killing(getattr(target, name), nth, before=before))
        for start in range(0, count, 10):
            await edge.ledger.record_many([earn(n) for n in range(start, min(count, start + 10))])
            if point == "after_record" and start // 10 + 1 == nth:
                die()
        await engine.sync_now()
    if point:  # still alive: this workload never reached the step to die at
        sys.exit(f"the workload reached {point} fewer than {nth} times: nothing was tested")
    print("done", flush=True)


if __name__ == "__main__":
    db, url, token, count = sys.argv[1:5]
    point, nth = (sys.argv[5], int(sys.argv[6])) if len(sys.argv) > 6 else ("", 0)
    asyncio.run(main(Path(db), url, token, int(count), point=point, nth=nth))
