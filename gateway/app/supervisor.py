"""One supervisor for every long-running part: start it, watch it, restart it or stop the app.

Each part runs as one named task for exactly as long as its cleanup context is open. A
task that ends while the application runs, by an error or by returning, is never only
logged: its part goes `down` with the error (so `/readyz` and `/metrics` say so at once),
and then, by the part's policy, the task is started again after a capped full-jitter
backoff, or the application is asked to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from gateway.app.keys import PARTS, RESTARTS, STOP
from gateway.backoff import Backoff
from gateway.parts import DEFAULT_RESTARTS, Check, Part, Policy, Restarts

log = logging.getLogger(__name__)

Work = Callable[[], Coroutine[Any, Any, None]]


def describe(error: BaseException | None) -> str:
    """A task's end in one line: the error's type and message."""
    if error is None:
        return "its task returned unexpectedly"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@contextlib.asynccontextmanager
async def supervise(part: Part, work: Work, *, policy: Policy = Policy.RESTART,
                    restarts: Restarts = DEFAULT_RESTARTS, stop_app: Callable[[str], None],
                    rand: Callable[[float, float], float] = random.uniform,
                    ) -> AsyncIterator[None]:
    """Run `work()` as the task of `part` while the block runs; cancel it on the way out."""
    backoff = Backoff(restarts.initial_s, restarts.max_s, rand)
    task = asyncio.create_task(
        _keep_running(part, work, policy=policy, restarts=restarts, stop_app=stop_app,
                      backoff=backoff), name=f"part:{part.name}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        part.stopped()


async def _keep_running(part: Part, work: Work, *, policy: Policy, restarts: Restarts,
                        stop_app: Callable[[str], None], backoff: Backoff) -> None:
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        part.started()
        # The work runs as a task of its own, so that it ending for any reason, a
        # cancellation by someone else included, is seen here as the part's death; only
        # this supervisor's own cancellation (the application stopping) ends it quietly.
        task = asyncio.create_task(work(), name=part.name)
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait({task})
            raise
        if task.cancelled():
            reason = "its task was cancelled"
            error: BaseException | None = None
        else:
            error = task.exception()
            reason = describe(error)
        part.failed(reason)
        log.error("%s stopped: %s", part.name, reason, exc_info=error)
        if policy is Policy.STOP_APP:
            stop_app(f"{part.name} stopped: {reason}")
            return
        if loop.time() - started >= restarts.healthy_after_s:
            backoff.reset()
        delay = backoff.next_delay()
        log.info("restarting %s in %.1f s (restart %d)", part.name, delay, part.restarts + 1)
        await asyncio.sleep(delay)
        part.restarting(reason)


@contextlib.asynccontextmanager
async def part_task(app: web.Application, name: str, work: Work, *, check: Check | None = None,
                    policy: Policy = Policy.RESTART) -> AsyncIterator[Part]:
    """Register part `name` of `app` and supervise `work()` as its task while the block runs;
    the part is forgotten again when the block ends."""
    parts = app[PARTS]
    part = parts.add(name, check=check)
    try:
        async with supervise(part, work, policy=policy, restarts=app[RESTARTS],
                             stop_app=app[STOP]):
            yield part
    finally:
        parts.remove(part)
