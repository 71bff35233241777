"""The PostgreSQL backend of central's storage (asyncpg), for several stateless workers.

The guarantees are those of `Storage`, held across workers by the database itself:
`entry_id` and the natural key are unique constraints (a concurrent duplicate waits for the
first transaction and then sees its row), and a mall's `server_seq` is the mall row's
counter, incremented under the row lock that the transaction holds until COMMIT, so
sequence numbers become visible in order and a change-feed reader never skips one that
commits late (a plain SEQUENCE does not give that).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg

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

SCHEMA_LOCK = 0x6D616C6C  # advisory lock key: one worker creates the schema at a time

SCHEMA = schema("BIGINT", c_collation=True)

# One keyset page of the snapshot: (mall, after this id, how many). Members come in byte
# order of their ids, as the edge checks, along the schema's "C" collation index. Entries
# may come in any order the pages agree on: along their primary key, in the database's
# collation for both the comparison and the order, filtered by mall, so each entry is
# passed over at most once in a whole snapshot and writes pay for no extra index.
SNAPSHOT_PAGE_SQL = {
    "member": 'SELECT member_id, edge_view FROM members WHERE mall_id = $1 AND '
              'erased_at IS NULL AND member_id COLLATE "C" > $2 '
              'ORDER BY member_id COLLATE "C" LIMIT $3',
    "ledger": "SELECT entry_id, payload, server_seq FROM ledger WHERE mall_id = $1 AND "
              "entry_id > $2 ORDER BY entry_id LIMIT $3",
}

Conn = Any  # an asyncpg connection (asyncpg ships no type information)


class PostgresStorage(Storage):
    def __init__(self, dsn: str, *, rules: LoyaltyRules | None = None,
                 now: Callable[[], datetime] = utc_now, pool_size: int = 10) -> None:
        self.dsn = dsn
        self.rules = rules or LoyaltyRules()
        self.now = now
        self.grants = GrantThrottle()
        self.pool_size = pool_size
        self._pool: Any = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
            await conn.execute(SCHEMA)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _p(self) -> Any:
        if self._pool is None:
            raise RuntimeError("storage is not open")
        return self._pool

    def _stamp(self) -> str:
        return to_text(self.now()) or ""

    # -- credentials ------------------------------------------------------------------
    async def add_token(self, mall_id: str, scope: Scope, gateway_id: str | None) -> str:
        token = new_token()
        await self._p().execute("INSERT INTO tokens VALUES ($1, $2, $3, $4, $5)",
                                hash_token(token), mall_id, scope, gateway_id, self._stamp())
        return token

    async def authenticate(self, token: str) -> Principal | None:
        row = await self._p().fetchrow(
            "SELECT mall_id, scope, gateway_id FROM tokens WHERE token_sha256 = $1",
            hash_token(token))
        return None if row is None else Principal(row[0], row[1], row[2])

    # -- sequencing -------------------------------------------------------------------
    async def _log(self, conn: Conn, mall_id: str, kind: str, key: str, *, origin: str,
                   payload: dict[str, Any], account_id: str | None = None) -> int:
        seq = int(await conn.fetchval(
            "INSERT INTO malls (mall_id, seq) VALUES ($1, 1) ON CONFLICT (mall_id) "
            "DO UPDATE SET seq = malls.seq + 1 RETURNING seq", mall_id))
        await conn.execute("INSERT INTO changes VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                           mall_id, seq, kind, key, origin, account_id,
                           json.dumps(payload, ensure_ascii=False), self._stamp())
        return seq

    # -- events -----------------------------------------------------------------------
    async def accept_events(self, mall_id: str, origin: str,
                            events: list[dict[str, Any]]) -> list[Verdict]:
        async with self._p().acquire() as conn:
            try:
                async with conn.transaction():
                    await self._lock_mall(conn, mall_id)
                    return await self._accept_batch(conn, mall_id, origin, events)
            except asyncpg.UniqueViolationError:
                # Another worker committed one of these facts meanwhile (for another mall's
                # gateway): redo the batch event by event, each in its own savepoint.
                async with conn.transaction():
                    await self._lock_mall(conn, mall_id)
                    return [await self._accept(conn, mall_id, origin, e) for e in events]

    @staticmethod
    async def _lock_mall(conn: Conn, mall_id: str) -> None:
        """Batches of one mall take turns (the seq row is theirs until COMMIT anyway);
        locking it first means two batches never wait on each other's entries."""
        await conn.execute("INSERT INTO malls (mall_id) VALUES ($1) "
                           "ON CONFLICT (mall_id) DO NOTHING", mall_id)
        await conn.execute("SELECT 1 FROM malls WHERE mall_id = $1 FOR UPDATE", mall_id)

    async def _accept_batch(self, conn: Conn, mall_id: str, origin: str,
                            events: list[dict[str, Any]]) -> list[Verdict]:
        """Set-wise, in the batch's transaction: each event's ledger row, projection and
        change-log row commit together, at thousands of events per second."""
        parsed = [parse_event(event) for event in events]
        ids = [p.entry_id for p in parsed if isinstance(p, Entry)]
        known: dict[str, int] = {r[0]: int(r[1]) for r in await conn.fetch(
            "SELECT entry_id, server_seq FROM ledger WHERE entry_id = ANY($1::text[])", ids)}
        seq = int(await conn.fetchval("SELECT seq FROM malls WHERE mall_id = $1", mall_id))
        at = self._stamp()
        activities = iter(await self._store_activities(
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
            if item.entry_id in known:
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
        await conn.executemany(
            "INSERT INTO ledger VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", ledger_rows)
        await conn.executemany(
            "INSERT INTO changes VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", change_rows)
        await conn.executemany(
            "INSERT INTO accounts VALUES ($1, $2, $3, $4, $5) ON CONFLICT (mall_id, account_id) "
            "DO UPDATE SET entries = accounts.entries + excluded.entries, "
            "points_sum = accounts.points_sum + excluded.points_sum, "
            "last_seq = excluded.last_seq",
            [(mall_id, account, n, points, last)
             for account, (n, points, last) in projection.items()])
        await conn.execute("UPDATE malls SET seq = $1 WHERE mall_id = $2", seq, mall_id)
        for burn in burns:
            await self._flag_debt(conn, mall_id, burn)
        return verdicts

    @staticmethod
    async def _store_activities(conn: Conn, mall_id: str, origin: str,
                                items: list[Activity], at: str) -> list[Verdict]:
        """Store the activity events central does not have yet; their verdicts in order.
        `ON CONFLICT DO NOTHING` makes a concurrent copy from another worker a duplicate
        without failing the batch."""
        if not items:
            return []
        erased = {r[0] for r in await conn.fetch(
            "SELECT member_id FROM members WHERE mall_id = $1 AND erased_at IS NOT NULL "
            "AND member_id = ANY($2::text[])", mall_id, list({a.member_id for a in items}))}
        first: dict[str, Activity] = {}
        for activity in items:
            first.setdefault(activity.event_id, activity)
        # An erased member's events are acknowledged and not kept.
        rows = [a.row(mall_id, origin, at) for a in first.values()
                if a.member_id not in erased]
        stored = {r[0] for r in await conn.fetch(
            f"INSERT INTO activity_events ({ACTIVITY_COLUMNS}) SELECT * FROM unnest("
            "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
            "$7::text[], $8::text[]) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            *(list(column) for column in zip(*rows, strict=True)))} if rows else set()
        verdicts = []
        for activity in items:
            new = first.pop(activity.event_id, None) is not None and (
                activity.event_id in stored or activity.member_id in erased)
            verdicts.append(Verdict(activity.event_id, "accepted" if new else "duplicate"))
        return verdicts

    async def _accept(self, conn: Conn, mall_id: str, origin: str,
                      event: dict[str, Any]) -> Verdict:
        parsed = parse_event(event)
        if isinstance(parsed, Verdict):
            return parsed
        if isinstance(parsed, Activity):
            (verdict,) = await self._store_activities(conn, mall_id, origin, [parsed],
                                                      self._stamp())
            return verdict
        entry = parsed
        existing = await conn.fetchval("SELECT server_seq FROM ledger WHERE entry_id = $1",
                                       entry.entry_id)
        if existing is not None:
            return Verdict(entry.entry_id, "duplicate", server_seq=int(existing))
        try:
            async with conn.transaction():  # a savepoint: this event alone
                seq = await self._record(conn, mall_id, origin, entry)
        except asyncpg.UniqueViolationError:
            # The same fact under another mall's lock, committed first.
            existing = await conn.fetchval("SELECT server_seq FROM ledger WHERE entry_id = $1",
                                           entry.entry_id)
            if existing is None:
                return Verdict(entry.entry_id, "rejected", code="conflict",
                               message="natural key already used by another entry")
            return Verdict(entry.entry_id, "duplicate", server_seq=int(existing))
        return Verdict(entry.entry_id, "accepted", server_seq=seq)

    async def _record(self, conn: Conn, mall_id: str, origin: str, entry: Entry) -> int:
        payload = entry_text(entry)
        # The ledger row first: a concurrent duplicate fails here, before taking a seq.
        await conn.execute(
            "INSERT INTO ledger VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9)",
            entry.entry_id, mall_id, entry.account_id, entry.source_type, entry.source_key,
            entry.kind.value, origin, payload, self._stamp())
        seq = await self._log(conn, mall_id, "ledger.entry", entry.entry_id, origin=origin,
                              payload=json.loads(payload), account_id=entry.account_id)
        await conn.execute("UPDATE ledger SET server_seq = $1 WHERE entry_id = $2", seq,
                           entry.entry_id)
        await conn.execute(
            "INSERT INTO accounts VALUES ($1, $2, 1, $3, $4) ON CONFLICT (mall_id, account_id) "
            "DO UPDATE SET entries = accounts.entries + 1, "
            "points_sum = accounts.points_sum + excluded.points_sum, "
            "last_seq = excluded.last_seq", mall_id, entry.account_id, entry.points, seq)
        if entry.kind is EntryKind.BURN:
            await self._flag_debt(conn, mall_id, entry)
        return seq

    async def _flag_debt(self, conn: Conn, mall_id: str, burn: Entry) -> None:
        """A burn that leaves the account in debt (an offline overdraft): flagged."""
        state = fold(await self._entries(conn, mall_id, burn.account_id), self.now(),
                     journal=False)
        if state.debt > 0:
            await conn.execute(
                "INSERT INTO flagged_debts VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                burn.entry_id, mall_id, burn.account_id, state.debt, self._stamp())

    @staticmethod
    async def _entries(conn: Conn, mall_id: str, account_id: str) -> list[Entry]:
        rows = await conn.fetch(
            "SELECT payload FROM ledger WHERE mall_id = $1 AND account_id = $2",
            mall_id, account_id)
        return [entry_from_json(row[0]) for row in rows]

    async def changes(self, mall_id: str, after: int, limit: int,
                      exclude_origin: str | None) -> ChangePage:
        async with self._p().acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                 readonly=True):
            mall = await conn.fetchrow(
                "SELECT seq, purged_through FROM malls WHERE mall_id = $1", mall_id)
            head, purged = (int(mall[0]), int(mall[1])) if mall else (0, 0)
            if after < purged:
                raise CursorTooOld(after, purged)
            rows = await conn.fetch(
                "SELECT server_seq, kind, key, origin, account_id, payload FROM changes "
                "WHERE mall_id = $1 AND server_seq > $2 ORDER BY server_seq LIMIT $3",
                mall_id, after, limit)
            changes: list[Change] = []
            others: set[str] = set()
            own: set[str] = set()
            for seq, kind, key, origin, account_id, payload in rows:
                mine = kind == "ledger.entry" and origin == exclude_origin
                if account_id:
                    (own if mine else others).add(account_id)
                if mine:
                    continue
                changes.append(Change(int(seq), kind, key, json.loads(payload)))
            next_cursor = int(rows[-1][0]) if rows else max(after, 0)
            allowances = {}
            for account in self.grants.due(exclude_origin or "",
                                                 to_grant(others, own, next_cursor >= head)):
                state = fold(await self._entries(conn, mall_id, account), self.now(),
                             journal=False)
                allowances[account] = offline_allowance(state.available, self.rules)
            return ChangePage(changes, next_cursor, head, allowances)

    async def head(self, mall_id: str) -> int:
        seq = await self._p().fetchval("SELECT seq FROM malls WHERE mall_id = $1", mall_id)
        return int(seq) if seq is not None else 0

    async def heartbeat(self, mall_id: str, gateway_id: str, status: dict[str, Any]) -> None:
        await self._p().execute(
            "INSERT INTO gateways VALUES ($1, $2, $3, $4) ON CONFLICT (mall_id, gateway_id) "
            "DO UPDATE SET status = excluded.status, last_seen_at = excluded.last_seen_at",
            mall_id, gateway_id, json.dumps(status), self._stamp())

    async def snapshot_lines(self, mall_id: str, kind: str, after_key: str,
                             limit: int) -> list[tuple[str, str]]:
        rows = await self._p().fetch(SNAPSHOT_PAGE_SQL[kind], mall_id, after_key, limit)
        if kind == "member":
            return [(r[0], snapshot_line("member", r[0], r[1])) for r in rows]
        return [(r[0], snapshot_line("ledger", r[0], r[1], int(r[2]))) for r in rows]

    # -- back office ------------------------------------------------------------------
    async def create_member(self, mall_id: str, body: dict[str, Any]) -> dict[str, Any]:
        profile = check_profile(body)
        member_id = str(body.get("member_id") or new_token()[4:20])
        account_id = str(body.get("account_id") or member_id)
        async with self._p().acquire() as conn, conn.transaction():
            try:
                await conn.execute(
                    "INSERT INTO members (mall_id, member_id, account_id, profile, edge_view, "
                    "version, erased_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, NULL, $6)",
                    mall_id, member_id, account_id, json.dumps(profile),
                    view_json(edge_view(member_id, account_id, profile, 1)), self._stamp())
            except asyncpg.UniqueViolationError:
                raise StorageError("member_exists", f"member {member_id} exists",
                                   409) from None
            view = edge_view(member_id, account_id, profile, 1)
            await self._log(conn, mall_id, "member.upsert", member_id, origin="central",
                            payload=view, account_id=account_id)
        return {"member_id": member_id, "account_id": account_id, **profile, "version": 1}

    async def update_member(self, mall_id: str, member_id: str,
                            body: dict[str, Any]) -> dict[str, Any]:
        changes = check_profile(body)
        async with self._p().acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT account_id, profile, version FROM members WHERE mall_id = $1 AND "
                "member_id = $2 AND erased_at IS NULL FOR UPDATE", mall_id, member_id)
            if row is None:
                raise NotFound(f"member {member_id}")
            account_id = str(body.get("account_id") or row[0])
            profile = {**json.loads(row[1]), **changes}
            version = int(row[2]) + 1
            view = edge_view(member_id, account_id, profile, version)
            await conn.execute(
                "UPDATE members SET account_id = $1, profile = $2, edge_view = $3, "
                "version = $4, updated_at = $5 WHERE mall_id = $6 AND member_id = $7",
                account_id, json.dumps(profile), view_json(view), version, self._stamp(),
                mall_id, member_id)
            await self._log(conn, mall_id, "member.upsert", member_id, origin="central",
                            payload=view, account_id=account_id)
        return {"member_id": member_id, "account_id": account_id, **profile,
                "version": version}

    async def get_member(self, mall_id: str, member_id: str) -> dict[str, Any]:
        async with self._p().acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                 readonly=True):
            row = await conn.fetchrow(
                "SELECT account_id, profile, version FROM members WHERE mall_id = $1 AND "
                "member_id = $2 AND erased_at IS NULL", mall_id, member_id)
            if row is None:
                raise NotFound(f"member {member_id}")
            account_id = str(row[0])
            entries = await self._entries(conn, mall_id, account_id)
            flagged = await conn.fetch(
                "SELECT entry_id, debt, flagged_at FROM flagged_debts WHERE mall_id = $1 AND "
                "account_id = $2", mall_id, account_id)
            activity = await conn.fetch(
                f"SELECT {ACTIVITY_VIEW} FROM activity_events WHERE mall_id = $1 AND "
                "member_id = $2 ORDER BY occurred_at DESC, event_id LIMIT $3",
                mall_id, member_id, MEMBER_ACTIVITY_SHOWN)
        state = fold(entries, self.now(), journal=False)
        return {
            "member": {"member_id": member_id, "account_id": account_id,
                       **json.loads(row[1]), "version": int(row[2])},
            "balance": {"available": state.available, "locked": state.locked,
                        "debt": state.debt,
                        "offline_allowance": offline_allowance(state.available, self.rules)},
            "flagged_debts": [{"entry_id": f[0], "debt": int(f[1]), "flagged_at": f[2]}
                              for f in flagged],
            "ledger": [entry_to_wire(e) for e in
                       sorted(entries, key=lambda e: (e.effective_at, e.entry_id))],
            "activity": [activity_json(*row) for row in activity],
        }

    async def erase_member(self, mall_id: str, member_id: str) -> None:
        async with self._p().acquire() as conn, conn.transaction():
            account_id = await conn.fetchval(
                "SELECT account_id FROM members WHERE mall_id = $1 AND member_id = $2 AND "
                "erased_at IS NULL FOR UPDATE", mall_id, member_id)
            if account_id is None:
                raise NotFound(f"member {member_id}")
            await conn.execute("UPDATE members SET profile = '{}', edge_view = '{}', "
                               "erased_at = $1, "
                               "updated_at = $1 WHERE mall_id = $2 AND member_id = $3",
                               self._stamp(), mall_id, member_id)
            await conn.execute("UPDATE changes SET payload = '{}' WHERE mall_id = $1 AND "
                               "kind = 'member.upsert' AND key = $2", mall_id, member_id)
            await self._log(conn, mall_id, "member.erased", member_id, origin="central",
                            payload={"member_id": member_id}, account_id=str(account_id))
            # After `_log` took the mall's row lock: a batch that stored this member's
            # activity meanwhile has committed, and one still to come sees the erasure.
            await conn.execute("DELETE FROM activity_events WHERE mall_id = $1 AND "
                               "member_id = $2", mall_id, member_id)

    async def put_document(self, mall_id: str, kind: str, key: str,
                           payload: dict[str, Any]) -> int:
        change_kind = {"offer": "offer.upsert", "config": "config.version"}[kind]
        async with self._p().acquire() as conn, conn.transaction():
            seq = await self._log(conn, mall_id, change_kind, key, origin="central",
                                  payload={"key": key, **payload})
            await conn.execute(
                "INSERT INTO documents VALUES ($1, $2, $3, $4, $5) ON CONFLICT "
                "(mall_id, kind, key) DO UPDATE SET payload = excluded.payload, "
                "server_seq = excluded.server_seq", mall_id, kind, key, json.dumps(payload), seq)
        return seq

    async def mall_ids(self) -> list[str]:
        return [str(r[0]) for r in await self._p().fetch("SELECT mall_id FROM malls")]

    async def purge_changes(self, mall_id: str, older_than_s: float) -> int:
        cutoff = to_text(self.now() - timedelta(seconds=older_than_s))
        async with self._p().acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT max(server_seq), count(*) FROM changes "
                                      "WHERE mall_id = $1 AND created_at < $2", mall_id, cutoff)
            if not row[1]:
                return 0
            await conn.execute("DELETE FROM changes WHERE mall_id = $1 AND server_seq <= $2",
                               mall_id, row[0])
            await conn.execute("UPDATE malls SET purged_through = GREATEST(purged_through, $1) "
                               "WHERE mall_id = $2", row[0], mall_id)
            return int(row[1])
