"""The points that lapse first, as every balance reply states them (kiosk and HTTP)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo

from gateway.loyalty import Entry, fold
from gateway.loyalty.calendar import last_day
from gateway.loyalty.fold import soonest_expiring
from gateway.loyalty.wire import to_text


def expiring_fields(entries: Iterable[Entry], now: datetime,
                    tz: tzinfo) -> dict[str, int | str | None]:
    """`expiring_points`, `expiring_last_day` (the last local day they can be spent) and
    `expiring_at` (the instant they are gone); 0 and nulls when no points ever lapse. A
    member told "300 points valid until 31 December" can act on it."""
    soonest = soonest_expiring(fold(entries, now, journal=False))
    if soonest is None:
        return {"expiring_points": 0, "expiring_last_day": None, "expiring_at": None}
    return {"expiring_points": soonest.points,
            "expiring_last_day": last_day(soonest.expires_at, tz).isoformat(),
            "expiring_at": to_text(soonest.expires_at)}
