"""Refunds across tills and days: the original is found by store and receipt number.

Through the whole app with its POS ports on real ptys, the test playing two tills of
one store; and a property over any order of sales, refunds and resends.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.pos.framing import encode_line
from devices.pos.metrics import pos_families
from gateway.app.keys import POS
from tests.pos.helpers import RULES, Clock, open_pipeline, rows
from tests.pos.ptys import SOCAT
from tests.pos.tills import available, count, gateway_and_tills, sale

pytestmark = pytest.mark.skipif(SOCAT is None, reason="socat is not installed")


def refund(no: str, original: str, fen: int, *, at: str = "2026-11-22T16:30:00+08:00",
           ) -> dict[str, Any]:
    return {"receipt_no": no, "kind": "refund", "original_no": original,
            "occurred_at": at, "total_fen": fen}


def metric(app: Any, name: str, **labels: str) -> float:
    for family in pos_families(app[POS]):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def test_a_refund_on_another_till_reverses_the_sale(tmp_path: Path) -> None:
    async with gateway_and_tills(tmp_path, "jsonl", ("P1", "P2")) as (app, tills):
        assert (await tills["P1"].send(sale("A-1"))).ok
        assert await available(app) == 64
        # 3200 of 6450 fen returned at the other till: 64 * 3200 // 6450 = 31 back.
        assert (await tills["P2"].send(refund("R-1", "A-1", 3200))).ok
        assert await available(app) == 64 - 31
        db = tmp_path / "gw.db"
        assert count(db, "SELECT count(*) FROM receipts WHERE kind = 'refund' AND "
                         "member_id IS NOT NULL AND json_extract(parsed, '$.original_key') "
                         "= 'S01:P1:A-1:2026-11-22'") == 1
        # Three days later, the rest, on the first till again.
        assert (await tills["P1"].send(refund("R-2", "A-1", 3250,
                                              at="2026-11-25T10:00:00+08:00"))).ok
        assert await available(app) == 0
        assert count(db, "SELECT count(*) FROM dead_letters") == 0


async def test_a_refund_of_an_unknown_sale_is_held_then_applied_when_it_arrives(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with gateway_and_tills(tmp_path, "jsonl", ("P1", "P2")) as (app, tills):
        db = tmp_path / "gw.db"
        # P1's sale is stuck on its line (cable out); P2 refunds part of it first.
        assert (await tills["P2"].send(refund("R-1", "A-1", 3200))).ok
        assert (await tills["P2"].send(refund("R-1", "A-1", 3200), same_seq=True)).ok
        assert (await tills["P2"].send(refund("R-1", "A-1", 3200))).ok
        assert count(db, "SELECT count(*) FROM dead_letters WHERE source = 'pos_review' "
                         "AND error_code = 'refund_unmatched' AND replayed_at IS NULL") == 1
        assert metric(app, "mallgate_pos_refunds_total", result="held") == 1
        warnings = [r for r in caplog.records if r.levelname == "WARNING"
                    and "R-1" in r.getMessage()]
        assert len(warnings) == 1
        # The sale arrives: it earns, and the refund held for it takes back its share.
        assert (await tills["P1"].send(sale("A-1"))).ok
        assert await available(app) == 64 - 31
        assert metric(app, "mallgate_pos_refunds_total", result="applied_late") == 1
        assert count(db, "SELECT count(*) FROM dead_letters WHERE source = 'pos_review' "
                         "AND replayed_at IS NULL") == 0
        # Resends of both change nothing.
        assert (await tills["P1"].send(sale("A-1"))).ok
        assert (await tills["P2"].send(refund("R-1", "A-1", 3200))).ok
        assert await available(app) == 64 - 31
        assert count(db, "SELECT count(*) FROM ledger WHERE kind = 'REVERSE'") == 1


async def test_a_refund_outside_the_window_is_held(tmp_path: Path) -> None:
    async with gateway_and_tills(tmp_path, "jsonl", ("P1", "P2"),
                                 refund_window_days=30) as (app, tills):
        assert (await tills["P1"].send(sale("A-1"))).ok
        late = refund("R-1", "A-1", 3200, at="2026-12-23T10:00:00+08:00")
        assert (await tills["P2"].send(late)).ok
        assert await available(app) == 64
        assert count(tmp_path / "gw.db", "SELECT count(*) FROM dead_letters WHERE "
                     "error_code = 'refund_unmatched'") == 1


# -- any order, any resends: never more than the refunded share ------------------------

SALE_FEN = 6450
EARNED = 64
REFUNDS = {"R-1": ("P2", 1000), "R-2": ("P3", 2000), "R-3": ("P1", 3450)}


def _message(name: str) -> tuple[str, bytes]:
    if name == "sale":
        payload = sale("A-1", member="M12345678")
        pos = "P1"
    else:
        pos, fen = REFUNDS[name]
        payload = refund(name, "A-1", fen)
    return pos, encode_line(1, payload)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["sale", *REFUNDS]), min_size=1, max_size=9))
def test_refunds_never_take_back_more_than_once(order: list[str]) -> None:
    async def run(path: Path) -> None:
        clock = Clock(datetime(2026, 11, 23, 9, 0, tzinfo=RULES.tz))
        async with open_pipeline(path, clock) as pipeline:
            for name in order:
                pos, raw = _message(name)
                await pipeline.ingest(store_id="S01", pos_id=pos, mode="jsonl", raw=raw)
            balance = await pipeline.ledger.balance("A1")
        refunded = sum(REFUNDS[n][1] for n in set(order) if n in REFUNDS)
        earned = EARNED if "sale" in order else 0
        assert balance.available == earned - earned * refunded // SALE_FEN
        pending = rows(path, "SELECT count(*) FROM dead_letters WHERE source = 'pos_review' "
                             "AND replayed_at IS NULL")
        assert pending == [(0 if "sale" in order else len(set(order) - {"sale"}),)]

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp) / "gw.db"))
