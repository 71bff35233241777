"""What the central server stores, behind one interface with a SQLite and a PostgreSQL side.

The handlers speak only to `Storage`; each backend keeps the same guarantees:

- an accepted event writes its ledger row, the account projection and its change-log row
  atomically, and gets the mall's next `server_seq`;
- `entry_id` and the natural key `(source_type, source_key, kind)` are unique forever, so a
  retried, replayed or doubly delivered event is a duplicate with its first `server_seq`;
- the change log (tombstones included) is kept for the retention period; a cursor older
  than what was purged is expired;
- an online redemption checks the balance and records its burn in one transaction, so
  racing redemptions (in one worker or several) never spend the same points twice.

`sql_storage.SqlStorage` holds the one implementation; each backend adds only its I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cloud_api.server.activity import Activity
from cloud_api.server.codes import Code
from gateway.loyalty import Basket, Entry

Scope = Literal["gateway", "admin"]
VerdictStatus = Literal["accepted", "duplicate", "rejected"]


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

    def __init__(self, code: Code, message: str, status: int = 400, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.details = details


class NotFound(StorageError):
    def __init__(self, what: str) -> None:
        super().__init__(Code.NOT_FOUND, f"{what} not found", 404)


class CursorTooOld(StorageError):
    def __init__(self, cursor: int, oldest: int) -> None:
        super().__init__(Code.CURSOR_EXPIRED,
                         f"cursor {cursor} is older than the retained change log "
                         f"(starts after {oldest}); resync from the snapshot", 410)


def utc_now() -> datetime:
    return datetime.now(UTC)


CENTRAL_ORIGIN = "central"


# A pushed event once checked: the entry or activity it carries, or its rejection.
Parsed = Entry | Activity | Verdict


def parsed_id(item: Parsed) -> str:
    return item.entry_id if isinstance(item, Entry) else item.event_id


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
                            items: Sequence[Parsed]) -> list[Verdict]:
        """Apply each checked event atomically and alone (a rejection is its verdict);
        one bad event never fails the others."""

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
    async def find_members_by_phone(self, mall_id: str, number: str) -> list[dict[str, Any]]:
        """The mall's members (not erased) with this phone number, found by its keyed
        hash; `StorageError` `phone_key_missing` if central has no key for the mall."""

    @abstractmethod
    async def erase_member(self, mall_id: str, member_id: str) -> None: ...

    @abstractmethod
    async def put_document(self, mall_id: str, kind: str, key: str,
                           payload: dict[str, Any]) -> int:
        """Publish an offer (`offer`) or a configuration version (`config`) to the malls'
        gateways; returns its `server_seq`."""

    async def record_central(self, mall_id: str, entry: Entry) -> Verdict:
        """An entry made centrally (an adjustment), sequenced like any other."""
        (verdict,) = await self.accept_events(mall_id, CENTRAL_ORIGIN, [entry])
        return verdict

    @abstractmethod
    async def redeem_online(self, mall_id: str, burn: Entry) -> Verdict:
        """Record an online redemption's BURN if the account's available balance covers it,
        checked and written in one transaction that no other write of the account
        interleaves with; `InsufficientPoints` otherwise. A burn central already has is a
        duplicate, whatever the balance is now."""

    # -- coupons ----------------------------------------------------------------------
    @abstractmethod
    async def put_campaign(self, mall_id: str, campaign_id: str,
                           definition: dict[str, Any]) -> dict[str, Any]:
        """Define (or redefine) a coupon campaign; `StorageError` if it makes none."""

    @abstractmethod
    async def issue_coupons(self, mall_id: str, campaign_id: str,
                            body: dict[str, Any]) -> dict[str, Any]:
        """Issue the campaign's coupons to members by list, tier or tags, within its
        limits; each coupon goes down the change feed."""

    @abstractmethod
    async def member_coupons(self, mall_id: str, member_id: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def redeem_coupon(self, mall_id: str, code: str, *, redemption_id: str,
                            member_id: str | None, basket: Basket) -> dict[str, Any]:
        """Redeem a coupon online, once: checked and recorded in one transaction that
        holds the coupon; `StorageError` `coupon_refused` with the reason otherwise."""

    @abstractmethod
    async def void_coupon(self, mall_id: str, coupon_id: str, reason: str) -> dict[str, Any]: ...

    @abstractmethod
    async def review_tiers(self, mall_id: str) -> int:
        """Review the tiers whose anniversary is over (one step down, or another year),
        sending each changed member down; returns how many were downgraded."""

    @abstractmethod
    async def mall_ids(self) -> list[str]: ...

    @abstractmethod
    async def purge_changes(self, mall_id: str, older_than_s: float) -> int:
        """Drop change-log rows older than the retention; returns how many went."""
