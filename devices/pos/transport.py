"""Serial I/O of the POS ports: one supervisor per port, thin around the sans-io codecs.

A supervisor opens its port by the configured (stable) path through pyserial-asyncio-fast,
feeds what it reads to the port's codec, and hands complete receipts to the core's
`ReceiptPipeline`. A port that cannot be opened, or vanishes, is reopened with capped
exponential backoff and jitter, logging one line when it goes down and one when it is
back. XON/XOFF is never enabled: 0x11 and 0x13 are data in ESC/POS.

framed / jsonl: a message is ACKed only after `pipeline.ingest` returned, i.e. after its
receipt (or dead letter) committed; a resend of the last committed seq gets the same
answer again without being processed. `authorize` and `void` are answered with a reply
after the hold committed; a sale paying with points without a valid hold gets a NAK with
its reason. escpos: jobs go through a bounded queue so that reading (and
the pass-through to the printer) never waits for the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import serial
import serial_asyncio_fast

from devices.pos import const
from devices.pos.errors import FrameError
from devices.pos.framing import (
    FrameDecoder,
    LineDecoder,
    Message,
    Rejected,
    frame_ack,
    frame_answer,
    frame_nak,
    line_ack,
    line_nak,
    line_refused,
    line_reply,
)
from devices.pos.jobs import Job, Splitter
from devices.pos.requests import authorize_request, message_type, void_request
from gateway.backoff import Backoff
from gateway.clock import Clock, utc_now
from gateway.holds.service import Holds
from gateway.receipts import ReceiptPipeline
from gateway.settings.pos import PosPort

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PortState:
    """What the dashboard and /metrics show of one port."""

    path: str
    store_id: str
    pos_id: str
    mode: str
    up: bool = False
    since: datetime | None = None  # when it last went up or down
    bytes_in: int = 0
    receipts: int = 0  # messages or jobs committed
    errors: int = 0  # rejected frames / lines, dead letters
    outages: int = 0
    last_error: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "store_id": self.store_id, "pos_id": self.pos_id,
                "mode": self.mode, "up": self.up,
                "since": self.since.isoformat() if self.since else None,
                "bytes_in": self.bytes_in, "receipts": self.receipts, "errors": self.errors,
                "outages": self.outages, "last_error": self.last_error}


def reopen_backoff(cap: float, rand: Callable[[float, float], float] = random.uniform,
                   ) -> Backoff:
    """The waits between reopen attempts: doubling from `const.REOPEN_FIRST_S` to `cap`."""
    return Backoff(const.REOPEN_FIRST_S, cap, rand)


async def open_port(path: str, port: PosPort) -> tuple[asyncio.StreamReader,
                                                       asyncio.StreamWriter]:
    reader, writer = await serial_asyncio_fast.open_serial_connection(
        url=path, baudrate=port.baudrate, parity=port.parity, stopbits=port.stopbits,
        rtscts=port.rtscts, xonxoff=False, exclusive=True)
    return reader, writer


class PortSupervisor:
    def __init__(self, port: PosPort, pipeline: ReceiptPipeline, *, reopen_max: float = 30.0,
                 idle_gap: float = const.IDLE_GAP_S,
                 monotonic: Callable[[], float] = time.monotonic, now: Clock = utc_now,
                 rand: Callable[[float, float], float] = random.uniform,
                 holds: Holds | None = None) -> None:
        self.port = port
        self.pipeline = pipeline
        self.holds = holds  # authorize / void on framed and jsonl; None: not offered
        self.reopen_max = reopen_max
        self.backoff = reopen_backoff(reopen_max, rand)
        self.monotonic = monotonic
        self.now = now  # outage times shown in the dashboard
        self.state = PortState(port.path, port.store_id, port.pos_id, port.mode)
        # The splitter outlives a reconnect: a job interrupted by an outage continues.
        self._splitter = Splitter(port.encoding, idle_gap=idle_gap)
        self._jobs: asyncio.Queue[Job] = asyncio.Queue(const.JOB_QUEUE_MAX)
        self._printer: asyncio.StreamWriter | None = None
        self._relay: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Supervise the port until cancelled."""
        async with asyncio.TaskGroup() as group:
            if self.port.mode == "escpos":
                group.create_task(self._commit_jobs(), name=f"pos-jobs:{self.port.path}")
            while True:
                try:
                    reader, writer = await open_port(self.port.path, self.port)
                except (serial.SerialException, OSError, ValueError) as exc:
                    self._down(f"cannot open: {exc}")
                    await asyncio.sleep(self.backoff.next_delay())
                    continue
                self.backoff.reset()
                self._up()
                try:
                    await self._serve(reader, writer)
                    self._down("closed")
                except (serial.SerialException, OSError) as exc:
                    self._down(str(exc) or type(exc).__name__)
                finally:
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()
                # Lost after it was up: the first, short wait before reopening.
                await asyncio.sleep(self.backoff.next_delay())

    def _up(self) -> None:
        self.state.up, self.state.since = True, self.now()
        if self.state.outages:
            log.info("POS port %s is back", self.port.path)
        else:
            log.info("POS port %s open (%s)", self.port.path, self.port.mode)

    def _down(self, reason: str) -> None:
        if self.state.up or self.state.since is None:
            # One line per outage: repeated failures to reopen stay quiet.
            log.warning("POS port %s down: %s", self.port.path, reason)
            self.state.outages += 1
            self.state.up, self.state.since = False, self.now()
        self.state.last_error = reason

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.port.mode == "escpos":
            await self._serve_escpos(reader, writer)
        else:
            await self._serve_messages(reader, writer)

    async def _read(self, reader: asyncio.StreamReader) -> bytes | None:
        """A chunk, b"" at end of stream, or None when nothing arrived within a tick."""
        try:
            return await asyncio.wait_for(reader.read(const.READ_CHUNK), const.TICK_S)
        except TimeoutError:
            return None

    # -- escpos -------------------------------------------------------------------------

    async def _serve_escpos(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        async with contextlib.AsyncExitStack() as stack:
            if self.port.printer_path:
                stack.push_async_callback(self._close_printer)
                await self._open_printer(writer)
            while True:
                data = await self._read(reader)
                if data == b"":
                    return
                now = self.monotonic()
                if data is None:  # the line was silent for a whole tick
                    jobs = self._splitter.tick(now)
                else:
                    self.state.bytes_in += len(data)
                    await self._to_printer(data)  # printing first, parsing after
                    jobs = self._splitter.feed(data, now)
                for job in jobs:
                    await self._jobs.put(job)

    async def _commit_jobs(self) -> None:
        while True:
            await self._commit_job(await self._jobs.get())

    async def _commit_job(self, job: Job) -> None:
        if not job.has_content:
            return  # status polls and lone init commands between receipts
        # Nobody resends a print job: its raw bytes are committed before it is parsed.
        capture = await self.pipeline.capture(store_id=self.port.store_id,
                                              pos_id=self.port.pos_id, mode="escpos",
                                              raw=job.raw)
        outcome = await self.pipeline.process(capture)
        self.state.receipts += 1
        if outcome.status == "dead":
            self.state.errors += 1

    async def _open_printer(self, pos_writer: asyncio.StreamWriter) -> None:
        assert self.port.printer_path is not None  # noqa: S101 - checked by the caller
        try:
            reader, writer = await open_port(self.port.printer_path, self.port)
        except (serial.SerialException, OSError) as exc:
            log.warning("printer port %s cannot open: %s", self.port.printer_path, exc)
            return
        self._printer = writer

        async def relay_status() -> None:  # printer -> POS: status replies, ASB
            while data := await reader.read(const.READ_CHUNK):
                pos_writer.write(data)

        self._relay = asyncio.create_task(relay_status(), name="pos-printer-status")

    async def _to_printer(self, data: bytes) -> None:
        if self._printer is None:
            return
        try:
            self._printer.write(data)
        except (serial.SerialException, OSError) as exc:
            log.warning("printer port %s failed: %s", self.port.printer_path, exc)
            await self._close_printer()

    async def _close_printer(self) -> None:
        printer, self._printer = self._printer, None
        relay, self._relay = self._relay, None
        if relay is not None:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await relay
        if printer is not None:
            printer.close()

    # -- framed / jsonl -------------------------------------------------------------------

    async def _serve_messages(self, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
        framed = self.port.mode == "framed"
        decoder: FrameDecoder | LineDecoder = FrameDecoder() if framed else LineDecoder()
        last: bytes = b""  # the answer to the last committed seq, sent again to a resend
        while True:
            data = await self._read(reader)
            if data == b"":
                return
            if data:
                self.state.bytes_in += len(data)
            for event in decoder.receive(data or b"", self.monotonic()):
                if isinstance(event, Rejected):
                    reply = self._rejected(event, framed)
                elif event.duplicate:
                    reply = last or self._acked(event.seq, framed)
                else:
                    reply = last = await self._answer(event, framed)
                    decoder.committed(event.seq)
                if reply:
                    writer.write(reply)
                    await writer.drain()

    def _rejected(self, event: Rejected, framed: bool) -> bytes:
        self.state.errors += 1
        self.state.last_error = f"{event.code}: {event.reason}"
        if event.code == "noise":
            return b""
        return frame_nak(event.seq) if framed else line_nak(event.seq, event.code)

    @staticmethod
    def _acked(seq: int, framed: bool) -> bytes:
        return frame_ack(seq) if framed else line_ack(seq)

    async def _answer(self, event: Message, framed: bool) -> bytes:
        """Process a message and return its answer, which is sent only now: after commit."""
        seq = event.seq
        kind = message_type(event.payload)
        if kind in ("authorize", "void"):
            body = await self._request(kind, event.payload)
            self.state.receipts += 1
            return frame_answer(True, seq, body) if framed else line_reply(seq, body)
        if kind is None:
            self.state.errors += 1
            body = {"status": "refused", "error": "bad_request",
                    "msg": f"unknown message type {event.payload.get('type')!r}"}
            return frame_answer(True, seq, body) if framed else line_reply(seq, body)
        outcome = await self.pipeline.ingest(
            store_id=self.port.store_id, pos_id=self.port.pos_id, mode=self.port.mode,
            raw=event.raw)
        self.state.receipts += 1
        if outcome.status in ("dead", "refused"):
            self.state.errors += 1
        if outcome.status == "refused":  # kept as a dead letter; the till must not retry
            code, _, msg = outcome.reason.partition(": ")
            self.state.last_error = outcome.reason
            return (frame_answer(False, seq, {"error": code, "msg": msg}) if framed
                    else line_refused(seq, code, msg))
        return self._acked(seq, framed)

    async def _request(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        till = {"store_id": self.port.store_id, "pos_id": self.port.pos_id}
        if self.holds is None:
            return {"type": kind, "status": "refused", "error": "not_supported",
                    "msg": "this gateway does not hold points for tills"}
        try:
            if kind == "authorize":
                return await self.holds.authorize(authorize_request(payload, **till))
            return await self.holds.void(void_request(payload, **till))
        except FrameError as exc:
            return {"type": kind, "status": "refused", "error": exc.code, "msg": exc.reason}
