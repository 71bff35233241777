"""Whether central counts as online: fresh answers both ways, seen from a running engine,
its log and `mallgate sync status`, against the real central over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud_api.server.storage import Storage
from gateway.settings.sync import SyncSettings
from sync.engine import SyncEngine
from tests.cloud_api.central import MALL, running_central
from tests.sync.clock import FakeClock
from tests.sync.edge import FAST, open_edge
from tests.sync.faults import Blackout
from tests.sync.test_cli import mallgate

# Loops as brisk as the other sync tests, but a real long-poll: central holds each pull.
LIVELY = SyncSettings(**{**FAST.model_dump(), "long_poll_s": 1})
# What a mall runs: a 25 s long-poll and a heartbeat every 30 s.
MALL_PACE = SyncSettings(**{**FAST.model_dump(), "long_poll_s": SyncSettings().long_poll_s,
                            "heartbeat_s": SyncSettings().heartbeat_s})
T0 = datetime(2026, 5, 1, 4, tzinfo=UTC)
pytestmark = pytest.mark.parametrize("storage", ["sqlite"], indirect=True)  # the edge's part


async def until(check: Callable[[], bool], limit_s: float = 20) -> None:
    """Wait for `check`; the limit only keeps a broken build from hanging the suite."""
    async with asyncio.timeout(limit_s):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(engine: SyncEngine) -> AsyncIterator[SyncEngine]:
    task = asyncio.create_task(engine.run())
    try:
        yield engine
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def sync_status(tmp_path: Path, db: Path, url: str) -> dict[str, object]:
    """`mallgate sync status` as an operator runs it beside the gateway."""
    config = tmp_path / "gw.toml"
    config.write_text(f'[site]\nmall_id = "{MALL}"\ngateway_id = "gw-test"\n'
                      f'[store]\npath = "{db}"\n[central]\nurl = "{url}"\n', encoding="utf-8")
    code, out = await mallgate("sync", "status", "--config", str(config))
    assert code == 0, out
    status: dict[str, object] = json.loads(out)
    return status


async def test_online_at_once_after_start_with_a_mall_long_poll(storage: Storage,
                                                               tmp_path: Path) -> None:
    blackout = Blackout()
    async with running_central(storage, middlewares=[blackout.middleware()]) as central, \
            open_edge(tmp_path / "gw.db", central.url, central.gateway_token,
                      settings=MALL_PACE) as edge:
        assert not edge.engine.online
        async with running(edge.engine):
            # Well before the first long-poll's 25 s or the heartbeat's 30 s.
            await until(lambda: edge.engine.online, limit_s=15)
            assert ("heartbeat", None) in blackout.asked  # central saw the gateway at once
            first_pull = next(wait for path, wait in blackout.asked if path == "changes")
            assert first_pull == "0"
            status = await edge.engine.status()
            assert status.mode == "online"
        assert not edge.engine.online  # stopped: nothing vouches for central any more


async def test_offline_once_central_stops_answering_then_recovery_logged_once(
    storage: Storage, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sync")
    clock = FakeClock(T0)
    blackout = Blackout()
    db = tmp_path / "gw.db"
    fresh_s = LIVELY.online_fresh_s
    # A client timeout far beyond the test: no loop reports an error while central is mute.
    async with running_central(storage, middlewares=[blackout.middleware()]) as central, \
            open_edge(db, central.url, central.gateway_token, settings=LIVELY, timeout_s=120,
                      now=clock.now) as edge, running(edge.engine) as engine:
        await until(lambda: engine.online)
        blackout.cut()
        await until(lambda: blackout.holding("changes", "heartbeat"))
        clock.advance(fresh_s - 1)
        assert engine.online  # the last answers both ways are still fresh
        clock.advance(2)
        assert not engine.online  # at once: no loop had to notice anything
        await until(lambda: engine.mode == "offline")
        assert engine.last_error is not None and "no answer" in engine.last_error
        status = await sync_status(tmp_path, db, central.url)
        assert status["mode"] == "offline"
        assert status["last_error"] == engine.last_error
        assert status["mode_since"] is not None

        clock.advance(30)
        blackout.lift()
        await until(lambda: engine.online)
        status = await sync_status(tmp_path, db, central.url)
        assert status["mode"] == "online"
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("sync")]
    assert [m for m in messages if "recovered" in m] == [
        "sync with central recovered after 30 s"]
    assert len([m for m in messages if "offline" in m]) == 1


async def test_an_error_takes_sync_offline_before_the_bound(storage: Storage,
                                                            tmp_path: Path) -> None:
    clock = FakeClock(T0)
    db = tmp_path / "gw.db"
    async with running_central(storage) as central, \
            open_edge(db, central.url, central.gateway_token, settings=LIVELY,
                      now=clock.now) as edge, running(edge.engine) as engine:
        await until(lambda: engine.online)
        await central.stop()  # refused connections: the loops see it at once
        await until(lambda: engine.mode == "offline")
        assert not engine.online
        status = await sync_status(tmp_path, db, central.url)
        assert status["mode"] == "offline" and status["last_error"]


async def test_a_refused_token_shows_as_auth_failed(storage: Storage, tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    async with running_central(storage) as central, \
            open_edge(db, central.url, "not-a-token", settings=LIVELY) as edge, \
            running(edge.engine) as engine:
        await until(lambda: engine.mode == "auth_failed")
        assert not engine.online
        status = await sync_status(tmp_path, db, central.url)
        assert status["mode"] == "auth_failed"
        assert "401" in str(status["last_error"])


async def test_a_clean_stop_is_recorded(storage: Storage, tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    async with running_central(storage) as central, \
            open_edge(db, central.url, central.gateway_token, settings=LIVELY) as edge:
        async with running(edge.engine) as engine:
            await until(lambda: engine.online)
        status = await sync_status(tmp_path, db, central.url)
        assert status["mode"] == "stopped"
