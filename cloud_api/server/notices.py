"""Member-facing notices: what central tells a member, each under a deterministic id.

A notice's id is a hash of its cause (the tier change, the ledger entry, the lot's expiry
and reminder day), so a cause seen twice (a batch pushed again, a job run again, two
workers) yields the same id and the notice is kept once. Notices are facts about a
member for the mini-program backend: read by `GET .../notices` and delivered to webhooks.

Kinds (`data` per kind is in the OpenAPI document, schema `Notice`):

- `points.expiring`: points of the account expire on a date; sent the configured days
  before (`[loyalty.expiry] reminder_days`), with the amount and the date;
- `tier.up` / `tier.down`: the member's tier changed (central's decision);
- `birthday.gift`: the year's birthday gift was granted;
- `points.adjusted`: the service desk adjusted the points balance;
- `coupon.expiring`: a coupon of the member, still usable, expires soon; sent the same
  configured days before its validity ends (`coupon_reminders`, by the hourly reminder
  job `SqlStorage.find_expiry_reminders`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from gateway.loyalty import Coupon, CouponState, CouponStatus, Entry, EntryKind, Lot
from gateway.loyalty.activities import BIRTHDAY_SOURCE
from gateway.loyalty.calendar import last_day, local_date
from gateway.loyalty.tier_review import TierChange
from gateway.loyalty.wire import to_text

POINTS_EXPIRING = "points.expiring"
TIER_UP = "tier.up"
TIER_DOWN = "tier.down"
BIRTHDAY_GIFT = "birthday.gift"
POINTS_ADJUSTED = "points.adjusted"
COUPON_EXPIRING = "coupon.expiring"
NOTICE_KINDS = (POINTS_EXPIRING, TIER_UP, TIER_DOWN, BIRTHDAY_GIFT, POINTS_ADJUSTED,
                COUPON_EXPIRING)
# The source type of an adjustment made at central's service desk (`POST .../adjustments`).
ADJUST_SOURCE = "central.adjust"
# The columns of `notices`, in the order of `Notice.row` (`seq` is given on insert).
NOTICE_COLUMNS = "mall_id, notice_id, seq, member_id, account_id, kind, payload, created_at"


def notice_id(kind: str, *cause: str) -> str:
    """The notice's id from its kind and cause: the same cause, the same id everywhere."""
    digest = hashlib.sha256("\x1f".join(("notice", kind, *cause)).encode())
    return "n" + digest.hexdigest()[:31]


@dataclass(frozen=True, slots=True)
class Notice:
    """One notice to a member, before central numbers it."""

    notice_id: str
    kind: str
    member_id: str
    account_id: str
    data: dict[str, Any]

    def payload(self) -> str:
        return json.dumps(self.data, ensure_ascii=False, separators=(",", ":"),
                          sort_keys=True)


def tier_notice(change: TierChange, account_id: str) -> Notice:
    """The member's tier went up or down (`change` as central recorded it)."""
    kind = TIER_UP if change.direction == "upgrade" else TIER_DOWN
    return Notice(notice_id(kind, change.change_id), kind, change.member_id, account_id, {
        "change_id": change.change_id, "from_tier": change.from_tier,
        "to_tier": change.to_tier, "changed_at": to_text(change.at),
        "anniversary": change.anniversary.isoformat() if change.anniversary else None,
        "reason": change.reason})


def entry_notices(entries: Iterable[Entry]) -> list[Notice]:
    """The notices newly accepted ledger entries give: a birthday gift, and an adjustment
    by the service desk. Entries without a member tell no one."""
    found = []
    for entry in entries:
        if not entry.member_id:
            continue
        kind = None
        if entry.source_type == BIRTHDAY_SOURCE and entry.kind is EntryKind.EARN:
            kind = BIRTHDAY_GIFT
        elif entry.source_type == ADJUST_SOURCE and entry.kind is EntryKind.ADJUST:
            kind = POINTS_ADJUSTED
        if kind is None:
            continue
        found.append(Notice(notice_id(kind, entry.entry_id), kind, entry.member_id,
                            entry.account_id, {
                                "entry_id": entry.entry_id, "points": entry.points,
                                "reason": entry.reason,
                                "effective_at": to_text(entry.effective_at),
                                "expires_at": to_text(entry.expires_at)}))
    return found


def expiring_notices(due: Sequence[tuple[Lot, datetime]], *, account_id: str,
                     member_ids: Sequence[str], tz: tzinfo) -> list[Notice]:
    """Reminders of `reminders_due`'s lots, one per member of the account per expiry
    instant and reminder day: the lots expiring together are summed, so a member hears of
    "300 points on 31 December" once, not once per purchase."""
    by_expiry: dict[tuple[datetime, datetime], int] = {}
    for lot, remind_at in due:
        if lot.expires_at is None or lot.remaining <= 0:
            continue
        key = (lot.expires_at, remind_at)
        by_expiry[key] = by_expiry.get(key, 0) + lot.remaining
    notices = []
    for (expires_at, remind_at), points in sorted(by_expiry.items()):
        remind_on = local_date(remind_at, tz)
        for member_id in member_ids:
            notices.append(Notice(
                notice_id(POINTS_EXPIRING, member_id, to_text(expires_at) or "",
                          remind_on.isoformat()),
                POINTS_EXPIRING, member_id, account_id, {
                    "points": points, "expires_at": to_text(expires_at),
                    "last_day": last_day(expires_at, tz).isoformat(),
                    "remind_on": remind_on.isoformat()}))
    return notices


def coupon_expiring(*, member_id: str, account_id: str, coupon_code: str,
                    expires_at: datetime, remind_on: date, tz: tzinfo) -> Notice:
    """A coupon of the member expires soon. Its id is the coupon's code (unique in the
    mall) and reminder day, so the hourly job may see it as often as it likes."""
    return Notice(
        notice_id(COUPON_EXPIRING, coupon_code, remind_on.isoformat()), COUPON_EXPIRING,
        member_id, account_id, {"coupon_code": coupon_code,
                                "expires_at": to_text(expires_at),
                                "last_day": last_day(expires_at, tz).isoformat(),
                                "remind_on": remind_on.isoformat()})


def coupon_reminder_due(coupon: Coupon, state: CouponState, *,
                        reminder_days: Sequence[int], now: datetime) -> datetime | None:
    """The latest reminder instant of `coupon` passed by `now` (its validity's end less
    one of `reminder_days`, or its validity's start if that came later: a coupon valid for
    fewer days than a reminder is told of once it is valid), or None: none passed yet,
    the coupon has expired, or it can no longer be used (redeemed, voided; held: a till
    is using it right now, and a hold released in time is reminded of on the next run)."""
    if state.status is not CouponStatus.ISSUED or now >= coupon.valid_until:
        return None
    passed = [max(coupon.valid_until - timedelta(days=d), coupon.valid_from)
              for d in reminder_days]
    passed = [at for at in passed if at <= now]
    return max(passed) if passed else None


def notice_json(row: Sequence[Any]) -> dict[str, Any]:
    """One stored notice (a row in `NOTICE_COLUMNS` order) as the API and webhooks carry
    it."""
    mall_id, notice_id_, seq, member_id, account_id, kind, payload, created_at = row
    return {"notice_id": notice_id_, "mall_id": mall_id, "seq": str(int(seq)),
            "member_id": member_id, "account_id": account_id, "kind": kind,
            "created_at": created_at, "data": json.loads(payload)}
