"""SIGKILL of the gateway at every step of sync: after a restart everything converges."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from cloud_api.client import CentralClient
from tests.cloud_api.central import MALL, Central
from tests.scale import rounds
from tests.sync.children import run_child
from tests.sync.edge import open_edge
from tests.sync.faults import assert_converged
from tests.sync.test_faults import ACCOUNTS, create_accounts

POINTS = ["after_record", "before_send", "after_reply", "reply_while_settling",
          "after_settle", "before_apply", "after_apply"]
COUNT = 40


def events_for(nth: int) -> int:
    """Enough sales that every step happens at least `nth` times: the child records them
    ten at a time and pushes them seven to a batch."""
    return max(COUNT, 10 * nth)


async def child(db: Path, central: Central, count: int, *kill: str) -> tuple[int, str]:
    return await run_child("tests.sync.crash_child", str(db), central.url,
                           central.gateway_token, str(count), *kill)


# Which occurrence of the step dies: the 2nd by default, the 1st to 10th under make chaos.
@pytest.mark.parametrize("nth", range(2, 3) if rounds(1) == 1 else range(1, rounds(1) + 1))
@pytest.mark.parametrize("point", POINTS)
async def test_sigkill_at_any_step_then_restart_converges(
    central: Central, admin: CentralClient, tmp_path: Path, point: str, nth: int,
) -> None:
    await create_accounts(admin)
    for n in range(5):  # something to pull, in several pages
        await admin.adjust(MALL, "M2", request_id=f"gift-{n}", points=10, reason="gift")
    db, count = tmp_path / "gw.db", events_for(nth)
    code, output = await child(db, central, count, point, str(nth))
    assert code == -signal.SIGKILL, output
    code, output = await child(db, central, count)
    assert code == 0 and "done" in output, output
    async with open_edge(db, central.url, central.gateway_token) as edge:
        await assert_converged(edge, admin, ACCOUNTS)
        assert await edge.scalar("SELECT count(*) FROM ledger") == count + 5
