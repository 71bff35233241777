"""Sans-io receipt reading: a store's template turns a receipt's text into a `ParsedReceipt`.

A template is a set of regular expressions, one per field, each with a named group of the
field's name (`(?P<total>...)`). Markers (refund, copy, non-sale) only need to match.
Classification decides what earns: only sales earn, only refunds reverse; merchant or
customer copies, reprints, kitchen tickets and X/Z reports are kept but earn nothing.

The same `ParsedReceipt` comes out of the structured protocols (`receipt_from_payload`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from devices.pos import payload_check
from devices.pos.errors import ReceiptParseError
from gateway.receipts import Line, ParsedReceipt, ReceiptKind

_MAX_COUPONS = 20  # as many as an authorize may hold
FIELDS = ("receipt_no", "occurred_at", "total", "payment", "points_used", "member_code",
          "original_no")
_AMOUNT_JUNK = re.compile(r"[\s,¥￥$€元RMB]")


@dataclass(frozen=True, slots=True)
class Template:
    """Compiled patterns of one store. Build it with `Template.compile(...)`."""

    store_id: str
    patterns: dict[str, re.Pattern[str]]
    markers: dict[str, re.Pattern[str]]  # refund, copy, non_sale
    item: re.Pattern[str] | None
    datetime_format: str
    categories: tuple[CategoryRule, ...] = ()

    @classmethod
    def compile(cls, store_id: str, *, fields: dict[str, str], markers: dict[str, str],
                item: str | None = None, datetime_format: str = "%Y-%m-%d %H:%M:%S",
                categories: tuple[tuple[str, str, str], ...] = (),
                ) -> Template:
        """`categories`: `(category, name pattern, sku pattern)` per rule, either pattern
        empty; the first rule whose pattern matches an item line gives its category."""
        patterns: dict[str, re.Pattern[str]] = {}
        for name, source in fields.items():
            if name not in FIELDS:
                raise ValueError(f"unknown field {name!r}; fields are {', '.join(FIELDS)}")
            pattern = re.compile(source, re.MULTILINE)
            if name not in pattern.groupindex:
                raise ValueError(f"pattern for {name!r} needs a group (?P<{name}>...)")
            patterns[name] = pattern
        for name in ("receipt_no", "occurred_at", "total"):
            if name not in patterns:
                raise ValueError(f"a template needs a pattern for {name!r}")
        compiled_markers = {k: re.compile(v, re.MULTILINE) for k, v in markers.items()}
        unknown = set(compiled_markers) - {"refund", "copy", "non_sale"}
        if unknown:
            raise ValueError(f"unknown markers {sorted(unknown)}; use refund, copy, non_sale")
        item_pattern = re.compile(item, re.MULTILINE) if item else None
        if item_pattern is not None and not {"name", "amount"} <= set(item_pattern.groupindex):
            raise ValueError("the item pattern needs groups (?P<name>...) and (?P<amount>...)")
        rules = tuple(CategoryRule.compile(*rule) for rule in categories)
        if any(r.sku for r in rules) and (item_pattern is None
                                          or "sku" not in item_pattern.groupindex):
            raise ValueError("a category by sku needs an item pattern with (?P<sku>...)")
        return cls(store_id, patterns, compiled_markers, item_pattern, datetime_format,
                   rules)


@dataclass(frozen=True, slots=True)
class CategoryRule:
    """Item lines whose name (searched) or SKU (matched whole) fits are of `category`."""

    category: str
    name: re.Pattern[str] | None
    sku: re.Pattern[str] | None

    @classmethod
    def compile(cls, category: str, name: str, sku: str) -> CategoryRule:
        if not category or not (name or sku):
            raise ValueError("a category rule needs a category and a name or sku pattern")
        return cls(category, re.compile(name) if name else None,
                   re.compile(sku) if sku else None)

    def matches(self, name: str, sku: str | None) -> bool:
        if self.name is not None and self.name.search(name):
            return True
        return self.sku is not None and sku is not None and self.sku.fullmatch(sku) is not None


def category_of(template: Template, name: str, sku: str | None) -> str | None:
    return next((r.category for r in template.categories if r.matches(name, sku)), None)


def _item(template: Template, match: re.Match[str]) -> Line:
    name = match.group("name").strip()
    sku = match.groupdict().get("sku")
    sku = sku.strip() if sku else None
    return Line(name, to_fen(match.group("amount")), category_of(template, name, sku))


def to_fen(text: str) -> int:
    """'¥1,234.50' -> 123450. Raises ValueError on anything that is not an amount."""
    cleaned = _AMOUNT_JUNK.sub("", text)
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    fen = value * 100
    if not value.is_finite() or fen != fen.to_integral_value() or abs(fen) > 10**12:
        raise ValueError(f"not an amount in fen: {text!r}")
    return int(fen)


def _find(template: Template, name: str, text: str) -> str | None:
    pattern = template.patterns.get(name)
    match = pattern.search(text) if pattern else None
    value = match.group(name) if match else None
    return value.strip() if value else None


def classify(template: Template, text: str) -> ReceiptKind:
    for marker, kind in (("non_sale", ReceiptKind.NON_SALE), ("copy", ReceiptKind.COPY),
                         ("refund", ReceiptKind.REFUND)):
        pattern = template.markers.get(marker)
        if pattern is not None and pattern.search(text):
            return kind
    return ReceiptKind.SALE


def parse_receipt(template: Template, text: str, codes: list[str], tz: tzinfo,
                  ) -> ParsedReceipt:
    """Read one receipt. Raises `ReceiptParseError` (with a `code`) if a field is missing."""
    kind = classify(template, text)
    receipt_no = _find(template, "receipt_no", text)
    at_text = _find(template, "occurred_at", text)
    total_text = _find(template, "total", text)
    if kind in (ReceiptKind.NON_SALE, ReceiptKind.COPY) and (
            receipt_no is None or at_text is None or total_text is None):
        return ParsedReceipt(kind, receipt_no or "", datetime.min.replace(tzinfo=tz), 0)
    missing = [n for n, v in (("receipt_no", receipt_no), ("occurred_at", at_text),
                              ("total", total_text)) if v is None]
    if missing:
        raise ReceiptParseError(f"template of store {template.store_id} found no "
                                f"{', '.join(missing)}", code="missing_field")
    assert receipt_no is not None and at_text is not None and total_text is not None  # noqa: S101
    try:
        occurred_at = datetime.strptime(at_text, template.datetime_format).replace(tzinfo=tz)
        total_fen = abs(to_fen(total_text))
        points_used, points_paid_fen = _points(template, text)
        lines = tuple(_item(template, m)
                      for m in (template.item.finditer(text) if template.item else ()))
    except ValueError as exc:
        raise ReceiptParseError(str(exc), code="bad_value") from exc
    if points_paid_fen > total_fen or (points_used == 0) != (points_paid_fen == 0):
        raise ReceiptParseError("points payment does not fit the total", code="bad_value")
    member = _find(template, "member_code", text)
    if member is None and "member_code" in template.patterns:
        for code in codes:
            member = _find(template, "member_code", code)
            if member:
                break
    return ParsedReceipt(
        kind, receipt_no, occurred_at, total_fen, points_paid_fen=points_paid_fen,
        points_used=points_used, payment=_find(template, "payment", text), member_code=member,
        original_no=_find(template, "original_no", text), lines=lines,
    )


def _points(template: Template, text: str) -> tuple[int, int]:
    pattern = template.patterns.get("points_used")
    match = pattern.search(text) if pattern else None
    if match is None:
        return 0, 0
    points = int(match.group("points_used"))
    paid = match.groupdict().get("points_paid")
    return points, to_fen(paid) if paid else 0


def receipt_from_payload(payload: dict[str, Any], tz: tzinfo) -> ParsedReceipt:
    """A receipt sent as JSON by the `framed` / `jsonl` protocols (see docs/pos.md)."""
    if (wrong := payload_check.problem(payload)) is not None:
        raise ReceiptParseError(wrong, code="bad_payload")
    try:
        receipt = _from_payload(payload)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ReceiptParseError(payload_check.reason(exc), code="bad_payload") from exc
    at = receipt.occurred_at
    at = at.replace(tzinfo=tz) if at.tzinfo is None else at.astimezone(tz)
    return replace(receipt, occurred_at=at)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12


def _payload_line(raw: dict[str, Any]) -> Line:
    category = raw.get("category")
    _check(category is None or (isinstance(category, str) and 0 < len(category) <= 64),
           "a line's category must be a string of 1..64 characters")
    return Line(str(raw["name"]), int(raw["amount_fen"]), category)


def _from_payload(payload: dict[str, Any]) -> ParsedReceipt:
    kind = ReceiptKind(payload.get("kind", "sale"))
    receipt_no = payload["receipt_no"]
    occurred_at = datetime.fromisoformat(payload["occurred_at"])
    total_fen = payload["total_fen"]
    points_used = payload.get("points_used", 0)
    points_paid_fen = payload.get("points_paid_fen", 0)
    for name, value in (("total_fen", total_fen), ("points_used", points_used),
                        ("points_paid_fen", points_paid_fen)):
        _check(_count(value), f"{name} must be a non-negative integer")
    _check(isinstance(receipt_no, str) and 0 < len(receipt_no) <= 64,
           "receipt_no must be a string of 1..64 characters")
    member, original, payment, hold = (payload.get(k) for k in (
        "member_code", "original_no", "payment", "hold_id"))
    for name, value in (("member_code", member), ("original_no", original),
                        ("payment", payment), ("hold_id", hold)):
        _check(value is None or isinstance(value, str), f"{name} must be a string")
    _check(points_paid_fen <= total_fen and (points_used == 0) == (points_paid_fen == 0),
           "points payment does not fit the total")
    raw_lines = payload.get("lines", [])
    _check(isinstance(raw_lines, list), "lines must be a list")
    lines = tuple(_payload_line(x) for x in raw_lines)
    coupons = payload.get("coupon_codes", [])
    _check(isinstance(coupons, list) and len(coupons) <= _MAX_COUPONS
           and all(isinstance(c, str) and 0 < len(c) <= 64 for c in coupons),
           f"coupon_codes must be a list of at most {_MAX_COUPONS} codes")
    return ParsedReceipt(kind, receipt_no, occurred_at, total_fen,
                         points_paid_fen=points_paid_fen, points_used=points_used,
                         payment=payment, member_code=member, original_no=original,
                         lines=lines, hold_id=hold, coupon_codes=tuple(coupons))
