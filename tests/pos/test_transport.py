from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.pos import const
from devices.pos.framing import ACK, encode_frame, encode_line
from devices.pos.printouts import Printout
from devices.pos.transport import PortSupervisor, reopen_backoff
from gateway.receipts import ReceiptPipeline
from gateway.settings.pos import PosPort
from tests.pos.fixtures import own
from tests.pos.helpers import RULES, Clock, open_pipeline, pos_settings, rows
from tests.pos.ptys import SOCAT, PtyPair, open_pos_end, pty_pair

pytestmark = pytest.mark.skipif(SOCAT is None, reason="socat is not installed")
AT = datetime(2026, 11, 22, 14, 5, 9)
WAIT_S = 20.0


def printout(no: str, member: str | None = "M12345678") -> Printout:
    return Printout("万达广场 星巴克", no, AT, (("拿铁(大杯)", 3200), ("松饼", 3250)),
                    member_code=member)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 - polls a database and a port state
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def gateway(tmp_path: Path, pair: PtyPair, mode: str,
                  ) -> AsyncIterator[tuple[PortSupervisor, ReceiptPipeline]]:
    port = PosPort.model_validate({"path": str(pair.gateway), "store_id": "S01",
                                   "pos_id": "P1", "mode": mode})
    clock = Clock(datetime(2026, 11, 22, 16, 0, tzinfo=RULES.tz))
    async with open_pipeline(tmp_path / "gw.db", clock, pos_settings((port,))) as pipeline:
        supervisor = PortSupervisor(port, pipeline, reopen_max=0.5, idle_gap=1.0)
        task = asyncio.create_task(supervisor.run())
        try:
            await until(lambda: supervisor.state.up)
            yield supervisor, pipeline
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def receipts(tmp_path: Path) -> list[tuple[object, ...]]:
    try:
        return rows(tmp_path / "gw.db", "SELECT receipt_no, duplicates FROM receipts "
                    "ORDER BY receipt_no")
    except sqlite3.OperationalError:
        return []


async def test_escpos_receipts_over_a_pty(tmp_path: Path) -> None:
    async with pty_pair(tmp_path) as pair, gateway(tmp_path, pair, "escpos") as (sup, _):
        _, writer = await open_pos_end(pair)
        # 0x11 / 0x13 inside commands and images must reach the gateway (no XON/XOFF).
        stream = (own("gb18030-chinese-mode.bin") + b"\x1b@\x1d!\x11\x13\x1b!\x00"
                  + own("gb18030-raw-qr-member.bin") + own("gb18030-kitchen-ticket.bin")
                  + own("gb18030-no-cut.bin"))
        writer.write(stream)
        await writer.drain()
        await until(lambda: len(receipts(tmp_path)) == 3)  # the no-cut job by idle gap
        assert [r[0] for r in receipts(tmp_path)] == ["20261122-0001", "20261122-0002",
                                                      "20261122-0004"]
        assert sup.state.bytes_in == len(stream)
        captured = rows(tmp_path / "gw.db", "SELECT raw FROM pos_captures ORDER BY id")
        assert b"".join(r[0] for r in captured if isinstance(r[0], bytes)) == stream
        writer.close()


async def read_ack(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readexactly(2), WAIT_S)


async def test_framed_acks_after_commit_and_recognises_resends(tmp_path: Path) -> None:
    async with pty_pair(tmp_path) as pair, gateway(tmp_path, pair, "framed") as (sup, pipe):
        reader, writer = await open_pos_end(pair)
        frames = [encode_frame(i, printout(f"F-{i}").payload("S01", "P1")) for i in (1, 2)]
        writer.write(frames[0])
        assert await read_ack(reader) == bytes([ACK, 1])
        # ACK means committed: the receipt is already in the database.
        assert receipts(tmp_path) == [("F-1", 0)]
        writer.write(frames[0])  # the ACK was lost: the POS sends the frame again
        assert await read_ack(reader) == bytes([ACK, 1])
        damaged = bytearray(frames[1])
        damaged[10] ^= 0x01
        writer.write(bytes(damaged))
        assert await read_ack(reader) == bytes([0x15, 2])
        writer.write(frames[1])
        assert await read_ack(reader) == bytes([ACK, 2])
        assert receipts(tmp_path) == [("F-1", 0), ("F-2", 0)]
        assert (await pipe.ledger.balance("A1")).available == 128
        assert sup.state.errors == 1
        writer.close()


async def test_jsonl_over_a_pty(tmp_path: Path) -> None:
    async with pty_pair(tmp_path) as pair, gateway(tmp_path, pair, "jsonl") as _:
        reader, writer = await open_pos_end(pair)
        writer.write(b"garbage\n" + encode_line(7, printout("J-7").payload("S01", "P1")))
        assert await asyncio.wait_for(reader.readline(), WAIT_S) == (
            b'{"nak": null, "error": "crc"}\n')
        assert await asyncio.wait_for(reader.readline(), WAIT_S) == b'{"ack": 7}\n'
        assert receipts(tmp_path) == [("J-7", 0)]
        writer.close()


async def test_port_vanishing_mid_receipt_loses_and_doubles_nothing(tmp_path: Path) -> None:
    pair = PtyPair(tmp_path)
    await pair.start()
    try:
        async with gateway(tmp_path, pair, "framed") as (sup, pipe):
            reader, writer = await open_pos_end(pair)
            first = encode_frame(1, printout("V-1").payload("S01", "P1"))
            second = encode_frame(2, printout("V-2").payload("S01", "P1"))
            writer.write(first)
            assert await read_ack(reader) == bytes([ACK, 1])
            writer.write(second[:15])  # the cable is pulled in the middle of a frame
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
            await pair.stop()
            await until(lambda: not sup.state.up)
            await pair.start()  # replugged: same names, new devices
            await until(lambda: sup.state.up)
            reader, writer = await open_pos_end(pair)
            # The POS never saw the ACK of V-2 and (being unsure) resends V-1 too.
            writer.write(first)
            assert await read_ack(reader) == bytes([ACK, 1])
            writer.write(second)
            assert await read_ack(reader) == bytes([ACK, 2])
            writer.close()
            assert receipts(tmp_path) == [("V-1", 1), ("V-2", 0)]
            assert (await pipe.ledger.balance("A1")).available == 128
            assert sup.state.outages == 1
    finally:
        await pair.stop()


async def test_a_port_that_does_not_exist_is_retried(tmp_path: Path) -> None:
    pair = PtyPair(tmp_path)
    port = PosPort(path=str(pair.gateway), store_id="S01", pos_id="P1", mode="jsonl")
    clock = Clock(datetime(2026, 11, 22, 16, 0, tzinfo=RULES.tz))
    async with open_pipeline(tmp_path / "gw.db", clock, pos_settings((port,))) as pipeline:
        wall = Clock(datetime(2026, 11, 22, 8, 0, tzinfo=UTC))
        supervisor = PortSupervisor(port, pipeline, reopen_max=0.2, now=wall)
        task = asyncio.create_task(supervisor.run())
        try:
            await until(lambda: "cannot open" in supervisor.state.last_error)
            assert not supervisor.state.up
            assert supervisor.state.since == wall.now  # outage times come from the clock seam
            wall.now += timedelta(minutes=5)
            await pair.start()
            await until(lambda: supervisor.state.up)
            assert supervisor.state.outages == 1
            assert supervisor.state.as_dict()["since"] == "2026-11-22T08:05:00+00:00"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await pair.stop()


def test_reopen_waits_double_from_the_first_to_the_cap_with_full_jitter() -> None:
    highest = reopen_backoff(30, rand=lambda low, high: high)
    waits = [highest.next_delay() for _ in range(12)]
    assert waits[:4] == pytest.approx([const.REOPEN_FIRST_S * 2 ** n for n in range(4)])
    assert waits[-1] == 30
    highest.reset()  # the port was open again: the next outage starts from the first wait
    assert highest.next_delay() == pytest.approx(const.REOPEN_FIRST_S)
    drawn: list[tuple[float, float]] = []

    def lowest(low: float, high: float) -> float:
        drawn.append((low, high))
        return low

    jittered = reopen_backoff(30, rand=lowest)
    assert jittered.next_delay() == 0.0
    assert drawn == [(0.0, const.REOPEN_FIRST_S)]  # full jitter: anywhere from zero


async def test_inline_pass_through_relays_both_ways_and_prints_what_it_cannot_parse(
        tmp_path: Path) -> None:
    async with pty_pair(tmp_path, "pos") as pos, pty_pair(tmp_path, "printer") as printer:
        port = PosPort(path=str(pos.gateway), store_id="S01", pos_id="P1",
                       printer_path=str(printer.gateway))
        clock = Clock(datetime(2026, 11, 22, 16, 0, tzinfo=RULES.tz))
        async with open_pipeline(tmp_path / "gw.db", clock, pos_settings((port,))) as pipe:
            supervisor = PortSupervisor(port, pipe, reopen_max=0.5, idle_gap=1.0)
            task = asyncio.create_task(supervisor.run())
            try:
                await until(lambda: supervisor.state.up)
                pos_reader, pos_writer = await open_pos_end(pos)
                printer_reader, printer_writer = await open_pos_end(printer)
                unreadable = b"\x1b@garbage that no template reads\n\x1dV\x00"
                stream = own("gb18030-chinese-mode.bin") + unreadable
                pos_writer.write(stream)
                printed = await asyncio.wait_for(printer_reader.readexactly(len(stream)),
                                                 WAIT_S)
                assert printed == stream  # byte for byte, the unreadable job too
                printer_writer.write(b"\x12")  # a status reply to DLE EOT
                assert await asyncio.wait_for(pos_reader.readexactly(1), WAIT_S) == b"\x12"
                await until(lambda: supervisor.state.receipts == 2)
                assert receipts(tmp_path) == [("20261122-0001", 0)]
                assert rows(tmp_path / "gw.db", "SELECT count(*) FROM dead_letters") == [(1,)]
                pos_writer.close()
                printer_writer.close()
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
