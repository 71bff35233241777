"""The SQLite backend of central's storage: one connection on one thread, WAL, FULL sync.

A batch of events is one transaction with one SAVEPOINT per event: each event's ledger
row, projection and change-log row stand or fall together, a bad event rolls back only its
own savepoint, and the batch costs one fsync. The reply is sent after COMMIT.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from cloud_api.server.activity import (
    ACTIVITY_COLUMNS,
    ACTIVITY_VIEW,
    MEMBER_ACTIVITY_SHOWN,
    Activity,
    activity_json,
)
from cloud_api.server.codec import entry_text
from cloud_api.server.schema import schema
from cloud_api.server.storage import (
    Change,
    ChangePage,
    CursorTooOld,
    GrantThrottle,
    NotFound,
    Principal,
    Scope,
    Storage,
    StorageError,
    Verdict,
    check_profile,
    edge_view,
    hash_token,
    new_token,
    parse_event,
    snapshot_line,
    to_grant,
    utc_now,
    view_json,
)
from gateway.loyalty import Entry, EntryKind, LoyaltyRules, fold, offline_allowance
from gateway.loyalty.wire import entry_from_json, entry_to_wire, to_text

T = TypeVar("T")

SCHEMA = schema("INTEGER")

# One keyset page of the snapshot, in id order: (mall, after this id, how many). Entries
# are walked along their primary key and filtered by mall (`+mall_id` keeps the planner
# off the mall's account index, which would sort all of the mall's entries for every
# page); each entry is passed over at most once in a whole snapshot, and writes pay for no
# extra index.
SNAPSHOT_PAGE_SQL = {
    "member": "SELECT member_id, edge_view FROM members WHERE mall_id = ? AND "
              "erased_at IS NULL AND member_id > ? ORDER BY member_id LIMIT ?",
    "ledger": "SELECT entry_id, payload, server_seq FROM ledger "
              "WHERE +mall_id = ? AND entry_id > ? ORDER BY entry_id LIMIT ?",
}

def _select_in(conn: sqlite3.Connection, sql: str, values: list[str],
               *params: str) -> list[tuple[Any, ...]]:
    """`sql` with its `IN ({})` filled for `values`, run in chunks of 500."""
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(values), 500):
        chunk = values[i:i + 500]
        rows += conn.execute(sql.format(", ".join("?" * len(chunk))),
                             (*params, *chunk)).fetchall()
    return rows


class SqliteStorage(Storage):
    def __init__(self, path: Path | str, *, rules: LoyaltyRules | None = None,
                 now: Callable[[], datetime] = utc_now) -> None:
        self.path = path
        self.rules = rules or LoyaltyRules()
        self.now = now
        self.grants = GrantThrottle()
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="central-sqlite")
        await self._run(self._open)

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.executescript(SCHEMA)
        self._conn = conn

    async def close(self) -> None:
        if self._executor is None:
            return
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
        self._executor = None

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise RuntimeError("storage is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            conn = self._db()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        return await self._run(run)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("storage is not open")
        return self._conn

    def _stamp(self) -> str:
        return to_text(self.now()) or ""

    # -- credentials ------------------------------------------------------------------
    async def add_token(self, mall_id: str, scope: Scope, gateway_id: str | None) -> str:
        token = new_token()
        await self._tx(lambda c: c.execute(
            "INSERT INTO tokens VALUES (?, ?, ?, ?, ?)",
            (hash_token(token), mall_id, scope, gateway_id, self._stamp())))
        return token

    async def authenticate(self, token: str) -> Principal | None:
        row = await self._run(lambda: self._db().execute(
            "SELECT mall_id, scope, gateway_id FROM tokens WHERE token_sha256 = ?",
            (hash_token(token),)).fetchone())
        return None if row is None else Principal(row[0], row[1], row[2])

    # -- sequencing -------------------------------------------------------------------
    @staticmethod
    def _next_seq(conn: sqlite3.Connection, mall_id: str) -> int:
        row = conn.execute(
            "INSERT INTO malls (mall_id, seq) VALUES (?, 1) "
            "ON CONFLICT (mall_id) DO UPDATE SET seq = seq + 1 RETURNING seq",
            (mall_id,)).fetchone()
        return int(row[0])

    def _log(self, conn: sqlite3.Connection, mall_id: str, kind: str, key: str, *,
             origin: str, payload: dict[str, Any], account_id: str | None = None) -> int:
        seq = self._next_seq(conn, mall_id)
        conn.execute("INSERT INTO changes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (mall_id, seq, kind, key, origin, account_id,
                      json.dumps(payload, ensure_ascii=False), self._stamp()))
        return seq

    # -- events -----------------------------------------------------------------------
    async def accept_events(self, mall_id: str, origin: str,
                            events: list[dict[str, Any]]) -> list[Verdict]:
        return await self._tx(lambda c: self._accept_batch(c, mall_id, origin, events))

    def _accept_batch(self, conn: sqlite3.Connection, mall_id: str, origin: str,
                      events: list[dict[str, Any]]) -> list[Verdict]:
        """The batch is one transaction (the only writer holds the lock for its length),
        so each event's ledger row, projection and change-log row commit together; the
        rows are written set-wise, which is what makes thousands of events per second."""
        parsed = [parse_event(event) for event in events]
        known = self._known(conn, [p.entry_id for p in parsed if isinstance(p, Entry)])
        conn.execute("INSERT INTO malls (mall_id) VALUES (?) ON CONFLICT DO NOTHING",
                     (mall_id,))
        (seq,) = conn.execute("SELECT seq FROM malls WHERE mall_id = ?", (mall_id,)).fetchone()
        at = self._stamp()
        activities = iter(self._store_activities(
            conn, mall_id, origin, [p for p in parsed if isinstance(p, Activity)], at))
        verdicts: list[Verdict] = []
        ledger_rows, change_rows, burns = [], [], []
        projection: dict[str, list[int]] = {}
        for item in parsed:
            if isinstance(item, Verdict):
                verdicts.append(item)
                continue
            if isinstance(item, Activity):
                verdicts.append(next(activities))
                continue
            if item.entry_id in known:  # also the second copy of an event in one batch
                verdicts.append(Verdict(item.entry_id, "duplicate",
                                        server_seq=known[item.entry_id]))
                continue
            seq += 1
            known[item.entry_id] = seq
            payload = entry_text(item)
            ledger_rows.append((item.entry_id, mall_id, item.account_id, item.source_type,
                                item.source_key, item.kind.value, origin, seq, payload, at))
            change_rows.append((mall_id, seq, "ledger.entry", item.entry_id, origin,
                                item.account_id, payload, at))
            account = projection.setdefault(item.account_id, [0, 0, 0])
            account[0] += 1
            account[1] += item.points
            account[2] = seq
            if item.kind is EntryKind.BURN:
                burns.append(item)
            verdicts.append(Verdict(item.entry_id, "accepted", server_seq=seq))
        conn.executemany("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         ledger_rows)
        conn.executemany("INSERT INTO changes VALUES (?, ?, ?, ?, ?, ?, ?, ?)", change_rows)
        conn.executemany(
            "INSERT INTO accounts VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
            "entries = entries + excluded.entries, "
            "points_sum = points_sum + excluded.points_sum, last_seq = excluded.last_seq",
            [(mall_id, account, n, points, last)
             for account, (n, points, last) in projection.items()])
        conn.execute("UPDATE malls SET seq = ? WHERE mall_id = ?", (seq, mall_id))
        for burn in burns:
            self._flag_debt(conn, mall_id, burn)
        return verdicts

    @staticmethod
    def _store_activities(conn: sqlite3.Connection, mall_id: str, origin: str,
                          items: list[Activity], at: str) -> list[Verdict]:
        """Store the activity events central does not have yet; their verdicts in order."""
        if not items:
            return []
        seen = {row[0] for row in _select_in(
            conn, "SELECT event_id FROM activity_events WHERE event_id IN ({})",
            [a.event_id for a in items])}
        erased = {row[0] for row in _select_in(
            conn, "SELECT member_id FROM members WHERE mall_id = ? AND "
            "erased_at IS NOT NULL AND member_id IN ({})",
            list({a.member_id for a in items}), mall_id)}
        verdicts, rows = [], []
        for activity in items:
            if activity.event_id in seen:  # also the second copy of an event in one batch
                verdicts.append(Verdict(activity.event_id, "duplicate"))
                continue
            seen.add(activity.event_id)
            if activity.member_id not in erased:  # an erased member's: not kept
                rows.append(activity.row(mall_id, origin, at))
            verdicts.append(Verdict(activity.event_id, "accepted"))
        conn.executemany(f"INSERT INTO activity_events ({ACTIVITY_COLUMNS}) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return verdicts

    @staticmethod
    def _known(conn: sqlite3.Connection, entry_ids: list[str]) -> dict[str, int]:
        """`server_seq` of the entries central already has, among `entry_ids`."""
        known: dict[str, int] = {}
        for i in range(0, len(entry_ids), 500):
            chunk = entry_ids[i:i + 500]
            known.update(conn.execute(
                f"SELECT entry_id, server_seq FROM ledger WHERE entry_id IN "
                f"({', '.join('?' * len(chunk))})", chunk).fetchall())
        return known

    def _flag_debt(self, conn: sqlite3.Connection, mall_id: str, burn: Entry) -> None:
        """A burn that leaves the account in debt (an offline overdraft): flagged."""
        state = fold(self._entries(conn, mall_id, burn.account_id), self.now(), journal=False)
        if state.debt > 0:
            conn.execute("INSERT OR IGNORE INTO flagged_debts VALUES (?, ?, ?, ?, ?)",
                         (burn.entry_id, mall_id, burn.account_id, state.debt, self._stamp()))

    @staticmethod
    def _entries(conn: sqlite3.Connection, mall_id: str, account_id: str) -> list[Entry]:
        return [entry_from_json(row[0]) for row in conn.execute(
            "SELECT payload FROM ledger WHERE mall_id = ? AND account_id = ?",
            (mall_id, account_id))]

    async def changes(self, mall_id: str, after: int, limit: int,
                      exclude_origin: str | None) -> ChangePage:
        def read() -> ChangePage:
            conn = self._db()
            mall = conn.execute("SELECT seq, purged_through FROM malls WHERE mall_id = ?",
                                (mall_id,)).fetchone()
            head, purged = (int(mall[0]), int(mall[1])) if mall else (0, 0)
            if after < purged:
                raise CursorTooOld(after, purged)
            rows = conn.execute(
                "SELECT server_seq, kind, key, origin, account_id, payload FROM changes "
                "WHERE mall_id = ? AND server_seq > ? ORDER BY server_seq LIMIT ?",
                (mall_id, after, limit)).fetchall()
            changes: list[Change] = []
            others: set[str] = set()
            own: set[str] = set()
            for seq, kind, key, origin, account_id, payload in rows:
                mine = kind == "ledger.entry" and origin == exclude_origin
                if account_id:
                    (own if mine else others).add(account_id)
                if mine:
                    continue  # the gateway's own entry: acknowledged in the push reply
                changes.append(Change(seq, kind, key, json.loads(payload)))
            next_cursor = int(rows[-1][0]) if rows else max(after, 0)
            allowances = {
                account: offline_allowance(
                    fold(self._entries(conn, mall_id, account), self.now(),
                         journal=False).available, self.rules)
                for account in self.grants.due(exclude_origin or "",
                                                 to_grant(others, own, next_cursor >= head))}
            return ChangePage(changes, next_cursor, head, allowances)
        return await self._run(read)

    async def head(self, mall_id: str) -> int:
        row = await self._run(lambda: self._db().execute(
            "SELECT seq FROM malls WHERE mall_id = ?", (mall_id,)).fetchone())
        return int(row[0]) if row else 0

    async def heartbeat(self, mall_id: str, gateway_id: str, status: dict[str, Any]) -> None:
        await self._tx(lambda c: c.execute(
            "INSERT INTO gateways VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
            "status = excluded.status, last_seen_at = excluded.last_seen_at",
            (mall_id, gateway_id, json.dumps(status), self._stamp())))

    async def snapshot_lines(self, mall_id: str, kind: str, after_key: str,
                             limit: int) -> list[tuple[str, str]]:
        def read() -> list[tuple[str, str]]:
            conn = self._db()
            if kind == "member":
                return [(mid, snapshot_line("member", mid, view)) for mid, view in conn.execute(
                    SNAPSHOT_PAGE_SQL["member"], (mall_id, after_key, limit))]
            return [(eid, snapshot_line("ledger", eid, payload, seq))
                    for eid, payload, seq in conn.execute(
                        SNAPSHOT_PAGE_SQL["ledger"], (mall_id, after_key, limit))]
        return await self._run(read)

    # -- back office ------------------------------------------------------------------
    async def create_member(self, mall_id: str, body: dict[str, Any]) -> dict[str, Any]:
        profile = check_profile(body)
        member_id = str(body.get("member_id") or uuid.uuid4().hex)
        account_id = str(body.get("account_id") or member_id)

        def create(conn: sqlite3.Connection) -> dict[str, Any]:
            if conn.execute("SELECT 1 FROM members WHERE mall_id = ? AND member_id = ?",
                            (mall_id, member_id)).fetchone():
                raise StorageError("member_exists", f"member {member_id} exists", 409)
            view = edge_view(member_id, account_id, profile, 1)
            conn.execute("INSERT INTO members (mall_id, member_id, account_id, profile, "
                         "edge_view, version, erased_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?, 1, NULL, ?)",
                         (mall_id, member_id, account_id, json.dumps(profile), view_json(view),
                          self._stamp()))
            self._log(conn, mall_id, "member.upsert", member_id, origin="central",
                      payload=view, account_id=account_id)
            return {"member_id": member_id, "account_id": account_id, **profile, "version": 1}
        return await self._tx(create)

    async def update_member(self, mall_id: str, member_id: str,
                            body: dict[str, Any]) -> dict[str, Any]:
        changes = check_profile(body)

        def update(conn: sqlite3.Connection) -> dict[str, Any]:
            row = conn.execute(
                "SELECT account_id, profile, version FROM members WHERE mall_id = ? AND "
                "member_id = ? AND erased_at IS NULL", (mall_id, member_id)).fetchone()
            if row is None:
                raise NotFound(f"member {member_id}")
            account_id = str(body.get("account_id") or row[0])
            profile = {**json.loads(row[1]), **changes}
            version = int(row[2]) + 1
            view = edge_view(member_id, account_id, profile, version)
            conn.execute("UPDATE members SET account_id = ?, profile = ?, edge_view = ?, "
                         "version = ?, updated_at = ? WHERE mall_id = ? AND member_id = ?",
                         (account_id, json.dumps(profile), view_json(view), version,
                          self._stamp(), mall_id, member_id))
            self._log(conn, mall_id, "member.upsert", member_id, origin="central",
                      payload=view, account_id=account_id)
            return {"member_id": member_id, "account_id": account_id, **profile,
                    "version": version}
        return await self._tx(update)

    async def get_member(self, mall_id: str, member_id: str) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            conn = self._db()
            row = conn.execute(
                "SELECT account_id, profile, version FROM members WHERE mall_id = ? AND "
                "member_id = ? AND erased_at IS NULL", (mall_id, member_id)).fetchone()
            if row is None:
                raise NotFound(f"member {member_id}")
            account_id = str(row[0])
            entries = self._entries(conn, mall_id, account_id)
            state = fold(entries, self.now(), journal=False)
            flagged = [{"entry_id": e, "debt": d, "flagged_at": at} for e, d, at in
                       conn.execute("SELECT entry_id, debt, flagged_at FROM flagged_debts "
                                    "WHERE mall_id = ? AND account_id = ?",
                                    (mall_id, account_id))]
            return {
                "member": {"member_id": member_id, "account_id": account_id,
                           **json.loads(row[1]), "version": int(row[2])},
                "balance": {"available": state.available, "locked": state.locked,
                            "debt": state.debt,
                            "offline_allowance": offline_allowance(state.available,
                                                                   self.rules)},
                "flagged_debts": flagged,
                "ledger": [entry_to_wire(e) for e in
                           sorted(entries, key=lambda e: (e.effective_at, e.entry_id))],
                "activity": [activity_json(*row) for row in conn.execute(
                    f"SELECT {ACTIVITY_VIEW} FROM activity_events WHERE mall_id = ? AND "
                    "member_id = ? ORDER BY occurred_at DESC, event_id LIMIT ?",
                    (mall_id, member_id, MEMBER_ACTIVITY_SHOWN))],
            }
        return await self._run(read)

    async def erase_member(self, mall_id: str, member_id: str) -> None:
        def erase(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT account_id FROM members WHERE mall_id = ? AND member_id = ? AND "
                "erased_at IS NULL", (mall_id, member_id)).fetchone()
            if row is None:
                raise NotFound(f"member {member_id}")
            # Personal data goes; the account's ledger stays (it is keyed by account).
            conn.execute("UPDATE members SET profile = '{}', edge_view = '{}', erased_at = ?, "
                         "updated_at = ? "
                         "WHERE mall_id = ? AND member_id = ?",
                         (self._stamp(), self._stamp(), mall_id, member_id))
            conn.execute("UPDATE changes SET payload = '{}' WHERE mall_id = ? AND "
                         "kind = 'member.upsert' AND key = ?", (mall_id, member_id))
            conn.execute("DELETE FROM activity_events WHERE mall_id = ? AND member_id = ?",
                         (mall_id, member_id))
            self._log(conn, mall_id, "member.erased", member_id, origin="central",
                      payload={"member_id": member_id}, account_id=str(row[0]))
        await self._tx(erase)

    async def put_document(self, mall_id: str, kind: str, key: str,
                           payload: dict[str, Any]) -> int:
        change_kind = {"offer": "offer.upsert", "config": "config.version"}[kind]

        def put(conn: sqlite3.Connection) -> int:
            seq = self._log(conn, mall_id, change_kind, key, origin="central",
                            payload={"key": key, **payload})
            conn.execute("INSERT INTO documents VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE "
                         "SET payload = excluded.payload, server_seq = excluded.server_seq",
                         (mall_id, kind, key, json.dumps(payload), seq))
            return seq
        return await self._tx(put)

    async def mall_ids(self) -> list[str]:
        rows = await self._run(lambda: self._db().execute("SELECT mall_id FROM malls").fetchall())
        return [str(r[0]) for r in rows]

    async def purge_changes(self, mall_id: str, older_than_s: float) -> int:
        cutoff = to_text(self.now() - timedelta(seconds=older_than_s))

        def purge(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT max(server_seq), count(*) FROM changes "
                               "WHERE mall_id = ? AND created_at < ?",
                               (mall_id, cutoff)).fetchone()
            if not row[1]:
                return 0
            conn.execute("DELETE FROM changes WHERE mall_id = ? AND server_seq <= ?",
                         (mall_id, row[0]))
            conn.execute("UPDATE malls SET purged_through = max(purged_through, ?) "
                         "WHERE mall_id = ?", (row[0], mall_id))
            return int(row[1])
        return await self._tx(purge)
