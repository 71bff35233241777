"""Receipts as a Chinese POS prints them: ESC/POS bytes in GB18030, for the simulator and tests.

The layout matches `DEFAULT_TEMPLATE`, the template of the simulated stores (and a
starting point for a real store's template: see docs/pos.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ESC_INIT = b"\x1b@"
CHINESE_ON = b"\x1c&"
CENTER, LEFT = b"\x1ba\x01", b"\x1ba\x00"
DOUBLE, NORMAL = b"\x1d!\x11", b"\x1d!\x00"
BOLD_ON, BOLD_OFF = b"\x1bE\x01", b"\x1bE\x00"
FEED_AND_CUT = b"\x1bd\x03\x1dVB\x00"  # feed 3 lines, GS V 66 0: feed and partial cut
DRAWER_KICK = b"\x1bp\x00\x19\xfa"

DEFAULT_TEMPLATE: dict[str, Any] = {
    "fields": {
        "receipt_no": r"单号[:\uff1a]\s*(?P<receipt_no>[0-9A-Za-z-]+)",
        "occurred_at": r"时间[:\uff1a]\s*(?P<occurred_at>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})",
        "total": r"合计[:\uff1a]\s*(?P<total>[¥￥]?[\d,]+\.\d{2})",
        "payment": r"支付方式[:\uff1a]\s*(?P<payment>\S+)",
        "points_used": r"积分抵扣[:\uff1a]\s*(?P<points_used>\d+)分\s*\(¥(?P<points_paid>[\d.]+)\)",
        # Member cards: the demo's (DEMO0001...) and the M + 8 digits of older cards.
        "member_code": r"(?:会员[:\uff1a]\s*|MBR:)(?P<member_code>DEMO\d{4}|M\d{8})",
        "original_no": r"原单号[:\uff1a]\s*(?P<original_no>[0-9A-Za-z-]+)",
    },
    "markers": {
        "refund": r"退货单|退款",
        "copy": r"重打印|补打|商户联",
        "non_sale": r"厨房单|交班报表|[XZ]报表",
    },
    "item": r"^(?P<name>[^\t\n]+)\t[¥￥](?P<amount>[\d,]+\.\d{2})$",
}


def qr(data: bytes) -> bytes:
    """A QR code: model 2, module size 6, error level M, store data, print (GS ( k)."""
    store = len(data) + 3
    return (b"\x1d(k\x04\x001A2\x00" + b"\x1d(k\x03\x001C\x06" + b"\x1d(k\x03\x001E1"
            + b"\x1d(k" + bytes([store & 0xFF, store >> 8]) + b"1P0" + data
            + b"\x1d(k\x03\x001Q0")


def yuan(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


@dataclass(frozen=True, slots=True)
class Printout:
    store_name: str
    receipt_no: str
    occurred_at: datetime
    items: tuple[tuple[str, int], ...]
    payment: str = "微信支付"
    member_code: str | None = None
    member_as_qr: bool = False
    points_used: int = 0
    points_paid_fen: int = 0
    refund_of: str | None = None
    copy_label: str | None = None  # "商户联", "重打印", ...
    chinese_mode_command: bool = False  # send FS & (many POS never do)
    cut: bool = True
    extra: tuple[str, ...] = field(default=())

    @property
    def total_fen(self) -> int:
        return sum(amount for _, amount in self.items)

    def escpos(self) -> bytes:
        def line(text: str) -> bytes:
            return text.encode("gb18030") + b"\n"

        out = [ESC_INIT, CHINESE_ON if self.chinese_mode_command else b"", CENTER, DOUBLE,
               line(self.store_name), NORMAL]
        if self.refund_of is not None:
            out += [BOLD_ON, line("退货单"), BOLD_OFF]
        if self.copy_label:
            out.append(line(f"*** {self.copy_label} ***"))
        out += [LEFT, line(f"单号: {self.receipt_no}"),
                line(f"时间: {self.occurred_at:%Y-%m-%d %H:%M:%S}")]
        if self.refund_of is not None:
            out.append(line(f"原单号: {self.refund_of}"))
        out.append(line("-" * 32))
        for name, amount in self.items:
            out.append(name.encode("gb18030") + b"\t" + line(yuan(amount)))
        out.append(line("-" * 32))
        out += [BOLD_ON, line(f"合计: {yuan(self.total_fen)}"), BOLD_OFF,
                line(f"支付方式: {self.payment}")]
        if self.points_used:
            out.append(line(f"积分抵扣: {self.points_used}分 ({yuan(self.points_paid_fen)})"))
        if self.member_code and not self.member_as_qr:
            out.append(line(f"会员: {self.member_code}"))
        out += [line(text) for text in self.extra]
        if self.member_code and self.member_as_qr:
            out += [CENTER, qr(f"MBR:{self.member_code}".encode()), LEFT]
        out.append(line("谢谢惠顾 欢迎再次光临"))
        if self.cut:
            out += [FEED_AND_CUT, DRAWER_KICK]
        return b"".join(out)

    def payload(self, store_id: str, pos_id: str) -> dict[str, Any]:
        """The same receipt as a `framed` / `jsonl` JSON payload."""
        kind = "copy" if self.copy_label else "refund" if self.refund_of else "sale"
        payload: dict[str, Any] = {
            "store_id": store_id, "pos_id": pos_id, "kind": kind,
            "receipt_no": self.receipt_no, "occurred_at": self.occurred_at.isoformat(),
            "total_fen": self.total_fen, "payment": self.payment,
            "lines": [{"name": n, "amount_fen": a} for n, a in self.items],
        }
        if self.points_used:
            payload |= {"points_used": self.points_used,
                        "points_paid_fen": self.points_paid_fen}
        if self.member_code:
            payload["member_code"] = self.member_code
        if self.refund_of:
            payload["original_no"] = self.refund_of
        return payload


def kitchen_ticket(table: str, items: tuple[str, ...], at: datetime) -> bytes:
    body = "".join(f"{name}\n" for name in items)
    text = f"厨房单\n桌号: {table}\n时间: {at:%Y-%m-%d %H:%M:%S}\n{body}"
    return ESC_INIT + text.encode("gb18030") + FEED_AND_CUT


def shift_report(at: datetime, sales: int, total_fen: int) -> bytes:
    text = f"交班报表\n时间: {at:%Y-%m-%d %H:%M:%S}\n笔数: {sales}\n合计: {yuan(total_fen)}\n"
    return ESC_INIT + text.encode("gb18030") + FEED_AND_CUT
