"""Sans-io reading of the till's requests on `framed` and `jsonl`: authorize and void.

A message's `type` says what it is: `sale` (the default: a receipt, see `templates`),
`authorize` (reserve a member's points before paying with them) or `void` (release a
hold). The gateway answers both requests with a reply (see docs/pos.md).
"""

from __future__ import annotations

from typing import Any, Literal

from devices.pos.errors import FrameError
from gateway.holds import AuthorizeRequest, BasketLine, VoidRequest

MessageType = Literal["sale", "authorize", "void"]
MAX_LINES = 500
MAX_COUPONS = 20
_ID_MAX = 64


def message_type(payload: dict[str, Any]) -> MessageType | None:
    """The message's type, or None when it names one the gateway does not know."""
    kind = payload.get("type", "sale")
    return kind if kind in ("sale", "authorize", "void") else None


def _fail(reason: str) -> FrameError:
    return FrameError(reason, code="bad_request")


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= _ID_MAX:
        raise _fail(f"{name} must be a string of 1..{_ID_MAX} characters")
    return value


def _count(payload: dict[str, Any], name: str, *, positive: bool = False) -> int:
    value = payload.get(name)
    if (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**12
            or (positive and value == 0)):
        raise _fail(f"{name} must be a {'positive' if positive else 'non-negative'} integer")
    return value


def _line(raw: object) -> BasketLine:
    if not isinstance(raw, dict):
        raise _fail("each line is an object")
    name, category, sku = raw.get("name", ""), raw.get("category"), raw.get("sku")
    if not isinstance(name, str) or not all(
            v is None or (isinstance(v, str) and len(v) <= _ID_MAX) for v in (category, sku)):
        raise _fail(f"a line's name, category and sku are strings (of 1..{_ID_MAX})")
    quantity = _count(raw, "quantity", positive=True) if "quantity" in raw else 1
    return BasketLine(name, _count(raw, "amount_fen"), category, sku, quantity)


def authorize_request(payload: dict[str, Any], *, store_id: str, pos_id: str,
                      ) -> AuthorizeRequest:
    """An `authorize` message; the till is the port it came in on, never the payload."""
    lines = payload.get("lines", [])
    coupons = payload.get("coupon_codes", [])
    if not isinstance(lines, list) or len(lines) > MAX_LINES:
        raise _fail(f"lines must be a list of at most {MAX_LINES}")
    if (not isinstance(coupons, list) or len(coupons) > MAX_COUPONS
            or not all(isinstance(c, str) and 0 < len(c) <= _ID_MAX for c in coupons)):
        raise _fail(f"coupon_codes must be a list of at most {MAX_COUPONS} codes")
    partial = payload.get("partial", True)
    if not isinstance(partial, bool):
        raise _fail("partial must be true or false")
    basket = tuple(_line(x) for x in lines)
    total = _count(payload, "total_fen")
    points = _count(payload, "points") if "points" in payload else 0
    if points == 0 and not coupons:
        raise _fail("an authorize asks for points, coupons or both")
    if sum(x.amount_fen for x in basket) > total:
        raise _fail("the lines add up to more than total_fen")
    return AuthorizeRequest(store_id=store_id, pos_id=pos_id,
                            request_id=_text(payload, "request_id"),
                            member_code=_text(payload, "member_code"), total_fen=total,
                            points=points, lines=basket,
                            coupon_codes=tuple(coupons), partial=partial)


def void_request(payload: dict[str, Any], *, store_id: str, pos_id: str) -> VoidRequest:
    return VoidRequest(store_id=store_id, pos_id=pos_id, hold_id=_text(payload, "hold_id"))
