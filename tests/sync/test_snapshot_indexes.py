"""The first snapshot into an empty store fills the member tables without their secondary
indexes and builds them at its end; a SIGKILL in between leaves a store that builds them
when it opens; a resync into a store that has members keeps them throughout."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import sync.engine
from cloud_api.client import CentralClient
from gateway.store.db import open_memory
from gateway.store.migrations import migrate
from sync.apply import SNAPSHOT_DEFERRED_INDEXES, SNAPSHOT_STATE, apply_snapshot_lines, get_state
from tests.cloud_api.central import MALL, Central
from tests.sync.edge import Edge, open_edge
from tests.sync.test_resync import away_while_central_changes
from tests.sync.test_snapshot import AT, cards, child, members, snapshot, view

INDEXES = sorted(SNAPSHOT_DEFERRED_INDEXES)


def indexes(conn: sqlite3.Connection) -> list[str]:
    """Which of the snapshot's deferrable indexes the store has now."""
    return sorted(name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index'") if name in INDEXES)


def deferred(conn: sqlite3.Connection) -> list[str]:
    return [name for (name,) in conn.execute("SELECT name FROM deferred_indexes ORDER BY name")]


def test_a_snapshot_into_an_empty_store_builds_the_indexes_at_its_end() -> None:
    conn = open_memory()
    migrate(conn)
    central = [view(f"M{n}") for n in range(5)]
    lines = snapshot(central)
    apply_snapshot_lines(conn, lines[:3], AT)  # the header and two members
    assert indexes(conn) == [] and deferred(conn) == INDEXES
    apply_snapshot_lines(conn, lines[3:], AT)
    assert indexes(conn) == INDEXES and deferred(conn) == []
    assert members(conn) == [(v["member_id"], 1) for v in central]
    assert cards(conn) == [("C" + v["member_id"][1:], v["member_id"]) for v in central]
    plan = conn.execute("EXPLAIN QUERY PLAN SELECT kind FROM member_identifiers "
                        "WHERE member_id = 'M3'").fetchall()
    assert "member_identifiers_member" in str(plan)


def test_a_snapshot_into_a_store_with_members_keeps_the_indexes() -> None:
    conn = open_memory()
    migrate(conn)
    apply_snapshot_lines(conn, snapshot([view("M1")]), AT)
    lines = snapshot([view("M1", 2), view("M2")], cursor="10")
    for line in lines:
        apply_snapshot_lines(conn, [line], AT)
        assert indexes(conn) == INDEXES and deferred(conn) == []
    assert members(conn) == [("M1", 2), ("M2", 1)]


@pytest.mark.parametrize("storage", ["sqlite"], indirect=True)  # the edge, not storage
async def test_sigkill_during_the_first_snapshot_then_the_store_opens_with_its_indexes(
    central: Central, admin: CentralClient, tmp_path: Path,
) -> None:
    for n in range(40):
        await admin.create_member(MALL, {"member_id": f"M{n:02d}", "account_id": f"A{n:02d}",
                                         "identifiers": [{"kind": "card", "value": f"C{n}"}]})
    # Central forgot its change log: a new gateway starts from the snapshot.
    assert await central.storage.purge_changes(MALL, older_than_s=-1) > 0
    db = tmp_path / "gw.db"
    code, output = await child(db, central, 2)
    assert code == -signal.SIGKILL, output
    died = sqlite3.connect(db)  # as the kill left it, before anything opens it again
    assert indexes(died) == [] and deferred(died) == INDEXES
    assert get_state(died, SNAPSHOT_STATE) is not None
    died.close()
    async with open_edge(db, central.url, central.gateway_token) as edge:
        assert await edge.read(indexes) == INDEXES
        assert await edge.read(deferred) == []
        assert (await edge.engine.status()).resync_in_progress
    code, output = await child(db, central)
    assert code == 0 and "done" in output, output
    async with open_edge(db, central.url, central.gateway_token) as edge:
        assert await edge.read(indexes) == INDEXES
        assert await edge.read(lambda c: [r[0] for r in c.execute(
            "SELECT id FROM members ORDER BY id")]) == [f"M{n:02d}" for n in range(40)]
        assert await edge.read(lambda c: c.execute(
            "SELECT value, member_id FROM member_identifiers ORDER BY member_id").fetchall()) \
            == [(f"C{n}", f"M{n:02d}") for n in range(40)]
        status = await edge.engine.status()
        assert not status.resync_in_progress
        assert status.cursor == await central.storage.head(MALL)


async def test_a_resync_after_410_keeps_the_indexes_throughout(
    central: Central, edge: Edge, admin: CentralClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await away_while_central_changes(central, edge, admin)
    monkeypatch.setattr(sync.engine, "SNAPSHOT_CHUNK", 2)
    seen: list[tuple[list[str], list[str]]] = []
    apply = edge.engine._apply_snapshot

    async def apply_then_look(lines: list[dict[str, Any]]) -> None:
        await apply(lines)
        seen.append((await edge.read(indexes), await edge.read(deferred)))

    edge.engine._apply_snapshot = apply_then_look  # type: ignore[method-assign]
    await edge.engine.sync_now()
    assert edge.engine.counters["resyncs"] == 1 and len(seen) >= 3
    assert seen == [(INDEXES, [])] * len(seen)
    assert await edge.read(lambda c: [r[0] for r in c.execute(
        "SELECT id FROM members ORDER BY id")]) == ["M1", "M2", "M7"]
