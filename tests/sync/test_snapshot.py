"""Applying central's snapshot: members central no longer has go wherever they fall, an
interrupted snapshot resumes to the same result, and a SIGKILL between chunks is safe."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cloud_api.client import CentralClient
from gateway.members import upsert_member
from gateway.store.db import open_memory
from gateway.store.migrations import migrate
from sync.apply import (
    SNAPSHOT_STATE,
    SnapshotOrderError,
    apply_snapshot_lines,
    get_state,
    set_state,
)
from tests.cloud_api.central import MALL, Central
from tests.sync.children import run_child
from tests.sync.edge import open_edge

AT = "2026-05-01T00:00:00.000000+00:00"


@pytest.fixture
def conn() -> sqlite3.Connection:
    connection = open_memory()
    migrate(connection)
    return connection


def view(member_id: str, version: int = 1, card: str | None = None) -> dict[str, Any]:
    return {"member_id": member_id, "account_id": "A" + member_id[1:], "tier": "normal",
            "tags": ["会员"], "version": version,
            "identifiers": [{"kind": "card", "value": card or "C" + member_id[1:]}]}


def snapshot(views: Sequence[dict[str, Any]], cursor: str = "9") -> list[dict[str, Any]]:
    return [{"type": "header", "cursor": cursor, "format": 1},
            *({"type": "member", "key": v["member_id"], "data": v} for v in views),
            {"type": "end", "cursor": cursor}]


def resumed(lines: list[dict[str, Any]], progress: dict[str, Any]) -> list[dict[str, Any]]:
    """What central sends to resume from `progress`: the header, then the lines after it."""
    after = progress["after"]
    rest = [line for line in lines[1:] if line["type"] != "member" or line["key"] > after]
    return [lines[0], *rest]


def members(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    return conn.execute("SELECT id, central_version FROM members ORDER BY id").fetchall()


def cards(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT value, member_id FROM member_identifiers "
                        "ORDER BY value").fetchall()


def test_members_central_no_longer_has_go_wherever_they_fall_and_resumes_agree() -> None:
    edge = ["M00", "M02", "M05", "M09", "M10"]  # M00 before, M05 between, M09+ after
    central = [view("M01"), view("M02", 2), view("M03"), view("M06"), view("M08")]
    lines = snapshot(central)
    expected = [(v["member_id"], v["version"]) for v in central]
    for size in range(2, len(lines) + 1):  # the header and at least one line a chunk
        conn = open_memory()
        migrate(conn)
        for member_id in edge:
            upsert_member(conn, view(member_id), AT)
        pending = lines
        while pending:  # each chunk commits alone, then the download "breaks"
            apply_snapshot_lines(conn, pending[:size], AT)
            progress = get_state(conn, SNAPSHOT_STATE)
            pending = resumed(lines, progress) if progress and len(pending) > size else \
                pending[size:]
        assert members(conn) == expected, size
        assert cards(conn) == [("C" + m[1:], m) for m, _ in expected], size
        assert get_state(conn, SNAPSHOT_STATE) is None
        assert conn.execute("SELECT cursor FROM sync_cursor").fetchall() == [("9",)]


def test_an_empty_member_phase_erases_every_member(conn: sqlite3.Connection) -> None:
    upsert_member(conn, view("M1"), AT)
    apply_snapshot_lines(conn, snapshot([]), AT)
    assert members(conn) == [] and cards(conn) == []


def test_a_card_passed_on_to_another_member_follows_it(conn: sqlite3.Connection) -> None:
    upsert_member(conn, view("M1", card="C-7"), AT)
    upsert_member(conn, view("M2", card="C-7"), AT)
    assert cards(conn) == [("C-7", "M2")]
    # Two members of one chunk with the same card: the later one gets it, nothing fails.
    apply_snapshot_lines(conn, snapshot([view("M3", card="C-9"), view("M4", card="C-9")]), AT)
    assert members(conn) == [("M3", 1), ("M4", 1)]
    assert cards(conn) == [("C-9", "M4")]


def test_members_out_of_key_order_are_refused_whole(conn: sqlite3.Connection) -> None:
    upsert_member(conn, view("M5"), AT)
    conn.execute("SAVEPOINT op")
    with pytest.raises(SnapshotOrderError) as refused:
        apply_snapshot_lines(conn, snapshot([view("M7"), view("M6")]), AT)
    conn.execute("ROLLBACK TO op")
    assert refused.value.code == "snapshot_order"
    assert members(conn) == [("M5", 1)]


def test_progress_kept_by_an_older_version_restarts_the_snapshot(
    conn: sqlite3.Connection,
) -> None:
    set_state(conn, SNAPSHOT_STATE, {"cursor": "9", "phase": "member", "after": "M3"}, AT)
    apply_snapshot_lines(conn, snapshot([view("M1"), view("M2")])[:3], AT)
    assert get_state(conn, SNAPSHOT_STATE) == {"format": 2, "cursor": "9", "phase": "member",
                                               "after": "M2"}


async def child(db: Path, central: Central, *nth: int) -> tuple[int, str]:
    return await run_child("tests.sync.snapshot_child", str(db), central.url,
                           central.gateway_token, "7", *map(str, nth))


@pytest.mark.parametrize("storage", ["sqlite"], indirect=True)  # the edge, not storage
@pytest.mark.parametrize("nth", [1, 3, 6])
async def test_sigkill_between_snapshot_chunks_then_restart_converges(
    central: Central, admin: CentralClient, tmp_path: Path, nth: int,
) -> None:
    for n in range(40):
        await admin.create_member(MALL, {"member_id": f"M{n:02d}", "account_id": f"A{n:02d}",
                                         "identifiers": [{"kind": "card", "value": f"C{n}"}]})
    await admin.adjust(MALL, "M01", request_id="gift-1", points=10, reason="gift")
    db = tmp_path / "gw.db"
    code, output = await child(db, central)
    assert code == 0 and "done" in output, output
    # Away: central erases members (the first, some between, the last), adds and changes
    # others, then forgets its change log, so the gateway must resync from the snapshot.
    for gone in ("M00", "M17", "M18", "M39"):
        await admin.erase_member(MALL, gone)
    await admin.create_member(MALL, {"member_id": "M40", "account_id": "A40"})
    await admin.update_member(MALL, "M05", {"identifiers": [{"kind": "card", "value": "C99"}]})
    await admin.adjust(MALL, "M02", request_id="gift-2", points=5, reason="gift")
    assert await central.storage.purge_changes(MALL, older_than_s=-1) > 0
    code, output = await child(db, central, nth)
    assert code == -signal.SIGKILL, output
    code, output = await child(db, central)
    assert code == 0 and "done" in output, output
    async with open_edge(db, central.url, central.gateway_token) as edge:
        kept = [f"M{n:02d}" for n in range(41) if n not in (0, 17, 18, 39)]
        assert await edge.read(lambda c: [r[0] for r in c.execute(
            "SELECT id FROM members ORDER BY id")]) == kept
        assert await edge.scalar("SELECT member_id FROM member_identifiers "
                                 "WHERE value = 'C99'") == "M05"
        assert await edge.scalar("SELECT count(*) FROM member_identifiers "
                                 "WHERE value IN ('C0', 'C5', 'C17', 'C18', 'C39')") == 0
        assert await edge.scalar("SELECT count(*) FROM ledger") == 2
        status = await edge.engine.status()
        assert not status.resync_in_progress
        assert status.cursor == await central.storage.head(MALL)
