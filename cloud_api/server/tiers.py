"""Central's tiers: recomputed from the ledger with `gateway.loyalty`, sent down with members.

Central holds each member's tier (`tier`, `tier_anniversary`, `tier_since` in the profile)
and changes it by the rules every gateway applies (`gateway.loyalty.tier_review`):

- after each accepted entry that counts towards tiers, an upgrade at once
  (`upgrade_members`, in the batch's transaction);
- once a tier anniversary is over, one step down if the year's spend no longer holds the
  tier, else another year (`review_anniversaries`, run by central's hourly tier review;
  it decides by whole past days, so running it again, or late, decides the same).

Every change is a `tier.changed` fact in `activity_events` under the change's
deterministic id, the same id a gateway gives the same upgrade, so the two are one fact.
The member's new version goes down the change feed with the change it carries
(`tier_change`), and the gateway's provisional upgrade is thereby confirmed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from cloud_api.server import coupons
from cloud_api.server.activity import Activity
from cloud_api.server.notice_ops import record_entry_notices, record_notices
from cloud_api.server.notices import tier_notice
from cloud_api.server.operations import (
    PHONE_COLUMNS,
    account_entries,
    lock_mall,
    write_member,
)
from cloud_api.server.operations import accept_batch as accept_entries
from cloud_api.server.phones import StoredPhone
from cloud_api.server.queries import Dialect, Execute, Fetch, Op
from cloud_api.server.rule_versions import rule_book
from cloud_api.server.storage import Parsed, Verdict
from gateway.loyalty import Entry, LoyaltyRules
from gateway.loyalty.calendar import local_date
from gateway.loyalty.fold import Qualifying, qualifying_of
from gateway.loyalty.tier_review import (
    Standing,
    TierChange,
    review_at_anniversary,
    upgrade_after,
)
from gateway.loyalty.wire import to_text

TIER_EVENT = "tier.changed"
CENTRAL_GATEWAY = "central"


def change_payload(change: TierChange, account_id: str) -> dict[str, Any]:
    """A tier change as gateways send it and central sends it down (`tier_change`)."""
    return {"change_id": change.change_id, "member_id": change.member_id,
            "account_id": account_id, "from_tier": change.from_tier,
            "to_tier": change.to_tier, "direction": change.direction,
            "changed_at": to_text(change.at),
            "anniversary": change.anniversary.isoformat() if change.anniversary else None,
            "qualifying_fen": change.qualifying_fen, "trigger": change.trigger,
            "reason": change.reason}


def _standing(profile: dict[str, Any]) -> Standing:
    anniversary = profile.get("tier_anniversary")
    return Standing(profile.get("tier") or "normal",
                    date.fromisoformat(anniversary) if anniversary else None)


def _with_changes(profile: dict[str, Any], standing: Standing,
                  changes: Sequence[TierChange], account_id: str) -> dict[str, Any]:
    updated = {**profile, "tier": standing.tier,
               "tier_anniversary": standing.anniversary.isoformat()
               if standing.anniversary else None}
    if changes:
        updated["tier_since"] = to_text(changes[-1].at)
        updated["tier_change"] = change_payload(changes[-1], account_id)
    return updated


def _record_facts(dialect: Dialect, mall_id: str, changes: Sequence[TierChange],
                  account_id: str, at: str) -> Op[None]:
    """Each change as a `tier.changed` fact and a `tier.up` / `tier.down` notice."""
    yield from record_notices(dialect, mall_id,
                              [tier_notice(change, account_id) for change in changes], at)
    for change in changes:
        payload = change_payload(change, account_id)
        yield Execute(
            "INSERT INTO activity_events (mall_id, event_id, gateway_id, type, member_id, "
            "payload, occurred_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (mall_id, event_id) DO NOTHING",
            (mall_id, change.change_id, CENTRAL_GATEWAY, TIER_EVENT, change.member_id,
             json.dumps(payload, ensure_ascii=False), payload["changed_at"], at))


def accept_batch(dialect: Dialect, mall_id: str, origin: str, parsed: Sequence[Parsed],
                 now: datetime, *, rules: LoyaltyRules) -> Op[list[Verdict]]:
    """`operations.accept_batch`, then the tier check of the members its new entries
    concern and the notices they give, in the same transaction; `rules` are the base of
    the mall's published versions, each trigger judged by the version in force at its
    time."""
    verdicts = yield from accept_entries(dialect, mall_id, origin, parsed, now)
    yield from coupons.project_events(
        mall_id, origin, [p for p in parsed if isinstance(p, Activity)], verdicts,
        to_text(now) or "")
    accepted = {v.event_id for v in verdicts if v.status == "accepted"}
    new_entries = [p for p in parsed if isinstance(p, Entry) and p.entry_id in accepted]
    yield from upgrade_members(dialect, mall_id, new_entries, rules, to_text(now) or "")
    yield from record_entry_notices(dialect, mall_id, new_entries, to_text(now) or "")
    return verdicts


def upgrade_members(dialect: Dialect, mall_id: str, accepted: Sequence[Entry],
                    rules: LoyaltyRules, at: str) -> Op[int]:
    """Re-evaluate the tier of each member whose spend the batch's new entries changed (in
    batch order: a gateway pushes in the order it recorded, so it and central see the
    same triggering entry); returns how many members were upgraded."""
    triggers: dict[str, list[Entry]] = {}
    for entry in accepted:
        if entry.qual_fen and entry.member_id:
            triggers.setdefault(entry.member_id, []).append(entry)
    if not triggers:
        return 0
    book = yield from rule_book(mall_id, rules)
    upgraded = 0
    for recorded_as, entries in triggers.items():
        member_id = recorded_as
        member = yield from _member(dialect, mall_id, member_id)
        if member is None:  # spent while provisional: the member central confirmed, if any
            member_id = (yield from _confirmed_as(mall_id, recorded_as)) or recorded_as
            member = yield from _member(dialect, mall_id, member_id)
        if member is None:
            continue
        account_id, profile, version, phone = member
        stream = qualifying_of((yield from account_entries(mall_id, account_id)))
        known_as = yield from _former_ids(mall_id, member_id, stream)
        standing, changes = _standing(profile), []
        for trigger in entries:
            change = upgrade_after(standing, stream, book.at(trigger.effective_at),
                                   member_id=member_id, trigger=trigger, known_as=known_as)
            if change is not None:
                standing = change.standing
                changes.append(change)
        if not changes:
            continue
        yield from _record_facts(dialect, mall_id, changes, account_id, at)
        yield from write_member(mall_id, member_id, account_id,
                                _with_changes(profile, standing, changes, account_id),
                                version=version + 1, phone=phone, at=at)
        upgraded += 1
    return upgraded


def review_anniversaries(dialect: Dialect, mall_id: str, rules: LoyaltyRules,
                         now: datetime, at: str) -> Op[int]:
    """Review every member of the mall whose tier anniversary is over: one step down, or
    another year, by the rules in force `now` over the base `rules`; returns how many
    members were downgraded."""
    yield from lock_mall(dialect, mall_id)
    rules = (yield from rule_book(mall_id, rules)).at(now)
    today = local_date(now, rules.tz)
    rows = yield Fetch("SELECT member_id FROM members WHERE mall_id = ? AND "
                       "erased_at IS NULL AND tier_anniversary < ? ORDER BY member_id",
                       (mall_id, today.isoformat()))
    downgraded = 0
    for (member_id,) in rows:
        member = yield from _member(dialect, mall_id, str(member_id))
        if member is None:
            continue
        account_id, profile, version, phone = member
        stream = qualifying_of((yield from account_entries(mall_id, account_id)))
        known_as = yield from _former_ids(mall_id, str(member_id), stream)
        standing, changes = review_at_anniversary(_standing(profile), stream, rules,
                                                  member_id=str(member_id), today=today,
                                                  known_as=known_as)
        yield from _record_facts(dialect, mall_id, changes, account_id, at)
        yield from write_member(mall_id, str(member_id), account_id,
                                _with_changes(profile, standing, changes, account_id),
                                version=version + 1, phone=phone, at=at)
        downgraded += bool(changes)
    return downgraded


def _former_ids(mall_id: str, member_id: str,
                stream: Sequence[Qualifying]) -> Op[list[str]]:
    """The provisional ids a gateway enrolled the member under before central confirmed
    it: the entries recorded under them are the member's spend too. Looked up only when
    the account's spend names someone else (a merged provisional member, or a family)."""
    if all(q.member_id in (member_id, None) for q in stream):
        return []
    rows = yield Fetch("SELECT provisional_member_id FROM enrolments WHERE mall_id = ? AND "
                       "member_id = ? AND provisional_member_id IS NOT NULL "
                       "ORDER BY provisional_member_id", (mall_id, member_id))
    return [str(row[0]) for row in rows]


def upgrade_confirmed(dialect: Dialect, mall_id: str, member_id: str, *,
                      provisional_id: str, rules: LoyaltyRules, at: str) -> Op[int]:
    """The tier check of a provisional member central has just confirmed as `member_id`,
    over what it spent while provisional (a gateway pushes those entries before or after
    the confirmation: `upgrade_members` resolves the id when they come after)."""
    rows = yield Fetch("SELECT account_id FROM members WHERE mall_id = ? AND member_id = ?",
                       (mall_id, member_id))
    if not rows:
        return 0
    spent = [e for e in (yield from account_entries(mall_id, str(rows[0][0])))
             if e.member_id == provisional_id and e.qual_fen]
    spent.sort(key=lambda e: (e.effective_at, e.entry_id))
    return (yield from upgrade_members(dialect, mall_id, spent, rules, at))


def _confirmed_as(mall_id: str, provisional_id: str) -> Op[str | None]:
    rows = yield Fetch("SELECT member_id FROM enrolments WHERE mall_id = ? AND "
                       "provisional_member_id = ? ORDER BY enrolment_id LIMIT 1",
                       (mall_id, provisional_id))
    return str(rows[0][0]) if rows else None


def _member(dialect: Dialect, mall_id: str,
            member_id: str) -> Op[tuple[str, dict[str, Any], int, StoredPhone] | None]:
    rows = yield Fetch(
        f"SELECT account_id, profile, version, {PHONE_COLUMNS} FROM members "
        "WHERE mall_id = ? AND member_id = ? AND erased_at IS NULL" + dialect.row_lock,
        (mall_id, member_id))
    if not rows:
        return None
    account_id, profile, version, *phone = rows[0]
    return str(account_id), json.loads(profile), int(version), StoredPhone(*phone)
