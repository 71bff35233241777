"""Members' beacon keys, from the store into the resolver, kept up to date as sync changes them.

The keys arrive through sync as `ble_key` member identifiers (see `identity.parse_ble_key`).
A refresh reads only members updated since the last one, so it is cheap when nothing changed;
an erased member's row is gone rather than updated, so when the number of keys in the store
differs from the number held, the next refresh reads them all and drops the ones that left.
A malformed key is skipped and counted; it never stops the others.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
from dataclasses import dataclass

from devices.ble.eid import IdentityKeyError, MemberKey
from devices.ble.identity import Identifier, parse_ble_key
from gateway.members import ble_key_count, ble_keys_changed_since

log = logging.getLogger(__name__)


@dataclass(slots=True)
class KeyringStats:
    eid_members: int = 0
    static_ids: int = 0
    invalid: int = 0  # members whose ble_key does not parse (skipped)
    refreshes: int = 0
    full_reloads: int = 0


class Keyring:
    def __init__(self, identifier: Identifier) -> None:
        self.identifier = identifier
        self.stats = KeyringStats()
        self._since = ""  # newest members.updated_at read so far
        self._static_of: dict[str, tuple[str, ...]] = {}  # member -> static identities
        self._invalid: set[str] = set()  # members whose key does not parse
        self._rows: dict[str, int] = {}  # member -> key rows read for it
        self._held = 0  # key rows read, valid or not: compared with the store's count

    def refresh(self, conn: sqlite3.Connection, now: float) -> int:
        """Apply the keys changed since the last refresh; how many members' keys were
        (re)applied. Runs on a reader connection; the resolver work (AES for changed
        members) happens here too."""
        self.stats.refreshes += 1
        held = self._held
        in_store = ble_key_count(conn)
        full = in_store != held and self._since != ""
        since = "" if full else self._since
        seen: set[str] = set()
        changed = 0
        # a member may have several keys (a phone and a legacy card): rows come by member
        for member_id, rows in itertools.groupby(ble_keys_changed_since(conn, since),
                                                 key=lambda row: str(row[0])):
            values = []
            for _, updated_at, value in rows:
                self._since = max(self._since, updated_at)
                if value is not None:
                    values.append(value)
            seen.add(member_id)
            changed += self._apply(member_id, values, now)
        if full:
            self.stats.full_reloads += 1
            for member_id in list(self._rows):
                if member_id not in seen:
                    changed += self._apply(member_id, [], now)
        self.stats.eid_members = len(self.identifier.resolver)
        self.stats.static_ids = sum(map(len, self._static_of.values()))
        self.stats.invalid = len(self._invalid)
        return changed

    def _apply(self, member_id: str, values: list[str], now: float) -> int:
        """Make the member's keys those of `values` (none: the member has no key now)."""
        eid, statics = self._parse(member_id, values)
        self._held += len(values) - self._rows.pop(member_id, 0)
        if values:
            self._rows[member_id] = len(values)
        resolver, by_identity = self.identifier.resolver, self.identifier.static_ids
        had = member_id in resolver or member_id in self._static_of
        if eid is not None:
            resolver.upsert(eid, now)
        else:
            resolver.remove(member_id)
        for identity in self._static_of.pop(member_id, ()):
            if by_identity.get(identity) == member_id:
                del by_identity[identity]
        if statics:
            self._static_of[member_id] = tuple(statics)
            for identity in statics:
                by_identity[identity] = member_id
        return int(had or bool(values))

    def _parse(self, member_id: str, values: list[str]) -> tuple[MemberKey | None, list[str]]:
        """The member's rotating key (the resolver holds one per member) and static ids;
        a value that does not parse is skipped, logged once and counted."""
        eid: MemberKey | None = None
        statics: list[str] = []
        bad = False
        for value in values:
            try:
                key = parse_ble_key(member_id, value)
            except IdentityKeyError as error:
                if member_id not in self._invalid:
                    log.warning("member %s: beacon key skipped: %s", member_id, error)
                bad = True
                continue
            if isinstance(key, MemberKey):
                eid = key
            else:
                statics.append(key[0])
        if bad:
            self._invalid.add(member_id)
        else:
            self._invalid.discard(member_id)
        return eid, statics
