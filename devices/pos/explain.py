"""Why a template read a receipt the way it did: each field, the line it matched on, and why.

For installers writing a store's template (`mallgate pos try-template`): the same template
and the same reading as the gateway's (`templates.parse_receipt`), with every match shown
where it was found. It also points out a member code found inside another field's value
(the date inside a receipt number), which the reading alone would happily credit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import tzinfo

from devices.pos.errors import ReceiptParseError
from devices.pos.templates import FIELDS, Template, parse_receipt
from gateway.receipts import ParsedReceipt, ReceiptKind

_MARKERS = (("non_sale", ReceiptKind.NON_SALE), ("copy", ReceiptKind.COPY),
            ("refund", ReceiptKind.REFUND))


@dataclass(frozen=True, slots=True)
class Match:
    """One pattern's match: its value, where it is (1-based line) and the pattern."""

    name: str
    value: str
    line: int  # 0: not on the text, in a QR code or barcode
    line_text: str
    span: tuple[int, int]  # of the value in the text
    pattern: str
    source: str = "text"  # "text", or "code N" for the Nth QR code or barcode


@dataclass(frozen=True, slots=True)
class Explanation:
    """What a template made of one receipt."""

    fields: dict[str, Match]
    missing: tuple[str, ...]  # fields with a pattern that found nothing
    markers: dict[str, Match]
    items: tuple[Match, ...]
    kind: ReceiptKind
    why: str  # the classification in a sentence
    receipt: ParsedReceipt | None
    error: str | None  # why the gateway would dead-letter it
    warnings: tuple[str, ...] = field(default=())


def _line_of(text: str, position: int) -> tuple[int, str]:
    number = text.count("\n", 0, position) + 1
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    return number, text[start:end if end >= 0 else len(text)]


def _match(name: str, group: str, pattern: re.Pattern[str], text: str) -> Match | None:
    found = pattern.search(text)
    if found is None:
        return None
    span = found.span(group) if group in pattern.groupindex and found.group(group) else found.span()
    line, line_text = _line_of(text, span[0])
    return Match(name, text[span[0]:span[1]].strip(), line, line_text, span, pattern.pattern)


def explain(template: Template, text: str, codes: list[str], tz: tzinfo) -> Explanation:
    """Read `text` (and the receipt's code payloads) with `template`, showing every step."""
    fields: dict[str, Match] = {}
    missing: list[str] = []
    for name in FIELDS:
        pattern = template.patterns.get(name)
        if pattern is None:
            continue
        found = _match(name, name, pattern, text)
        if found is None and name == "member_code":
            found = _in_codes(pattern, codes)
        if found is None:
            missing.append(name)
        else:
            fields[name] = found
    markers = {name: m for name, _ in _MARKERS
               if (p := template.markers.get(name)) is not None
               and (m := _match(name, "", p, text)) is not None}
    items = tuple(_item(template.item, m, text) for m in
                  (template.item.finditer(text) if template.item else ()))
    kind, why = _classify(markers)
    receipt: ParsedReceipt | None = None
    error: str | None = None
    try:
        receipt = parse_receipt(template, text, codes, tz)
    except ReceiptParseError as exc:
        error = f"{exc.code}: {exc.reason}"
    return Explanation(fields, tuple(missing), markers, items, kind, why, receipt, error,
                       tuple(_overlaps(fields)))


def _in_codes(pattern: re.Pattern[str], codes: list[str]) -> Match | None:
    for number, code in enumerate(codes, start=1):
        found = pattern.search(code)
        if found is not None and found.group("member_code"):
            return Match("member_code", found.group("member_code").strip(), 0, code,
                         (-1, -1), pattern.pattern, source=f"code {number}")
    return None


def _item(pattern: re.Pattern[str] | None, found: re.Match[str], text: str) -> Match:
    assert pattern is not None  # noqa: S101 - only called with the item pattern's matches
    line, line_text = _line_of(text, found.start())
    value = f"{found.group('name').strip()} {found.group('amount').strip()}"
    return Match("item", value, line, line_text, found.span(), pattern.pattern)


def _classify(markers: dict[str, Match]) -> tuple[ReceiptKind, str]:
    for name, kind in _MARKERS:
        if name in markers:
            m = markers[name]
            return kind, (f"{kind.value}: {name}_marker matched {m.value!r} on line "
                          f"{m.line}" + ("; it never earns" if kind is not ReceiptKind.REFUND
                                         else "; it reverses its original sale's points"))
    return ReceiptKind.SALE, "sale: no marker matched; it earns points"


def _overlaps(fields: dict[str, Match]) -> list[str]:
    """A member code whose match lies inside another field's value."""
    member = fields.get("member_code")
    if member is None or member.source != "text":
        return []
    said = []
    for name, other in fields.items():
        if name != "member_code" and other.span[0] <= member.span[0] < other.span[1]:
            said.append(f"member_code {member.value!r} was taken from inside the {name} "
                        f"{other.value!r} (line {other.line}): anchor the member_code "
                        "pattern to the label printed before the code")
    return said


def render(explanation: Explanation) -> list[str]:
    """The explanation as lines for a terminal."""
    out = [f"classified: {explanation.why}"]
    for name, m in explanation.fields.items():
        where = f"line {m.line}" if m.source == "text" else m.source
        out.append(f"  {name:<12} {m.value!r:<24} {where}: {m.line_text.strip()!r}")
        out.append(f"  {'':<12} matched by {m.pattern!r}")
    out.extend(f"  {name:<12} not found (pattern given, nothing matched)"
               for name in explanation.missing)
    for name, m in explanation.markers.items():
        out.append(f"  {name + '_marker':<12} {m.value!r} on line {m.line}: "
                   f"{m.line_text.strip()!r}")
    out.extend(f"  {'item':<12} {m.value!r} on line {m.line}" for m in explanation.items)
    out.extend(f"warning: {w}" for w in explanation.warnings)
    if explanation.error is not None:
        out.append(f"result: dead letter ({explanation.error})")
    elif explanation.receipt is not None:
        r = explanation.receipt
        member = r.member_code or "none: stored unclaimed"
        out.append(f"result: {r.kind.value} {r.receipt_no} at {r.occurred_at.isoformat()} "
                   f"total {r.total_fen} fen, member {member}")
    return out
