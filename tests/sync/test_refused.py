"""Data from central the edge cannot apply: refused one change at a time, never the engine.

Central is meant to check what it accepts, but a poison record written past its checks
(here straight into its storage) must not stop sync: the change goes to dead letters
with why, only later changes of its member wait behind it, and sync goes on.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from cloud_api.client import CentralClient
from cloud_api.server.sqlite_store import SqliteStorage
from gateway.app import create_app
from gateway.app.keys import METRICS, PARTS, READER
from gateway.settings.cli import load_or_exit
from tests.cloud_api.central import MALL, Central, running_central
from tests.sync.edge import Edge

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
CLI = [sys.executable, "-c", "from gateway.cli import main; main()"]
SQLITE_ONLY = pytest.mark.parametrize("storage", ["sqlite"], indirect=True)


def poison_member(db: Path, member_id: str, **fields: Any) -> None:
    """Central's stored view of a member, and its change in the feed, with fields its own
    contract forbids: written past central's checks, as a central bug once did."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            for table, column, where in (
                    ("members", "edge_view", "member_id = ?"),
                    ("changes", "payload", "kind = 'member.upsert' AND key = ?")):
                for rowid, text in conn.execute(
                        f"SELECT rowid, {column} FROM {table} WHERE {where}", (member_id,)
                ).fetchall():
                    view = {**json.loads(text), **fields}
                    conn.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?",
                                 (json.dumps(view), rowid))
    finally:
        conn.close()


def poison_points(db: Path, source_key: str, points: int) -> None:
    """Central's copy (ledger and feed) of an entry with implausible points."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            for table in ("ledger", "changes"):
                for rowid, text in conn.execute(f"SELECT rowid, payload FROM {table}").fetchall():
                    entry = json.loads(text)
                    if isinstance(entry, dict) and entry.get("source_key") == source_key:
                        conn.execute(f"UPDATE {table} SET payload = ? WHERE rowid = ?",
                                     (json.dumps({**entry, "points": points}), rowid))
    finally:
        conn.close()


async def until(check: Callable[[], Awaitable[bool]], limit_s: float = 20) -> None:
    async with asyncio.timeout(limit_s):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def mallgate(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.fixture
async def central_db(tmp_path: Path) -> AsyncIterator[tuple[Central, Path]]:
    db = tmp_path / "central.db"
    async with running_central(SqliteStorage(db)) as central:
        yield central, db


def letters(conn: sqlite3.Connection) -> list[tuple[str, str, dict[str, Any]]]:
    return [(code, error, json.loads(context)) for code, error, context in conn.execute(
        "SELECT error_code, error, context FROM dead_letters WHERE source = 'sync' "
        "AND replayed_at IS NULL ORDER BY id")]


async def test_a_poison_member_is_refused_and_sync_goes_on(
        central_db: tuple[Central, Path], tmp_path: Path,
        aiohttp_client: AiohttpClient) -> None:
    central, db = central_db
    config = tmp_path / "gw.toml"
    config.write_text(
        f'[site]\nmall_id = "{MALL}"\ngateway_id = "gw-test"\n'
        f'[store]\npath = "{tmp_path / "gw.db"}"\n'
        f'[central]\nurl = "{central.url}"\ntoken = "{central.gateway_token}"\n'
        'timeout_s = 5.0\n'
        '[sync]\nlong_poll_s = 1\npush_interval_s = 0.05\nbackoff_initial_s = 0.05\n'
        'backoff_max_s = 0.5\n', encoding="utf-8")
    async with CentralClient(central.url, central.admin_token, timeout_s=5) as admin:
        for n in (1, 2, 3, 4):
            await admin.create_member(MALL, {"member_id": f"M{n}", "account_id": f"A{n}",
                                             "name": "周小明", "birth_month": 5,
                                             "birth_day": 4, "identifiers": [
                                                 {"kind": "card", "value": f"CARD-{n}"}]})
        poison_member(db, "M2", birth_month=13, birth_day=32)
        poison_member(db, "M4", birth_month=float("nan"), birth_day="4")
        app = create_app(load_or_exit(config, {}))
        client = await aiohttp_client(app)

        async def members() -> list[str]:
            return await app[READER].run(lambda c: [r[0] for r in c.execute(
                "SELECT id FROM members ORDER BY id")])

        async def refused() -> list[tuple[str, str, dict[str, Any]]]:
            return await app[READER].run(letters)

        async def both_refused() -> bool:
            return len(await refused()) == 2
        await until(both_refused)
        assert await members() == ["M1", "M3"]  # the good ones arrived
        (code2, error2, context2), (code4, error4, _) = await refused()
        assert code2 == code4 == "invalid_member"
        assert "birth_month" in error2 and "birth_month" in error4
        assert context2["kind"] == "member.upsert" and context2["member_id"] == "M2"
        assert isinstance(context2["server_seq"], int)

        status = json.loads(await mallgate("sync", "status", "--config", str(config)))
        assert status["refused_changes"] == 2
        reply = await client.get("/readyz")
        body = await reply.json()
        assert reply.status == 503
        assert body["parts"]["sync"]["state"] == "degraded"
        assert "M2" in body["parts"]["sync"]["reason"]
        assert "refused" in body["parts"]["sync"]["reason"]

        # A later change of M2 waits behind the refused one; M1's does not.
        await admin.adjust(MALL, "M2", request_id="g2", points=30, reason="gift")
        await admin.adjust(MALL, "M1", request_id="g1", points=10, reason="gift")

        async def m1_credited() -> bool:
            return bool(await app[READER].run(lambda c: c.execute(
                "SELECT count(*) FROM ledger WHERE account_id = 'A1'").fetchone()[0]))
        await until(m1_credited)
        status = json.loads(await mallgate("sync", "status", "--config", str(config)))
        assert status["held_changes"] == 1
        assert await app[READER].run(lambda c: c.execute(
            "SELECT count(*) FROM ledger WHERE account_id = 'A2'").fetchone()[0]) == 0

        # A newer, valid version of M2 supersedes the refused one and releases what waited.
        await admin.update_member(MALL, "M2", {"birth_month": 6, "birth_day": 1})

        async def m2_released() -> bool:
            return "M2" in await members() and len(await refused()) == 1
        await until(m2_released)
        assert await app[READER].run(lambda c: c.execute(
            "SELECT birth_month, birth_day FROM members WHERE id = 'M2'").fetchone()) == (6, 1)
        assert await app[READER].run(lambda c: c.execute(
            "SELECT sum(points) FROM ledger WHERE account_id = 'A2'").fetchone()[0]) == 30
        status = json.loads(await mallgate("sync", "status", "--config", str(config)))
        assert (status["refused_changes"], status["held_changes"]) == (1, 0)
        body = await (await client.get("/readyz")).json()
        assert "M4" in body["parts"]["sync"]["reason"]
        assert "mallgate_sync_refused_changes_total 2.0" in app[METRICS].render().decode()
        sync = app[PARTS].get("sync")
        assert sync is not None and sync.restarts == 0  # the sync task never died


@SQLITE_ONLY
async def test_a_snapshot_with_poison_lines_applies_the_rest(
        central: Central, edge: Edge, admin: CentralClient, tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    for n in (1, 2, 3):
        await admin.create_member(MALL, {"member_id": f"S{n}", "account_id": f"B{n}",
                                         "identifiers": [{"kind": "card", "value": f"C{n}"}]})
    await admin.adjust(MALL, "S1", request_id="g1", points=15, reason="gift")
    await admin.adjust(MALL, "S3", request_id="g3", points=40, reason="gift")
    poison_member(db, "S2", tier=["gold"], version="many")
    poison_points(db, "g3", 50_000_000)
    await edge.engine.resync()
    status = await edge.engine.status()
    assert not status.resync_in_progress and status.cursor == await central.storage.head(MALL)
    assert await edge.read(lambda c: [r[0] for r in c.execute(
        "SELECT id FROM members ORDER BY id")]) == ["S1", "S3"]
    assert (await edge.ledger.balance("B1")).available == 15
    assert (await edge.ledger.balance("B3")).available == 0  # refused, not credited
    refused = await edge.read(letters)
    assert [(code, context["kind"]) for code, _, context in refused] == [
        ("invalid_member", "snapshot.member"), ("implausible_entry", "snapshot.ledger")]
    assert status.refused_changes == 2
    # S2 fixed at central: its newer version releases it.
    await admin.update_member(MALL, "S2", {"tier": "gold"})
    await edge.engine.sync_now()
    assert await edge.scalar("SELECT tier FROM members WHERE id = 'S2'") == "gold"
    assert (await edge.engine.status()).refused_changes == 1


@SQLITE_ONLY
async def test_entries_from_central_over_the_limit_are_refused(
        central: Central, edge: Edge, admin: CentralClient, tmp_path: Path) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    await admin.create_member(MALL, {"member_id": "M2", "account_id": "A2"})
    await admin.adjust(MALL, "M1", request_id="big", points=5, reason="gift")
    await admin.adjust(MALL, "M2", request_id="ok", points=7, reason="gift")
    poison_points(tmp_path / "central.db", "big", 10_000_001)
    status = await edge.engine.sync_now()
    assert status.refused_changes == 1 and status.cursor_lag == 0
    (code, error, context), = await edge.read(letters)
    assert code == "implausible_entry" and "10000001" in error
    assert context["kind"] == "ledger.entry" and context["member_id"] == "M1"
    assert (await edge.ledger.balance("A1")).available == 0
    assert (await edge.ledger.balance("A2")).available == 7


@SQLITE_ONLY
async def test_an_operator_discards_a_refused_change_and_its_member_goes_on(
        central: Central, edge: Edge, admin: CentralClient, tmp_path: Path) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    await admin.adjust(MALL, "M1", request_id="big", points=5, reason="gift")
    poison_points(tmp_path / "central.db", "big", 10_000_001)
    await edge.engine.sync_now()
    await admin.adjust(MALL, "M1", request_id="later", points=3, reason="gift")
    status = await edge.engine.sync_now()
    assert (status.refused_changes, status.held_changes) == (1, 1)
    assert (await edge.ledger.balance("A1")).available == 0
    (letter,) = await edge.read(lambda c: [r[0] for r in c.execute(
        "SELECT id FROM dead_letters WHERE source = 'sync'")])
    config = tmp_path / "gw.toml"
    config.write_text(f'[site]\nmall_id = "{MALL}"\ngateway_id = "gw-test"\n'
                      f'[store]\npath = "{tmp_path / "gw.db"}"\n', encoding="utf-8")
    assert "1 refused change(s) discarded" in await mallgate(
        "sync", "discard", "--config", str(config), str(letter))
    status = await edge.engine.status()
    assert (status.refused_changes, status.held_changes) == (0, 0)
    assert (await edge.ledger.balance("A1")).available == 3  # what waited, not the refused
