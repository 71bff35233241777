"""Every storage operation once, for both backends: its logic and its SQL.

An operation is a generator over `queries`: it yields each query it needs, is sent the
rows back and returns its result. The backend decides only how a query runs (SQLite runs
a whole operation on its writer thread in one hop, PostgreSQL awaits each query) and what
the `Dialect` spells differently. Write operations run in one transaction; an exception
rolls it back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cloud_api.server.activity import (
    ACTIVITY_COLUMNS,
    ACTIVITY_VIEW,
    MEMBER_ACTIVITY_SHOWN,
    Activity,
)
from cloud_api.server.batch import plan_batch
from cloud_api.server.codec import snapshot_line, view_json
from cloud_api.server.codes import Code, VerdictCode
from cloud_api.server.grants import GrantThrottle, to_grant
from cloud_api.server.ids import new_member_id
from cloud_api.server.members import (
    check_profile,
    edge_view,
    member_json,
    member_state,
    stored_profile,
)
from cloud_api.server.notice_ops import forget_member
from cloud_api.server.phones import PhoneKeys, StoredPhone, take_phone
from cloud_api.server.queries import (
    Dialect,
    Execute,
    ExecuteMany,
    Fetch,
    FetchIn,
    InsertNew,
    Op,
)
from cloud_api.server.schema import MIGRATIONS_TABLE, Migration
from cloud_api.server.storage import (
    CENTRAL_ORIGIN,
    Change,
    ChangePage,
    CursorTooOld,
    NotFound,
    Parsed,
    Principal,
    Scope,
    StorageError,
    Verdict,
)
from gateway.loyalty import Entry, LoyaltyRules, check_redemption, fold, offline_allowance
from gateway.loyalty.wire import entry_from_json, to_text

DOCUMENT_CHANGES = {"offer": "offer.upsert", "config": "config.version"}
# The columns a member's phone is stored in, in `StoredPhone` order.
PHONE_COLUMNS = "phone_hash, phone_masked, phone_encrypted"
# The most members one phone search answers (a family shares a number, rarely more).
MAX_FOUND = 100


# -- the schema -------------------------------------------------------------------------
def migrate(migrations: Sequence[Migration], at: str) -> Op[list[int]]:
    """Apply the migrations the database has not had, in order (the caller holds the
    transaction and whatever lock keeps two processes from migrating at once); returns
    the versions applied."""
    yield Execute(MIGRATIONS_TABLE)
    rows = yield Fetch("SELECT version FROM schema_migrations")
    done = {int(r[0]) for r in rows}
    applied = []
    for migration in migrations:
        if migration.version in done:
            continue
        for statement in migration.statements:
            yield Execute(statement)
        yield Execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                      (migration.version, migration.name, at))
        applied.append(migration.version)
    return applied


# -- credentials ----------------------------------------------------------------------
def add_token(token_hash: str, mall_id: str, scope: Scope, gateway_id: str | None,
              at: str) -> Op[None]:
    yield Execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?)",
                  (token_hash, mall_id, scope, gateway_id, at))


def authenticate(token_hash: str) -> Op[Principal | None]:
    rows = yield Fetch("SELECT mall_id, scope, gateway_id FROM tokens WHERE token_sha256 = ?",
                       (token_hash,))
    return Principal(*rows[0]) if rows else None


# -- sequencing -----------------------------------------------------------------------
def lock_mall(dialect: Dialect, mall_id: str) -> Op[int]:
    """Take the mall's row until COMMIT and return its last `server_seq`.

    Every write of a mall's ledger or change log goes through this row, so they take
    turns: sequence numbers become visible in order (a change-feed reader never skips one
    that commits late), and whatever the transaction read of the mall's ledger after it
    stays true until it commits."""
    yield Execute("INSERT INTO malls (mall_id) VALUES (?) ON CONFLICT (mall_id) DO NOTHING",
                  (mall_id,))
    rows = yield Fetch("SELECT seq FROM malls WHERE mall_id = ?" + dialect.row_lock,
                       (mall_id,))
    return int(rows[0][0])


def log_change(mall_id: str, kind: str, key: str, *, payload: dict[str, Any], at: str,
               account_id: str | None = None, origin: str = CENTRAL_ORIGIN) -> Op[int]:
    """One change-log row under the mall's next `server_seq` (the increment takes the
    mall's row until COMMIT)."""
    rows = yield Fetch("INSERT INTO malls (mall_id, seq) VALUES (?, 1) ON CONFLICT (mall_id) "
                       "DO UPDATE SET seq = malls.seq + 1 RETURNING seq", (mall_id,))
    seq = int(rows[0][0])
    yield Execute("INSERT INTO changes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (mall_id, seq, kind, key, origin, account_id,
                   json.dumps(payload, ensure_ascii=False), at))
    return seq


# -- the gateways' events -------------------------------------------------------------
def account_entries(mall_id: str, account_id: str) -> Op[list[Entry]]:
    rows = yield Fetch("SELECT payload FROM ledger WHERE mall_id = ? AND account_id = ?",
                       (mall_id, account_id))
    return [entry_from_json(row[0]) for row in rows]


def accept_batch(dialect: Dialect, mall_id: str, origin: str, parsed: Sequence[Parsed],
                 now: datetime) -> Op[list[Verdict]]:
    """Apply each checked event alone, in one transaction: each event's ledger row,
    projection and change-log row commit together, and one bad event never fails the
    others."""
    seq = yield from lock_mall(dialect, mall_id)
    rows = yield FetchIn("SELECT entry_id, server_seq FROM ledger WHERE mall_id = ? AND "
                         "entry_id {in}", [p.entry_id for p in parsed if isinstance(p, Entry)],
                         (mall_id,))
    known = {str(r[0]): int(r[1]) for r in rows}
    at = to_text(now) or ""
    activities = yield from store_activities(
        mall_id, origin, [p for p in parsed if isinstance(p, Activity)], at)
    plan = plan_batch(parsed, known, seq, mall_id=mall_id, origin=origin, at=at,
                      activity_verdicts=iter(activities))
    yield ExecuteMany("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      plan.ledger_rows)
    yield ExecuteMany("INSERT INTO changes VALUES (?, ?, ?, ?, ?, ?, ?, ?)", plan.change_rows)
    yield ExecuteMany(
        "INSERT INTO accounts VALUES (?, ?, ?, ?, ?) ON CONFLICT (mall_id, account_id) "
        "DO UPDATE SET entries = accounts.entries + excluded.entries, "
        "points_sum = accounts.points_sum + excluded.points_sum, "
        "last_seq = excluded.last_seq", plan.account_rows)
    yield Execute("UPDATE malls SET seq = ? WHERE mall_id = ?", (plan.seq, mall_id))
    for burn in plan.burns:
        yield from flag_debt(mall_id, burn, now, at)
    return plan.verdicts


def store_activities(mall_id: str, origin: str, items: list[Activity],
                     at: str) -> Op[list[Verdict]]:
    """Store the activity events central does not have yet; their verdicts in order. An
    erased member's events are acknowledged and not kept."""
    if not items:
        return []
    rows = yield FetchIn("SELECT member_id FROM members WHERE mall_id = ? AND "
                         "erased_at IS NOT NULL AND member_id {in}",
                         list({a.member_id for a in items}), (mall_id,))
    erased = {r[0] for r in rows}
    first: dict[str, Activity] = {}
    for activity in items:
        first.setdefault(activity.event_id, activity)
    new_rows = [a.row(mall_id, origin, at) for a in first.values()
                if a.member_id not in erased]
    rows = (yield InsertNew("activity_events", ACTIVITY_COLUMNS, new_rows,
                            conflict="mall_id, event_id", key="event_id")
            ) if new_rows else []
    stored = {r[0] for r in rows}
    verdicts = []
    for activity in items:
        new = first.pop(activity.event_id, None) is not None and (
            activity.event_id in stored or activity.member_id in erased)
        verdicts.append(Verdict(activity.event_id, "accepted" if new else "duplicate"))
    return verdicts


def flag_debt(mall_id: str, burn: Entry, now: datetime, at: str) -> Op[None]:
    """A burn that leaves the account in debt (an offline overdraft): flagged."""
    state = fold((yield from account_entries(mall_id, burn.account_id)), now, journal=False)
    if state.debt > 0:
        yield Execute("INSERT INTO flagged_debts VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                      (burn.entry_id, mall_id, burn.account_id, state.debt, at))


def raced_entry(mall_id: str, entry_id: str) -> Op[Verdict]:
    """The verdict of an entry whose insert met a copy committed meanwhile by another
    worker."""
    rows = yield Fetch("SELECT server_seq FROM ledger WHERE mall_id = ? AND entry_id = ?",
                       (mall_id, entry_id))
    if not rows:
        return Verdict(entry_id, "rejected", code=VerdictCode.CONFLICT,
                       message="natural key already used by another entry")
    return Verdict(entry_id, "duplicate", server_seq=int(rows[0][0]))


def redeem_online(dialect: Dialect, mall_id: str, burn: Entry, now: datetime) -> Op[Verdict]:
    """Check the balance and record the burn under the mall's lock: a redemption racing
    this one, in this worker or another, waits for the COMMIT and then folds a ledger that
    has this burn. (The mall's row is the one lock: taking the account's row first would
    deadlock with a batch, which holds the mall and then writes the account.)"""
    yield from lock_mall(dialect, mall_id)
    rows = yield Fetch("SELECT server_seq FROM ledger WHERE mall_id = ? AND entry_id = ?",
                       (mall_id, burn.entry_id))
    if rows:
        return Verdict(burn.entry_id, "duplicate", server_seq=int(rows[0][0]))
    entries = yield from account_entries(mall_id, burn.account_id)
    # As of the latest entry too: a burn another worker stamped a moment after `now` (or
    # by a clock a little ahead) is spent all the same, and a fold as of `now` would not
    # count it yet.
    as_of = max([now, burn.effective_at, *(e.effective_at for e in entries)])
    state = fold(entries, as_of, journal=False)
    check_redemption(cost=-burn.points, available=state.available, online=True,
                     allowance_left=None)
    (verdict,) = yield from accept_batch(dialect, mall_id, CENTRAL_ORIGIN,
                                         [burn], now)
    return verdict


def changes(mall_id: str, after: int, limit: int, exclude_origin: str | None, *,
            grants: GrantThrottle, rules: LoyaltyRules, now: datetime) -> Op[ChangePage]:
    rows = yield Fetch("SELECT seq, purged_through FROM malls WHERE mall_id = ?", (mall_id,))
    head, purged = (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)
    if after < purged:
        raise CursorTooOld(after, purged)
    rows = yield Fetch(
        "SELECT server_seq, kind, key, origin, account_id, payload FROM changes "
        "WHERE mall_id = ? AND server_seq > ? ORDER BY server_seq LIMIT ?",
        (mall_id, after, limit))
    page: list[Change] = []
    others: set[str] = set()
    own: set[str] = set()
    central: set[str] = set()  # touched by a change made centrally: granted at once
    for seq, kind, key, origin, account_id, payload in rows:
        # The gateway's own entries and coupon facts: acknowledged in the push reply.
        mine = kind in ("ledger.entry", "coupon.upsert") and origin == exclude_origin
        if account_id:
            (own if mine else central if origin == CENTRAL_ORIGIN else others).add(account_id)
        if mine:
            continue  # the gateway's own entry: acknowledged in the push reply
        page.append(Change(int(seq), kind, key, json.loads(payload)))
    next_cursor = int(rows[-1][0]) if rows else max(after, 0)
    allowances = {}
    due = grants.due(mall_id, exclude_origin or "", to_grant(others, own, next_cursor >= head),
                     urgent=central)
    for account in due:
        state = fold((yield from account_entries(mall_id, account)), now, journal=False)
        allowances[account] = offline_allowance(state.available, rules)
    return ChangePage(page, next_cursor, head, allowances)


def head(mall_id: str) -> Op[int]:
    rows = yield Fetch("SELECT seq FROM malls WHERE mall_id = ?", (mall_id,))
    return int(rows[0][0]) if rows else 0


def heartbeat(mall_id: str, gateway_id: str, status: dict[str, Any], at: str) -> Op[None]:
    yield Execute(
        "INSERT INTO gateways VALUES (?, ?, ?, ?) ON CONFLICT (mall_id, gateway_id) "
        "DO UPDATE SET status = excluded.status, last_seen_at = excluded.last_seen_at",
        (mall_id, gateway_id, json.dumps(status), at))


def snapshot_lines(dialect: Dialect, mall_id: str, kind: str, after_key: str,
                   limit: int) -> Op[list[tuple[str, str]]]:
    rows = yield Fetch(dialect.snapshot_page_sql[kind], (mall_id, after_key, limit))
    if kind == "member":
        return [(r[0], snapshot_line("member", r[0], r[1])) for r in rows]
    return [(r[0], snapshot_line("ledger", r[0], r[1], int(r[2]))) for r in rows]


# -- the back office --------------------------------------------------------------------
def create_member(mall_id: str, body: dict[str, Any], phones: PhoneKeys,
                  at: str) -> Op[dict[str, Any]]:
    given = check_profile(body)
    profile, phone = take_phone(phones, mall_id, given, given, StoredPhone.none())
    member_id = str(body.get("member_id") or new_member_id())
    account_id = str(body.get("account_id") or member_id)
    view = edge_view(member_id, account_id, profile, 1, phone=phone)
    # An erased member's id stays taken: its ledger and tombstone still name it.
    created = yield Fetch(
        "INSERT INTO members (mall_id, member_id, account_id, profile, edge_view, version, "
        f"erased_at, updated_at, {PHONE_COLUMNS}, tier_anniversary) VALUES "
        "(?, ?, ?, ?, ?, 1, NULL, ?, ?, ?, ?, ?) "
        "ON CONFLICT (mall_id, member_id) DO NOTHING RETURNING member_id",
        (mall_id, member_id, account_id, json.dumps(profile), view_json(view), at,
         phone.hash, phone.masked, phone.encrypted, profile.get("tier_anniversary")))
    if not created:
        raise StorageError(Code.MEMBER_EXISTS, f"member {member_id} exists", 409)
    yield from log_change(mall_id, "member.upsert", member_id, payload=view, at=at,
                          account_id=account_id)
    return member_json(member_id, account_id, profile, 1, phone=phone,
                       number=phones.reveal(phone.encrypted))


def _live_member(dialect: Dialect | None, mall_id: str,
                 member_id: str) -> Op[tuple[str, str, int, StoredPhone]]:
    """`(account_id, profile JSON, version, phone)` of a member not erased, or `NotFound`;
    with a dialect, the row is locked for the transaction's change."""
    rows = yield Fetch(
        f"SELECT account_id, profile, version, {PHONE_COLUMNS} FROM members "
        "WHERE mall_id = ? AND member_id = ? AND erased_at IS NULL"
        + (dialect.row_lock if dialect else ""), (mall_id, member_id))
    if not rows:
        raise NotFound(f"member {member_id}")
    account_id, profile, version, *phone = rows[0]
    return str(account_id), str(profile), int(version), StoredPhone(*phone)


def write_member(mall_id: str, member_id: str, account_id: str, profile: dict[str, Any], *,
                  version: int, phone: StoredPhone, at: str) -> Op[dict[str, Any]]:
    """Store a member's new version and send its edge view down; returns the view."""
    view = edge_view(member_id, account_id, profile, version, phone=phone)
    yield Execute("UPDATE members SET account_id = ?, profile = ?, edge_view = ?, "
                  "version = ?, updated_at = ?, phone_hash = ?, phone_masked = ?, "
                  "phone_encrypted = ?, tier_anniversary = ? WHERE mall_id = ? AND "
                  "member_id = ?",
                  (account_id, json.dumps(profile), view_json(view), version, at,
                   phone.hash, phone.masked, phone.encrypted,
                   profile.get("tier_anniversary"), mall_id, member_id))
    yield from log_change(mall_id, "member.upsert", member_id, payload=view, at=at,
                          account_id=account_id)
    return view


def update_member(dialect: Dialect, mall_id: str, member_id: str, body: dict[str, Any], *,
                  phones: PhoneKeys, at: str) -> Op[dict[str, Any]]:
    """Central wins: the given fields replace the stored ones, the version goes up."""
    changed = check_profile(body)
    account_id, profile_text, version, phone = yield from _live_member(dialect, mall_id,
                                                                       member_id)
    account_id = str(body.get("account_id") or account_id)
    profile, phone = take_phone(phones, mall_id, {**stored_profile(profile_text), **changed},
                                changed, phone)
    yield from write_member(mall_id, member_id, account_id, profile, version=version + 1,
                             phone=phone, at=at)
    return member_json(member_id, account_id, profile, version + 1, phone=phone,
                       number=phones.reveal(phone.encrypted))


def convert_clear_phones(dialect: Dialect, mall_id: str, phones: PhoneKeys, *, after: str,
                         limit: int, at: str) -> Op[tuple[str | None, int, list[str]]]:
    """Convert the next `limit` members after `after` whose profile still holds a number
    in clear (kept so by an older central) to its keyed hash and masked form, each as a
    new version sent to the gateways; returns the last member id looked at (None: no
    more), how many were converted and the ids of those left in clear (no phone number:
    for an operator to correct)."""
    rows = yield Fetch(
        f"SELECT member_id, account_id, profile, version, {PHONE_COLUMNS} FROM members "
        "WHERE mall_id = ? AND erased_at IS NULL AND member_id > ? AND profile LIKE ? "
        "ORDER BY member_id LIMIT ?" + dialect.row_lock,
        (mall_id, after, '%"phone"%', limit))
    converted, left = 0, []
    for member_id, account_id, text, version, *columns in rows:
        stored = stored_profile(text)
        if "phone" not in stored:
            continue  # the text was elsewhere in the profile
        profile, phone = take_phone(phones, mall_id, stored, {}, StoredPhone(*columns))
        if "phone" in profile:
            left.append(str(member_id))
            continue
        yield from write_member(mall_id, member_id, account_id, profile,
                                 version=int(version) + 1, phone=phone, at=at)
        converted += 1
    return (str(rows[-1][0]) if rows else None), converted, left


def find_members_by_phone(mall_id: str, phone_hash: str,
                          phones: PhoneKeys) -> Op[list[dict[str, Any]]]:
    rows = yield Fetch(
        f"SELECT member_id, account_id, profile, version, {PHONE_COLUMNS} FROM members "
        "WHERE mall_id = ? AND phone_hash = ? AND erased_at IS NULL ORDER BY member_id "
        "LIMIT ?", (mall_id, phone_hash, MAX_FOUND))
    found = []
    for member_id, account_id, text, version, *columns in rows:
        phone = StoredPhone(*columns)
        found.append(member_json(member_id, account_id, stored_profile(text), int(version),
                                 phone=phone, number=phones.reveal(phone.encrypted)))
    return found


def get_member(mall_id: str, member_id: str, rules: LoyaltyRules, phones: PhoneKeys,
               now: datetime) -> Op[dict[str, Any]]:
    account_id, profile_text, version, phone = yield from _live_member(None, mall_id,
                                                                       member_id)
    entries = yield from account_entries(mall_id, account_id)
    flagged = yield Fetch("SELECT entry_id, debt, flagged_at FROM flagged_debts "
                          "WHERE mall_id = ? AND account_id = ?", (mall_id, account_id))
    activity = yield Fetch(
        f"SELECT {ACTIVITY_VIEW} FROM activity_events WHERE mall_id = ? AND member_id = ? "
        "ORDER BY occurred_at DESC, event_id LIMIT ?",
        (mall_id, member_id, MEMBER_ACTIVITY_SHOWN))
    member = member_json(member_id, account_id, stored_profile(profile_text), version,
                         phone=phone, number=phones.reveal(phone.encrypted))
    return member_state(member, entries, flagged=flagged, activity=activity, now=now,
                        rules=rules)


def erase_member(dialect: Dialect, mall_id: str, member_id: str, at: str) -> Op[None]:
    account_id, _, _, _ = yield from _live_member(dialect, mall_id, member_id)
    # Personal data goes; the account's ledger stays (it is keyed by account).
    yield Execute("UPDATE members SET profile = '{}', edge_view = '{}', erased_at = ?, "
                  "updated_at = ?, phone_hash = NULL, phone_masked = NULL, "
                  "phone_encrypted = NULL WHERE mall_id = ? AND member_id = ?",
                  (at, at, mall_id, member_id))
    yield Execute("UPDATE changes SET payload = '{}' WHERE mall_id = ? AND "
                  "kind = 'member.upsert' AND key = ?", (mall_id, member_id))
    yield from log_change(mall_id, "member.erased", member_id,
                          payload={"member_id": member_id}, at=at, account_id=account_id)
    # After `log_change` took the mall's row: a batch that stored this member's activity
    # meanwhile has committed, and one still to come sees the erasure.
    yield Execute("DELETE FROM activity_events WHERE mall_id = ? AND member_id = ?",
                  (mall_id, member_id))
    # The member's coupons name them: gone too, and scrubbed from the change log.
    mine = "SELECT coupon_id FROM coupons WHERE mall_id = ? AND member_id = ?"
    yield Execute("UPDATE changes SET payload = '{}' WHERE mall_id = ? AND "
                  f"kind = 'coupon.upsert' AND key IN ({mine})", (mall_id, mall_id, member_id))
    yield Execute(f"DELETE FROM coupon_facts WHERE mall_id = ? AND coupon_id IN ({mine})",
                  (mall_id, mall_id, member_id))
    yield Execute("DELETE FROM coupons WHERE mall_id = ? AND member_id = ?",
                  (mall_id, member_id))
    yield from forget_member(mall_id, member_id)


def put_document(mall_id: str, kind: str, key: str, payload: dict[str, Any],
                 at: str) -> Op[int]:
    seq = yield from log_change(mall_id, DOCUMENT_CHANGES[kind], key,
                                payload={"key": key, **payload}, at=at)
    yield Execute("INSERT INTO documents VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                  "(mall_id, kind, key) DO UPDATE SET payload = excluded.payload, "
                  "server_seq = excluded.server_seq",
                  (mall_id, kind, key, json.dumps(payload), seq))
    return seq


def mall_ids() -> Op[list[str]]:
    rows = yield Fetch("SELECT mall_id FROM malls")
    return [str(r[0]) for r in rows]


def purge_changes(mall_id: str, cutoff: str) -> Op[int]:
    """Drop the change-log rows created before `cutoff` (and any older by sequence)."""
    rows = yield Fetch("SELECT max(server_seq), count(*) FROM changes "
                       "WHERE mall_id = ? AND created_at < ?", (mall_id, cutoff))
    through, count = rows[0]
    if not count:
        return 0
    yield Execute("DELETE FROM changes WHERE mall_id = ? AND server_seq <= ?",
                  (mall_id, through))
    yield Execute("UPDATE malls SET purged_through = ? WHERE mall_id = ? AND "
                  "purged_through < ?", (through, mall_id, through))
    return int(count)
