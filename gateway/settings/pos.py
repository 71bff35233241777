"""The `[pos]` section: POS serial ports, their protocol, and each store's receipt template."""

from __future__ import annotations

import codecs
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.settings.base import SettingsModel

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"
_FIELD_NAMES = ("receipt_no", "occurred_at", "total", "payment", "points_used",
                "member_code", "original_no")


class PosPort(SettingsModel):
    """One serial line from a POS terminal (or from the line between a POS and its printer)."""

    path: str = Field(
        min_length=1,
        description="Serial device by a stable name, e.g. `/dev/serial/by-id/usb-...` or a "
        "udev symlink (`ttyUSB0` numbers change when adapters re-enumerate).",
    )
    store_id: str = Field(pattern=_ID, description="Store (shop) the POS belongs to.")
    pos_id: str = Field(pattern=_ID, description="The POS terminal's id within its store.")
    mode: Literal["escpos", "framed", "jsonl"] = Field(
        default="escpos",
        description="`escpos`: capture printed receipts; `framed`: STX/ETX frames with CRC and "
        "ACK/NAK; `jsonl`: one JSON object with a CRC per line (see docs/pos.md).",
    )
    baudrate: int = Field(
        default=9600, ge=300, le=921_600,
        description="Line speed in bits per second, as set on the POS (or the printer it "
        "talks to); a mismatch reads as noise and ends in dead letters.")
    parity: Literal["N", "E", "O"] = Field(
        default="N", description="Parity bit of the line as the POS sends it: `N` none, "
        "`E` even, `O` odd.")
    stopbits: Literal[1, 2] = Field(
        default=1, description="Stop bits of the line as the POS sends it: 1 or 2.")
    rtscts: bool = Field(
        default=False,
        description="RTS/CTS hardware flow control. XON/XOFF is never used: it would swallow "
        "0x11/0x13, which are data bytes in ESC/POS.",
    )
    encoding: str = Field(
        default="gb18030",
        description="How the printer boots: a CJK encoding (`gb18030`, `gbk`, `big5`) means "
        "Chinese mode is on without `FS &`; a single-byte code page (`cp437`, `cp858`) "
        "means it is off. Only used in `escpos` mode.",
    )
    printer_path: str | None = Field(
        default=None,
        description="Inline pass-through (escpos mode): the printer's serial device. Bytes "
        "are relayed both ways and printing continues if receipt parsing fails.",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value


class LineCategory(SettingsModel):
    """Item lines of one category: by a pattern of their name, or of their SKU."""

    category: str = Field(
        min_length=1, max_length=64,
        description="The category, as in `[loyalty.earn] category_multiplier_pct`.")
    name: str = Field(default="", description="Pattern searched in the item's name, or "
                      "empty.")
    sku: str = Field(default="", description="Pattern the item's whole SKU must match (the "
                     "`item` pattern then needs `(?P<sku>...)`), or empty.")

    @model_validator(mode="after")
    def _one_pattern(self) -> LineCategory:
        if not (self.name or self.sku):
            raise ValueError("give a name or sku pattern")
        for name in ("name", "sku"):
            try:
                re.compile(getattr(self, name))
            except re.error as exc:
                raise ValueError(f"{name}: not a regular expression: {exc}") from None
        return self


class ReceiptTemplate(SettingsModel):
    """How to read one store's printed receipts: a regular expression per field."""

    store_id: str = Field(pattern=_ID, description="The store whose receipts this reads.")
    receipt_no: str = Field(description="Pattern with a group `(?P<receipt_no>...)`.")
    occurred_at: str = Field(
        description="Pattern with a group `(?P<occurred_at>...)`, read with "
        "`datetime_format` as the store's local time.",
    )
    datetime_format: str = Field(default="%Y-%m-%d %H:%M:%S",
                                 description="strptime format of `occurred_at`.")
    total: str = Field(description="Pattern with a group `(?P<total>...)`: the amount paid.")
    payment: str = Field(default="", description="Pattern with `(?P<payment>...)`, or empty.")
    points_used: str = Field(
        default="",
        description="Pattern with `(?P<points_used>...)` and `(?P<points_paid>...)` (amount "
        "paid with points), or empty.",
    )
    member_code: str = Field(
        default="",
        description="Pattern with `(?P<member_code>...)`, tried on the text and on the "
        "payloads of the receipt's QR codes and barcodes; empty: receipts are unclaimed.",
    )
    original_no: str = Field(default="",
                             description="Pattern with `(?P<original_no>...)`: a refund's "
                             "original receipt number, or empty.")
    item: str = Field(default="", description="Pattern of an item line with `(?P<name>...)` "
                      "and `(?P<amount>...)` (and `(?P<sku>...)` for categories by SKU), or "
                      "empty.")
    categories: tuple[LineCategory, ...] = Field(
        default=(),
        description="Category of item lines, the first rule that matches; a line no rule "
        "matches has no category and earns at the base rate.")
    refund_marker: str = Field(default="", description="Pattern that marks a refund.")
    copy_marker: str = Field(default="",
                             description="Pattern that marks a copy or reprint (never earns).")
    non_sale_marker: str = Field(
        default="", description="Pattern that marks a kitchen ticket or X/Z report."
    )

    @model_validator(mode="after")
    def _patterns_compile(self) -> ReceiptTemplate:
        for name in (*_FIELD_NAMES, "item", "refund_marker", "copy_marker", "non_sale_marker"):
            source = getattr(self, name)
            if not source:
                continue
            try:
                pattern = re.compile(source)
            except re.error as exc:
                raise ValueError(f"{name}: not a regular expression: {exc}") from None
            needed = {"item": {"name", "amount"}, "points_used": {"points_used"}}.get(
                name, {name} if name in _FIELD_NAMES else set())
            if not needed <= set(pattern.groupindex):
                groups = ", ".join(f"(?P<{g}>...)" for g in sorted(needed))
                raise ValueError(f"{name}: the pattern needs {groups}")
        if any(c.sku for c in self.categories) and "(?P<sku>" not in self.item:
            raise ValueError("categories: a rule by sku needs an item pattern with "
                             "(?P<sku>...)")
        return self


class PosSettings(SettingsModel):
    """POS terminals over serial: ports, receipt templates, unclaimed receipts."""

    ports: tuple[PosPort, ...] = Field(default=(), description="The POS serial lines.")
    templates: tuple[ReceiptTemplate, ...] = Field(
        default=(), description="One receipt template per store whose POS runs in `escpos` mode."
    )
    claim_days: int = Field(
        default=7, ge=0, le=365,
        description="Days after its business date that an unclaimed receipt (no member code) "
        "can still be claimed at a kiosk.",
    )
    refund_window_days: int = Field(
        default=30, ge=1, le=366,
        description="Days after a sale's business date within which a refund finds it, rung "
        "on any till of the store; a refund whose original is not found is kept for review "
        "and applied if the sale arrives later.",
    )
    idle_gap_s: float = Field(
        default=5.0, gt=0, le=120, allow_inf_nan=False,
        description="escpos: silence that ends a receipt that never cut, in seconds.",
    )
    refund_restores_coupons: bool = Field(
        default=False,
        description="Whether refunding a sale in full gives back the coupons it redeemed "
        "(usable again until they expire); points it spent are always restored.",
    )
    hold_s: float = Field(
        default=120.0, ge=5, le=3600, allow_inf_nan=False,
        description="framed / jsonl: how long points a till authorized stay reserved for "
        "its sale, in seconds; a hold not captured or voided by then is released.",
    )
    reopen_max_s: float = Field(
        default=30.0, ge=1, le=600, allow_inf_nan=False,
        description="Longest wait between attempts to reopen a port that failed or vanished.",
    )

    @model_validator(mode="after")
    def _templates_for_escpos_stores(self) -> PosSettings:
        stores = [t.store_id for t in self.templates]
        if len(stores) != len(set(stores)):
            raise ValueError("one template per store_id")
        keys = [(p.store_id, p.pos_id) for p in self.ports]
        if len(keys) != len(set(keys)):
            raise ValueError("each (store_id, pos_id) may have only one port")
        missing = {p.store_id for p in self.ports if p.mode == "escpos"} - set(stores)
        if missing:
            raise ValueError(f"no receipt template for escpos store(s) {sorted(missing)}")
        return self

    def template_for(self, store_id: str) -> ReceiptTemplate | None:
        return next((t for t in self.templates if t.store_id == store_id), None)
