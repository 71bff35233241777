"""POS ingestion: receipt -> ACK latency over real ptys, and ESC/POS tokenizer throughput.

    python bench/pos_ingest.py [--quick]

Latency: 20 pseudo-terminals (os.openpty), each with a POS simulator speaking the framed
protocol on the master side and a port supervisor of the gateway opening the tty through
pyserial on the other, all feeding one
receipt pipeline on one SQLite store (synchronous=FULL). 100 receipts per second in total;
the figure is the time from the POS writing a frame to reading its ACK, which the gateway
sends only after the receipt and its points committed.

Throughput: the ESC/POS splitter (tokenizer, code pages, job boundaries) over a stream of
GB18030 receipts with QR codes fed in 256-byte reads, in MB/s on one core (best of several
full passes), beside one 115200-baud line (11.52 KB/s) — the ratio is how many saturated
lines one core keeps up with.

The latency baseline is one durable commit on the same disk at the same spacing: the ACK
cannot come sooner than that.

Authorize: the same 20 tills then ask to pay with points (`authorize`, 100 per second in
total, members with points and some without; every other request also takes one of the
member's coupons off the basket); the figure is the time from the till writing the request
to reading the reply frame, which comes after the hold (and its coupons) committed. Its
baseline is the same plain durable commit. The requests with a coupon are also reported
on their own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchlib import emit, percentile

from devices.pos import sim
from devices.pos.jobs import Splitter
from devices.pos.printouts import DEFAULT_TEMPLATE
from devices.pos.reading import CaptureReader
from devices.pos.transport import PortSupervisor
from gateway.coupons import CouponIssuer
from gateway.holds.service import Holds
from gateway.ledger import Ledger
from gateway.loyalty import Campaign, CouponKind, CouponTerms, Entry, EntryKind, LoyaltyRules
from gateway.loyalty.hlc import HybridClock
from gateway.members.store import NewMember, add_members
from gateway.receipts import ReceiptPipeline
from gateway.settings.pos import PosPort, PosSettings, ReceiptTemplate
from gateway.store import Reader, Writer

BENCH = "pos_ingest"
PORTS = 20
RATE = 100.0  # receipts per second over all ports
LINE_BYTES_PER_S = 115_200 / 10  # 8N1: ten bits per byte
RULES = LoyaltyRules()
# The coupon half the authorize requests take off their basket (50.00 yuan).
VOUCHER = Campaign(campaign_id="bench", mall="bench", valid_days=30, per_member_limit=None,
                   terms=CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=500))


def _template() -> ReceiptTemplate:
    t = DEFAULT_TEMPLATE
    return ReceiptTemplate(store_id="S01", **t["fields"], item=t["item"],
                           refund_marker=t["markers"]["refund"],
                           copy_marker=t["markers"]["copy"],
                           non_sale_marker=t["markers"]["non_sale"])


@contextlib.asynccontextmanager
async def pty(loop: asyncio.AbstractEventLoop) -> AsyncIterator[
        tuple[str, asyncio.StreamReader, asyncio.StreamWriter]]:
    """A pseudo-terminal: the tty's path for the gateway, streams on its master for the POS."""
    master, slave = os.openpty()
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: protocol, os.fdopen(master, "rb", buffering=0))
    # The write side gets its own protocol (for drain); its reader stays unused.
    write_protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader())
    write_transport, _ = await loop.connect_write_pipe(
        lambda: write_protocol, os.fdopen(os.dup(master), "wb", buffering=0))
    writer = asyncio.StreamWriter(write_transport, write_protocol, reader, loop)
    try:
        yield os.ttyname(slave), reader, writer
    finally:
        write_transport.close()
        read_transport.close()
        os.close(slave)


async def _members(writer: Writer, ledger: Ledger, members: list[str],
                   coupons_each: int) -> dict[str, list[str]]:
    """Members for the tills to authorize, every other one with points to pay with, and
    each with `coupons_each` coupons; their codes by member."""
    await writer.submit(lambda conn: add_members(
        conn, [NewMember(m, f"A-{m}", "", "normal") for m in members], "2026-01-01"))
    issuer = CouponIssuer(mall="bench", site="bench", key=b"bench coupon key")
    now = ledger.now()

    def issue(conn: sqlite3.Connection) -> dict[str, list[str]]:
        return {member: [issuer.issue_in(conn, VOUCHER, member_id=member,
                                         source_key=f"{member}:{n}", now=now).code
                         for n in range(coupons_each)] for member in members}

    codes = await writer.submit(issue)
    for i, member in enumerate(members):
        if i % 2 == 0:
            await ledger.record(Entry(
                kind=EntryKind.ADJUST, points=1_000_000, account_id=f"A-{member}",
                member_id=member, source_type="bench", source_key=member, reason="bench",
                effective_at=ledger.now(), rule_version=RULES.version))
    return codes


async def _authorize_all(sim_: sim.PosSimulator, port: int, count: int, *,
                         members: list[str], coupons: dict[str, list[str]],
                         offset: float) -> tuple[list[float], list[float]]:
    """Every request's time to its reply, and those of the requests with a coupon (with
    points too for the members who have them, alone for the others)."""
    loop = asyncio.get_running_loop()
    started = loop.time() + offset
    with_coupon: list[float] = []
    for n in range(count):
        delay = started + n / (RATE / PORTS) - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        index = (port + n) % len(members)
        member = members[index]
        codes = [coupons[member].pop()] if n % 2 and coupons[member] else []
        points = 0 if codes and index % 2 else 100  # odd members have no points
        reply = await sim_.authorize_points(request_id=f"P{port}-{n}", points=points,
                                            total_fen=5000, member_code=member,
                                            coupon_codes=codes)
        if codes:
            assert reply.get("coupons"), reply  # the coupon must be granted
            with_coupon.append(sim_.report.authorize_latencies[-1])
    return sim_.report.authorize_latencies, with_coupon


async def latency(seconds: float) -> tuple[list[float], list[float], list[float]]:
    per_port = int(seconds * RATE / PORTS)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as stack:
            ttys = [await stack.enter_async_context(pty(loop)) for _ in range(PORTS)]
            ports = tuple(PosPort(path=path, store_id="S01", pos_id=f"P{i}",
                                  mode="framed", baudrate=115200)
                          for i, (path, _, _) in enumerate(ttys))
            settings = PosSettings(ports=ports, templates=(_template(),))
            db = directory / "gw.db"
            writer = await stack.enter_async_context(Writer(db))
            reader = await stack.enter_async_context(Reader(db))
            ledger = Ledger(writer, reader, site="bench", clock=HybridClock("bench"),
                            rules=RULES)
            pipeline = ReceiptPipeline(ledger, CaptureReader(settings, RULES.tz),
                                       reader=reader)
            # The receipts' member codes stay unknown here (unclaimed sales, as this bench
            # always measured them); the tills authorize for members of their own.
            members = [f"M{i:08d}" for i in range(1, 21)]
            payers = [f"T{i:08d}" for i in range(1, 21)]
            coupons = await _members(writer, ledger, payers, per_port)
            holds = Holds(ledger, central_online=lambda: True, expiry_s=120, mall="bench",
                          site="bench")
            supervisors = [PortSupervisor(p, pipeline, holds=holds) for p in ports]
            tasks = [asyncio.create_task(s.run()) for s in supervisors]
            try:
                async with asyncio.timeout(30):
                    while not all(s.state.up for s in supervisors):  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                start = (datetime.now(UTC).astimezone(RULES.tz).replace(tzinfo=None)
                         - timedelta(hours=1)).replace(microsecond=0)
                sims = [sim.PosSimulator(r, w, "framed", seed=i, noise=0.0, lose_ack=0.0,
                                         store_id="S01", pos_id=f"P{i}")
                        for i, (_, r, w) in enumerate(ttys)]
                runs = [sim.send_all(s, sim.scenario(per_port, seed=i + 1, start=start,
                                                     members=members, store_id="S01",
                                                     pos_id=f"P{i}"), rate=RATE / PORTS,
                                      offset=i / RATE)
                        for i, s in enumerate(sims)]
                reports = await asyncio.gather(*runs)
                asks = await asyncio.gather(*(
                    _authorize_all(s, i, per_port, members=payers, coupons=coupons,
                                   offset=i / RATE)
                    for i, s in enumerate(sims)))
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    receipts = [lat for report in reports for lat in report.latencies]
    return (receipts, [lat for ask, _ in asks for lat in ask],
            [lat for _, coupon in asks for lat in coupon])


async def commit_floor(samples: int) -> list[float]:
    """One durable commit on the same disk, spaced as the receipts are (the physical floor
    of receipt -> ACK: the ACK waits for at least one commit)."""
    with tempfile.TemporaryDirectory() as tmp:
        async with Writer(Path(tmp) / "floor.db") as writer:
            out = []
            for _ in range(samples):
                began = time.perf_counter()
                await writer.submit(lambda conn: conn.execute(
                    "INSERT INTO counters (name, value) VALUES ('floor', 1) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + 1"))
                out.append(time.perf_counter() - began)
                await asyncio.sleep(1 / RATE)
            return out


def throughput(passes: int) -> float:
    """Bytes per second of the splitter over the stream: the best of `passes` full passes
    (the timeit convention: the fastest pass is the one least disturbed by the machine)."""
    start = datetime(2026, 11, 22, 10, 0, 0)
    receipts = sim.scenario(400, seed=5, start=start, members=["M00000001"])
    stream = b"".join(r.escpos for r in receipts)
    chunk = 256  # serial reads are small
    best = float("inf")
    for _ in range(passes):
        began = time.perf_counter()
        splitter = Splitter("gb18030")
        jobs = 0
        for i in range(0, len(stream), chunk):
            jobs += len(splitter.feed(stream[i:i + chunk], 0.0))
        jobs += len(splitter.flush())
        best = min(best, time.perf_counter() - began)
        assert jobs == len(receipts)  # the work is real
    return len(stream) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run for CI")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else 10.0
    # The tokenizer first, on a quiet process: measured after the latency run it would
    # also measure that run's leftovers (threads winding down, a large heap).
    rate = throughput(5 if args.quick else 15)
    lat, auth, coupon = asyncio.run(latency(seconds))
    floor = asyncio.run(commit_floor(int(seconds * RATE)))
    emit(BENCH, "receipt_to_ack_p50", percentile(lat, 50) * 1000, unit="ms", target=None,
         baseline=percentile(floor, 50) * 1000)
    emit(BENCH, "receipt_to_ack_p99", percentile(lat, 99) * 1000, unit="ms",
         target="<= 10", baseline=percentile(floor, 99) * 1000)
    emit(BENCH, "receipts_acked", len(lat), unit="receipts", target=None, baseline=None)
    emit(BENCH, "authorize_to_reply_p50", percentile(auth, 50) * 1000, unit="ms",
         target=None, baseline=percentile(floor, 50) * 1000)
    emit(BENCH, "authorize_to_reply_p99", percentile(auth, 99) * 1000, unit="ms",
         target="<= 10", baseline=percentile(floor, 99) * 1000)
    emit(BENCH, "authorizations", len(auth), unit="requests", target=None, baseline=None)
    emit(BENCH, "authorize_with_coupon_to_reply_p99", percentile(coupon, 99) * 1000,
         unit="ms", target="<= 10", baseline=percentile(floor, 99) * 1000)
    emit(BENCH, "tokenizer_throughput", rate / 1e6, unit="MB/s", target=None,
         baseline=LINE_BYTES_PER_S / 1e6)
    emit(BENCH, "lines_per_core", rate / LINE_BYTES_PER_S, unit="115200-baud lines",
         target=">= 500", baseline=1.0)


if __name__ == "__main__":
    main()
