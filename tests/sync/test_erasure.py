"""Erasure reaches every trace of the member at the edge, within one sync: central erases,
and the edge's dead letters, stored kiosk replies and POS bytes that name the member go."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime
from functools import partial

from cloud_api.client import CentralClient
from devices.kiosk.protocol import REPLIES
from gateway.deadletters import keep
from gateway.members import IdentityKeys
from gateway.operations.model import OperationRequest
from gateway.operations.service import Operations
from gateway.receipts import (
    Capture,
    ParsedReceipt,
    ReceiptKind,
    ReceiptPipeline,
    UnreadableReceipt,
)
from tests.cloud_api.central import MALL
from tests.sync.edge import Edge

AT = "2026-11-22T08:00:00.000000Z"
CARD = "VIP00042"


def parse(capture: Capture) -> ParsedReceipt:
    """`SALE number code`, `COPY number code`, anything else unreadable."""
    kind, number, code = capture.raw.decode().split()[:3]
    if kind not in {"SALE", "COPY"}:
        raise UnreadableReceipt(f"no receipt: {capture.raw!r}", code="unreadable")
    return ParsedReceipt(kind=ReceiptKind.SALE if kind == "SALE" else ReceiptKind.COPY,
                         receipt_no=number, total_fen=10_000, member_code=code,
                         occurred_at=datetime(2026, 11, 22, 10, tzinfo=UTC))


async def traces(edge: Edge, *names: str) -> list[str]:
    """Where any of `names` (as a whole word: M1 is not in M10) still shows at the edge."""
    words = [re.compile(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])") for name in names]

    def look(conn: sqlite3.Connection) -> list[str]:
        found = []
        for table, column in (("dead_letters", "raw"), ("dead_letters", "error"),
                              ("dead_letters", "context"), ("kiosk_requests", "reply"),
                              ("receipts", "raw"), ("receipts", "parsed"),
                              ("receipts", "member_id"), ("pos_captures", "raw")):
            for (value,) in conn.execute(f"SELECT {column} FROM {table}"):
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                found += [f"{table}.{column}: {text}" for word in words
                          if text and word.search(text)]
        return found
    return await edge.read(look)


async def test_erasing_a_member_centrally_removes_every_trace_at_the_edge_in_one_sync(
    edge: Edge, admin: CentralClient,
) -> None:
    for member, card in (("M1", CARD), ("M10", "VIP00043")):
        await admin.create_member(MALL, {"member_id": member, "account_id": "A" + member,
                                         "identifiers": [{"kind": "card", "value": card}]})
    await edge.engine.sync_now()

    # A check-in at a kiosk: its reply, naming the member, is stored for retries.
    ops = Operations(ledger=edge.ledger, reader=edge.reader, writer=edge.writer,
                     keys=IdentityKeys(qr_key=None, phone_key=None, skew_s=60),
                     replies=REPLIES, central_online=lambda: True, claim_days=7,
                     sessions=None)
    checkin = OperationRequest(op="checkin", key="k1:R1", id="R1", data={"member_id": "M1"},
                               kiosk="k1")
    first, _ = await ops.handle(checkin)
    assert first["data"]["member_id"] == "M1"
    other = OperationRequest(op="checkin", key="k1:R2", id="R2", data={"member_id": "M10"},
                             kiosk="k1")
    assert (await ops.handle(other))[0]["status"] == "ok"

    # POS: a sale with the member's card, its copy, and an unreadable print naming the card.
    pipeline = ReceiptPipeline(edge.ledger, parse)
    for printed in (f"SALE R-1 {CARD}", f"COPY R-1 {CARD}", f"VOID R-9 {CARD}",
                    "SALE R-2 VIP00043"):
        await pipeline.ingest(store_id="S01", pos_id="P1", mode="jsonl", raw=printed.encode())
    # Refused kiosk input and an event central refused, naming the member by id.
    for source, message, context in (
            ("kiosk", {"data": {"member_id": "M1", "x": 1}}, {"topic": "t"}),
            ("sync.push", {"member_id": "M1", "points": 1}, {"event_id": "e1"}),
            ("kiosk", {"data": {"member_id": "M10", "x": 1}}, {"topic": "t"})):
        await edge.writer.submit(partial(keep, source=source, raw=json.dumps(message),
                                         code="invalid", error="e", context=context, at=AT))
    assert await traces(edge, "M1", CARD)

    await admin.erase_member(MALL, "M1")
    await edge.engine.sync_now()

    assert await traces(edge, "M1", CARD) == []
    # The other member's traces stay, and so do the sale's parsed figures.
    assert len(await traces(edge, "M10", "VIP00043")) >= 4
    assert await edge.scalar("SELECT count(*) FROM dead_letters") == 1
    assert await edge.scalar("SELECT count(*) FROM receipts") == 2
    assert await edge.scalar(
        "SELECT parsed ->> '$.total_fen' FROM receipts WHERE receipt_no = 'R-1'") == 10_000
    # A retry of the erased member's check-in is answered afresh: nobody by that id here.
    retry, was_retry = await ops.handle(checkin)
    assert not was_retry
    assert retry["error"]["code"] == "unknown_member"
