"""The demo's tills: `devices.pos.sim` ringing up receipts on each POS line until told to
stop, remembering which receipts the gateway acknowledged (the loss check looks for each
of them) and how many were member sales (each must be credited once)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

import serial_asyncio_fast

from devices.pos.printouts import Printout
from devices.pos.sim import PosSimulator, SimReceipt, drained, scenario
from gateway.app.demo_mall.layout import PosLine

# Receipts planned at a time: a scenario's refunds and copies refer to its own sales.
CHUNK = 100


@dataclass(slots=True)
class TillTally:
    sent: int = 0  # receipts delivered: acknowledged, or written on an escpos line
    sales: int = 0  # member sales among them: each must be credited
    unacked: int = 0  # receipts the gateway never acknowledged after every retry
    acked: list[SimReceipt] = field(default_factory=list)


def cash_only(receipt: SimReceipt, line: PosLine) -> SimReceipt:
    """The sale paid in cash or by card. Paying with points needs the till to ask the
    gateway first (authorize), which the simulated till does not do."""
    p = receipt.printout
    if receipt.kind != "sale" or p is None or not p.points_used:
        return receipt
    paid = replace(p, points_used=0, points_paid_fen=0)
    return replace(receipt, printout=paid, escpos=paid.escpos(),
                   payload=paid.payload(line.store_id, line.pos_id))


def receipts(line: PosLine, chunk: int, members: list[str], tz: tzinfo) -> list[SimReceipt]:
    # POS clocks print local wall time; a chunk's receipts are dated up to now.
    now = datetime.now(tz).replace(tzinfo=None, microsecond=0)
    planned = scenario(CHUNK, seed=line.seed * 1000 + chunk, start=now - timedelta(
        seconds=CHUNK), members=members, store_id=line.store_id, pos_id=line.pos_id)
    return [cash_only(r, line) for r in planned]


async def ring_up(line: PosLine, port: Path, tally: TillTally, *, rate: float,
                  members: list[str], tz: tzinfo, stop: asyncio.Event) -> None:
    """Send receipts on `port` at `rate` per second until `stop` is set."""
    reader, writer = await serial_asyncio_fast.open_serial_connection(
        url=str(port), baudrate=115200, xonxoff=False)
    till = PosSimulator(reader, writer, line.mode, seed=line.seed, store_id=line.store_id,
                        pos_id=line.pos_id)
    try:
        chunk = 0
        while not stop.is_set():
            for receipt in receipts(line, chunk, members, tz):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1 / rate)
                if stop.is_set():
                    break
                await _send(till, receipt, tally)
            chunk += 1
        await drained(writer)
    finally:
        writer.close()


async def _send(till: PosSimulator, receipt: SimReceipt, tally: TillTally) -> None:
    before = till.report.acked
    try:
        await till.send(receipt)
    except TimeoutError:
        tally.unacked += 1
        return
    acked = till.report.acked > before
    if acked:
        tally.acked.append(receipt)
    if acked or till.mode == "escpos":
        tally.sent += 1
        tally.sales += receipt.kind == "sale"


def printout_no(receipt: SimReceipt) -> str:
    """The receipt number the gateway files the receipt under."""
    number = receipt.payload.get("receipt_no")
    if isinstance(number, str):
        return number
    return receipt.printout.receipt_no if isinstance(receipt.printout, Printout) else ""
