"""A gateway with one POS port on a real pty, and a till speaking to it byte by byte."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from devices.pos.framing import (
    ACK,
    NAK,
    STX,
    FrameDecoder,
    Message,
    encode_frame,
    encode_line,
)
from gateway.app import create_app
from gateway.app.keys import LEDGER, POS
from gateway.loyalty import Entry, EntryKind
from gateway.settings import Settings
from tests.pos.helpers import template_settings
from tests.pos.ptys import PtyPair, open_pos_end, pty_pair

REPLY_TIMEOUT_S = 10.0
MEMBER, ACCOUNT = "M00000055", "A55"


class Clock:
    """The gateway's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


def till_settings(tmp_path: Path, port: Path, mode: str, *,
                  more: dict[str, Path] | None = None,
                  loyalty: dict[str, Any] | None = None,
                  central: dict[str, Any] | None = None, **extra: Any) -> Settings:
    """One port `P1` on `port`, and `more` ports of the same store by POS id; `central`:
    the `[central]` and `[sync]` settings of a gateway that syncs."""
    return Settings.model_validate_json(json.dumps({
        **(central or {}),
        "site": {"mall_id": "test-mall", "gateway_id": "gw-test"},
        "store": {"path": str(tmp_path / "gw.db")},
        "pos": pos_section({"P1": port} | (more or {}), mode, **extra),
        "loyalty": loyalty or {},
    }))


def pos_section(ports: dict[str, Path], mode: str, **extra: Any) -> dict[str, Any]:
    """The `[pos]` settings (as JSON data) of one port per till of store S01, by POS id."""
    return {"ports": [{"path": str(path), "store_id": "S01", "pos_id": pos_id, "mode": mode,
                       "baudrate": 115200} for pos_id, path in ports.items()],
            "templates": [template_settings().model_dump()], "idle_gap_s": 0.5, **extra}


def add_member(db: Path, member: str = MEMBER, account: str = ACCOUNT) -> None:
    conn = sqlite3.connect(db, timeout=30)
    try:
        with conn:
            conn.execute("INSERT OR IGNORE INTO accounts (id, updated_at) "
                         "VALUES (?, '2026-01-01')", (account,))
            conn.execute("INSERT OR IGNORE INTO members (id, account_id, tier, updated_at) "
                         "VALUES (?, ?, 'normal', '2026-01-01')", (member, account))
    finally:
        conn.close()


def count(db: Path, sql: str, *args: object) -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()


@dataclass
class Reply:
    """What the gateway answered: ACK or NAK, and the reply frame or line that came with it."""

    ok: bool
    body: dict[str, Any] | None


class Till:
    """A POS end of the line: sends framed or jsonl messages, reads the gateway's answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 mode: str) -> None:
        self.reader, self.writer, self.mode = reader, writer, mode
        self.seq = 0

    async def send(self, payload: dict[str, Any], *, same_seq: bool = False) -> Reply:
        if not same_seq:
            self.seq = (self.seq + 1) % 256
        data = (encode_frame(self.seq, payload) if self.mode == "framed"
                else encode_line(self.seq, payload))
        self.writer.write(data)
        await self.writer.drain()
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            return await (self._framed() if self.mode == "framed" else self._line())

    async def _framed(self) -> Reply:
        code, seq = await self.reader.readexactly(2)
        assert seq == self.seq, (code, seq)
        body = None
        # A reply frame follows at once for requests and for refusals.
        with contextlib.suppress(TimeoutError):
            first = await asyncio.wait_for(self.reader.readexactly(1), 0.3)
            assert first[0] == STX
            head = await self.reader.readexactly(3)
            rest = await self.reader.readexactly(int.from_bytes(head[:2], "big") + 3)
            events = FrameDecoder().receive(first + head + rest, 0.0)
            assert isinstance(events[0], Message), events
            assert events[0].seq == self.seq
            body = events[0].payload
        assert code in (ACK, NAK)
        return Reply(code == ACK, body)

    async def _line(self) -> Reply:
        reply = json.loads(await self.reader.readline())
        if "ack" in reply:
            assert reply["ack"] == self.seq
            return Reply(True, reply.get("reply"))
        assert reply["nak"] == self.seq
        return Reply(False, reply)


@contextlib.asynccontextmanager
async def gateway_and_till(tmp_path: Path, mode: str, clock: Clock | None = None, *,
                           central: dict[str, Any] | None = None,
                           **pos: Any) -> AsyncIterator[tuple[web.Application, Till]]:
    async with pty_pair(tmp_path) as pair:
        app = create_app(till_settings(tmp_path, pair.gateway, mode, central=central, **pos),
                         now=clock or Clock())
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            add_member(tmp_path / "gw.db")
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                while not app[POS].states()[0]["up"]:  # noqa: ASYNC110 - port state
                    await asyncio.sleep(0.02)
            reader, writer = await open_pos_end(pair)
            try:
                yield app, Till(reader, writer, mode)
            finally:
                writer.close()
        finally:
            await runner.cleanup()


@contextlib.asynccontextmanager
async def gateway_and_tills(tmp_path: Path, mode: str, pos_ids: tuple[str, ...],
                            clock: Clock | None = None, *,
                            loyalty: dict[str, Any] | None = None,
                            **pos: Any) -> AsyncIterator[tuple[web.Application, dict[str, Till]]]:
    """The gateway with one port per till of store S01, each on its own real pty."""
    async with contextlib.AsyncExitStack() as stack:
        pairs = {pos_id: await stack.enter_async_context(pty_pair(tmp_path, pos_id))
                 for pos_id in pos_ids}
        first, *rest = pos_ids
        settings = till_settings(tmp_path, pairs[first].gateway, mode, loyalty=loyalty,
                                 more={p: pairs[p].gateway for p in rest}, **pos)
        app = create_app(settings, now=clock or Clock())
        runner = web.AppRunner(app)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        add_member(tmp_path / "gw.db")
        yield app, await stack.enter_async_context(open_tills(app, pairs, mode))


@contextlib.asynccontextmanager
async def open_tills(app: web.Application, pairs: dict[str, PtyPair],
                     mode: str) -> AsyncIterator[dict[str, Till]]:
    """Once the app's POS ports are open, a till on the POS end of each pair, by POS id."""
    async with asyncio.timeout(REPLY_TIMEOUT_S):
        while not all(s["up"] for s in app[POS].states()):  # noqa: ASYNC110 - port state
            await asyncio.sleep(0.02)
    tills = {}
    with contextlib.ExitStack() as closing:
        for pos_id, pair in pairs.items():
            reader, writer = await open_pos_end(pair)
            closing.callback(writer.close)
            tills[pos_id] = Till(reader, writer, mode)
        yield tills


async def give_points(app: web.Application, points: int, key: str = "gift",
                      account: str = ACCOUNT, member: str = MEMBER) -> None:
    ledger = app[LEDGER]
    await ledger.record(Entry(kind=EntryKind.ADJUST, points=points, account_id=account,
                              member_id=member, source_type="test", source_key=key,
                              reason="test points", effective_at=ledger.now(),
                              rule_version=ledger.rules.version))


async def available(app: web.Application, account: str = ACCOUNT) -> int:
    return (await app[LEDGER].balance(account)).available


def sale(no: str, *, total: int = 6450, points: int = 0, hold: str | None = None,
         member: str | None = MEMBER) -> dict[str, Any]:
    payload: dict[str, Any] = {"receipt_no": no, "occurred_at": "2026-11-22T14:05:09+08:00",
                               "total_fen": total}
    if member:
        payload["member_code"] = member
    if points:
        payload |= {"points_used": points, "points_paid_fen": min(points, total)}
    if hold:
        payload["hold_id"] = hold
    return payload
