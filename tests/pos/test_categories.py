"""Item lines carry categories, and category multipliers apply to POS sales.

Through the whole app with its POS port on a real pty: a jsonl sale that says which line
is tobacco, and a printed receipt whose store template maps the line to tobacco.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from devices.pos.printouts import Printout
from gateway.app.keys import POS
from tests.pos.helpers import RULES, template_settings
from tests.pos.ptys import SOCAT
from tests.pos.test_refunds import metric
from tests.pos.tills import MEMBER, available, count, gateway_and_tills, sale

pytestmark = pytest.mark.skipif(SOCAT is None, reason="socat is not installed")
# Tobacco earns nothing; food earns as usual (listed, so it is a known category).
LOYALTY = {"earn": {"category_multiplier_pct": {"tobacco": 0, "food": 100}}}


def with_lines(no: str, *lines: tuple[str, int, str | None]) -> dict[str, Any]:
    payload = sale(no, total=sum(amount for _, amount, _ in lines))
    payload["lines"] = [{"name": name, "amount_fen": amount}
                        | ({"category": category} if category else {})
                        for name, amount, category in lines]
    return payload


async def test_a_tobacco_line_of_a_jsonl_sale_earns_nothing(tmp_path: Path) -> None:
    async with gateway_and_tills(tmp_path, "jsonl", ("P1",), loyalty=LOYALTY) as (app, tills):
        reply = await tills["P1"].send(with_lines(
            "A-1", ("拿铁(大杯)", 3200, "food"), ("中华(软)", 3250, "tobacco")))
        assert reply.ok
        # Only the latte's 32 yuan earn: 32 points, not 64.
        assert await available(app) == 32
        assert app[POS].pipeline.stats.unknown_category_lines == 0


async def test_unknown_categories_earn_at_the_base_rate_and_are_counted(
        tmp_path: Path) -> None:
    async with gateway_and_tills(tmp_path, "framed", ("P1",), loyalty=LOYALTY) as (app, tills):
        reply = await tills["P1"].send(with_lines(
            "A-1", ("拿铁(大杯)", 3200, "food"), ("小玩意", 3250, "gizmo"),
            ("无类别", 100, None)))
        assert reply.ok
        assert await available(app) == 65
        assert metric(app, "mallgate_pos_lines_unknown_category_total") == 1


async def test_a_template_maps_printed_lines_to_tobacco(tmp_path: Path) -> None:
    template = template_settings().model_dump() | {"categories": [
        {"category": "tobacco", "name": "香烟|中华"},
        {"category": "food", "name": "拿铁"}]}
    async with gateway_and_tills(tmp_path, "escpos", ("P1",), loyalty=LOYALTY,
                                 templates=[template]) as (app, tills):
        at = datetime.now(RULES.tz).replace(tzinfo=None, microsecond=0)
        printout = Printout("万达广场 星巴克", "E-1", at,
                            (("拿铁(大杯)", 3200), ("中华香烟", 3250)), member_code=MEMBER)
        tills["P1"].writer.write(printout.escpos())
        await tills["P1"].writer.drain()
        db = tmp_path / "gw.db"
        # The receipt and its points commit together; the ledger's own view of them may
        # follow the database's by a loop turn, so the points are what is waited for.
        async with asyncio.timeout(10):
            while await available(app) != 32:  # noqa: ASYNC110 - polls the ledger
                await asyncio.sleep(0.05)
        assert count(db, "SELECT count(*) FROM receipts") == 1
        assert count(db, "SELECT count(*) FROM receipts WHERE json_extract(parsed, "
                         "'$.lines[1].category') = 'tobacco'") == 1
