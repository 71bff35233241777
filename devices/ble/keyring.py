"""Members' beacon keys, from the store into the resolver, kept up to date as sync changes them.

The keys arrive through sync as `ble_key` member identifiers (see `identity.parse_ble_key`).
A refresh reads only members updated since the last one, so it is cheap when nothing changed;
an erased member's row is gone rather than updated, so when the number of keys in the store
differs from the number held, the next refresh reads them all and drops the ones that left.
A malformed key is skipped and counted; it never stops the others.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from devices.ble.eid import IdentityKeyError, MemberKey
from devices.ble.identity import Identifier, parse_ble_key

log = logging.getLogger(__name__)

_CHANGED = (
    "SELECT m.id, m.updated_at, i.value FROM members m "
    "LEFT JOIN member_identifiers i ON i.member_id = m.id AND i.kind = 'ble_key' "
    "WHERE m.updated_at >= ?"
)


@dataclass(slots=True)
class KeyringStats:
    eid_members: int = 0
    static_ids: int = 0
    invalid: int = 0  # ble_key values that do not parse
    refreshes: int = 0
    full_reloads: int = 0


class Keyring:
    def __init__(self, identifier: Identifier) -> None:
        self.identifier = identifier
        self.stats = KeyringStats()
        self._since = ""  # newest members.updated_at read so far
        self._static_of: dict[str, str] = {}  # member -> static identity

    def refresh(self, conn: sqlite3.Connection, now: float) -> int:
        """Apply the keys changed since the last refresh; how many members changed. Runs on
        a reader connection; the resolver work (AES for changed members) happens here too."""
        self.stats.refreshes += 1
        held = len(self.identifier.resolver) + len(self._static_of)
        in_store = conn.execute("SELECT count(*) FROM member_identifiers "
                                "WHERE kind = 'ble_key'").fetchone()[0]
        full = in_store != held and self._since != ""
        since = "" if full else self._since
        seen: set[str] = set()
        changed = 0
        for member_id, updated_at, value in conn.execute(_CHANGED, (since,)):
            seen.add(member_id)
            self._since = max(self._since, updated_at)
            changed += self._apply(member_id, value, now)
        if full:
            self.stats.full_reloads += 1
            for member_id in set(self.identifier.resolver.member_ids()) | set(self._static_of):
                if member_id not in seen:
                    changed += self._apply(member_id, None, now)
        self.stats.eid_members = len(self.identifier.resolver)
        self.stats.static_ids = len(self._static_of)
        return changed

    def _apply(self, member_id: str, value: str | None, now: float) -> int:
        key = None
        if value is not None:
            try:
                key = parse_ble_key(member_id, value)
            except IdentityKeyError as bad:
                self.stats.invalid += 1
                log.warning("member %s: beacon key skipped: %s", member_id, bad)
        resolver, statics = self.identifier.resolver, self.identifier.static_ids
        before_static = self._static_of.get(member_id)
        had_eid = member_id in resolver
        if isinstance(key, MemberKey):
            resolver.upsert(key, now)
        elif had_eid:
            resolver.remove(member_id)
        if isinstance(key, tuple):
            identity = key[0]
            self._static_of[member_id] = identity
            statics[identity] = member_id
        if before_static is not None and (not isinstance(key, tuple) or key[0] != before_static):
            statics.pop(before_static, None)
            if not isinstance(key, tuple):
                del self._static_of[member_id]
        return int(had_eid or before_static is not None or key is not None)
