"""What the central server stores, behind one interface with a SQLite and a PostgreSQL side.

The handlers speak only to `Storage`; each backend keeps the same guarantees:

- an accepted event writes its ledger row, the account projection and its change-log row
  atomically, and gets the mall's next `server_seq`;
- `entry_id` and the natural key `(source_type, source_key, kind)` are unique forever, so a
  retried, replayed or doubly delivered event is a duplicate with its first `server_seq`;
- the change log (tombstones included) is kept for the retention period; a cursor older
  than what was purged is expired.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cloud_api.server.activity import (
    ACTIVITY_TYPES,
    Activity,
    InvalidActivity,
    parse_activity,
)
from gateway.loyalty import Entry, LoyaltyError
from gateway.loyalty.wire import entry_from_wire, entry_to_wire

Scope = Literal["gateway", "admin"]
VerdictStatus = Literal["accepted", "duplicate", "rejected"]

# How often a gateway gets a fresh offline allowance for one account, at most.
GRANT_REFRESH_S = 30.0
GRANT_MEMORY = 200_000  # (gateway, account) pairs remembered before old ones are dropped

# The kinds of identifier a member can be recognised by at the edge (as in the edge schema).
IDENTIFIER_KINDS = frozenset({"card", "phone_hash", "qr_token", "ble_key"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a bearer token speaks for: a gateway of a mall, or a mall's back office."""

    mall_id: str
    scope: Scope
    gateway_id: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    event_id: str
    status: VerdictStatus
    server_seq: int | None = None
    code: str | None = None
    message: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"event_id": self.event_id, "status": self.status}
        if self.server_seq is not None:
            body["server_seq"] = self.server_seq
        if self.code is not None:
            body["code"], body["message"] = self.code, self.message
        return body


@dataclass(frozen=True, slots=True)
class Change:
    """One operation of the change feed, in `server_seq` order."""

    server_seq: int
    kind: str  # member.upsert | member.erased | ledger.entry | offer.upsert | config.version
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChangePage:
    changes: list[Change]
    next_cursor: int
    head: int
    allowances: dict[str, int] = field(default_factory=dict)


class StorageError(Exception):
    """A storage-level refusal with a stable code for the API's error body."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class NotFound(StorageError):
    def __init__(self, what: str) -> None:
        super().__init__("not_found", f"{what} not found", 404)


class CursorTooOld(StorageError):
    def __init__(self, cursor: int, oldest: int) -> None:
        super().__init__("cursor_expired",
                         f"cursor {cursor} is older than the retained change log "
                         f"(starts after {oldest}); resync from the snapshot", 410)


def hash_token(token: str) -> str:
    """Tokens are stored only as this hash: a leaked database holds no usable credential."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "mgt_" + secrets.token_urlsafe(32)


def mask_name(name: str | None) -> str | None:
    """What the edge may show: the first character, the rest hidden."""
    if not name:
        return None
    return name[0] + "*" * min(len(name) - 1, 3) if len(name) > 1 else name


PROFILE_FIELDS = ("name", "phone", "tier", "tier_anniversary", "birth_month", "birth_day",
                  "tags", "opt_outs", "identifiers")


def utc_now() -> datetime:
    return datetime.now(UTC)


def edge_view(member_id: str, account_id: str, profile: dict[str, Any],
              version: int) -> dict[str, Any]:
    """What a gateway receives about a member: no name, no phone number."""
    return {
        "member_id": member_id, "account_id": account_id,
        "display_name_masked": mask_name(profile.get("name")),
        "tier": profile.get("tier") or "normal",
        "tier_anniversary": profile.get("tier_anniversary"),
        "birth_month": profile.get("birth_month"), "birth_day": profile.get("birth_day"),
        "tags": profile.get("tags") or [], "opt_outs": profile.get("opt_outs") or [],
        "identifiers": profile.get("identifiers") or [], "version": version,
    }


def check_profile(body: dict[str, Any]) -> dict[str, Any]:
    unknown = set(body) - set(PROFILE_FIELDS) - {"member_id", "account_id"}
    if unknown:
        raise StorageError("invalid_member", f"unknown fields: {', '.join(sorted(unknown))}")
    for ident in body.get("identifiers") or []:
        if not isinstance(ident, dict) or ident.get("kind") not in IDENTIFIER_KINDS \
                or not isinstance(ident.get("value"), str) or not ident["value"]:
            raise StorageError("invalid_member",
                               f"identifiers need a kind in {sorted(IDENTIFIER_KINDS)} "
                               "and a value")
    month, day = body.get("birth_month"), body.get("birth_day")
    if (month is None) != (day is None):
        raise StorageError("invalid_member", "birth_month and birth_day go together")
    return {k: body[k] for k in PROFILE_FIELDS if k in body}


def snapshot_line(kind: str, key: str, data_json: str, server_seq: int | None = None) -> str:
    seq = "" if server_seq is None else f',"server_seq":{server_seq}'
    return f'{{"type":"{kind}","key":{json.dumps(key)}{seq},"data":{data_json}}}'


def view_json(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False, separators=(",", ":"))


def to_grant(others: set[str], own: set[str], caught_up: bool) -> set[str]:
    """Accounts whose offline allowance a change page grants afresh.

    Accounts touched by other channels always (their spending must reach the edge's
    limit). Accounts touched only by the gateway's own entries only once it is caught up:
    a stale grant is safe (the edge subtracts its burns central had not counted), and
    folding every account of a bulk backlog page by page would cost central dearly.
    """
    return others | own if caught_up else set(others)


class GrantThrottle:
    """At most one fresh allowance per gateway and account every `every_s` seconds.

    Granting folds the account's whole ledger. A stale grant is safe (the edge subtracts
    every burn central had not counted when it granted), so a gateway draining a backlog,
    or a busy account, does not make central fold the same ledgers page after page.
    """

    def __init__(self, every_s: float = GRANT_REFRESH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def due(self, gateway: str, accounts: set[str]) -> list[str]:
        now = self._clock()
        if len(self._last) > GRANT_MEMORY:
            self._last = {k: t for k, t in self._last.items() if now - t < self.every_s}
        due = []
        for account in sorted(accounts):
            last = self._last.get((gateway, account))
            if last is None or now - last >= self.every_s:
                self._last[(gateway, account)] = now
                due.append(account)
        return due


def _activity(event_id: str, event_type: str, event: dict[str, Any]) -> Activity | Verdict:
    try:
        return parse_activity(event.get("event_id"), event_type, event.get("payload"))
    except InvalidActivity as exc:
        return Verdict(event_id, "rejected", code="invalid_event", message=str(exc))


def parse_event(event: dict[str, Any]) -> Entry | Activity | Verdict:
    """The entry or activity an event carries, or the rejection it earns (the same on
    every backend)."""
    event_id = str(event.get("event_id", ""))
    event_type = event.get("type")
    if isinstance(event_type, str) and event_type in ACTIVITY_TYPES:
        return _activity(event_id, event_type, event)
    if event_type != "ledger.entry":
        return Verdict(event_id, "rejected", code="unknown_type",
                       message=f"unknown event type {event_type!r}")
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return Verdict(event_id, "rejected", code="invalid_entry",
                       message="payload must be an object")
    try:
        entry = entry_from_wire(payload)
    except (LoyaltyError, ValueError, TypeError, KeyError) as exc:
        return Verdict(event_id, "rejected", code="invalid_entry", message=str(exc))
    if entry.entry_id != event_id:
        return Verdict(event_id, "rejected", code="invalid_entry",
                       message="event_id is not the entry's id")
    return entry


class Storage(ABC):
    """Central's persistent state. Every method is a coroutine; backends own their I/O."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    # -- credentials ------------------------------------------------------------------
    @abstractmethod
    async def add_token(self, mall_id: str, scope: Scope, gateway_id: str | None) -> str:
        """A new token for the mall's gateway (or back office); only its hash is stored."""

    @abstractmethod
    async def authenticate(self, token: str) -> Principal | None: ...

    # -- the gateways' events ---------------------------------------------------------
    @abstractmethod
    async def accept_events(self, mall_id: str, origin: str,
                            events: list[dict[str, Any]]) -> list[Verdict]:
        """Apply each event atomically and alone; one bad event never fails the others."""

    @abstractmethod
    async def changes(self, mall_id: str, after: int, limit: int,
                      exclude_origin: str | None) -> ChangePage: ...

    @abstractmethod
    async def head(self, mall_id: str) -> int: ...

    @abstractmethod
    async def heartbeat(self, mall_id: str, gateway_id: str, status: dict[str, Any]) -> None: ...

    @abstractmethod
    async def snapshot_lines(self, mall_id: str, kind: str, after_key: str,
                             limit: int) -> list[tuple[str, str]]:
        """`(key, NDJSON line)` of the current state (`member` or `ledger`) after a key, in
        key order; lines are built from stored JSON text, not re-encoded."""

    # -- the back office --------------------------------------------------------------
    @abstractmethod
    async def create_member(self, mall_id: str, body: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    async def update_member(self, mall_id: str, member_id: str,
                            body: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    async def get_member(self, mall_id: str, member_id: str) -> dict[str, Any]:
        """The member's profile, balance, flagged debt and every ledger entry."""

    @abstractmethod
    async def erase_member(self, mall_id: str, member_id: str) -> None: ...

    @abstractmethod
    async def put_document(self, mall_id: str, kind: str, key: str,
                           payload: dict[str, Any]) -> int:
        """Publish an offer (`offer`) or a configuration version (`config`) to the malls'
        gateways; returns its `server_seq`."""

    async def record_central(self, mall_id: str, entry: Entry) -> Verdict:
        """An entry made centrally (online redemption, adjustment), sequenced like any other."""
        event = {"event_id": entry.entry_id, "type": "ledger.entry",
                 "payload": entry_to_wire(entry)}
        (verdict,) = await self.accept_events(mall_id, "central", [event])
        return verdict

    @abstractmethod
    async def mall_ids(self) -> list[str]: ...

    @abstractmethod
    async def purge_changes(self, mall_id: str, older_than_s: float) -> int:
        """Drop change-log rows older than the retention; returns how many went."""
