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
from cloud_api.server.notice_ops import Claimed
from gateway.loyalty import Basket, Entry, RuleBook

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


@dataclass(frozen=True, slots=True)
class PublishedRules:
    """What publishing a loyalty rules version answers: the version as kept, and whether
    it was kept before (`duplicate`: the same content again, with its first `server_seq`)."""

    server_seq: int
    version: str
    effective_at: str
    duplicate: bool

    def as_json(self) -> dict[str, Any]:
        return {"server_seq": self.server_seq, "version": self.version,
                "effective_at": self.effective_at, "duplicate": self.duplicate}


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
    async def create_member(self, mall_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """The member as stored, with the entries its creation granted (`rewards`: the
        new-member gift, a referral's both sides, the profile task)."""

    @abstractmethod
    async def update_member(self, mall_id: str, member_id: str,
                            body: dict[str, Any]) -> dict[str, Any]:
        """The member's new version, with the profile task in `rewards` if this update
        completed the profile."""

    @abstractmethod
    async def get_member(self, mall_id: str, member_id: str) -> dict[str, Any]:
        """The member's profile, balance, flagged debt and every ledger entry."""

    @abstractmethod
    async def find_members_by_phone(self, mall_id: str, number: str) -> list[dict[str, Any]]:
        """The mall's members (not erased) with this phone number, found by its keyed
        hash; `StorageError` `phone_key_missing` if central has no key for the mall."""

    @abstractmethod
    async def erase_member(self, mall_id: str, member_id: str) -> None: ...

    # -- enrolment at a kiosk (`enrolment.py`) -----------------------------------------
    @abstractmethod
    async def new_enrolment_code(self, mall_id: str, number: str) -> tuple[str, datetime]:
        """A new one-time code for the number (replacing its last one) and its expiry;
        only the code's keyed hash is kept. The caller sends it."""

    @abstractmethod
    async def enrol(self, mall_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The member an enrolment names (its edge view) and whether it was created now;
        `StorageError` `invalid_code`, `code_expired` or `too_many_attempts`."""

    @abstractmethod
    async def put_document(self, mall_id: str, kind: str, key: str,
                           payload: dict[str, Any]) -> int:
        """Publish an offer (`offer`) or a configuration version (`config`) to the malls'
        gateways; returns its `server_seq`."""

    @abstractmethod
    async def publish_rules(self, mall_id: str, version: object, payload: object,
                            effective_at: object) -> PublishedRules:
        """Publish a loyalty rules version (in force from `effective_at`, ISO-8601 text;
        None: now) after checking it (`StorageError` `invalid_rules` says why not); with
        its `server_seq`, the first one for a version republished as it was (with no
        effective time: with the same rules, whatever time they were first given)."""

    @abstractmethod
    async def list_rules(self, mall_id: str) -> list[dict[str, Any]]:
        """The mall's rules versions by effective time, without their rules: `version`,
        `effective_at`, `server_seq`, `published_at` and `in_force` (now)."""

    @abstractmethod
    async def rule_documents(self, mall_id: str) -> list[dict[str, Any]]:
        """Every rules version of the mall as the change feed sends it, oldest first."""

    @abstractmethod
    async def rule_book(self, mall_id: str) -> RuleBook:
        """The mall's rules versions over the server's own rules."""

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
    async def checkin(self, mall_id: str, member_id: str) -> tuple[Entry, Verdict]:
        """The member's check-in of today (the same entry id as a kiosk's check-in): the
        entry as central holds it and its verdict (`duplicate`: already checked in)."""

    @abstractmethod
    async def grant_birthdays(self, mall_id: str) -> list[Entry]:
        """The year's birthday gift to every member of the mall whose birthday window is
        today; returns the gifts that were new (granted before, here or at a gateway:
        nothing)."""

    @abstractmethod
    async def review_tiers(self, mall_id: str) -> int:
        """Review the tiers whose anniversary is over (one step down, or another year),
        sending each changed member down; returns how many were downgraded."""

    @abstractmethod
    async def mall_ids(self) -> list[str]: ...

    @abstractmethod
    async def purge_changes(self, mall_id: str, older_than_s: float) -> int:
        """Drop change-log rows older than the retention; returns how many went."""

    # -- member notices and their webhook deliveries (`notices.py`, `delivery.py`) ------
    @abstractmethod
    async def notices(self, mall_id: str, member_id: str | None, after: int,
                      limit: int) -> tuple[list[dict[str, Any]], int]:
        """A page of the mall's notices (or a member's) after the cursor, and the next
        cursor."""

    @abstractmethod
    async def find_expiry_reminders(self, mall_id: str) -> int:
        """Keep the `points.expiring` notices due by now for every account of the mall;
        returns how many were new (a reminder already kept is not kept again)."""

    @abstractmethod
    async def queue_deliveries(self, mall_id: str, webhook: str, limit: int) -> int:
        """Queue the webhook's delivery of notices it has not had yet; how many."""

    @abstractmethod
    async def claim_deliveries(self, mall_id: str, webhook: str, *, owner: str,
                               lease_s: float, limit: int) -> list[Claimed]:
        """Take the lease of the webhook's due deliveries for `lease_s`."""

    @abstractmethod
    async def delivered(self, mall_id: str, webhook: str, notice_id: str) -> None: ...

    @abstractmethod
    async def delivery_failed(self, mall_id: str, webhook: str, notice_id: str, *,
                              owner: str, error: str, retry_in_s: float | None) -> bool:
        """An attempt failed: retried in `retry_in_s`, or dead (None)."""

    @abstractmethod
    async def dead_deliveries(self, mall_id: str, limit: int) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def retry_dead(self, mall_id: str, notice_ids: Sequence[str] | None) -> int:
        """Dead deliveries (all, or of these notices) pending again; how many."""

    @abstractmethod
    async def delivery_counts(self, mall_id: str) -> dict[str, dict[str, int]]: ...

    @abstractmethod
    async def purge_notices(self, mall_id: str, older_than_s: float) -> int:
        """Drop notices older than the retention whose deliveries are all over; how many."""
