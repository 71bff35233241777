"""The supervisor: a part whose task ends is shown down at once, then restarted or fatal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.app.supervisor import supervise
from gateway.parts import Parts, PartState, Policy, Restarts

FAST = Restarts(initial_s=0.01, max_s=0.02, healthy_after_s=60)


async def until(condition: Callable[[], bool], polls: int = 500) -> None:
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


async def test_a_part_that_raises_is_down_with_its_error_then_restarted() -> None:
    parts = Parts()
    part = parts.add("worker")
    runs: list[int] = []
    proceed = asyncio.Event()

    async def work() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            await proceed.wait()
            raise RuntimeError("disk on fire")
        await asyncio.Event().wait()  # the second run stays up

    stops: list[str] = []
    # A restart delay long enough to see the part down before it comes back.
    async with supervise(part, work, restarts=Restarts(initial_s=0.3, max_s=0.3),
                         stop_app=stops.append, rand=lambda low, high: high):
        await until(lambda: runs == [0])
        assert part.status().state is PartState.UP
        proceed.set()
        await until(lambda: part.status().state is PartState.DOWN)
        status = part.status()
        assert status.reason == "RuntimeError: disk on fire"
        assert parts.not_up() == [status]
        await until(lambda: runs == [0, 1] and part.status().state is PartState.UP)
        assert part.restarts == 1 and parts.not_up() == []
    assert part.status().state is PartState.STOPPED
    assert stops == []


async def test_a_part_that_returns_or_is_cancelled_by_someone_else_counts_as_dead() -> None:
    part = Parts().add("quitter")
    calls = 0

    async def work() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            return
        await asyncio.Event().wait()

    async with supervise(part, work, restarts=FAST, stop_app=lambda reason: None):
        await until(lambda: calls == 2 and part.status().state is PartState.UP)
        assert part.restarts == 1
        # Someone cancels the running work task (not the supervisor): a death too.
        (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "quitter"]
        task.cancel()
        await until(lambda: part.restarts == 2 and part.status().state is PartState.UP)
    assert calls == 3


async def test_a_fatal_part_stops_the_app_and_is_not_restarted() -> None:
    part = Parts().add("store")
    stops: list[str] = []

    async def work() -> None:
        raise OSError("database disk image is malformed")

    async with supervise(part, work, policy=Policy.STOP_APP, restarts=FAST,
                         stop_app=stops.append):
        await until(lambda: bool(stops))
        await asyncio.sleep(0.05)
        assert part.status().state is PartState.DOWN and part.restarts == 0
    assert stops == ["store stopped: OSError: database disk image is malformed"]


async def test_a_running_part_is_degraded_while_its_own_check_says_so() -> None:
    problem: list[str] = []
    part = Parts().add("port", check=lambda: problem[0] if problem else None)

    async def work() -> None:
        await asyncio.Event().wait()

    async with supervise(part, work, stop_app=lambda reason: None):
        await until(lambda: part.running)
        assert part.status().state is PartState.UP
        problem.append("port /dev/ttyUSB0 closed: not found")
        assert part.status().state is PartState.DEGRADED
        assert part.status().reason == "port /dev/ttyUSB0 closed: not found"
        assert part.running  # its task is fine: only its job is not

    def broken() -> str | None:
        raise ValueError("oops")
    part.check = broken
    part.started()
    assert part.status().reason == "health check failed: ValueError: oops"
