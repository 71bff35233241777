"""No sequence of till messages uses a coupon twice or without its sale.

Random authorize / void / sale messages naming coupons (the member's own, another
member's, several at once, with holds granted, forged, spent or expired), resends and
clock jumps, framed or jsonl, run through a port supervisor's message loop into a real
store. Whatever the sequence: each coupon is redeemed at most once, only by a sale that
was recorded with the hold that held it, and the fold of its facts agrees.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.pos.framing import encode_frame, encode_line
from devices.pos.reading import CaptureReader
from devices.pos.transport import PortSupervisor
from gateway.coupons import CouponIssuer, facts_of
from gateway.holds.service import Holds
from gateway.ledger import Ledger
from gateway.loyalty import Campaign, CouponKind, CouponStatus, CouponTerms, fold_coupon
from gateway.loyalty.hlc import HybridClock
from gateway.receipts import ReceiptPipeline
from gateway.settings.pos import PosPort
from gateway.store import Reader, Writer
from tests.pos.helpers import MEMBERS, RULES, Clock, add_members, pos_settings
from tests.pos.test_holds_properties import _hold_of, _Line
from tests.scale import examples

CODES = sorted(MEMBERS)
CAMPAIGN = Campaign(campaign_id="prop", mall="mall-1", valid_days=1, per_member_limit=None,
                    terms=CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=300))
COUPONS = 4  # per member
# A coupon: mostly one of the member's own (index within theirs), sometimes any (another
# member's); one or two per message.
picks = st.lists(st.tuples(st.sampled_from([True, True, True, False]),
                           st.integers(0, len(CODES) * COUPONS - 1)), min_size=1, max_size=2)
authorize = st.tuples(st.just("authorize"), st.sampled_from(CODES), picks,
                      st.integers(0, 5000))
sale = st.tuples(st.just("sale"), st.sampled_from(CODES), picks, st.integers(-2, 12),
                 st.sampled_from([True, True, False]))

# A sale names a hold granted so far (or a forged one, or none) and either that hold's
# member and coupons or a member and coupons of its own choosing. Authorize and sale
# messages come most often.
step = st.one_of(
    authorize, authorize, sale, sale,
    st.tuples(st.just("void"), st.integers(-1, 12)),
    st.tuples(st.just("resend")),
    st.tuples(st.just("tick"), st.integers(1, 200)),
)


async def _run(steps: list[tuple[Any, ...]], mode: str) -> None:
    clock = Clock(datetime(2026, 11, 22, 6, 0, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "gw.db"
        async with Writer(db) as writer, Reader(db) as reader:
            add_members(db)
            ledger = Ledger(writer, reader, site="gw-1", clock=HybridClock("gw1"),
                            rules=RULES, now=clock)
            issuer = CouponIssuer(mall="mall-1", site="gw-1", key=b"prop key")
            codes: list[str] = []
            for member in CODES:
                for n in range(COUPONS):
                    coupon = await writer.submit(partial(
                        issuer.issue_in, campaign=CAMPAIGN, member_id=member,
                        source_key=f"{member}:{n}", now=clock.now))
                    codes.append(coupon.code)
            port = PosPort(path="/dev/null", store_id="S01", pos_id="P1", mode=cast(Any, mode))
            pipeline = ReceiptPipeline(ledger, CaptureReader(pos_settings((port,)), RULES.tz),
                                       reader=reader)
            holds = Holds(ledger, central_online=lambda: True, expiry_s=120, mall="mall-1",
                          site="gw-1")
            supervisor = PortSupervisor(port, pipeline, holds=holds)
            stream = asyncio.StreamReader()
            line = _Line()
            serving = asyncio.create_task(supervisor._serve_messages(
                stream, cast(asyncio.StreamWriter, line)))
            granted: list[Granted] = []
            seq, last = 0, b""

            async def send(data: bytes) -> None:
                line.wrote.clear()
                stream.feed_data(data)
                async with asyncio.timeout(10):
                    await line.wrote.wait()

            for i, (kind, *args) in enumerate(steps):
                if kind == "tick":
                    clock.now += timedelta(seconds=args[0])
                    continue
                if kind == "resend":
                    if last:
                        await send(last)
                    continue
                seq += 1
                payload = _payload(i, kind, args, granted, codes)
                before = holds.stats.granted
                await send(last := (encode_frame(seq % 256, payload) if mode == "framed"
                                    else encode_line(seq, payload)))
                if holds.stats.granted > before:
                    granted.append((_hold_of(db, f"q{i}"), payload["coupon_codes"],
                                    payload["member_code"]))
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            _check(db, clock.now)


def _codes(member: str, chosen: list[tuple[bool, int]], codes: list[str]) -> list[str]:
    own = CODES.index(member) * COUPONS
    return [codes[own + n % COUPONS] if mine else codes[n] for mine, n in chosen]


# A hold granted so far: its id, the codes it was asked for and its member.
Granted = tuple[str, list[str], str]


def _payload(i: int, kind: str, args: list[Any], granted: list[Granted],
             codes: list[str]) -> dict[str, Any]:
    if kind == "authorize":
        member, chosen, total = args
        return {"type": "authorize", "request_id": f"q{i}", "member_code": member,
                "total_fen": total, "points": 0, "coupon_codes": _codes(member, chosen, codes)}
    if kind == "void":
        pick = args[0]
        return {"type": "void",
                "hold_id": granted[pick % len(granted)][0] if granted and pick >= 0 else "Hx"}
    member, chosen, pick, its_own = args
    sale: dict[str, Any] = {"receipt_no": f"R{i}", "occurred_at": "2026-11-22T14:05:09+08:00",
                            "total_fen": 1000, "member_code": member,
                            "coupon_codes": _codes(member, chosen, codes)}
    if pick >= 0 and granted:
        sale["hold_id"], held, holder = granted[pick % len(granted)]
        if its_own:  # the till that asked: its member and coupons
            sale["coupon_codes"], sale["member_code"] = held, holder
    elif pick == -1:
        sale["hold_id"] = "Hforged"
    return sale


def _check(db: Path, now: datetime) -> None:
    conn = sqlite3.connect(db)
    try:
        sold = {hold for (hold,) in conn.execute(
            "SELECT json_extract(parsed, '$.hold_id') FROM receipts WHERE kind = 'sale'")}
        for (coupon_id,) in conn.execute("SELECT id FROM coupons"):
            facts = facts_of(conn, coupon_id)
            redeemed = [f.ref for f in facts if f.kind.value == "redeemed"]
            assert len(redeemed) <= 1, (coupon_id, redeemed)  # never twice
            assert set(redeemed) <= sold  # only by a recorded sale, with that hold
            state = fold_coupon(facts, as_of=now)
            assert state is not None and state.conflicts == 0
            assert (state.status is CouponStatus.REDEEMED) == bool(redeemed)
            # The hold that redeemed it had held it.
            assert all(any(f.kind.value == "held" and f.ref == ref for f in facts)
                       for ref in redeemed)
    finally:
        conn.close()


@settings(max_examples=examples(40), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=st.lists(step, min_size=2, max_size=25),
       mode=st.sampled_from(["framed", "jsonl"]))
def test_no_sequence_of_till_messages_uses_a_coupon_twice(steps: list[tuple[Any, ...]],
                                                          mode: str) -> None:
    asyncio.run(_run(steps, mode))
