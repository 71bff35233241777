"""The storage operations of member notices and their webhook deliveries, for both backends.

Like `operations.py`: each is a generator of queries, run by the backend in one
transaction. Notices are numbered per mall under the `notice_seqs` row, taken until
COMMIT, so numbers become visible in order and a cursor never skips a late commit.

A delivery is claimed with a lease: a worker marks the rows it will send with its name
and a deadline (`lease_until`) in one transaction; no other worker claims them until the
deadline passes, so two workers never send one notice at the same time, and one that died
mid-send leaves its rows to be sent again after the lease (the receiver dedups by the
notice id). A delivered row is never claimed again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloud_api.server.notices import (
    NOTICE_COLUMNS,
    Notice,
    coupon_expiring,
    coupon_reminder_due,
    entry_notices,
    expiring_notices,
    notice_json,
)
from cloud_api.server.queries import Dialect, Execute, ExecuteMany, Fetch, FetchIn, Op
from gateway.loyalty import (
    CouponFact,
    Entry,
    LoyaltyRules,
    coupon_from_wire,
    fold,
    fold_coupon,
    issued_fact,
    reminders_due,
)
from gateway.loyalty.calendar import local_date
from gateway.loyalty.wire import entry_from_json

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
DELIVERY_STATES = (PENDING, DELIVERED, DEAD)
# How long an error text kept with a delivery may be (a status line, never a body).
MAX_ERROR_CHARS = 300
# Notices deleted per statement by the purge (well below SQLite's bound parameters).
PURGE_CHUNK = 500


def record_notices(dialect: Dialect, mall_id: str, notices: Sequence[Notice],
                   at: str) -> Op[int]:
    """Keep the notices central does not have yet, numbered after the mall's last one;
    returns how many were new. The mall's `notice_seqs` row is taken first, so a
    concurrent writer of the same notice waits and then sees it."""
    if not notices:
        return 0
    yield Execute("INSERT INTO notice_seqs (mall_id, seq) VALUES (?, 0) "
                  "ON CONFLICT (mall_id) DO NOTHING", (mall_id,))
    rows = yield Fetch("SELECT seq FROM notice_seqs WHERE mall_id = ?" + dialect.row_lock,
                       (mall_id,))
    seq = int(rows[0][0])
    unique = list({n.notice_id: n for n in reversed(notices)}.values())[::-1]
    rows = yield FetchIn("SELECT notice_id FROM notices WHERE mall_id = ? AND notice_id {in}",
                         [n.notice_id for n in unique], (mall_id,))
    known = {str(r[0]) for r in rows}
    new_rows = []
    for notice in unique:
        if notice.notice_id in known:
            continue
        seq += 1
        new_rows.append((mall_id, notice.notice_id, seq, notice.member_id, notice.account_id,
                         notice.kind, notice.payload(), at))
    if not new_rows:
        return 0
    yield ExecuteMany(f"INSERT INTO notices ({NOTICE_COLUMNS}) VALUES "
                      "(?, ?, ?, ?, ?, ?, ?, ?)", new_rows)
    yield Execute("UPDATE notice_seqs SET seq = ? WHERE mall_id = ?", (seq, mall_id))
    return len(new_rows)


def record_entry_notices(dialect: Dialect, mall_id: str, entries: Sequence[Entry],
                         at: str) -> Op[int]:
    """The notices newly accepted entries give (`entry_notices`), to members central has
    not erased (a gateway may still push an erased member's last entries)."""
    notices = entry_notices(entries)
    if not notices:
        return 0
    rows = yield FetchIn("SELECT member_id FROM members WHERE mall_id = ? AND "
                         "erased_at IS NOT NULL AND member_id {in}",
                         sorted({n.member_id for n in notices}), (mall_id,))
    erased = {str(r[0]) for r in rows}
    return (yield from record_notices(dialect, mall_id,
                                      [n for n in notices if n.member_id not in erased], at))


def purge_notices(mall_id: str, cutoff: str) -> Op[int]:
    """Drop the notices made before `cutoff` whose deliveries are all over (delivered or
    dead), with those deliveries; returns how many notices went. A notice still pending
    for some webhook stays until it is delivered or dead."""
    rows = yield Fetch(
        "SELECT notice_id FROM notices n WHERE mall_id = ? AND created_at < ? AND NOT "
        "EXISTS (SELECT 1 FROM notice_deliveries d WHERE d.mall_id = n.mall_id AND "
        "d.notice_id = n.notice_id AND d.state = ?)", (mall_id, cutoff, PENDING))
    ids = [str(r[0]) for r in rows]
    for start in range(0, len(ids), PURGE_CHUNK):
        chunk = ids[start:start + PURGE_CHUNK]
        marks = ", ".join("?" * len(chunk))
        yield Execute(f"DELETE FROM notice_deliveries WHERE mall_id = ? AND notice_id IN "
                      f"({marks})", (mall_id, *chunk))
        yield Execute(f"DELETE FROM notices WHERE mall_id = ? AND notice_id IN ({marks})",
                      (mall_id, *chunk))
    return len(ids)


def forget_member(mall_id: str, member_id: str) -> Op[None]:
    """An erased member's notices go, with their deliveries still to make: a notice tells
    of the member's points and tier, personal data the erasure removes."""
    yield Execute("DELETE FROM notice_deliveries WHERE mall_id = ? AND notice_id IN "
                  "(SELECT notice_id FROM notices WHERE mall_id = ? AND member_id = ?)",
                  (mall_id, mall_id, member_id))
    yield Execute("DELETE FROM notices WHERE mall_id = ? AND member_id = ?",
                  (mall_id, member_id))


def notices_page(mall_id: str, member_id: str | None, after: int,
                 limit: int) -> Op[tuple[list[dict[str, Any]], int]]:
    """The mall's notices (or one member's) after the cursor, oldest first, and the cursor
    to ask with next."""
    member = " AND member_id = ?" if member_id is not None else ""
    args = (mall_id, after, *([member_id] if member_id is not None else []), limit)
    rows = yield Fetch(f"SELECT {NOTICE_COLUMNS} FROM notices WHERE mall_id = ? AND seq > ?"
                       f"{member} ORDER BY seq LIMIT ?", args)
    page = [notice_json(row) for row in rows]
    return page, (int(rows[-1][2]) if rows else after)


def expiry_reminders(dialect: Dialect, mall_id: str, *, after_account: str, limit: int,
                     rules: LoyaltyRules, now: datetime,
                     at: str) -> Op[tuple[str | None, int]]:
    """The `points.expiring` notices due for the next `limit` accounts of the mall after
    `after_account`, to each member of the account; returns the last account looked at
    (None: no more) and how many notices were new."""
    rows = yield Fetch("SELECT account_id FROM accounts WHERE mall_id = ? AND account_id > ? "
                       "ORDER BY account_id LIMIT ?", (mall_id, after_account, limit))
    accounts = [str(r[0]) for r in rows]
    if not accounts:
        return None, 0
    ledger = yield FetchIn("SELECT account_id, payload FROM ledger WHERE mall_id = ? AND "
                           "account_id {in}", accounts, (mall_id,))
    members = yield FetchIn("SELECT account_id, member_id FROM members WHERE mall_id = ? AND "
                            "erased_at IS NULL AND account_id {in} ORDER BY member_id",
                            accounts, (mall_id,))
    entries: dict[str, list[str]] = {}
    for account_id, payload in ledger:
        entries.setdefault(str(account_id), []).append(str(payload))
    member_ids: dict[str, list[str]] = {}
    for account_id, member_id in members:
        member_ids.setdefault(str(account_id), []).append(str(member_id))
    notices: list[Notice] = []
    for account_id in accounts:
        if account_id not in member_ids:
            continue  # no member to tell (none yet, or erased)
        state = fold([entry_from_json(text) for text in entries.get(account_id, [])], now,
                     reminder_days=rules.expiry.reminder_days, journal=False)
        notices += expiring_notices(reminders_due(state, now), account_id=account_id,
                                    member_ids=member_ids[account_id], tz=rules.tz)
    created = yield from record_notices(dialect, mall_id, notices, at)
    return (accounts[-1] if len(accounts) == limit else None), created


def coupon_reminders(dialect: Dialect, mall_id: str, *, after_coupon: str, limit: int,
                     rules: LoyaltyRules, now: datetime,
                     at: str) -> Op[tuple[str | None, int]]:
    """The `coupon.expiring` notices due for the next `limit` coupons of the mall's
    members after `after_coupon` (never an erased member's, nor a bearer coupon's: no one
    to tell), folded from their facts as the gateways fold them; returns the last coupon
    looked at (None: no more) and how many notices were new."""
    rows = yield Fetch(
        "SELECT c.coupon_id, c.document, m.member_id, m.account_id FROM coupons c "
        "JOIN members m ON m.mall_id = c.mall_id AND m.member_id = c.member_id "
        "WHERE c.mall_id = ? AND m.erased_at IS NULL AND c.coupon_id > ? "
        "ORDER BY c.coupon_id LIMIT ?", (mall_id, after_coupon, limit))
    if not rows:
        return None, 0
    found = yield FetchIn("SELECT coupon_id, payload FROM coupon_facts WHERE mall_id = ? "
                          "AND coupon_id {in}", [str(r[0]) for r in rows], (mall_id,))
    facts: dict[str, list[CouponFact]] = {}
    for coupon_id, payload in found:
        facts.setdefault(str(coupon_id), []).append(CouponFact.from_wire(json.loads(payload)))
    notices = []
    for coupon_id, document, member_id, account_id in rows:
        coupon = coupon_from_wire(json.loads(document))
        state = fold_coupon([issued_fact(coupon), *facts.get(str(coupon_id), [])], as_of=now)
        remind_at = None if state is None else coupon_reminder_due(
            coupon, state, reminder_days=rules.expiry.reminder_days, now=now)
        if remind_at is not None:
            notices.append(coupon_expiring(
                member_id=str(member_id), account_id=str(account_id),
                coupon_code=coupon.code, expires_at=coupon.valid_until,
                remind_on=local_date(remind_at, rules.tz), tz=rules.tz))
    created = yield from record_notices(dialect, mall_id, notices, at)
    return (str(rows[-1][0]) if len(rows) == limit else None), created


# -- deliveries -------------------------------------------------------------------------
def queue_deliveries(dialect: Dialect, mall_id: str, webhook: str, *, at: str,
                     limit: int) -> Op[int]:
    """Queue the webhook's delivery of the next `limit` notices it has not had (a new
    webhook starts with the first notice kept); returns how many were queued."""
    yield Execute("INSERT INTO webhook_cursors (mall_id, webhook, seq) VALUES (?, ?, 0) "
                  "ON CONFLICT (mall_id, webhook) DO NOTHING", (mall_id, webhook))
    rows = yield Fetch("SELECT seq FROM webhook_cursors WHERE mall_id = ? AND webhook = ?"
                       + dialect.row_lock, (mall_id, webhook))
    after = int(rows[0][0])
    rows = yield Fetch("SELECT notice_id, seq FROM notices WHERE mall_id = ? AND seq > ? "
                       "ORDER BY seq LIMIT ?", (mall_id, after, limit))
    if not rows:
        return 0
    yield ExecuteMany(
        "INSERT INTO notice_deliveries (mall_id, webhook, notice_id, seq, state, attempts, "
        "next_attempt_at) VALUES (?, ?, ?, ?, ?, 0, ?) "
        "ON CONFLICT (mall_id, webhook, notice_id) DO NOTHING",
        [(mall_id, webhook, str(notice), int(seq), PENDING, at) for notice, seq in rows])
    yield Execute("UPDATE webhook_cursors SET seq = ? WHERE mall_id = ? AND webhook = ?",
                  (int(rows[-1][1]), mall_id, webhook))
    return len(rows)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a worker holds the lease of: the notice and which attempt this is."""

    notice: dict[str, Any]
    attempt: int


def claim_deliveries(dialect: Dialect, mall_id: str, webhook: str, *, owner: str, now: str,
                     lease_until: str, limit: int) -> Op[list[Claimed]]:
    """Take the lease of the webhook's next due deliveries (oldest notice first) and count
    their attempt; a delivery another worker holds is left to it until its lease ends."""
    rows = yield Fetch(
        "SELECT notice_id FROM notice_deliveries WHERE mall_id = ? AND webhook = ? AND "
        "state = ? AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
        "ORDER BY seq LIMIT ?" + dialect.row_lock,
        (mall_id, webhook, PENDING, now, now, limit))
    ids = [str(r[0]) for r in rows]
    if not ids:
        return []
    yield ExecuteMany(
        "UPDATE notice_deliveries SET lease_owner = ?, lease_until = ?, "
        "attempts = attempts + 1 WHERE mall_id = ? AND webhook = ? AND notice_id = ?",
        [(owner, lease_until, mall_id, webhook, notice) for notice in ids])
    rows = yield FetchIn(
        f"SELECT d.attempts, {', '.join('n.' + c for c in NOTICE_COLUMNS.split(', '))} "
        "FROM notice_deliveries d JOIN notices n ON n.mall_id = d.mall_id AND "
        "n.notice_id = d.notice_id WHERE d.mall_id = ? AND d.webhook = ? AND "
        "d.notice_id {in}", ids, (mall_id, webhook))
    claimed = [Claimed(notice_json(row[1:]), int(row[0])) for row in rows]
    return sorted(claimed, key=lambda c: int(c.notice["seq"]))


def mark_delivered(mall_id: str, webhook: str, notice_id: str, at: str) -> Op[None]:
    """The receiver took the notice: never sent again (whoever held the lease)."""
    yield Execute("UPDATE notice_deliveries SET state = ?, delivered_at = ?, "
                  "lease_owner = NULL, lease_until = NULL, last_error = NULL "
                  "WHERE mall_id = ? AND webhook = ? AND notice_id = ? AND state = ?",
                  (DELIVERED, at, mall_id, webhook, notice_id, PENDING))


def mark_failed(mall_id: str, webhook: str, notice_id: str, *, owner: str, error: str,
                retry_at: str | None) -> Op[bool]:
    """An attempt failed: retried at `retry_at`, or dead (None). Only while the worker
    still holds the lease: one that lost it leaves the row to its new holder. Returns
    whether the row changed."""
    rows = yield Fetch(
        "UPDATE notice_deliveries SET state = ?, next_attempt_at = COALESCE(?, "
        "next_attempt_at), last_error = ?, lease_owner = NULL, lease_until = NULL "
        "WHERE mall_id = ? AND webhook = ? AND notice_id = ? AND state = ? AND "
        "lease_owner = ? RETURNING notice_id",
        (PENDING if retry_at is not None else DEAD, retry_at, error[:MAX_ERROR_CHARS],
         mall_id, webhook, notice_id, PENDING, owner))
    return bool(rows)


def dead_deliveries(mall_id: str, limit: int) -> Op[list[dict[str, Any]]]:
    """The mall's dead deliveries, oldest notice first: what, where, how often, why."""
    rows = yield Fetch(
        "SELECT d.webhook, d.notice_id, n.kind, n.member_id, d.attempts, d.last_error, "
        "d.next_attempt_at FROM notice_deliveries d JOIN notices n ON "
        "n.mall_id = d.mall_id AND n.notice_id = d.notice_id WHERE d.mall_id = ? AND "
        "d.state = ? ORDER BY d.seq, d.webhook LIMIT ?", (mall_id, DEAD, limit))
    return [{"webhook": w, "notice_id": n, "kind": k, "member_id": m, "attempts": int(a),
             "last_error": e, "last_attempt_at": t} for w, n, k, m, a, e, t in rows]


def retry_dead(mall_id: str, notice_ids: Sequence[str] | None, at: str) -> Op[int]:
    """Dead deliveries of the mall (all, or those of the notices given) pending again,
    with a fresh count of attempts; returns how many."""
    which = ""
    args: tuple[Any, ...] = (PENDING, at, mall_id, DEAD)
    if notice_ids is not None:
        if not notice_ids:
            return 0
        which = f" AND notice_id IN ({', '.join('?' * len(notice_ids))})"
        args = (*args, *notice_ids)
    rows = yield Fetch("UPDATE notice_deliveries SET state = ?, attempts = 0, "
                       "next_attempt_at = ?, last_error = NULL WHERE mall_id = ? AND "
                       f"state = ?{which} RETURNING notice_id", args)
    return len(rows)


def delivery_counts(mall_id: str) -> Op[dict[str, dict[str, int]]]:
    """How many deliveries each webhook of the mall has in each state."""
    rows = yield Fetch("SELECT webhook, state, count(*) FROM notice_deliveries "
                       "WHERE mall_id = ? GROUP BY webhook, state", (mall_id,))
    counts: dict[str, dict[str, int]] = {}
    for webhook, state, count in rows:
        counts.setdefault(str(webhook), dict.fromkeys(DELIVERY_STATES, 0))[str(state)] = \
            int(count)
    return counts
