"""The entries of recently read accounts, kept decoded and topped up with what was added since.

The ledger is append-only (a trigger refuses updates and deletes) and has one writer, so the
rows a reader can see are always a prefix of the table's rowids: an account's entries up to
rowid R never change once read. A read then asks only for the account's rows above the
rowid it saw last, and for whether central has since acknowledged the entries that were
still pending. Decoding rows into entries was most of the cost of a balance; this keeps a
balance of a long-lived account at the price of its fold.

Reads run on the reader threads; each account is read and merged under a lock (one of a
fixed set, by account), so two threads never merge the same rows twice. The writer reads
through `peek`, which leaves the cache as it was: its transaction sees rows that are not
committed yet and may still roll back. The cache holds at
most `max_entries` entries, evicting the least recently read accounts.
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from gateway.ledger.codec import COLUMNS, tuple_to_entry
from gateway.loyalty import Entry

DEFAULT_MAX_ENTRIES: Final = 50_000  # about 25 MB of decoded entries
_STRIPES: Final = 64
_IN_CHUNK: Final = 500  # SQLite's bound-parameter limit is far above; keeps statements small
_NO_ENTRIES: Final[Mapping[str, Entry]] = {}

_SINCE = (
    f"SELECT l.rowid, {', '.join('l.' + c for c in COLUMNS)}, s.entry_id IS NOT NULL "
    "FROM ledger l LEFT JOIN ledger_sync s ON s.entry_id = l.entry_id "
    "WHERE l.account_id = ? AND l.rowid > ?"
)


@dataclass(slots=True)
class _Account:
    last_rowid: int = 0
    entries: list[Entry] = field(default_factory=list)
    acked: list[bool] = field(default_factory=list)
    pending: dict[str, int] = field(default_factory=dict)  # unacknowledged id -> index
    counted: int = 0  # entries counted in the cache's size (changed under its guard)


@dataclass(slots=True)
class CacheStats:
    hits: int = 0  # reads that found the account cached
    misses: int = 0
    rows_read: int = 0  # rows decoded (new ones only, for a hit)
    evictions: int = 0


class EntryCache:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.stats = CacheStats()
        self._accounts: OrderedDict[str, _Account] = OrderedDict()
        self._size = 0
        self._guard = threading.Lock()  # the dict, its order and the size
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]

    def read(self, conn: sqlite3.Connection, account_id: str) -> list[tuple[Entry, bool]]:
        """The account's entries with whether central has acknowledged each, as of the
        caller's read transaction on `conn`."""
        with self._stripes[zlib.crc32(account_id.encode()) % _STRIPES]:
            with self._guard:
                account = self._accounts.get(account_id)
                if account is not None:
                    self._accounts.move_to_end(account_id)
            if account is None:
                self.stats.misses += 1
                account = _Account()
            else:
                self.stats.hits += 1
            self._top_up(conn, account_id, account)
            result = list(zip(account.entries, account.acked, strict=True))
            self._keep(account_id, account)
            return result

    def peek(self, conn: sqlite3.Connection, account_id: str,
             fresh: Mapping[str, Entry] = _NO_ENTRIES) -> list[tuple[Entry, bool]]:
        """`read` for a write transaction: the cached entries plus the rows above them,
        read afresh and not kept. `fresh` holds entries the transaction itself has just
        inserted, by id: their rows are taken as these entries rather than decoded again
        (a check-in's balance reads back the entry it recorded a moment before)."""
        with self._stripes[zlib.crc32(account_id.encode()) % _STRIPES]:
            with self._guard:
                cached = self._accounts.get(account_id)
            account = _Account()
            if cached is not None:
                account = _Account(cached.last_rowid, list(cached.entries), list(cached.acked),
                                   dict(cached.pending))
            self._top_up(conn, account_id, account, fresh)
        return list(zip(account.entries, account.acked, strict=True))

    def _top_up(self, conn: sqlite3.Connection, account_id: str, account: _Account,
                fresh: Mapping[str, Entry] = _NO_ENTRIES) -> None:
        if account.pending:
            ids = list(account.pending)
            for i in range(0, len(ids), _IN_CHUNK):
                chunk = ids[i:i + _IN_CHUNK]
                for (entry_id,) in conn.execute(
                        f"SELECT entry_id FROM ledger_sync WHERE entry_id IN "
                        f"({', '.join('?' * len(chunk))})", chunk):
                    account.acked[account.pending.pop(entry_id)] = True
        for row in conn.execute(_SINCE, (account_id, account.last_rowid)):
            known = fresh.get(row[1])  # row[1] is the entry_id
            entry = tuple_to_entry(row[1:]) if known is None else known
            acked = bool(row[-1])
            account.last_rowid = max(account.last_rowid, row[0])
            if not acked:
                account.pending[entry.entry_id] = len(account.entries)
            account.entries.append(entry)
            account.acked.append(acked)
            self.stats.rows_read += 1

    def _keep(self, account_id: str, account: _Account) -> None:
        with self._guard:
            if account_id not in self._accounts:  # new, or evicted while being read
                if len(account.entries) > self.max_entries:
                    return  # one account bigger than the whole cache: not worth keeping
                self._accounts[account_id] = account
                account.counted = 0
            self._size += len(account.entries) - account.counted
            account.counted = len(account.entries)
            while self._size > self.max_entries and len(self._accounts) > 1:
                evicted_id, evicted = self._accounts.popitem(last=False)
                if evicted_id == account_id:  # never the one just read
                    self._accounts[account_id] = evicted
                    continue
                self._size -= evicted.counted
                self.stats.evictions += 1

    def __len__(self) -> int:
        """Entries held."""
        return self._size
