from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest

from devices.pos.framing import encode_frame, encode_line
from devices.pos.printouts import Printout
from devices.pos.reading import CaptureReader
from gateway.loyalty import Entry, EntryKind, Plausibility
from gateway.receipts import (
    ReceiptAlreadyClaimed,
    ReceiptClaimError,
    ReceiptClaimExpired,
    ReceiptNotFound,
    ReceiptPipeline,
    claim_receipt,
)
from tests.pos.fixtures import own
from tests.pos.helpers import (
    RULES,
    Clock,
    open_pipeline,
    pos_settings,
    rows,
    template_settings,
)

NORMAL, SILVER, GOLD, DIAMOND = RULES.tiers.tiers
AT = datetime(2026, 11, 22, 14, 5, 9)
DAY = date(2026, 11, 22)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 22, 16, 0, tzinfo=RULES.tz))


@pytest.fixture
async def pipeline(tmp_path: Path, clock: Clock) -> AsyncIterator[ReceiptPipeline]:
    async with open_pipeline(tmp_path / "gw.db", clock) as pipeline:
        yield pipeline


def db(pipeline: ReceiptPipeline) -> Path:
    return Path(pipeline.ledger._writer.path)


async def balance(pipeline: ReceiptPipeline, account: str) -> int:
    return (await pipeline.ledger.balance(account)).available


def sale(no: str, *, member: str | None = "M12345678", fen: int = 6450, **kw: object
         ) -> Printout:
    items = (("拿铁(大杯)", 3200), ("𠮷野家套餐", fen - 3200))
    return Printout("万达广场 星巴克", no, AT, items, member_code=member, **kw)  # type: ignore[arg-type]


async def escpos(pipeline: ReceiptPipeline, data: bytes) -> str:
    return (await pipeline.ingest(store_id="S01", pos_id="P1", mode="escpos", raw=data)).status


async def test_a_sale_is_credited_once_whatever_the_copies(pipeline: ReceiptPipeline) -> None:
    assert await escpos(pipeline, own("gb18030-chinese-mode.bin")) == "sale"
    assert await balance(pipeline, "A1") == 64
    # The reprint, a merchant copy and the same bytes again: counted, never credited.
    assert await escpos(pipeline, own("gb18030-reprint.bin")) == "copy"
    assert await escpos(pipeline, sale("20261122-0001", copy_label="商户联").escpos()) == "copy"
    assert await escpos(pipeline, own("gb18030-chinese-mode.bin")) == "duplicate"
    assert await balance(pipeline, "A1") == 64
    ((count, duplicates, member),) = rows(
        db(pipeline), "SELECT count(*), sum(duplicates), max(member_id) FROM receipts")
    assert (count, duplicates, member) == (1, 3, "M12345678")


async def test_raw_bytes_are_stored_before_and_with_the_receipt(
        pipeline: ReceiptPipeline) -> None:
    data = own("gb18030-raw-qr-member.bin")
    capture = await pipeline.capture(store_id="S01", pos_id="P1", mode="escpos", raw=data)
    assert rows(db(pipeline), "SELECT raw, status FROM pos_captures") == [(data, "new")]
    # The gateway stops here; at the next start the capture is processed.
    (outcome,) = await pipeline.recover()
    assert outcome.capture_id == capture.id and outcome.status == "sale"
    ((raw, parsed),) = rows(db(pipeline), "SELECT raw, parsed FROM receipts")
    assert raw == data
    assert isinstance(parsed, str)
    fields = json.loads(parsed)
    assert fields["member_code"] == "M87654321" and fields["kind"] == "sale"
    assert (fields["total_fen"], fields["points_used"], fields["points_paid_fen"]) == (
        6450, 100, 100)
    assert fields["occurred_at"] == "2026-11-22T14:05:09+08:00"
    assert await pipeline.recover() == []


async def test_refund_reverses_the_original_sale(pipeline: ReceiptPipeline) -> None:
    await escpos(pipeline, own("gb18030-chinese-mode.bin"))
    assert await escpos(pipeline, own("gb18030-refund.bin")) == "refund"
    # 3200 of 6450 fen returned: 64 * 3200 // 6450 = 31 points taken back.
    assert await balance(pipeline, "A1") == 64 - 31
    assert await escpos(pipeline, own("gb18030-refund.bin")) == "duplicate"
    assert await balance(pipeline, "A1") == 64 - 31


async def test_non_sales_do_not_earn(pipeline: ReceiptPipeline) -> None:
    assert await escpos(pipeline, own("gb18030-kitchen-ticket.bin")) == "non_sale"
    assert rows(db(pipeline), "SELECT count(*) FROM receipts") == [(0,)]


async def test_unreadable_receipt_is_a_dead_letter_and_replays_after_a_fix(
        tmp_path: Path, clock: Clock) -> None:
    data = own("gb18030-chinese-mode.bin").replace("合计".encode("gb18030"),
                                                     "总计".encode("gb18030"))
    async with open_pipeline(tmp_path / "gw.db", clock) as pipeline:
        outcome = await pipeline.ingest(store_id="S01", pos_id="P1", mode="escpos", raw=data)
        assert outcome.status == "dead" and "total" in outcome.reason
        assert await pipeline.replay_dead_letters() == [replace(outcome, reason=outcome.reason)]
        ((raw, code, replayed),) = rows(tmp_path / "gw.db", "SELECT raw, error_code, "
                                        "replayed_at FROM dead_letters")
        assert (raw, code, replayed) == (data, "missing_field", None)
    # The template is fixed: the total is 合计 or 总计.
    fixed = pos_settings()
    fixed = fixed.model_copy(update={"templates": (template_settings().model_copy(
        update={"total": r"[合总]计[:\uff1a]\s*(?P<total>[¥￥]?[\d,]+\.\d{2})"}),)})
    async with open_pipeline(tmp_path / "gw.db", clock) as pipeline:
        pipeline.parser = CaptureReader(fixed, RULES.tz)
        (outcome,) = await pipeline.replay_dead_letters()
        assert outcome.status == "sale"
        assert await balance(pipeline, "A1") == 64
        assert await pipeline.replay_dead_letters() == []
    assert rows(tmp_path / "gw.db", "SELECT replay_result FROM dead_letters") == [("sale",)]


async def test_framed_and_jsonl_captures(pipeline: ReceiptPipeline) -> None:
    payload = sale("F-1", member="M87654321").payload("S01", "P1")
    outcome = await pipeline.ingest(store_id="S01", pos_id="P1", mode="framed",
                                    raw=encode_frame(1, payload))
    assert (outcome.status, outcome.points) == ("sale", 80)  # gold earns 125 %
    again = await pipeline.ingest(store_id="S01", pos_id="P1", mode="jsonl",
                                  raw=encode_line(9, payload))
    assert again.status == "duplicate"
    bad = await pipeline.ingest(store_id="S01", pos_id="P1", mode="jsonl",
                                raw=encode_line(3, {"receipt_no": "x"}))
    assert bad.status == "dead"


# -- claiming at a kiosk ------------------------------------------------------------------


async def claim(pipeline: ReceiptPipeline, clock: Clock, *, no: str = "20261122-0004",
                member: str = "M12345678", account: str = "A1", days: int = 7,
                business_date: date = DAY) -> int:
    result = await claim_receipt(
        pipeline.ledger, store_id="S01", pos_id="P1", receipt_no=no,
        business_date=business_date, member_id=member, account_id=account, tier=NORMAL,
        now=clock.now, claim_days=days)
    return result.points if not result.duplicate else -result.points


async def test_an_unclaimed_receipt_is_claimed_once(pipeline: ReceiptPipeline,
                                                    clock: Clock) -> None:
    assert await escpos(pipeline, own("gb18030-no-cut.bin")) == "sale"
    assert rows(db(pipeline), "SELECT member_id FROM receipts") == [(None,)]
    assert await claim(pipeline, clock) == 28
    assert await balance(pipeline, "A1") == 28
    assert await claim(pipeline, clock) == -28  # same member again: the first result
    assert await balance(pipeline, "A1") == 28
    with pytest.raises(ReceiptAlreadyClaimed) as info:
        await claim(pipeline, clock, member="M00000003", account="A3")
    assert info.value.code == "receipt_already_claimed"
    assert await balance(pipeline, "A3") == 0


async def test_claim_errors(pipeline: ReceiptPipeline, clock: Clock) -> None:
    await escpos(pipeline, own("gb18030-no-cut.bin"))
    await escpos(pipeline, own("gb18030-chinese-mode.bin"))  # credited at the till
    with pytest.raises(ReceiptNotFound) as missing:
        await claim(pipeline, clock, no="nope")
    assert missing.value.code == "receipt_not_found"
    with pytest.raises(ReceiptAlreadyClaimed):
        await claim(pipeline, clock, no="20261122-0001", member="M00000003", account="A3")
    clock.now = datetime(2026, 11, 30, 9, 0, tzinfo=RULES.tz)
    with pytest.raises(ReceiptClaimExpired) as expired:
        await claim(pipeline, clock)
    assert expired.value.code == "receipt_claim_expired"
    assert isinstance(expired.value, ReceiptClaimError)
    assert await claim(pipeline, clock, days=8) == 28


async def test_a_refund_before_the_claim_is_applied_with_it(pipeline: ReceiptPipeline,
                                                            clock: Clock) -> None:
    await escpos(pipeline, sale("S-9", member=None).escpos())
    refund = Printout("万达广场 星巴克", "S-10", AT, (("拿铁(大杯)", 3200),), refund_of="S-9")
    assert await escpos(pipeline, refund.escpos()) == "refund"
    assert await claim(pipeline, clock, no="S-9") == 64
    assert await balance(pipeline, "A1") == 64 - 31
    with pytest.raises(ReceiptNotFound):
        await claim(pipeline, clock, no="S-10")  # a refund is not claimable


async def test_a_sale_over_the_limit_is_a_dead_letter_not_credited(tmp_path: Path,
                                                                   clock: Clock) -> None:
    limits = Plausibility(max_entry_points=10_000_000, max_sale_fen=1_000_000)
    async with open_pipeline(tmp_path / "lim.db", clock, limits=limits) as pipeline:
        for member in ("M12345678", None):  # credited or not, the sale is implausible
            big = sale(f"BIG-{member}", member=member, fen=1_000_001).payload("S01", "P1")
            outcome = await pipeline.ingest(store_id="S01", pos_id="P1", mode="jsonl",
                                            raw=encode_line(1, big))
            assert outcome.status == "dead" and "implausible" in (outcome.reason or "")
        assert await balance(pipeline, "A1") == 0
        assert rows(db(pipeline), "SELECT count(*) FROM receipts") == [(0,)]
        assert rows(db(pipeline), "SELECT error_code FROM dead_letters") == [
            ("implausible_sale",), ("implausible_sale",)]
        ok = sale("OK-1", fen=1_000_000).payload("S01", "P1")
        assert (await pipeline.ingest(store_id="S01", pos_id="P1", mode="jsonl",
                                      raw=encode_line(2, ok))).status == "sale"


async def test_a_claim_applies_printed_points_only_within_the_balance(
        pipeline: ReceiptPipeline, clock: Clock) -> None:
    # An unclaimed printed receipt paid 100 points; the member who claims it has none.
    paid = sale("S-11", member=None, points_used=100, points_paid_fen=100)
    assert await escpos(pipeline, paid.escpos()) == "sale"
    earned = await claim(pipeline, clock, no="S-11", member="M00000003", account="A3")
    assert earned == 63  # the cash part, 63.50 yuan
    assert await balance(pipeline, "A3") == 63
    assert rows(db(pipeline), "SELECT count(*) FROM ledger WHERE kind = 'BURN'") == [(0,)]
    letters = rows(db(pipeline), "SELECT json_extract(context, '$.flagged'), "
                   "json_extract(context, '$.member_id') FROM dead_letters WHERE source = "
                   "'pos_review' AND error_code = 'needs_review' AND replayed_at IS NULL")
    assert letters == [(100, "M00000003")]


async def test_a_claim_offline_applies_printed_points_within_the_allowance(
        pipeline: ReceiptPipeline, clock: Clock) -> None:
    await pipeline.ledger.record(Entry(
        kind=EntryKind.ADJUST, points=500, account_id="A3", member_id="M00000003",
        source_type="test", source_key="gift", reason="test points",
        effective_at=clock.now, rule_version=RULES.version))
    conn = sqlite3.connect(db(pipeline))
    with conn:
        conn.execute("INSERT INTO offline_allowances (account_id, points, granted_seq, "
                     "granted_at) VALUES ('A3', 40, 0, '2026-01-01')")
    conn.close()
    paid = sale("S-12", member=None, points_used=100, points_paid_fen=100)
    assert await escpos(pipeline, paid.escpos()) == "sale"
    await claim_receipt(
        pipeline.ledger, store_id="S01", pos_id="P1", receipt_no="S-12", business_date=DAY,
        member_id="M00000003", account_id="A3", tier=NORMAL, now=clock.now, claim_days=7,
        online=False)
    assert rows(db(pipeline), "SELECT sum(points) FROM ledger WHERE kind = 'BURN'") == [(-40,)]
    assert rows(db(pipeline), "SELECT json_extract(context, '$.flagged') FROM dead_letters "
                "WHERE source = 'pos_review' AND replayed_at IS NULL") == [(60,)]
