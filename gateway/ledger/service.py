"""The ledger API of the core: record entries durably and once, read balances from the fold.

`record` is insert-or-ignore on the entry's identity (a hash of its natural key): the
first recording wins and every later attempt gets that first result back, marked as a
duplicate. The entry, its place in the site's sequence and its outbox row for sync are
written in one transaction, and `record` returns only after that transaction committed,
so a caller may acknowledge its source the moment it returns.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from gateway.clock import utc_now
from gateway.ledger.cache import EntryCache
from gateway.ledger.codec import COLUMNS, row_to_json, tuple_to_entry
from gateway.ledger.rulebook import load_book
from gateway.loyalty import (
    AccountState,
    Entry,
    ImplausibleEntry,
    JournalLine,
    LoyaltyRules,
    Plausibility,
    RuleBook,
    fold,
    fold_totals,
)
from gateway.loyalty.hlc import HybridClock
from gateway.loyalty.limits import DEFAULT_LIMITS
from gateway.loyalty.wire import entry_from_wire, entry_to_wire, to_text
from gateway.store import Reader, Writer

log = logging.getLogger(__name__)

T = TypeVar("T")
OUTBOX_EVENT = "ledger.entry"
SEQ_COUNTER = "origin_seq"
# Positional: binding by name costs SQLite a name lookup per column, per recorded entry.
_INSERT_VALUES = (f"INSERT INTO ledger ({', '.join(COLUMNS)}) "
                  f"VALUES ({', '.join('?' * len(COLUMNS))})")
_SELECT_BY_ID = f"SELECT {', '.join(COLUMNS)} FROM ledger WHERE entry_id = ?"


@dataclass(frozen=True, slots=True)
class Recorded:
    entry: Entry  # as stored: the first recording of this fact
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Balance:
    """Points of an account. `available = confirmed + pending`.

    `confirmed` folds only entries central has acknowledged (or sent); `pending` is what
    this site's not-yet-acknowledged entries add, so a member always sees local activity.
    """

    account_id: str
    as_of: datetime
    available: int
    confirmed: int
    pending: int
    locked: int
    debt: int


@dataclass(slots=True)
class LedgerStats:
    recorded: int = 0
    duplicates: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class Ledger:
    def __init__(
        self, writer: Writer, reader: Reader, *, site: str, clock: HybridClock,
        rules: LoyaltyRules, now: Callable[[], datetime] = utc_now,
        limits: Plausibility = DEFAULT_LIMITS,
    ) -> None:
        """`limits`: what no entry recorded here may exceed (`[limits]` settings)."""
        self._writer = writer
        self._reader = reader
        self.site = site
        self.clock = clock
        # Swapped whole when central publishes a version: readers see one book or the next.
        self.book = RuleBook(rules)
        self.now = now
        self.limits = limits
        self.stats = LedgerStats()
        self.cache = EntryCache()

    # -- rules ------------------------------------------------------------------------

    @property
    def rules(self) -> LoyaltyRules:
        """The rules in force now: the latest version central published that is
        effective, else the local `[loyalty]` settings."""
        return self.book.at(self.now())

    def rules_at(self, at: datetime) -> LoyaltyRules:
        """The rules in force at `at` (an event's own time, e.g. a sale's)."""
        return self.book.at(at)

    async def reload_rules(self) -> RuleBook:
        """Rebuild the book from the versions in the store; log what came into it."""
        before = self.book
        book = await self._reader.run(lambda conn: load_book(conn, before.base))
        self.book = book
        for version in book.versions:
            if version not in before.versions:
                log.info("loyalty rules version %s in force from %s", version.version,
                         version.effective_at.isoformat())
        return book

    # -- writes -----------------------------------------------------------------------

    async def record(self, entry: Entry) -> Recorded:
        (result,) = await self.record_many([entry])
        return result

    async def record_many(self, entries: Sequence[Entry]) -> list[Recorded]:
        """Record several entries of one event (a sale and its burn) atomically."""
        results, _ = await self.record_with(entries, lambda conn, recorded: None)
        return results

    async def record_with(
        self, entries: Sequence[Entry],
        also: Callable[[sqlite3.Connection, list[Recorded]], T],
    ) -> tuple[list[Recorded], T]:
        """Record entries and run `also(conn, recorded)` in the same transaction.

        For events whose own rows must commit with their points: a receipt with its earn,
        a kiosk reply with its burn. `also` runs on the writer thread after the entries are
        inserted (it sees which were duplicates); if it raises, neither it nor the entries
        are written, and the exception reaches the caller.
        """
        recorded_at = self.now()
        for entry in entries:  # refused before anything is queued: nothing to roll back
            self.check(entry)

        def op(conn: sqlite3.Connection) -> tuple[list[Recorded], T]:
            recorded = self.insert_in(conn, entries, recorded_at)
            return recorded, also(conn, recorded)

        results, extra = await self._writer.submit(op)
        self.count(results)
        return results, extra

    def insert_in(self, conn: sqlite3.Connection, entries: Sequence[Entry],
                  recorded_at: datetime) -> list[Recorded]:
        """`record_many` inside the caller's writer op, for an op that decides what to
        record from what it reads in the same transaction; the caller passes the results
        to `count` once the op has committed."""
        for entry in entries:
            self.check(entry)
        return [self._insert(conn, e, recorded_at) for e in entries]

    def check(self, entry: Entry) -> None:
        """Raise `ImplausibleEntry` for an entry beyond the plausibility limits."""
        problem = self.limits.entry_problem(entry)
        if problem is not None:
            raise ImplausibleEntry(entry, problem)

    def count(self, results: list[Recorded]) -> None:
        for result in results:
            if result.duplicate:
                self.stats.duplicates += 1
            else:
                self.stats.recorded += 1
                kind = result.entry.kind.value
                self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1

    def _insert(self, conn: sqlite3.Connection, entry: Entry, recorded_at: datetime) -> Recorded:
        """Runs on the writer thread, inside the batch transaction."""
        existing = conn.execute(_SELECT_BY_ID, (entry.entry_id,)).fetchone()
        if existing is not None:
            return Recorded(entry_from_wire(dict(zip(COLUMNS, existing, strict=True))), True)
        seq = _next_counter(conn, SEQ_COUNTER)
        stamped = entry.stamped(origin_site=self.site, origin_seq=seq,
                                hlc=str(self.clock.stamp()), recorded_at=recorded_at)
        row = entry_to_wire(stamped)
        conn.execute(_INSERT_VALUES, tuple(row.values()))
        conn.execute(
            "INSERT INTO outbox (event_id, event_type, account_id, payload, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (stamped.entry_id, OUTBOX_EVENT, stamped.account_id, row_to_json(row),
             row["recorded_at"]),
        )
        return Recorded(stamped, False)

    async def acknowledge(self, acks: Sequence[tuple[str, int | None]]) -> None:
        """Mark entries as acknowledged by central: `(entry_id, server_seq)` pairs."""
        acked_at = to_text(self.now())
        await self._writer.submit(lambda conn: conn.executemany(
            "INSERT INTO ledger_sync (entry_id, server_seq, acked_at) VALUES (?, ?, ?) "
            "ON CONFLICT (entry_id) DO NOTHING",
            [(entry_id, seq, acked_at) for entry_id, seq in acks],
        ))

    async def record_remote(self, entries: Sequence[tuple[Entry, int | None]]) -> int:
        """Record entries that came from central, `(entry, server_seq)` pairs, as they are
        (their origin's stamps kept), acknowledged and without outbox rows; returns how
        many were new."""
        acked_at = to_text(self.now())
        return await self._writer.submit(lambda conn: insert_remote(conn, entries, acked_at))

    # -- reads ------------------------------------------------------------------------

    async def entries(self, account_id: str) -> list[tuple[Entry, bool]]:
        """Every entry of the account with whether central has acknowledged it."""
        return await self._reader.run(lambda conn: self.cache.read(conn, account_id))

    def entries_in(self, conn: sqlite3.Connection, account_id: str) -> list[tuple[Entry, bool]]:
        """`entries` inside the caller's read on `conn` (a reader connection)."""
        return self.cache.read(conn, account_id)

    def entries_in_write(self, conn: sqlite3.Connection, account_id: str,
                         recorded: Sequence[Recorded] = ()) -> list[tuple[Entry, bool]]:
        """`entries` inside a writer op: what the transaction sees, entries of earlier ops of
        its batch included, so a balance check and the burn it allows are one step.

        `recorded`: what `insert_in` returned earlier in this same transaction; the new
        entries among it are used as they are instead of being read back and decoded."""
        fresh = {r.entry.entry_id: r.entry for r in recorded if not r.duplicate}
        return self.cache.peek(conn, account_id, fresh)

    async def state(self, account_id: str, as_of: datetime | None = None) -> AccountState:
        entries = [entry for entry, _ in await self.entries(account_id)]
        return fold(entries, as_of or self.now(),
                    reminder_days=self.rules.expiry.reminder_days)

    async def balance(self, account_id: str, as_of: datetime | None = None) -> Balance:
        return self.balance_of(account_id, await self.entries(account_id), as_of)

    def balance_of(self, account_id: str, rows: list[tuple[Entry, bool]],
                   as_of: datetime | None = None) -> Balance:
        """The balance from the account's entries as `entries_in` reads them (for a caller
        that reads them together with something else, in one read)."""
        when = as_of or self.now()
        everything = fold_totals([entry for entry, _ in rows], when)
        acked = [entry for entry, is_acked in rows if is_acked]
        # Usually every entry is acknowledged (or none yet): no second fold needed then.
        if len(acked) == len(rows):
            confirmed = everything.available
        else:
            confirmed = fold_totals(acked, when).available if acked else 0
        return Balance(
            account_id=account_id, as_of=when, available=everything.available,
            confirmed=confirmed, pending=everything.available - confirmed,
            locked=everything.locked, debt=everything.debt,
        )

    async def history(self, account_id: str,
                      as_of: datetime | None = None) -> tuple[JournalLine, ...]:
        """The account's whole history, replayed: every step with its reason and balance."""
        return (await self.state(account_id, as_of)).journal


async def account_entries(reader: Reader, account_id: str) -> list[tuple[Entry, bool]]:
    """An account's entries with whether central has acknowledged each; reads only."""
    return await reader.run(lambda conn: _read_entries(conn, account_id))


def _read_entries(conn: sqlite3.Connection, account_id: str) -> list[tuple[Entry, bool]]:
    """Every row of the account, decoded afresh (tools and tests; the ledger itself reads
    through its `EntryCache`)."""
    rows = conn.execute(
        f"SELECT {', '.join('l.' + c for c in COLUMNS)}, s.entry_id IS NOT NULL "
        "FROM ledger l LEFT JOIN ledger_sync s ON s.entry_id = l.entry_id "
        "WHERE l.account_id = ?",  # no ORDER BY: the fold orders entries itself
        (account_id,),
    ).fetchall()
    return [(tuple_to_entry(row), bool(row[-1])) for row in rows]


def insert_remote(conn: sqlite3.Connection, entries: Sequence[tuple[Entry, int | None]],
                  acked_at: str | None) -> int:
    """Insert central's entries inside the caller's transaction (a sync page and its
    cursor commit together): insert-or-ignore by id, no outbox row, marked acknowledged."""
    if not entries:
        return 0
    # Set-wise: a snapshot brings its entries by the thousand.
    new = conn.executemany(_INSERT_VALUES + " ON CONFLICT DO NOTHING",
                           [tuple(entry_to_wire(entry).values()) for entry, _ in entries]).rowcount
    conn.executemany(
        "INSERT INTO ledger_sync (entry_id, server_seq, acked_at) VALUES (?, ?, ?) "
        "ON CONFLICT (entry_id) DO NOTHING",
        [(entry.entry_id, server_seq, acked_at) for entry, server_seq in entries])
    return int(new)


def _next_counter(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, 1) "
        "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
        (name,),
    ).fetchone()
    return int(row[0])
