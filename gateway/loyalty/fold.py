"""The fold: an account's balance, lots, debt and history from its set of entries.

This is the only place points are counted. The same function runs at the edge and at
central, over a *set* of entries: it orders them itself (by effective time, then id, both
part of the fact; never by the recording site's stamps), so any arrival order and any
merge order give the same state.

Burn allocation (which lot a redemption drew from) is derived here every time, never
stored as truth: soonest expiry first, then oldest, then lot id. Lot unlocks (end of a
return window) and expiries are derived from the lots' own dates, so no job has to run
for a balance to be right, and merging a late entry simply re-derives everything.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from operator import attrgetter

from gateway.loyalty.entries import Entry, EntryKind

_PHASE_EXPIRE, _PHASE_UNLOCK = 0, 1  # at one instant: expiries, then unlocks, then entries


class LotStatus(StrEnum):
    LOCKED = "locked"  # inside the return window: counted, not yet spendable
    AVAILABLE = "available"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Lot:
    lot_id: str
    granted: int
    remaining: int
    opened_at: datetime
    available_at: datetime
    expires_at: datetime | None
    status: LotStatus
    remind_at: tuple[datetime, ...]


@dataclass(frozen=True, slots=True)
class JournalLine:
    """One step of an account's history: an entry, or a derived unlock or expiry."""

    at: datetime
    event: str
    entry_id: str | None
    available_delta: int
    locked_delta: int
    available: int
    locked: int
    debt: int
    reason: str


@dataclass(frozen=True, slots=True)
class Qualifying:
    at: datetime
    member_id: str | None
    fen: int


@dataclass(frozen=True, slots=True)
class AccountState:
    available: int  # spendable now: available lot remainders minus debt (may be negative)
    locked: int  # still inside a return window
    debt: int  # refunds or overdrafts not yet repaid by later earns
    lots: tuple[Lot, ...]
    expired: int
    reversed: Mapping[str, int]  # points taken back, by the EARN entry refunded
    restored: Mapping[str, int]  # points given back, by the BURN entry refunded
    allocations: Mapping[str, tuple[tuple[str, int], ...]]  # advisory: spend → (lot, points)
    qualifying: tuple[Qualifying, ...]
    journal: tuple[JournalLine, ...]

    def open_lots(self) -> tuple[Lot, ...]:
        return tuple(lot for lot in self.lots
                     if lot.status is not LotStatus.EXPIRED and lot.remaining > 0)


def _copy_rank(entry: Entry) -> tuple[str, str, int, str]:
    """Which copy of one entry id wins when two sites recorded it differently."""
    recorded = entry.recorded_at.isoformat() if entry.recorded_at else "~"
    return (recorded, entry.origin_site, entry.origin_seq, entry.hlc)


def dedupe(entries: Iterable[Entry]) -> dict[str, Entry]:
    """Union of entry sets keyed by id; a conflicting copy is resolved the same everywhere."""
    unique: dict[str, Entry] = {}
    for entry in entries:
        kept = unique.get(entry.entry_id)
        if kept is None or _copy_rank(entry) < _copy_rank(kept):
            unique[entry.entry_id] = entry
    return unique


fold_order = attrgetter("effective_at", "entry_id")


@dataclass(slots=True)
class _Lot:
    lot_id: str
    granted: int
    remaining: int
    opened_at: datetime
    available_at: datetime
    expires_at: datetime | None
    status: LotStatus
    rank: tuple[bool, datetime, datetime, str] = field(init=False)
    lapsed: int = 0  # expired points
    lapsed_reversed: int = 0  # of which a refund has since taken back

    def __post_init__(self) -> None:
        # Burn order: soonest expiry first, never-expiring last, then oldest, then id.
        never = self.expires_at is None
        self.rank = (never, self.expires_at or self.opened_at, self.opened_at, self.lot_id)


@dataclass(slots=True)
class _Folder:
    keep_journal: bool
    reminder_offsets: tuple[timedelta, ...]  # before expiry, earliest reminder first
    lots: dict[str, _Lot] = field(default_factory=dict)
    # Spendable lots by burn rank; spent or expired lots are dropped lazily when on top.
    spendable: list[tuple[tuple[bool, datetime, datetime, str], _Lot]] = field(
        default_factory=list)
    timers: list[tuple[datetime, int, str]] = field(default_factory=list)
    available_sum: int = 0
    locked_sum: int = 0
    debt: int = 0
    expired: int = 0
    earned: dict[str, tuple[int, int]] = field(default_factory=dict)  # EARN id → points, fen
    burned: dict[str, int] = field(default_factory=dict)
    reversed: dict[str, int] = field(default_factory=dict)
    reversed_fen: dict[str, int] = field(default_factory=dict)
    restored: dict[str, int] = field(default_factory=dict)
    allocations: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    qualifying: list[Qualifying] = field(default_factory=list)
    journal: list[JournalLine] = field(default_factory=list)

    # -- lots -------------------------------------------------------------------------

    def open_lot(self, entry: Entry, points: int) -> None:
        if points <= 0:
            return
        available_at = max(entry.available_at or entry.effective_at, entry.effective_at)
        locked = available_at > entry.effective_at
        lot = _Lot(entry.entry_id, points, points, entry.effective_at, available_at,
                   entry.expires_at, LotStatus.LOCKED if locked else LotStatus.AVAILABLE)
        self.lots[lot.lot_id] = lot
        if entry.expires_at is not None:
            heapq.heappush(self.timers, (entry.expires_at, _PHASE_EXPIRE, lot.lot_id))
        if locked:
            self.locked_sum += points
            heapq.heappush(self.timers, (available_at, _PHASE_UNLOCK, lot.lot_id))
        else:
            self.available_sum += points
            self.make_spendable(lot)

    def make_spendable(self, lot: _Lot) -> None:
        self.repay_debt(lot)
        if lot.remaining:
            heapq.heappush(self.spendable, (lot.rank, lot))

    def repay_debt(self, lot: _Lot) -> None:
        """Debt absorbs points the moment they become spendable."""
        take = min(self.debt, lot.remaining)
        lot.remaining -= take
        self.available_sum -= take
        self.debt -= take

    def take_from(self, lot: _Lot, points: int) -> int:
        take = min(points, lot.remaining)
        lot.remaining -= take
        if lot.status is LotStatus.LOCKED:
            self.locked_sum -= take
        else:
            self.available_sum -= take
        return take

    def spend(self, points: int) -> tuple[tuple[str, int], ...]:
        """Take points soonest-expiry first; what the lots cannot cover becomes debt."""
        allocation: list[tuple[str, int]] = []
        while points and self.spendable:
            lot = self.spendable[0][1]
            if lot.status is not LotStatus.AVAILABLE or lot.remaining == 0:
                heapq.heappop(self.spendable)
                continue
            take = self.take_from(lot, points)
            allocation.append((lot.lot_id, take))
            points -= take
        self.debt += points
        return tuple(allocation)

    # -- timers -----------------------------------------------------------------------

    def run_timers(self, until: datetime) -> None:
        """Fire the unlocks and expiries due at or before `until`, in time order."""
        while self.timers and self.timers[0][0] <= until:
            at, phase, lot_id = heapq.heappop(self.timers)
            lot = self.lots[lot_id]
            before = self.snapshot()
            if phase == _PHASE_EXPIRE and lot.status is not LotStatus.EXPIRED:
                lapsed = lot.remaining
                self.take_from(lot, lapsed)
                lot.status, lot.lapsed = LotStatus.EXPIRED, lapsed
                self.expired += lapsed
                if lapsed:
                    self.note(at, "EXPIRED", None, before, f"{lapsed} points expired")
            elif phase == _PHASE_UNLOCK and lot.status is LotStatus.LOCKED:
                lot.status = LotStatus.AVAILABLE
                self.locked_sum -= lot.remaining
                self.available_sum += lot.remaining
                self.make_spendable(lot)
                self.note(at, "UNLOCKED", None, before,
                          "Return window over: points can now be spent")

    # -- entries ----------------------------------------------------------------------

    def apply(self, entry: Entry) -> str:
        """Apply one entry; returns the reason line for the history."""
        if entry.kind is EntryKind.EARN:
            self.open_lot(entry, entry.points)
            if entry.qual_fen:
                self.qualify(entry, entry.qual_fen)
            return entry.reason
        if entry.kind is EntryKind.ADJUST:
            if entry.points > 0:
                self.open_lot(entry, entry.points)
            else:
                self.allocations[entry.entry_id] = self.spend(-entry.points)
            return entry.reason
        if entry.kind is EntryKind.BURN:
            self.allocations[entry.entry_id] = self.spend(-entry.points)
            return entry.reason
        if entry.kind is EntryKind.REVERSE:
            return self.reverse(entry)
        if entry.kind is EntryKind.RESTORE:
            return self.restore(entry)
        self.qualify(entry, entry.qual_fen)
        return entry.reason

    def qualify(self, entry: Entry, fen: int) -> None:
        self.qualifying.append(Qualifying(entry.effective_at, entry.member_id, fen))

    def reverse(self, entry: Entry) -> str:
        ref = entry.ref_entry_id or ""
        if ref not in self.earned:
            return f"{entry.reason} (the refunded sale is not known here yet: no effect)"
        earned_points, earned_fen = self.earned[ref]
        # Caps live in the fold, so refunds recorded at two sites never over-reverse.
        points = min(-entry.points, earned_points - self.reversed.get(ref, 0))
        fen = min(-entry.qual_fen, earned_fen - self.reversed_fen.get(ref, 0))
        self.reversed[ref] = self.reversed.get(ref, 0) + points
        self.reversed_fen[ref] = self.reversed_fen.get(ref, 0) + fen
        if fen:
            self.qualify(entry, -fen)
        rest = points
        lot = self.lots.get(ref)
        if lot is not None:
            rest -= self.take_from(lot, rest)
            # Points of this sale that already expired were lost once; not taken again.
            forgiven = min(rest, lot.lapsed - lot.lapsed_reversed)
            lot.lapsed_reversed += forgiven
            rest -= forgiven
        if rest:
            self.allocations[entry.entry_id] = self.spend(rest)
        return entry.reason if points == -entry.points else f"{entry.reason} (capped at {points})"

    def restore(self, entry: Entry) -> str:
        ref = entry.ref_entry_id or ""
        if ref not in self.burned:
            return f"{entry.reason} (the spend it restores is not known here yet: no effect)"
        points = min(entry.points, self.burned[ref] - self.restored.get(ref, 0))
        self.restored[ref] = self.restored.get(ref, 0) + points
        self.open_lot(entry, points)
        return entry.reason if points == entry.points else f"{entry.reason} (capped at {points})"

    # -- history ----------------------------------------------------------------------

    def snapshot(self) -> tuple[int, int]:
        return (self.available_sum - self.debt, self.locked_sum)

    def note(self, at: datetime, event: str, entry_id: str | None, before: tuple[int, int],
             reason: str) -> None:
        if not self.keep_journal:
            return
        available, locked = self.snapshot()
        self.journal.append(JournalLine(
            at=at, event=event, entry_id=entry_id, available_delta=available - before[0],
            locked_delta=locked - before[1], available=available, locked=locked,
            debt=self.debt, reason=reason,
        ))

    def result(self) -> AccountState:
        lots = tuple(
            Lot(lot.lot_id, lot.granted, lot.remaining, lot.opened_at, lot.available_at,
                lot.expires_at, lot.status, self.reminders(lot.expires_at))
            for lot in sorted(self.lots.values(), key=attrgetter("rank"))
        )
        return AccountState(
            available=self.available_sum - self.debt, locked=self.locked_sum, debt=self.debt,
            lots=lots, expired=self.expired, reversed=dict(self.reversed),
            restored=dict(self.restored), allocations=dict(self.allocations),
            qualifying=tuple(self.qualifying), journal=tuple(self.journal),
        )

    def reminders(self, expires_at: datetime | None) -> tuple[datetime, ...]:
        if expires_at is None:
            return ()
        return tuple(expires_at - before for before in self.reminder_offsets)


@dataclass(frozen=True, slots=True)
class Totals:
    """The sums of an `AccountState`, without its lots and history."""

    available: int
    locked: int
    debt: int


def fold(
    entries: Iterable[Entry], as_of: datetime, *, reminder_days: tuple[int, ...] = (),
    journal: bool = True,
) -> AccountState:
    """The account's state at `as_of` from its entries, in whatever order they come.

    `journal=False` skips building the history, for callers that only need balances.
    """
    return _replay(entries, as_of, reminder_days=reminder_days, journal=journal).result()


def fold_totals(entries: Iterable[Entry], as_of: datetime) -> Totals:
    """`fold(entries, as_of)`'s available, locked and debt: the same replay, without
    building the lots and history (about half of a short account's fold)."""
    folder = _replay(entries, as_of, reminder_days=(), journal=False)
    available, locked = folder.snapshot()
    return Totals(available=available, locked=locked, debt=folder.debt)


def _replay(entries: Iterable[Entry], as_of: datetime, *, reminder_days: tuple[int, ...],
            journal: bool) -> _Folder:
    ordered = sorted(dedupe(entries).values(), key=fold_order)
    folder = _Folder(keep_journal=journal, reminder_offsets=tuple(timedelta(days=d)
                                            for d in sorted(reminder_days, reverse=True)))
    for entry in ordered:
        if entry.kind is EntryKind.EARN:
            folder.earned[entry.entry_id] = (entry.points, entry.qual_fen)
        elif entry.kind is EntryKind.BURN:
            folder.burned[entry.entry_id] = -entry.points
    for entry in ordered:
        if entry.effective_at > as_of:
            break
        folder.run_timers(entry.effective_at)
        before = folder.snapshot()
        reason = folder.apply(entry)
        folder.note(entry.effective_at, entry.kind.value, entry.entry_id, before, reason)
    folder.run_timers(as_of)
    return folder


def reminders_due(state: AccountState, now: datetime) -> list[tuple[Lot, datetime]]:
    """Open lots whose latest passed reminder date is due: (lot, that reminder date)."""
    due: list[tuple[Lot, datetime]] = []
    for lot in state.open_lots():
        passed = [at for at in lot.remind_at if at <= now]
        if passed and lot.expires_at is not None and now < lot.expires_at:
            due.append((lot, passed[-1]))
    return due


@dataclass(frozen=True, slots=True)
class Expiring:
    """The points that lapse first, and when (exclusive: gone from that instant on)."""

    points: int
    expires_at: datetime


def soonest_expiring(state: AccountState) -> Expiring | None:
    """The open lots that lapse first, summed over every lot lapsing at that instant
    (a year's purchases usually lapse together); None when no open lot ever lapses."""
    lapsing = [lot for lot in state.open_lots() if lot.expires_at is not None]
    if not lapsing:
        return None
    first = min(lot.expires_at for lot in lapsing if lot.expires_at is not None)
    return Expiring(sum(lot.remaining for lot in lapsing if lot.expires_at == first), first)


def qualifying_of(entries: Iterable[Entry]) -> tuple[Qualifying, ...]:
    """`fold(entries, ...).qualifying` without the lots: the tier-qualifying spend stream
    with the fold's caps (a refund never takes back more spend than its sale counted), for
    a tier check on every sale that must not cost a whole fold."""
    ordered = sorted(dedupe(entries).values(), key=fold_order)
    earned_fen = {e.entry_id: e.qual_fen for e in ordered if e.kind is EntryKind.EARN}
    reversed_fen: dict[str, int] = {}
    stream: list[Qualifying] = []
    for entry in ordered:
        fen = entry.qual_fen
        if entry.kind is EntryKind.REVERSE:
            ref = entry.ref_entry_id or ""
            if ref not in earned_fen:
                continue
            taken = min(-fen, earned_fen[ref] - reversed_fen.get(ref, 0))
            reversed_fen[ref] = reversed_fen.get(ref, 0) + taken
            fen = -taken
        elif entry.kind not in (EntryKind.EARN, EntryKind.QUAL_SPEND):
            continue
        if fen:
            stream.append(Qualifying(entry.effective_at, entry.member_id, fen))
    return tuple(stream)
