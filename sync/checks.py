"""What the edge accepts from central: every change checked before it is applied.

Central is meant to check what it stores, but a bug there must not reach the edge store
or stop sync: each change of the feed and each line of the snapshot is checked here, and
one that fails is refused (`Refused`, with a stable code and why) rather than applied.
The rules are the contract's (`cloud_api/openapi.yaml`: `MemberProfile`, `LedgerEntry`,
`Change`) plus sizes: ids and texts from central are bounded, entries are bounded by the
plausibility limits. No I/O here.

The snapshot applies a million members in about 30 s, so `check_member` is plain
attribute checks on the parsed object (about a microsecond), not a schema validator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import Any, TypeGuard

from gateway.loyalty import (
    Coupon,
    CouponFact,
    Entry,
    InvalidRules,
    LoyaltyError,
    Plausibility,
    campaign_from_wire,
    coupon_from_wire,
    parse_version,
)
from gateway.loyalty.versions import RULES_KIND
from gateway.loyalty.wire import entry_from_wire

# Member, account, entry, offer and source ids: central generates 32 hex characters; a
# mall's own ids (cards, POS keys) are far shorter than this.
MAX_ID_CHARS = 128
# A text shown to people: a masked display name, an entry's reason, an offer's title.
MAX_TEXT_CHARS = 256
# Tags, opt-outs and identifiers of one member.
MAX_LIST_ITEMS = 64
# One offer or configuration document, as JSON.
MAX_DOCUMENT_BYTES = 256 * 1024
IDENTIFIER_KINDS = frozenset({"card", "phone_hash", "qr_token", "ble_key"})
# Days of each month, February in a leap year: a birthday is a month and a day.
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class Refused(Exception):
    """A change the edge does not apply; `code` is stable, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _invalid_member(message: str) -> Refused:
    return Refused("invalid_member", message)


def is_id(value: object) -> TypeGuard[str]:
    return type(value) is str and 0 < len(value) <= MAX_ID_CHARS


def _text(value: object, name: str, limit: int = MAX_TEXT_CHARS) -> None:
    if type(value) is not str or len(value) > limit:
        raise _invalid_member(f"{name} must be text of at most {limit} characters, "
                              f"got {_shown(value)}")


def _shown(value: object) -> str:
    """A value as an error quotes it: its type and a short repr."""
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'…' if len(text) > 40 else ''}"


def _texts(values: object, name: str) -> None:
    if values is None:
        return
    if type(values) is not list or len(values) > MAX_LIST_ITEMS:
        raise _invalid_member(f"{name} must be a list of at most {MAX_LIST_ITEMS} texts")
    for value in values:
        _text(value, name)


def _identifiers(values: object) -> None:
    if values is None:
        return
    if type(values) is not list or len(values) > MAX_LIST_ITEMS:
        raise _invalid_member(f"identifiers must be a list of at most {MAX_LIST_ITEMS}")
    for ident in values:
        if type(ident) is not dict or ident.get("kind") not in IDENTIFIER_KINDS \
                or not is_id(ident.get("value")):
            raise _invalid_member(f"an identifier needs a kind in {sorted(IDENTIFIER_KINDS)} "
                                  f"and a value of 1 to {MAX_ID_CHARS} characters")


def check_member(view: object, key: object) -> Mapping[str, Any]:
    """A member's edge view (`member.upsert` payload, snapshot `member` data), or `Refused`.

    `key` is the change's or line's key: the view must be of that member."""
    if type(view) is not dict:
        raise _invalid_member(f"a member must be an object, got {_shown(view)}")
    get = view.get
    member_id = get("member_id")
    if not is_id(member_id):
        raise _invalid_member(f"member_id must be 1 to {MAX_ID_CHARS} characters")
    if member_id != key:
        raise _invalid_member(f"member {_shown(member_id)} sent under key {_shown(key)}")
    if not is_id(get("account_id")):
        raise _invalid_member(f"account_id must be 1 to {MAX_ID_CHARS} characters")
    version = get("version", 0)
    if type(version) is not int or version < 0:
        raise _invalid_member(f"version must be a whole number >= 0, got {_shown(version)}")
    if (name := get("display_name_masked")) is not None:
        _text(name, "display_name_masked")
    if (tier := get("tier")) is not None and not (tier == "" or is_id(tier)):
        raise _invalid_member(f"tier must be a code of at most {MAX_ID_CHARS} characters, "
                              f"got {_shown(tier)}")
    month, day = get("birth_month"), get("birth_day")
    if month is not None or day is not None:
        if type(month) is not int or not 1 <= month <= 12:
            raise _invalid_member(f"birth_month must be 1 to 12, got {_shown(month)}")
        if type(day) is not int or not 1 <= day <= _MONTH_DAYS[month]:
            raise _invalid_member(f"birth_day must be 1 to {_MONTH_DAYS[month]} in month "
                                  f"{month}, got {_shown(day)}")
    _tier(get("tier_anniversary"), get("tier_since"), get("tier_change"), member_id)
    _texts(get("tags"), "tags")
    _texts(get("opt_outs"), "opt_outs")
    _identifiers(get("identifiers"))
    return view


_MAX_STAMP = 40
_TIER_CHANGE_IDS = ("change_id", "account_id", "from_tier", "to_tier", "changed_at")


def _tier(anniversary: object, since: object, change: object, member_id: str) -> None:
    """The tier's anniversary, when it was reached, and central's latest change of it."""
    if anniversary is not None:
        _date(anniversary)
    if since is not None and not (type(since) is str and len(since) <= _MAX_STAMP):
        raise _invalid_member(f"tier_since must be a timestamp, got {_shown(since)}")
    if change is not None:
        _tier_change(change, member_id)


def _tier_change(change: object, member_id: str) -> None:
    """Central's latest tier change of the member, kept as a fact at the edge."""
    if type(change) is not dict or change.get("member_id") != member_id \
            or not all(is_id(change.get(key)) for key in _TIER_CHANGE_IDS) \
            or change.get("direction") not in {"upgrade", "downgrade"}:
        raise _invalid_member("tier_change must be this member's tier change: change_id, "
                              "account_id, from_tier, to_tier, changed_at and direction "
                              "(upgrade or downgrade)")


def _date(value: object) -> None:
    refused = _invalid_member(f"tier_anniversary must be a date (YYYY-MM-DD), got "
                              f"{_shown(value)}")
    if type(value) is not str or len(value) > 10:
        raise refused
    try:
        date.fromisoformat(value)
    except ValueError:
        raise refused from None


# -- ledger entries ----------------------------------------------------------------------

_ENTRY_IDS = ("entry_id", "account_id", "source_type", "source_key", "rule_version",
              "origin_site")
_ENTRY_OPTIONAL_IDS = ("member_id", "ref_entry_id", "lot_id")
_ENTRY_INTS = ("points", "qual_fen", "origin_seq")
MAX_STAMP_CHARS = 13 + 1 + 4 + 1 + MAX_ID_CHARS  # wall ms, counter, the site's id


def check_entry(data: object, limits: Plausibility) -> Entry:
    """A ledger entry's wire object (feed payload, snapshot `ledger` data), or `Refused`:
    the fields' types and sizes, then the entry's own rules (`entry_from_wire`), then the
    plausibility limits."""
    if type(data) is not dict:
        raise Refused("invalid_entry", f"a ledger entry must be an object, got {_shown(data)}")
    for name in _ENTRY_IDS:
        if not is_id(data.get(name)):
            raise Refused("invalid_entry", f"{name} must be 1 to {MAX_ID_CHARS} characters, "
                          f"got {_shown(data.get(name))}")
    for name in _ENTRY_OPTIONAL_IDS:
        if (value := data.get(name)) is not None and not is_id(value):
            raise Refused("invalid_entry", f"{name} must be null or 1 to {MAX_ID_CHARS} "
                          f"characters, got {_shown(value)}")
    for name in _ENTRY_INTS:
        if type(data.get(name)) is not int:
            raise Refused("invalid_entry", f"{name} must be a whole number, got "
                          f"{_shown(data.get(name))}")
    for name, limit in (("reason", MAX_TEXT_CHARS), ("actor", MAX_ID_CHARS),
                        ("hlc", MAX_STAMP_CHARS)):
        if type(data.get(name)) is not str or len(data[name]) > limit:
            raise Refused("invalid_entry", f"{name} must be text of at most {limit} "
                          f"characters, got {_shown(data.get(name))}")
    try:
        entry = entry_from_wire(data)
    except (KeyError, ValueError, TypeError) as exc:
        raise Refused("invalid_entry", f"{type(exc).__name__}: {exc}") from None
    problem = limits.entry_problem(entry)
    if problem is not None:
        raise Refused("implausible_entry", f"entry {entry.entry_id}: {problem}")
    return entry


# -- documents and allowances ------------------------------------------------------------

def document_text(value: object, name: str) -> str:
    """A document as the edge stores it (strict JSON, bounded), or `Refused`."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise Refused("invalid_document", f"{name} is not plain JSON: {exc}") from None
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise Refused("invalid_document", f"{name} is over {MAX_DOCUMENT_BYTES} bytes")
    return text


def check_document(kind: str, key: object, payload: object) -> Mapping[str, Any]:
    """An `offer.upsert` or `config.version` payload, or `Refused`."""
    if not is_id(key):
        raise Refused("invalid_document", f"a {kind} needs a key of 1 to {MAX_ID_CHARS} "
                      f"characters, got {_shown(key)}")
    if type(payload) is not dict:
        raise Refused("invalid_document", f"a {kind} must be an object")
    document_text(payload, kind)
    if kind == "offer.upsert":
        title = payload.get("title")
        if title is not None and (type(title) is not str or len(title) > MAX_TEXT_CHARS):
            raise Refused("invalid_document", f"an offer's title must be text of at most "
                          f"{MAX_TEXT_CHARS} characters")
        for name in ("valid_from", "valid_until"):
            if (value := payload.get(name)) is not None and (
                    type(value) is not str or len(value) > 64):
                raise Refused("invalid_document", f"an offer's {name} must be a time")
    else:
        version = payload.get("version")
        if type(version) not in (str, int) or len(str(version)) > MAX_ID_CHARS:
            raise Refused("invalid_document", f"a configuration version needs a version, "
                          f"got {_shown(version)}")
        if key == RULES_KIND:  # applied by the ledger: parsed now, or refused with why
            try:
                parse_version(version, payload.get("effective_at"), payload.get("payload"))
            except InvalidRules as exc:
                raise Refused("invalid_rules", str(exc)) from None
    return payload


def check_coupon_change(key: object, payload: object
                        ) -> tuple[Coupon, list[CouponFact]]:
    """A `coupon.upsert`: the coupon and its facts, each its own; or `Refused`."""
    if type(payload) is not dict or not is_id(key):
        raise Refused("invalid_change", "a coupon change is an object keyed by the coupon")
    try:
        coupon = coupon_from_wire(payload["coupon"])
        facts = [CouponFact.from_wire(fact) for fact in payload.get("facts") or []]
    except (KeyError, TypeError, ValueError, LoyaltyError) as exc:
        raise Refused("invalid_change", f"not a coupon: {exc}") from None
    if coupon.coupon_id != key or any(f.coupon_id != key for f in facts):
        raise Refused("invalid_change", "a coupon change's facts are the coupon's")
    return coupon, facts


def check_campaign(key: object, payload: object) -> Mapping[str, Any]:
    """A `coupon_campaign.upsert`: a campaign's definition that makes one, or `Refused`."""
    if type(payload) is not dict or not is_id(key):
        raise Refused("invalid_document", "a campaign is an object keyed by its id")
    document_text(payload, "coupon_campaign.upsert")
    try:
        campaign_from_wire(str(key), "", payload)
    except (KeyError, TypeError, ValueError, LoyaltyError) as exc:
        raise Refused("invalid_document", f"not a coupon campaign: {exc}") from None
    return payload


def check_allowance(account_id: object, points: object, limits: Plausibility) -> int:
    """An offline allowance's points, or `Refused`."""
    if not is_id(account_id):
        raise Refused("invalid_allowance", f"an allowance needs an account id, got "
                      f"{_shown(account_id)}")
    if type(points) is not int or abs(points) > limits.max_entry_points:
        raise Refused("invalid_allowance", f"allowance of {account_id} must be a whole "
                      f"number of points within the limits, got {_shown(points)}")
    return max(0, points)
