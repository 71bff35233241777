"""Small builders shared by the loyalty tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.loyalty import Entry, EntryKind, LoyaltyRules, Sale

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULES = LoyaltyRules()
NORMAL, SILVER, GOLD, DIAMOND = RULES.tiers.tiers


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A local (Shanghai) wall time."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def sale(total_fen: int, when: datetime, *, receipt: str = "R1", store: str = "S01",
         points_used: int = 0, points_paid_fen: int = 0) -> Sale:
    return Sale(store_id=store, pos_id="P1", receipt_no=receipt, business_date=when.date(),
                occurred_at=when, total_fen=total_fen, points_used=points_used,
                points_paid_fen=points_paid_fen)


def earn(points: int, when: datetime, *, key: str, expires_in_days: int | None = 365,
         available_at: datetime | None = None, qual_fen: int = 0,
         account: str = "A1", member: str = "M1") -> Entry:
    return Entry(
        kind=EntryKind.EARN, points=points, qual_fen=qual_fen, account_id=account,
        member_id=member, source_type="test", source_key=key, reason=f"earn {key}",
        effective_at=when, rule_version="t",
        expires_at=when + timedelta(days=expires_in_days) if expires_in_days else None,
        available_at=available_at,
    )


def burn(points: int, when: datetime, *, key: str, account: str = "A1") -> Entry:
    return Entry(kind=EntryKind.BURN, points=-points, account_id=account, member_id="M1",
                 source_type="test", source_key=key, reason=f"burn {key}", effective_at=when,
                 rule_version="t")


def day(year: int, month: int, d: int) -> date:
    return date(year, month, d)
