"""Ledger entries: immutable facts about an account's points, each with one identity.

An entry's id is a hash of its natural key `(source_type, source_key, kind)`, so two
sites that record the same fact (the same receipt, the same day's check-in) produce the
same id, and merging their ledgers is a plain set union.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from gateway.loyalty.errors import InvalidEntry

ID_NAMESPACE = "mallgate/ledger/v1"


class EntryKind(StrEnum):
    EARN = "EARN"  # opens a lot: purchase, check-in, task, birthday gift
    BURN = "BURN"  # spends points: redemption, points used as payment
    REVERSE = "REVERSE"  # a refund takes back points an EARN granted (ref_entry_id)
    RESTORE = "RESTORE"  # a refund gives back points a BURN spent (ref_entry_id); opens a lot
    ADJUST = "ADJUST"  # an operator's correction; positive opens a lot, negative spends
    QUAL_SPEND = "QUAL_SPEND"  # tier-qualifying spend that earns no points


LOT_OPENING = frozenset({EntryKind.EARN, EntryKind.RESTORE})


def entry_id_for(source_type: str, source_key: str, kind: EntryKind) -> str:
    """Deterministic id from the natural key: the same fact has the same id everywhere."""
    digest = hashlib.sha256(
        "\x1f".join((ID_NAMESPACE, source_type, source_key, kind.value)).encode()
    ).hexdigest()
    return digest[:32]


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One ledger row. Times are timezone-aware; points and money are integers."""

    account_id: str
    kind: EntryKind
    points: int
    source_type: str
    source_key: str
    reason: str
    effective_at: datetime
    rule_version: str
    member_id: str | None = None
    qual_fen: int = 0
    expires_at: datetime | None = None
    available_at: datetime | None = None
    ref_entry_id: str | None = None
    actor: str = "system"
    # Stamped by the ledger that records the entry; not part of the fact's identity.
    origin_site: str = ""
    origin_seq: int = 0
    hlc: str = ""
    recorded_at: datetime | None = None
    entry_id: str = field(default="")

    def __post_init__(self) -> None:
        expected = entry_id_for(self.source_type, self.source_key, self.kind)
        if not self.entry_id:
            object.__setattr__(self, "entry_id", expected)
        elif self.entry_id != expected:
            raise InvalidEntry(self, "entry_id does not match the natural key")
        _check_shape(self)

    def stamped(self, *, origin_site: str, origin_seq: int, hlc: str,
                recorded_at: datetime) -> Entry:
        """This fact as recorded by a site. Stamps do not change what the fact says, so the
        copy skips re-validation (recording is the ledger's hot path)."""
        if recorded_at.utcoffset() is None:
            raise InvalidEntry(self, "recorded_at must be timezone-aware")
        entry = object.__new__(Entry)
        for name in _FACT_FIELDS:
            object.__setattr__(entry, name, getattr(self, name))
        object.__setattr__(entry, "origin_site", origin_site)
        object.__setattr__(entry, "origin_seq", origin_seq)
        object.__setattr__(entry, "hlc", hlc)
        object.__setattr__(entry, "recorded_at", recorded_at)
        return entry

    @staticmethod
    def trusted(values: dict[str, Any]) -> Entry:
        """An entry from values that were validated when first recorded (a ledger row read
        back from the append-only table): skips the checks, which cost more than the read."""
        entry = object.__new__(Entry)
        for name in _FIELDS:
            object.__setattr__(entry, name, values[name])
        return entry

    @property
    def natural_key(self) -> tuple[str, str, str]:
        return (self.source_type, self.source_key, self.kind.value)

    @property
    def lot_id(self) -> str | None:
        """A lot-opening entry is its own lot; a positive adjustment opens one too."""
        if self.kind in LOT_OPENING or (self.kind is EntryKind.ADJUST and self.points > 0):
            return self.entry_id
        return None

    @property
    def fact(self) -> tuple[object, ...]:
        """The entry without the recording site's stamps: what two copies must agree on."""
        return (
            self.entry_id, self.account_id, self.member_id, self.kind, self.points,
            self.qual_fen, self.expires_at, self.available_at, self.ref_entry_id,
            self.source_type, self.source_key, self.rule_version, self.reason,
            self.effective_at, self.actor,
        )


_FIELDS = tuple(f.name for f in fields(Entry))
_STAMPS = ("origin_site", "origin_seq", "hlc", "recorded_at")
_FACT_FIELDS = tuple(name for name in _FIELDS if name not in _STAMPS)


def _sign_problem(entry: Entry) -> str | None:
    """What breaks the sign rules of the entry's kind, or None."""
    kind, points, qual = entry.kind, entry.points, entry.qual_fen
    if kind is EntryKind.EARN:
        ok, why = points >= 0 and qual >= 0, "EARN needs points >= 0 and qual_fen >= 0"
    elif kind is EntryKind.BURN:
        ok, why = points < 0 and qual == 0, "BURN needs points < 0 and no qual_fen"
    elif kind is EntryKind.REVERSE:
        ok = points <= 0 and qual <= 0 and entry.ref_entry_id is not None
        why = "REVERSE needs points <= 0, qual_fen <= 0 and the EARN it reverses"
    elif kind is EntryKind.RESTORE:
        ok = points > 0 and qual == 0 and entry.ref_entry_id is not None
        why = "RESTORE needs points > 0 and the BURN it restores"
    elif kind is EntryKind.ADJUST:
        ok, why = points != 0 and qual == 0, "ADJUST needs non-zero points, no qual_fen"
    else:
        ok, why = points == 0, "QUAL_SPEND carries qual_fen only"
    return None if ok else why


def _check_shape(entry: Entry) -> None:
    """The rules of each kind, so the fold never meets a nonsensical entry."""
    for at in (entry.effective_at, entry.expires_at, entry.available_at, entry.recorded_at):
        if at is not None and at.utcoffset() is None:
            raise InvalidEntry(entry, "times must be timezone-aware")
    if not entry.account_id or not entry.source_type or not entry.source_key:
        raise InvalidEntry(entry, "account_id, source_type and source_key are required")
    problem = _sign_problem(entry)
    if problem:
        raise InvalidEntry(entry, problem)
    if entry.lot_id is None and (entry.expires_at is not None or entry.available_at is not None):
        raise InvalidEntry(entry, "only lot-opening entries carry expires_at / available_at")
