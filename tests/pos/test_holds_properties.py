"""No sequence of till messages leaves an account in debt.

Random authorize / void / sale messages (points with a hold, without one, with another
till's or a spent one, beyond the grant), resends and clock jumps, framed or jsonl, run
through a port supervisor's message loop into a real store. No refunds are sent, so no
debt is explained: every account must end with no debt and no negative balance, and
every hold must be spent at most once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.pos.framing import encode_frame, encode_line
from devices.pos.reading import CaptureReader
from devices.pos.transport import PortSupervisor
from gateway.holds.service import Holds
from gateway.ledger import Ledger
from gateway.loyalty import Entry, EntryKind
from gateway.loyalty.hlc import HybridClock
from gateway.receipts import ReceiptPipeline
from gateway.settings.pos import PosPort
from gateway.store import Reader, Writer
from tests.pos.helpers import MEMBERS, RULES, Clock, add_members, pos_settings

ACCOUNTS = sorted({account for account, _ in MEMBERS.values()})
CODES = sorted(MEMBERS)

step = st.one_of(
    st.tuples(st.just("authorize"), st.sampled_from(CODES), st.integers(1, 3000),
              st.booleans(), st.integers(0, 20_000)),
    st.tuples(st.just("sale"), st.sampled_from(CODES), st.integers(0, 3000),
              st.integers(-2, 12), st.integers(0, 20_000)),
    st.tuples(st.just("void"), st.integers(-1, 12)),
    st.tuples(st.just("resend")),
    st.tuples(st.just("tick"), st.integers(1, 200)),
)


class _Line:
    """The gateway's side of the wire: what it writes, and an event per write."""

    def __init__(self) -> None:
        self.out = b""
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.out += data
        self.wrote.set()

    async def drain(self) -> None:
        return None


async def _run(steps: list[tuple[Any, ...]], mode: str, start: int) -> None:
    clock = Clock(datetime(2026, 11, 22, 6, 0, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "gw.db"
        async with Writer(db) as writer, Reader(db) as reader:
            add_members(db)
            ledger = Ledger(writer, reader, site="gw-1", clock=HybridClock("gw1"),
                            rules=RULES, now=clock)
            for account in ACCOUNTS:
                member = next(m for m, (a, _) in MEMBERS.items() if a == account)
                await ledger.record(Entry(
                    kind=EntryKind.ADJUST, points=start, account_id=account,
                    member_id=member, source_type="test", source_key=account,
                    reason="start", effective_at=clock.now, rule_version=RULES.version))
            port = PosPort(path="/dev/null", store_id="S01", pos_id="P1", mode=cast(Any, mode))
            pipeline = ReceiptPipeline(ledger, CaptureReader(pos_settings((port,)), RULES.tz),
                                       reader=reader)
            holds = Holds(ledger, central_online=lambda: True, expiry_s=120)
            supervisor = PortSupervisor(port, pipeline, holds=holds)
            stream = asyncio.StreamReader()
            line = _Line()
            serving = asyncio.create_task(supervisor._serve_messages(
                stream, cast(asyncio.StreamWriter, line)))
            granted: list[str] = []
            seq, last = 0, b""

            async def send(data: bytes) -> None:
                line.wrote.clear()
                stream.feed_data(data)
                async with asyncio.timeout(10):
                    await line.wrote.wait()

            def encode(payload: dict[str, Any]) -> bytes:
                return (encode_frame(seq % 256, payload) if mode == "framed"
                        else encode_line(seq, payload))

            for i, (kind, *args) in enumerate(steps):
                if kind == "tick":
                    clock.now += timedelta(seconds=args[0])
                    continue
                if kind == "resend":
                    if last:
                        await send(last)
                    continue
                seq += 1
                before = holds.stats.granted
                await send(last := encode(_payload(i, kind, args, granted)))
                if holds.stats.granted > before:
                    granted.append(_hold_of(db, f"q{i}"))
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            for account in ACCOUNTS:
                balance = await ledger.balance(account, clock.now)
                assert balance.debt == 0, (account, balance)
                assert balance.available >= 0, (account, balance)
            conn = sqlite3.connect(db)
            try:
                # Each hold spent at most once, and never more than it granted.
                assert not conn.execute(
                    "SELECT id FROM holds WHERE captured_points > points").fetchall()
                assert not conn.execute(
                    "SELECT json_extract(parsed, '$.hold_id') h FROM receipts WHERE h IS NOT "
                    "NULL GROUP BY h HAVING count(*) > 1").fetchall()
            finally:
                conn.close()


def _payload(i: int, kind: str, args: list[Any], granted: list[str]) -> dict[str, Any]:
    """Step `i` as a message: holds are picked among those granted so far, or forged."""
    if kind == "authorize":
        code, points, partial, total = args
        return {"type": "authorize", "request_id": f"q{i}", "member_code": code,
                "total_fen": total, "points": points, "partial": partial}
    if kind == "void":
        pick = args[0]
        return {"type": "void",
                "hold_id": granted[pick % len(granted)] if granted and pick >= 0 else "Hx"}
    code, points, pick, total = args
    sale: dict[str, Any] = {"receipt_no": f"R{i}", "occurred_at": "2026-11-22T14:05:09+08:00",
                            "total_fen": max(total, points), "member_code": code}
    if points:
        sale |= {"points_used": points, "points_paid_fen": points}
    if pick >= 0 and granted:
        sale["hold_id"] = granted[pick % len(granted)]
    elif pick == -1:
        sale["hold_id"] = "Hforged"
    return sale


def _hold_of(db: Path, request_id: str) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("SELECT id FROM holds WHERE request_id = ?",
                                (request_id,)).fetchone()[0])
    finally:
        conn.close()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=st.lists(step, max_size=25), mode=st.sampled_from(["framed", "jsonl"]),
       start=st.integers(1, 2000))
def test_no_sequence_of_till_messages_leaves_a_debt(
        steps: list[tuple[Any, ...]], mode: str, start: int) -> None:
    asyncio.run(_run(steps, mode, start))
