"""A resync from central's snapshot tells how far it is: in the log every few seconds of the
engine's clock, in the engine's status, and in `mallgate sync status` beside it."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import sync.engine
from cloud_api.client import CentralClient
from gateway.app import create_app
from gateway.app.keys import PARTS
from gateway.parts import PartStatus
from gateway.settings.cli import load_or_exit
from sync.engine import SyncEngine
from tests.cloud_api.central import MALL, Central
from tests.sync.clock import FakeClock
from tests.sync.edge import open_edge
from tests.sync.test_cli import mallgate
from tests.sync.test_refused import SQLITE_ONLY, AiohttpClient, until

MEMBERS = 40
CHUNK = 5  # lines a transaction: the header and 40 members make 9 chunks


@pytest.mark.parametrize("storage", ["sqlite"], indirect=True)  # the edge, not storage
async def test_a_resync_reports_its_progress_while_it_applies_the_snapshot(
    central: Central, admin: CentralClient, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sync.engine, "SNAPSHOT_CHUNK", CHUNK)
    for n in range(MEMBERS):
        await admin.create_member(MALL, {"member_id": f"M{n:02d}", "account_id": f"A{n:02d}"})
    db = tmp_path / "gw.db"
    config = tmp_path / "gw.toml"
    config.write_text(f'[site]\nmall_id = "{MALL}"\ngateway_id = "gw-test"\n'
                      f'[store]\npath = "{db}"\n', encoding="utf-8")
    clock = FakeClock(datetime(2026, 5, 1, 8, 0, tzinfo=UTC))
    async with open_edge(db, central.url, central.gateway_token, now=clock.now) as edge:
        engine = edge.engine
        await engine.sync_now()
        assert (await engine.status()).snapshot is None
        # Away longer than central keeps its change log: the next pull needs a snapshot.
        await admin.erase_member(MALL, "M00")
        await admin.create_member(MALL, {"member_id": "M40", "account_id": "A40"})
        assert await central.storage.purge_changes(MALL, older_than_s=-1) > 0

        apply = engine._apply_snapshot
        seen: list[dict[str, Any] | None] = []
        beside: list[dict[str, Any]] = []

        async def apply_and_look(lines: list[dict[str, Any]]) -> None:
            await apply(lines)
            seen.append((await engine.status()).snapshot)
            if len(seen) == 3:  # another process reads the store mid-snapshot
                code, out = await mallgate("sync", "status", "--config", str(config))
                assert code == 0, out
                beside.append(json.loads(out))
            clock.advance(2)  # each chunk takes two seconds of the engine's clock

        engine._apply_snapshot = apply_and_look  # type: ignore[method-assign]
        with caplog.at_level(logging.INFO, logger="sync.engine"):
            await engine.sync_now()
        assert engine.counters["resyncs"] == 1
        after = await engine.status()

    rows = [s["rows_applied"] for s in seen if s is not None]
    assert len(seen) == 9 and rows == [4, 9, 14, 19, 24, 29, 34, 39, 40]
    assert [s["phase"] for s in seen if s is not None] == ["member"] * 8 + ["done"]
    assert seen[3] is not None and seen[3]["rate_per_s"] == 3.2  # 19 rows in 6 s
    # `mallgate sync status` from the store, as the third chunk committed it
    (status,) = beside
    assert status["resync_in_progress"] is True
    assert status["snapshot"]["phase"] == "member"
    assert status["snapshot"]["rows_applied"] == 14
    assert status["snapshot"]["started_at"] == "2026-05-01T08:00:00.000000+00:00"
    # once done, nothing is left in the status, the store included
    assert after.snapshot is None and not after.resync_in_progress
    async with open_edge(db, central.url, central.gateway_token) as edge:
        assert (await edge.engine.status()).snapshot is None
    # the log: at most one progress line every five seconds of the clock, not per chunk
    progress = [r.getMessage() for r in caplog.records
                if r.getMessage().startswith("central's snapshot: ")]
    assert progress == ["central's snapshot: member phase, 19 rows applied, 3 rows/s",
                        "central's snapshot: member phase, 34 rows applied, 3 rows/s"]
    assert any(re.fullmatch(r"central's snapshot applied: 40 rows in 16\.0 s",
                            r.getMessage()) for r in caplog.records)


@SQLITE_ONLY
async def test_the_sync_part_is_degraded_with_the_snapshot_progress_while_it_runs(
    central: Central, admin: CentralClient, tmp_path: Path, aiohttp_client: AiohttpClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sync.engine, "SNAPSHOT_CHUNK", CHUNK)
    for n in range(MEMBERS):
        await admin.create_member(MALL, {"member_id": f"M{n:02d}", "account_id": f"A{n:02d}"})
    # A new gateway in a mall whose change log central has trimmed: it starts from the
    # snapshot.
    assert await central.storage.purge_changes(MALL, older_than_s=-1) > 0
    config = tmp_path / "gw.toml"
    config.write_text(
        f'[site]\nmall_id = "{MALL}"\ngateway_id = "gw-test"\n'
        f'[store]\npath = "{tmp_path / "gw.db"}"\n'
        f'[central]\nurl = "{central.url}"\ntoken = "{central.gateway_token}"\n'
        'timeout_s = 5.0\n[sync]\nlong_poll_s = 1\npush_interval_s = 0.05\n', encoding="utf-8")
    app = create_app(load_or_exit(config, {}))
    seen: list[PartStatus] = []
    apply = SyncEngine._apply_snapshot

    async def apply_and_look(engine: SyncEngine, lines: list[dict[str, Any]]) -> None:
        await apply(engine, lines)
        part = app[PARTS].get("sync")
        assert part is not None
        seen.append(part.status())

    monkeypatch.setattr(SyncEngine, "_apply_snapshot", apply_and_look)
    client = await aiohttp_client(app)

    async def applied() -> bool:
        return len(seen) == 9
    await until(applied)
    assert seen[1].state == "degraded"
    assert seen[1].reason is not None and seen[1].reason.startswith(
        "applying central's snapshot: member phase, 9 rows applied")

    async def ready() -> bool:
        return (await client.get("/readyz")).status == 200
    await until(ready)  # the snapshot done and central answering: up again
