"""A receipt template whose member-code pattern can match inside another field's value.

`member_code` is searched over the whole receipt, first match wins. A pattern written for
the code alone (`(?P<member_code>\\d{8})`) also matches the date inside a receipt number
(`20261122-0001`) printed above the member line, and every receipt is then credited to a
"member" that is a date. Without a receipt at hand, each other field is probed with the
values POS terminals print there (its own pattern must accept the value), and the member
pattern is tried on each accepted value.
"""

from __future__ import annotations

import re
from datetime import datetime

from gateway.settings.pos import ReceiptTemplate

# Values tills print in these fields; a probe counts only if the field's group accepts it.
_PROBES: dict[str, tuple[str, ...]] = {
    "receipt_no": ("20261122-0001", "202611220001", "S01-20261122-000123", "A-1", "000123",
                   "NO20261122001"),
    "original_no": ("20261122-0001", "202611220001", "A-1"),
    "total": ("32.00", "¥32.00", "1,234.50", "64.5"),
    "payment": ("微信支付", "支付宝", "现金", "银联卡"),
}
_SAMPLE_TIME = datetime(2026, 11, 22, 14, 5, 9)


def group_source(pattern: str, name: str) -> str | None:
    """The source of the named group `(?P<name>...)` inside `pattern`, or None."""
    start = pattern.find(f"(?P<{name}>")
    if start < 0:
        return None
    body = start + len(f"(?P<{name}>")
    depth, index, in_class = 1, body, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[index + 1:index + 2] == "]":
                index += 1  # a literal ] first in a class
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return pattern[body:index]
        index += 1
    return None


def _probes(template: ReceiptTemplate, field: str) -> list[str]:
    if field == "occurred_at":
        return [_SAMPLE_TIME.strftime(template.datetime_format)]
    return list(_PROBES.get(field, ()))


def member_code_overlaps(template: ReceiptTemplate) -> list[tuple[str, str, str]]:
    """(field, a value of it, what member_code takes from it), for each field whose printed
    value the member-code pattern matches inside."""
    if not template.member_code:
        return []
    member = re.compile(template.member_code)
    found: list[tuple[str, str, str]] = []
    for field in ("receipt_no", "occurred_at", "original_no", "total", "payment"):
        source = getattr(template, field)
        inner = group_source(source, field) if source else None
        if inner is None:
            continue
        try:
            accepts = re.compile(inner)
        except re.error:
            continue  # a group that only compiles in its context: nothing to probe
        for value in _probes(template, field):
            if accepts.fullmatch(value) and (match := member.search(value)):
                found.append((field, value, match.group("member_code")))
                break
    return found


def overlap_advice(template: ReceiptTemplate) -> list[str]:
    """One sentence per overlap, naming the store, the field and the fix."""
    return [f"[[pos.templates]] store {template.store_id}: member_code "
            f"{template.member_code!r} matches inside the {field} ({value!r} gives member "
            f"code {taken!r}): receipts would be credited to a code that is not a member's; "
            f"anchor it to the label printed before the code, e.g. "
            f"'会员[:\uff1a]\\s*(?P<member_code>...)'"
            for field, value, taken in member_code_overlaps(template)]
