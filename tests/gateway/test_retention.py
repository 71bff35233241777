"""Retention: dead letters and POS captures' raw bytes go after their periods from settings,
pruned by a supervised part of the running gateway, counted on /metrics."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from gateway.app import create_app
from gateway.app.keys import PARTS, RETENTION, WRITER
from gateway.loyalty.wire import to_text
from gateway.retention import prune
from gateway.settings import Settings
from gateway.store import migrate, open_memory
from tests.conftest import free_port
from tests.kiosk.helpers import Clock, eventually

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def days_ago(days: int) -> str:
    text = to_text(NOW - timedelta(days=days))
    assert text is not None
    return text


def fill(conn: sqlite3.Connection) -> None:
    """Dead letters and POS captures (one with its receipt) 100 and 10 days old, and a
    capture of 100 days not processed yet."""
    for age in (100, 10):
        letter = conn.execute(
            "INSERT INTO dead_letters (source, raw, error_code, error, received_at) "
            "VALUES ('pos', x'00', 'unreadable', 'e', ?)", (days_ago(age),)).lastrowid
        conn.execute("INSERT INTO pos_captures (store_id, pos_id, mode, raw, received_at, "
                     "status, dead_letter_id) VALUES ('S1', 'P1', 'escpos', ?, ?, 'dead', ?)",
                     (f"dead {age}".encode(), days_ago(age), letter))
        receipt = conn.execute(
            "INSERT INTO receipts (store_id, pos_id, receipt_no, business_date, raw, parsed, "
            "parse_status, received_at) VALUES ('S1', 'P1', ?, '2026-01-01', ?, ?, 'parsed', ?)",
            (f"R{age}", f"sale {age}".encode(), json.dumps({"total_fen": 100}),
             days_ago(age))).lastrowid
        conn.execute("INSERT INTO pos_captures (store_id, pos_id, mode, raw, received_at, "
                     "status, receipt_id) VALUES ('S1', 'P1', 'escpos', ?, ?, 'sale', ?)",
                     (f"sale {age}".encode(), days_ago(age), receipt))
    conn.execute("INSERT INTO pos_captures (store_id, pos_id, mode, raw, received_at) "
                 "VALUES ('S1', 'P1', 'escpos', x'01', ?)", (days_ago(100),))


def traces(conn: sqlite3.Connection) -> dict[str, object]:
    return {
        "letters": conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0],
        "raw_captures": conn.execute(
            "SELECT count(*) FROM pos_captures WHERE length(raw) > 0").fetchone()[0],
        "raw_receipts": conn.execute(
            "SELECT count(*) FROM receipts WHERE length(raw) > 0").fetchone()[0],
        "receipts": conn.execute("SELECT count(*) FROM receipts").fetchone()[0],
    }


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    db = open_memory()
    migrate(db)
    fill(db)
    yield db
    db.close()


def test_prune_removes_what_is_older_than_each_period(conn: sqlite3.Connection) -> None:
    pruned = prune(conn, dead_letters_before=days_ago(90), captures_before=days_ago(90))
    assert (pruned.dead_letters, pruned.pos_captures) == (1, 2)
    # The parsed receipts stay; the capture not yet processed keeps its bytes.
    assert traces(conn) == {"letters": 1, "raw_captures": 3, "raw_receipts": 1, "receipts": 2}
    assert conn.execute("SELECT count(*) FROM pos_captures WHERE dead_letter_id IS NOT NULL"
                        ).fetchone()[0] == 1
    again = prune(conn, dead_letters_before=days_ago(90), captures_before=days_ago(90))
    assert (again.dead_letters, again.pos_captures) == (0, 0)


def settings(tmp_path: Path, **store: int) -> Settings:
    return Settings.model_validate_json(json.dumps({
        "site": {"mall_id": "test-mall", "gateway_id": "gw-test"},
        "store": {"path": str(tmp_path / "gw.db"), **store},
        "http": {"port": free_port()}}))


def test_the_periods_are_settings_with_90_days_by_default(tmp_path: Path) -> None:
    defaults = settings(tmp_path).store
    assert (defaults.dead_letter_retention_days, defaults.pos_capture_retention_days) == (90, 90)


async def test_the_running_gateway_prunes_at_start_and_then_daily(
        aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    clock = Clock(NOW)
    app = create_app(settings(tmp_path, dead_letter_retention_days=30,
                              pos_capture_retention_days=60), now=clock)
    client = await aiohttp_client(app)
    assert "retention" in {status.name for status in app[PARTS].statuses()}
    await app[WRITER].submit(fill)
    db = sqlite3.connect(tmp_path / "gw.db")
    try:
        await app[RETENTION].prune_now()
        assert traces(db) == {"letters": 1, "raw_captures": 3, "raw_receipts": 1,
                              "receipts": 2}
        clock.at = NOW + timedelta(days=55)  # the recent letter is 65 days old, captures too
        await app[RETENTION].prune_now()
        assert traces(db) == {"letters": 0, "raw_captures": 1, "raw_receipts": 0,
                              "receipts": 2}
    finally:
        db.close()
    scraped = await (await client.get("/metrics")).text()
    assert "mallgate_retention_dead_letters_pruned_total 2.0" in scraped
    assert "mallgate_retention_pos_captures_pruned_total 4.0" in scraped


async def test_pruning_starts_with_the_gateway(tmp_path: Path,
                                               aiohttp_client: AiohttpClient) -> None:
    path = tmp_path / "gw.db"
    db = sqlite3.connect(path)
    migrate(db)
    fill(db)
    db.commit()
    app = create_app(settings(tmp_path), now=Clock(NOW))
    await aiohttp_client(app)
    await eventually(lambda: traces(db)["letters"] == 1)
    db.close()
