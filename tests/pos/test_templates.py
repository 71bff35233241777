from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from devices.pos.errors import ReceiptParseError
from devices.pos.jobs import Splitter
from devices.pos.printouts import DEFAULT_TEMPLATE
from devices.pos.templates import (
    Template,
    parse_receipt,
    receipt_from_payload,
    to_fen,
)
from gateway.receipts import ReceiptKind
from tests.pos.fixtures import own, shared

TZ = ZoneInfo("Asia/Shanghai")
TEMPLATE = Template.compile("S01", **DEFAULT_TEMPLATE)


def read(data: bytes, encoding: str = "gb18030") -> tuple[str, list[str]]:
    splitter = Splitter(encoding)
    (job,) = splitter.feed(data, 0.0) + splitter.tick(100.0)
    return job.text, [c.decode("utf-8", "replace") for c in job.codes]


def test_sale_fields_from_a_chinese_mode_receipt() -> None:
    receipt = parse_receipt(TEMPLATE, *read(own("gb18030-chinese-mode.bin")), TZ)
    assert receipt.kind is ReceiptKind.SALE
    assert receipt.receipt_no == "20261122-0001"
    assert receipt.occurred_at == datetime(2026, 11, 22, 14, 5, 9, tzinfo=TZ)
    assert receipt.total_fen == 6450
    assert receipt.member_code == "M12345678"
    assert receipt.payment == "微信支付"
    assert [(x.name, x.amount_fen) for x in receipt.lines] == [
        ("拿铁(大杯)", 3200), ("𠮷野家套餐", 3250)]


def test_member_code_from_the_qr_and_points_payment() -> None:
    receipt = parse_receipt(TEMPLATE, *read(own("gb18030-raw-qr-member.bin")), TZ)
    assert receipt.member_code == "M87654321"
    assert (receipt.points_used, receipt.points_paid_fen) == (100, 100)


def test_refund_names_its_original() -> None:
    receipt = parse_receipt(TEMPLATE, *read(own("gb18030-refund.bin")), TZ)
    assert receipt.kind is ReceiptKind.REFUND
    assert receipt.original_no == "20261122-0001"
    assert receipt.total_fen == 3200


def test_reprint_is_a_copy() -> None:
    receipt = parse_receipt(TEMPLATE, *read(own("gb18030-reprint.bin")), TZ)
    assert receipt.kind is ReceiptKind.COPY
    assert receipt.receipt_no == "20261122-0001"


def test_kitchen_ticket_is_not_a_sale() -> None:
    receipt = parse_receipt(TEMPLATE, *read(own("gb18030-kitchen-ticket.bin")), TZ)
    assert receipt.kind is ReceiptKind.NON_SALE


def test_a_receipt_the_template_cannot_read_is_a_typed_error() -> None:
    with pytest.raises(ReceiptParseError) as info:
        parse_receipt(TEMPLATE, *read(shared("receipt.bin"), "cp437"), TZ)
    assert info.value.code == "missing_field"


def test_template_needs_named_groups() -> None:
    with pytest.raises(ValueError, match="needs a group"):
        Template.compile("S", fields={"receipt_no": "No (.*)", "occurred_at": "(?P<occurred_at>x)",
                                      "total": "(?P<total>x)"}, markers={})
    with pytest.raises(ValueError, match="needs a pattern"):
        Template.compile("S", fields={"receipt_no": "(?P<receipt_no>x)"}, markers={})


@pytest.mark.parametrize(("text", "fen"), [("¥1,234.50", 123450), ("64.5", 6450),
                                           ("￥0.01", 1), ("12元", 1200)])
def test_amounts(text: str, fen: int) -> None:
    assert to_fen(text) == fen


@pytest.mark.parametrize("text", ["abc", "1.234", "NaN", "Infinity", ""])
def test_bad_amounts(text: str) -> None:
    with pytest.raises(ValueError, match="not an amount"):
        to_fen(text)


def test_payload_receipts() -> None:
    receipt = receipt_from_payload({"receipt_no": "A1", "occurred_at": "2026-11-22T10:00:00",
                                    "total_fen": 100, "kind": "refund", "original_no": "A0"},
                                   TZ)
    assert receipt.kind is ReceiptKind.REFUND and receipt.occurred_at.tzinfo is TZ
    for bad in ({}, {"receipt_no": 1, "occurred_at": "2026-11-22T10:00:00", "total_fen": 1},
                {"receipt_no": "A", "occurred_at": "x", "total_fen": 1},
                {"receipt_no": "A", "occurred_at": "2026-11-22T10:00:00", "total_fen": -1},
                {"receipt_no": "A", "occurred_at": "2026-11-22T10:00:00", "total_fen": 1,
                 "points_used": 5}):
        with pytest.raises(ReceiptParseError):
            receipt_from_payload(bad, TZ)


def test_item_lines_get_the_category_of_the_first_rule_that_matches() -> None:
    fields = DEFAULT_TEMPLATE["fields"]
    by_sku = Template.compile(
        "S01", fields=fields, markers=DEFAULT_TEMPLATE["markers"],
        item=r"^(?:(?P<sku>\d+) )?(?P<name>[^\t\n]+)\t[¥￥](?P<amount>[\d,]+\.\d{2})$",
        categories=(("tobacco", "", r"690\d+"), ("food", "拿铁|套餐", "")))
    text = ("单号: A-1\n时间: 2026-11-22 14:05:09\n6901028 中华(软)\t¥45.00\n"
            "拿铁(大杯)\t¥32.00\n手机壳\t¥10.00\n合计: ¥87.00\n")
    receipt = parse_receipt(by_sku, text, [], TZ)
    assert [(x.name, x.category) for x in receipt.lines] == [
        ("中华(软)", "tobacco"), ("拿铁(大杯)", "food"), ("手机壳", None)]
    with pytest.raises(ValueError, match="sku"):
        Template.compile("S01", fields=fields, markers={}, item=DEFAULT_TEMPLATE["item"],
                         categories=(("tobacco", "", r"690\d+"),))


def test_payload_lines_carry_their_category() -> None:
    payload = {"receipt_no": "A-1", "occurred_at": "2026-11-22T14:05:09+08:00",
               "total_fen": 100, "lines": [{"name": "烟", "amount_fen": 100,
                                            "category": "tobacco"}]}
    (line,) = receipt_from_payload(payload, TZ).lines
    assert line.category == "tobacco"
    payload["lines"] = [{"name": "烟", "amount_fen": 100, "category": 7}]
    with pytest.raises(ReceiptParseError):
        receipt_from_payload(payload, TZ)
