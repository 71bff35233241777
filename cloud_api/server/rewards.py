"""Central's rewards: the gifts and tasks that events at central grant, each once.

Every grant is an entry of `gateway.loyalty.activities` with a deterministic id, recorded
like any gateway's entry (`tiers.accept_batch`: sequenced, sent down the change feed), so
a gift granted here and at a gateway is one entry, and granting again is a duplicate:

- a member created: the new-member gift (`[loyalty.tasks] new_member_points`), both sides
  of a referral (`referrer`), and the profile task if the profile is already complete;
- a member's profile updated: the profile task once the profile is complete;
- the mini-program's check-in: the same once-a-day entry as a kiosk's check-in;
- the birthday job: the year's birthday gift to the members whose birthday window today
  falls in (`birthday_candidates`, then `grant`).

Each operation returns the entries it granted (new ones only), for whatever tells the
member (a notice) to hook onto.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from cloud_api.server import operations as ops
from cloud_api.server import tiers
from cloud_api.server.codes import Code
from cloud_api.server.phones import PhoneKeys
from cloud_api.server.queries import Dialect, Fetch, Op
from cloud_api.server.storage import CENTRAL_ORIGIN, NotFound, StorageError, Verdict
from gateway.loyalty import (
    Entry,
    LoyaltyRules,
    birthday_entry,
    checkin_entry,
    new_member_entry,
    profile_completed_entry,
    profile_is_complete,
    referral_entries,
)
from gateway.loyalty.wire import entry_from_json, entry_to_wire, to_text

# What stamps an entry as central's recording of it (its hybrid clock, its time).
Stamp = Callable[[Entry], Entry]
REFERRER_FIELD = "referrer"
# Who central's check-in is from: the mini-program, through its backend.
CHECKIN_ACTOR = "mini-program"


def grant(dialect: Dialect, mall_id: str, entries: Sequence[Entry], now: datetime, *,
          rules: LoyaltyRules, stamp: Stamp) -> Op[list[tuple[Entry, Verdict]]]:
    """Record the entries as central's (duplicates change nothing); each with its verdict."""
    if not entries:
        return []
    stamped = [stamp(e) for e in entries]
    verdicts = yield from tiers.accept_batch(dialect, mall_id, CENTRAL_ORIGIN, stamped, now,
                                             rules=rules)
    return list(zip(stamped, verdicts, strict=True))


def _new(granted: Sequence[tuple[Entry, Verdict]]) -> list[Entry]:
    return [entry for entry, verdict in granted if verdict.status == "accepted"]


def rewards_json(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    return [entry_to_wire(e) for e in entries]


def _account_of(mall_id: str, member_id: str) -> Op[str]:
    """The account of a member not erased, or `NotFound`."""
    rows = yield Fetch("SELECT account_id FROM members WHERE mall_id = ? AND member_id = ? "
                       "AND erased_at IS NULL", (mall_id, member_id))
    if not rows:
        raise NotFound(f"member {member_id}")
    return str(rows[0][0])


def _profile_task(member: dict[str, Any], now: datetime,
                  rules: LoyaltyRules) -> list[Entry]:
    if not profile_is_complete(member, rules):
        return []
    return [profile_completed_entry(account_id=member["account_id"],
                                    member_id=member["member_id"], at=now, rules=rules)]


def create_member(dialect: Dialect, mall_id: str, body: dict[str, Any], *,
                  phones: PhoneKeys, now: datetime, rules: LoyaltyRules,
                  stamp: Stamp) -> Op[dict[str, Any]]:
    """`operations.create_member`, and in the same transaction the member's first rewards:
    the new-member gift, both sides of a referral (`referrer`: an existing member of the
    mall, who is not the new one) and the profile task. The member comes back with the
    entries granted (`rewards`)."""
    referrer_id = body.get(REFERRER_FIELD)
    profile = {k: v for k, v in body.items() if k != REFERRER_FIELD}
    referrer_account = None
    if referrer_id is not None:
        if referrer_id == body.get("member_id"):
            raise StorageError(Code.INVALID_MEMBER, "a member cannot refer themself",
                               field=REFERRER_FIELD, rule="other_member")
        try:
            # Not locked: a batch takes the mall's row and then members' rows, so taking a
            # member's row before the mall's could deadlock with it.
            referrer_account = yield from _account_of(mall_id, str(referrer_id))
        except NotFound:
            raise StorageError(Code.INVALID_MEMBER,
                               f"referrer {referrer_id} is not a member of this mall",
                               field=REFERRER_FIELD, rule="member") from None
    member = yield from ops.create_member(mall_id, profile, phones, to_text(now) or "")
    member_id, account_id = member["member_id"], member["account_id"]
    entries: list[Entry] = []
    gift = new_member_entry(account_id=account_id, member_id=member_id, at=now, rules=rules)
    if gift is not None:
        entries.append(gift)
    if referrer_account is not None:
        entries.extend(referral_entries(
            referrer_account=referrer_account, referrer_id=str(referrer_id),
            referee_account=account_id, referee_id=member_id, at=now, rules=rules))
    entries.extend(_profile_task(member, now, rules))
    granted = yield from grant(dialect, mall_id, entries, now, rules=rules, stamp=stamp)
    return {**member, "rewards": rewards_json(_new(granted))}


def update_member(dialect: Dialect, mall_id: str, member_id: str, body: dict[str, Any], *,
                  phones: PhoneKeys, now: datetime, rules: LoyaltyRules,
                  stamp: Stamp) -> Op[dict[str, Any]]:
    """`operations.update_member`, and the profile task in the same transaction if the
    profile is complete now (once per member: a later update grants nothing)."""
    if REFERRER_FIELD in body:
        raise StorageError(Code.INVALID_MEMBER, "a referrer is given when the member is "
                           "created, not later", field=REFERRER_FIELD, rule="create_only")
    member = yield from ops.update_member(dialect, mall_id, member_id, body, phones=phones,
                                          at=to_text(now) or "")
    granted = yield from grant(dialect, mall_id, _profile_task(member, now, rules), now,
                               rules=rules, stamp=stamp)
    return {**member, "rewards": rewards_json(_new(granted))}


def checkin(dialect: Dialect, mall_id: str, member_id: str, *, now: datetime,
            rules: LoyaltyRules, stamp: Stamp) -> Op[tuple[Entry, Verdict]]:
    """The member's check-in of today (local day): the kiosk's entry id, so a check-in
    at a kiosk and one in the mini-program on the same day are one entry. The entry as
    central holds it (the first recording, whichever channel made it) and its verdict."""
    account_id = yield from _account_of(mall_id, member_id)
    entry = checkin_entry(account_id=account_id, member_id=member_id, at=now, rules=rules,
                          actor=CHECKIN_ACTOR)
    ((stamped, verdict),) = yield from grant(dialect, mall_id, [entry], now, rules=rules,
                                             stamp=stamp)
    if verdict.status == "duplicate":
        rows = yield Fetch("SELECT payload FROM ledger WHERE mall_id = ? AND entry_id = ?",
                           (mall_id, entry.entry_id))
        stamped = entry_from_json(rows[0][0]) if rows else stamped
    return stamped, verdict


def birthday_candidates(mall_id: str, after: str, limit: int, now: datetime,
                        rules: LoyaltyRules) -> Op[tuple[str | None, list[Entry]]]:
    """The birthday gifts due today to the next `limit` members after `after` (by id):
    the last member id looked at (None: no more) and the gifts, which may already be
    granted (recording them again is a duplicate)."""
    rows = yield Fetch("SELECT member_id, account_id, profile FROM members WHERE mall_id = ? "
                       "AND erased_at IS NULL AND member_id > ? ORDER BY member_id LIMIT ?",
                       (mall_id, after, limit))
    gifts = []
    for member_id, account_id, text in rows:
        profile = json.loads(text)
        month, day = profile.get("birth_month"), profile.get("birth_day")
        if not month or not day:
            continue
        gift = birthday_entry(account_id=str(account_id), member_id=str(member_id),
                              birth_month=int(month), birth_day=int(day), at=now, rules=rules)
        if gift is not None:
            gifts.append(gift)
    return (str(rows[-1][0]) if rows else None), gifts


def grant_new(dialect: Dialect, mall_id: str, entries: Sequence[Entry], now: datetime,
              rules: LoyaltyRules, *, stamp: Stamp) -> Op[list[Entry]]:
    """`grant`, returning only the entries that were new (the rules last: the rules in
    force are handed over by the storage)."""
    granted = yield from grant(dialect, mall_id, entries, now, rules=rules, stamp=stamp)
    return _new(granted)

