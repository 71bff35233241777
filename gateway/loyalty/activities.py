"""Points that are not purchases: daily check-in, tasks, birthday and new-member gifts.

Each has a deterministic identity (member + local day, member + task, member + year), so
"once per day" and "once a year" hold across sites without any coordination: the second
site's entry has the same id as the first and is a duplicate, not a second grant.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from gateway.loyalty.calendar import birthday_in, expiry_for, local_date
from gateway.loyalty.entries import Entry, EntryKind
from gateway.loyalty.rules import LoyaltyRules

CHECKIN_SOURCE = "checkin"
PROFILE_TASK_SOURCE = "task.profile"
REFERRER_SOURCE = "task.referrer"
REFEREE_SOURCE = "task.referee"
BIRTHDAY_SOURCE = "birthday"
NEW_MEMBER_SOURCE = "gift.new_member"


def _gift(
    *, source_type: str, source_key: str, points: int, reason: str, account_id: str,
    member_id: str, at: datetime, rules: LoyaltyRules, actor: str,
) -> Entry:
    return Entry(
        kind=EntryKind.EARN, points=points, account_id=account_id, member_id=member_id,
        source_type=source_type, source_key=source_key, reason=reason, effective_at=at,
        expires_at=expiry_for(at, rules.expiry, rules.tz), rule_version=rules.version,
        actor=actor,
    )


def checkin_entry(
    *, account_id: str, member_id: str, at: datetime, rules: LoyaltyRules,
    actor: str = "kiosk",
) -> Entry:
    day = local_date(at, rules.tz)
    return _gift(
        source_type=CHECKIN_SOURCE, source_key=f"{member_id}:{day.isoformat()}",
        points=rules.checkin.points, reason=f"Daily check-in {day.isoformat()}",
        account_id=account_id, member_id=member_id, at=at, rules=rules, actor=actor,
    )


def profile_completed_entry(
    *, account_id: str, member_id: str, at: datetime, rules: LoyaltyRules,
    actor: str = "system",
) -> Entry:
    return _gift(
        source_type=PROFILE_TASK_SOURCE, source_key=member_id,
        points=rules.tasks.profile_completed_points, reason="Task: profile completed",
        account_id=account_id, member_id=member_id, at=at, rules=rules, actor=actor,
    )


def referral_entries(
    *, referrer_account: str, referrer_id: str, referee_account: str, referee_id: str,
    at: datetime, rules: LoyaltyRules, actor: str = "system",
) -> tuple[Entry, Entry]:
    """Both sides of an invitation: the inviter per friend, the friend once ever."""
    return (
        _gift(source_type=REFERRER_SOURCE, source_key=f"{referrer_id}:{referee_id}",
              points=rules.tasks.referrer_points, reason="Task: invited a friend",
              account_id=referrer_account, member_id=referrer_id, at=at, rules=rules,
              actor=actor),
        _gift(source_type=REFEREE_SOURCE, source_key=referee_id,
              points=rules.tasks.referee_points, reason="Task: joined by invitation",
              account_id=referee_account, member_id=referee_id, at=at, rules=rules,
              actor=actor),
    )


def birthday_entry(
    *, account_id: str, member_id: str, birth_month: int, birth_day: int, at: datetime,
    rules: LoyaltyRules, actor: str = "system",
) -> Entry | None:
    """The year's birthday gift if `at` falls in the gift window, else None."""
    today = local_date(at, rules.tz)
    birthday: date = birthday_in(today.year, birth_month, birth_day)
    in_window = (today == birthday if rules.birthday.window == "day"
                 else today.month == birthday.month)
    if not in_window:
        return None
    return _gift(
        source_type=BIRTHDAY_SOURCE, source_key=f"{member_id}:{today.year}",
        points=rules.birthday.points, reason=f"Birthday gift {today.year}",
        account_id=account_id, member_id=member_id, at=at, rules=rules, actor=actor,
    )


def new_member_entry(
    *, account_id: str, member_id: str, at: datetime, rules: LoyaltyRules,
    actor: str = "system",
) -> Entry | None:
    """The new-member gift, once per member; None when the rules give none."""
    if rules.tasks.new_member_points <= 0:
        return None
    return _gift(
        source_type=NEW_MEMBER_SOURCE, source_key=member_id,
        points=rules.tasks.new_member_points, reason="Welcome gift",
        account_id=account_id, member_id=member_id, at=at, rules=rules, actor=actor,
    )


def profile_filled(profile: Mapping[str, Any]) -> frozenset[str]:
    """Which of the profile task's fields a member profile has filled in: `name`, `phone`
    (the number or its masked form, which is all central keeps readable) and `birthday`
    (month and day)."""
    filled = set()
    if profile.get("name"):
        filled.add("name")
    if profile.get("phone") or profile.get("phone_masked"):
        filled.add("phone")
    if profile.get("birth_month") and profile.get("birth_day"):
        filled.add("birthday")
    return frozenset(filled)


def profile_is_complete(profile: Mapping[str, Any], rules: LoyaltyRules) -> bool:
    """Whether the profile has every field the rules' profile task asks for."""
    return set(rules.tasks.profile_fields) <= profile_filled(profile)
