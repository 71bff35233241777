"""Central's hourly jobs survive their failures: one mall's error does not stop the
others, and a database that cannot list the malls is tried again, the task alive."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import pytest

from cloud_api.server.jobs import every_hour_per_mall
from cloud_api.server.storage import Storage


class Malls:
    """The one storage call the runner makes: fails on its first call."""

    def __init__(self) -> None:
        self.calls = 0

    async def mall_ids(self) -> list[str]:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("database away")
        return ["m-broken", "m-fine"]


async def test_a_failing_mall_or_database_does_not_stop_the_job(
        caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    async def job(mall_id: str) -> None:
        if mall_id == "m-broken":
            raise RuntimeError("boom")
        done.append(mall_id)

    storage = Malls()
    task = asyncio.create_task(every_hour_per_mall(
        cast(Storage, storage), "the test job", job, interval_s=0.01))
    with caplog.at_level(logging.ERROR, logger="cloud_api.server.jobs"):
        async with asyncio.timeout(10):
            while len(done) < 2:  # noqa: ASYNC110 - the job's own rounds
                await asyncio.sleep(0.01)
    assert not task.done()  # alive after both failures
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    messages = [r.getMessage() for r in caplog.records]
    assert "the test job: the malls could not be listed; retried in an hour" in messages
    assert "mall m-broken: the test job failed; retried in an hour" in messages
    assert done[:2] == ["m-fine", "m-fine"]
