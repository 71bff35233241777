"""Local-calendar arithmetic: days, months and expiry instants in the mall's time zone.

Rules speak of local days ("once per day", "member day is the 18th", "end of next year"),
while entries store aware instants. Every conversion between the two lives here.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, tzinfo

from gateway.loyalty.rules import ExpiryRules

# A local wall-clock time of day as settings and offers write it, "HH:MM" (24 h).
HH_MM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


def local_date(at: datetime, tz: tzinfo) -> date:
    return at.astimezone(tz).date()


def start_of_day(day: date, tz: tzinfo) -> datetime:
    """The first instant of a local day, as an aware datetime."""
    return datetime.combine(day, time.min, tzinfo=tz)


def add_months(at: datetime, months: int, tz: tzinfo) -> datetime:
    """The same local wall time `months` later, clamped to the month's last day."""
    local = at.astimezone(tz)
    month_index = local.month - 1 + months
    year, month = local.year + month_index // 12, month_index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


def expiry_for(earned_at: datetime, rules: ExpiryRules, tz: tzinfo) -> datetime | None:
    """When a lot earned at `earned_at` lapses (exclusive: expired from that instant on)."""
    earned_day = local_date(earned_at, tz)
    if rules.policy == "never":
        return None
    if rules.policy == "days":
        return start_of_day(earned_day + timedelta(days=rules.days + 1), tz)
    # end_of_next_year: still spendable on 31 December of the next year, gone on 1 January.
    return start_of_day(date(earned_day.year + 2, 1, 1), tz)


def birthday_in(year: int, month: int, day: int) -> date:
    """A birthday in a given year; 29 February falls on 28 February in common years."""
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def last_day(expires_at: datetime, tz: tzinfo) -> date:
    """The last local day points lapsing at `expires_at` (exclusive) can be spent: what a
    member is told ("valid until 31 December"), not the day they are gone."""
    return local_date(expires_at - timedelta(microseconds=1), tz)
