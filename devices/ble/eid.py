"""Eddystone-EID rotating member ids and the table that resolves them, sans-io.

A member's phone or BLE card holds a 128-bit identity key provisioned by central and a
32-bit seconds counter; every 2**K seconds it advertises a new 8-byte ephemeral id (EID),
computed as in the Eddystone-EID spec:

    TK  = AES-128-ECB(IK, 00*11 || FF || 00 00 || counter >> 16 (2 bytes, big-endian))
    EID = AES-128-ECB(TK, 00*11 || K || counter with its K low bits cleared (4 bytes, BE))[:8]

iOS mini-programs can only advertise iBeacon, so they carry a 32-bit token instead: the
first 4 bytes of the same EID, split into major (bytes 0-1) and minor (bytes 2-3), under
the mall's iBeacon UUID. See docs/ble.md.

`EidResolver` keeps, for every member, the ids of the current window and one window on
each side (clock drift, a visit across a turn). It is rebuilt incrementally: a window turn
computes one new id per member of the cohort that turned, and adding, changing or removing
one member's key touches only that member.
"""

from __future__ import annotations

import heapq
import itertools
import math
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from devices.ble.const import (
    DEFAULT_ROTATION_EXPONENT,
    EID_COUNTER_MODULUS,
    EID_LOOKAHEAD_WINDOWS,
    MAX_ROTATION_EXPONENT,
    RESOLVER_WINDOW_MARGIN,
)

KEY_LENGTH = 16
_BLOCK = 16
EID_LENGTH = 8
TOKEN_LENGTH = 4
_TK_PREFIX = bytes(11) + b"\xff\x00\x00"


class IdentityKeyError(ValueError):
    """An identity key or rotation exponent that cannot be used. `member_id` names the owner."""

    def __init__(self, reason: str, *, member_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.member_id = member_id


_ECB = modes.ECB()  # noqa: S305 - the spec encrypts single blocks with AES-ECB


def _encrypt(key: bytes, blocks: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), _ECB).encryptor()
    return encryptor.update(blocks) + encryptor.finalize()


def temporary_key(identity_key: bytes, counter: int) -> bytes:
    """The temporary key for `counter`; it changes every 65,536 s."""
    return _encrypt(identity_key, _TK_PREFIX + ((counter >> 16) & 0xFFFF).to_bytes(2, "big"))


_EID_BLOCK = struct.Struct(">11xBI")


def _eid_block(rotation_exponent: int, counter: int) -> bytes:
    """00*11 || K || counter with its K low bits cleared."""
    return _EID_BLOCK.pack(rotation_exponent, (counter >> rotation_exponent) << rotation_exponent)


def ephemeral_id(identity_key: bytes, rotation_exponent: int, counter: int) -> bytes:
    """The 8-byte EID a beacon with this key advertises when its counter reads `counter`."""
    tk = temporary_key(identity_key, counter)
    return _encrypt(tk, _eid_block(rotation_exponent, counter))[:EID_LENGTH]


def ibeacon_token(eid: bytes) -> tuple[int, int]:
    """(major, minor) carrying the 32-bit token derived from `eid` in an iBeacon frame."""
    return int.from_bytes(eid[0:2], "big"), int.from_bytes(eid[2:4], "big")


def identity_key_from_exchange(resolver_private: bytes, beacon_public: bytes) -> bytes:
    """The identity key both sides derive after the Eddystone configuration-service exchange.

    X25519 (keys in their standard little-endian encoding), then the first 16 bytes of
    HKDF-SHA256 over the shared secret with salt = resolver public || beacon public.
    """
    private = X25519PrivateKey.from_private_bytes(resolver_private)
    resolver_public = private.public_key().public_bytes_raw()
    shared = private.exchange(X25519PublicKey.from_public_bytes(beacon_public))
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=resolver_public + beacon_public,
                   info=b"").derive(shared)
    return derived[:KEY_LENGTH]


@dataclass(frozen=True, slots=True)
class MemberKey:
    """One member's EID credentials, as central provisions them.

    The member's counter reads `(unix seconds + clock_offset_s) mod 2**32`: 0 for phones,
    which count from the Unix epoch; a BLE card's own offset, recorded when it was set up.
    """

    member_id: str
    identity_key: bytes
    rotation_exponent: int = DEFAULT_ROTATION_EXPONENT
    clock_offset_s: int = 0

    def __post_init__(self) -> None:
        if len(self.identity_key) != KEY_LENGTH:
            raise IdentityKeyError(f"identity key must be {KEY_LENGTH} bytes, got "
                            f"{len(self.identity_key)}", member_id=self.member_id)
        if not 0 <= self.rotation_exponent <= MAX_ROTATION_EXPONENT:
            raise IdentityKeyError(f"rotation exponent must be 0..{MAX_ROTATION_EXPONENT}, got "
                            f"{self.rotation_exponent}", member_id=self.member_id)

    def counter_at(self, now: float) -> int:
        return (math.floor(now) + self.clock_offset_s) % EID_COUNTER_MODULUS

    def window_at(self, now: float) -> int:
        return self.counter_at(now) >> self.rotation_exponent


class _Index:
    """id -> member, with ids claimed by two members kept apart as ambiguous."""

    def __init__(self) -> None:
        self.unique: dict[bytes, str] = {}
        self.clashes: dict[bytes, set[str]] = {}

    def add(self, key: bytes, member_id: str) -> None:
        if self.clashes and key in self.clashes:
            self.clashes[key].add(member_id)
            return
        owner = self.unique.setdefault(key, member_id)
        if owner != member_id:
            del self.unique[key]
            self.clashes[key] = {owner, member_id}

    def discard(self, key: bytes, member_id: str) -> None:
        if not self.clashes or key not in self.clashes:
            if self.unique.get(key) == member_id:
                del self.unique[key]
            return
        clash = self.clashes[key]
        clash.discard(member_id)
        if len(clash) == 1:
            del self.clashes[key]
            self.unique[key] = clash.pop()

    def __len__(self) -> int:
        return len(self.unique) + len(self.clashes)


@dataclass(slots=True)
class _Member:
    key: MemberKey
    eids: dict[int, bytes] = field(default_factory=dict)  # window -> EID
    tk_high: int = -1
    tk: bytes = b""
    phase: int = 0  # spreads this member's AES work over the turns
    ahead_window: int = 0  # window of the first EID in `ahead`
    ahead: bytes = b""  # AES blocks of consecutive windows, 16 bytes each (EID = first 8)


@dataclass(slots=True)
class ResolverStats:
    computed: int = 0  # EIDs computed (AES) since start, look-ahead included
    ambiguous: int = 0  # lookups that matched more than one member


class EidResolver:
    """{EID -> member} and {iBeacon token -> member} for each member's window +/- margin.

    Call `advance(now)` as time passes (cheap when no window turned); lookups answer for
    the windows computed at the last `advance`, `upsert` or `remove`.
    """

    def __init__(self, *, margin: int = RESOLVER_WINDOW_MARGIN,
                 lookahead: int = EID_LOOKAHEAD_WINDOWS) -> None:
        self.margin = margin
        self.lookahead = max(1, lookahead)
        self.stats = ResolverStats()
        self._members: dict[str, _Member] = {}
        self._eids = _Index()
        self._tokens = _Index()
        # members grouped by (rotation exponent, clock offset): they turn together
        self._cohorts: dict[tuple[int, int], set[str]] = {}
        self._cohort_window: dict[tuple[int, int], int] = {}
        self._cohort_turn: dict[tuple[int, int], int] = {}  # cohort -> its live heap entry
        self._turns: list[tuple[int, int, tuple[int, int]]] = []  # (instant, entry, cohort)
        self._entries = itertools.count()

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._members

    @property
    def table_size(self) -> int:
        """How many EIDs the table holds (about members x (2 x margin + 1))."""
        return len(self._eids)

    def upsert(self, key: MemberKey, now: float) -> None:
        """Add a member or change their key; only this member's ids are computed."""
        self.advance(now)
        old = self._members.get(key.member_id)
        if old is not None:
            if old.key == key:
                return
            self.remove(key.member_id)
        member = _Member(key, phase=zlib.crc32(key.member_id.encode()))
        self._members[key.member_id] = member
        cohort = (key.rotation_exponent, key.clock_offset_s)
        members = self._cohorts.get(cohort)
        if members is None:
            members = self._cohorts[cohort] = set()
            self._schedule(cohort, key, now)
        members.add(key.member_id)
        self._fill(member, self._cohort_window[cohort])

    def upsert_many(self, keys: Iterable[MemberKey], now: float) -> None:
        for key in keys:
            self.upsert(key, now)

    def remove(self, member_id: str) -> None:
        member = self._members.pop(member_id, None)
        if member is None:
            return
        for eid in member.eids.values():
            self._eids.discard(eid, member_id)
            self._tokens.discard(eid[:TOKEN_LENGTH], member_id)
        cohort = (member.key.rotation_exponent, member.key.clock_offset_s)
        members = self._cohorts[cohort]
        members.discard(member_id)
        if not members:
            del self._cohorts[cohort]
            del self._cohort_window[cohort]
            del self._cohort_turn[cohort]

    def advance(self, now: float) -> int:
        """Bring every cohort whose window turned up to `now`; returns the members updated."""
        updated = 0
        while self._turns and self._turns[0][0] <= math.floor(now):
            _, entry, cohort = heapq.heappop(self._turns)
            members = self._cohorts.get(cohort)
            if members is None or self._cohort_turn[cohort] != entry:
                continue  # the cohort left, or came back with a turn of its own
            key = self._members[next(iter(members))].key
            self._schedule(cohort, key, now)
            window = self._cohort_window[cohort]
            for member_id in members:
                self._fill(self._members[member_id], window)
            updated += len(members)
        return updated

    def resolve_eid(self, eid: bytes) -> str | None:
        return self._lookup(self._eids, eid)

    def resolve_token(self, major: int, minor: int) -> str | None:
        return self._lookup(self._tokens, major.to_bytes(2, "big") + minor.to_bytes(2, "big"))

    def _lookup(self, index: _Index, key: bytes) -> str | None:
        member_id = index.unique.get(key)
        if member_id is None and key in index.clashes:
            self.stats.ambiguous += 1
        return member_id

    def _schedule(self, cohort: tuple[int, int], key: MemberKey, now: float) -> None:
        counter = key.counter_at(now)
        window = counter >> key.rotation_exponent
        self._cohort_window[cohort] = window
        turn = math.floor(now) + ((window + 1) << key.rotation_exponent) - counter
        entry = next(self._entries)
        self._cohort_turn[cohort] = entry
        heapq.heappush(self._turns, (turn, entry, cohort))

    def _fill(self, member: _Member, window: int) -> None:
        """Compute the member's missing ids around `window` and forget those outside it."""
        key = member.key
        eids = member.eids
        low, high = window - self.margin, window + self.margin
        windows = EID_COUNTER_MODULUS >> key.rotation_exponent
        if low >= 0 and high < windows:
            wanted: Iterable[int] = range(low, high + 1)
            stale = [w for w in eids if w < low or w > high]
        else:  # the 32-bit counter wraps inside the margin
            wanted = sorted({w % windows for w in range(low, high + 1)})
            stale = [w for w in eids if w not in wanted]
        member_id = key.member_id
        by_eid, by_token = self._eids, self._tokens  # this loop runs for every member
        for w in stale:
            eid = eids.pop(w)
            by_eid.discard(eid, member_id)
            by_token.discard(eid[:TOKEN_LENGTH], member_id)
        for w in wanted:
            if w not in eids:
                eid = eids[w] = self._eid_for(member, w)
                by_eid.add(eid, member_id)
                by_token.add(eid[:TOKEN_LENGTH], member_id)

    def _eid_for(self, member: _Member, window: int) -> bytes:
        """The member's EID for `window`, from the look-ahead batch or a fresh one."""
        offset = (window - member.ahead_window) * _BLOCK
        if 0 <= offset < len(member.ahead):
            return member.ahead[offset:offset + EID_LENGTH]
        key = member.key
        exponent = key.rotation_exponent
        # One AES call per temporary key for the next few windows. Batches end where a
        # per-member phase says, so members refill on different turns instead of all on
        # the same one, even after a restart or a jump of the clock; they run across
        # temporary-key changes so that those do not line the members up either.
        size = self.lookahead - (window + member.phase) % self.lookahead
        if size <= 2 * self.margin:
            size += self.lookahead
        last = min(window + size, EID_COUNTER_MODULUS >> exponent)
        windows_per_tk = 1 << (16 - exponent)
        parts: list[bytes] = []
        first = window
        while first < last:
            high = (first << exponent) >> 16
            if high != member.tk_high:
                member.tk = temporary_key(key.identity_key, first << exponent)
                member.tk_high = high
            end = min(last, (high + 1) * windows_per_tk)
            parts.append(_encrypt(member.tk, b"".join(
                _eid_block(exponent, w << exponent) for w in range(first, end))))
            first = end
        self.stats.computed += last - window
        member.ahead = b"".join(parts)
        member.ahead_window = window
        return member.ahead[:EID_LENGTH]
