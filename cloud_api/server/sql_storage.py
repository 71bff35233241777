"""`Storage` over SQL, for every backend: each method runs one operation of `operations`.

A backend supplies only its I/O: how an operation runs as one write transaction, as one
consistent read, or as a single statement, and its `Dialect`.
"""

from __future__ import annotations

import logging
import secrets
from abc import abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from cloud_api.server import coupons, tiers
from cloud_api.server import operations as ops
from cloud_api.server.codes import Code
from cloud_api.server.grants import GrantThrottle
from cloud_api.server.ids import hash_token, new_token
from cloud_api.server.phones import PhoneKeys
from cloud_api.server.queries import Dialect, Op, T
from cloud_api.server.storage import (
    ChangePage,
    Parsed,
    Principal,
    Scope,
    Storage,
    StorageError,
    Verdict,
    utc_now,
)
from gateway.loyalty import Basket, Entry, LoyaltyRules, new_code
from gateway.loyalty.wire import to_text

log = logging.getLogger(__name__)

# Members converted per transaction when central starts with a mall's phone key: a
# large mall's conversion does not hold the mall's writes up in one long transaction.
CONVERT_PAGE = 500


class SqlStorage(Storage):
    dialect: Dialect

    def __init__(self, *, rules: LoyaltyRules | None = None,
                 now: Callable[[], datetime] = utc_now,
                 phones: PhoneKeys | None = None,
                 coupon_keys: dict[str, bytes] | None = None) -> None:
        self.rules = rules or LoyaltyRules()
        self.now = now
        self.grants = GrantThrottle()
        self.phones = phones or PhoneKeys()
        # Each mall's coupon key (shared with its gateways); without one, codes central
        # issues are as random, tagged under a key that lasts this run.
        self.coupon_keys = coupon_keys or {}
        self._run_key = secrets.token_bytes(32)

    async def open(self) -> None:
        await self._connect()
        for mall_id in sorted(self.phones.hash_keys):
            await self._convert_clear_phones(mall_id)

    @abstractmethod
    async def _connect(self) -> None:
        """Open the database and bring its schema up to date."""

    async def _convert_clear_phones(self, mall_id: str) -> None:
        """Numbers an older central kept in clear in the mall's profiles become their
        keyed hash and masked form, now that central has the mall's key."""
        after: str | None = ""
        converted, left = 0, list[str]()
        while after is not None:
            after, done, kept = await self._write(ops.convert_clear_phones(
                self.dialect, mall_id, self.phones, after=after, limit=CONVERT_PAGE,
                at=self._stamp()))
            converted, left = converted + done, left + kept
        if converted:
            log.info("mall %s: %d phone numbers kept in clear converted to their keyed "
                     "hash", mall_id, converted)
        if left:
            log.warning("mall %s: %d members keep a phone field in clear that is no phone "
                        "number; correct them (PATCH phone): %s", mall_id, len(left),
                        ", ".join(left[:20]))

    @abstractmethod
    async def _write(self, op: Op[T]) -> T:
        """Run `op` as one write transaction; an exception rolls it back."""

    @abstractmethod
    async def _read(self, op: Op[T], *, consistent: bool = False) -> T:
        """Run a read-only `op`; `consistent`: all its queries see one snapshot."""

    def _stamp(self) -> str:
        return to_text(self.now()) or ""

    # -- credentials ------------------------------------------------------------------
    async def add_token(self, mall_id: str, scope: Scope, gateway_id: str | None) -> str:
        token = new_token()
        await self._write(ops.add_token(hash_token(token), mall_id, scope, gateway_id,
                                        self._stamp()))
        return token

    async def authenticate(self, token: str) -> Principal | None:
        return await self._read(ops.authenticate(hash_token(token)))

    # -- the gateways' events ---------------------------------------------------------
    async def accept_events(self, mall_id: str, origin: str,
                            items: Sequence[Parsed]) -> list[Verdict]:
        return await self._write(tiers.accept_batch(self.dialect, mall_id, origin, items,
                                                    self.now(), rules=self.rules))

    async def redeem_online(self, mall_id: str, burn: Entry) -> Verdict:
        return await self._write(ops.redeem_online(self.dialect, mall_id, burn, self.now()))

    async def changes(self, mall_id: str, after: int, limit: int,
                      exclude_origin: str | None) -> ChangePage:
        return await self._read(ops.changes(mall_id, after, limit, exclude_origin,
                                            grants=self.grants, rules=self.rules,
                                            now=self.now()),
                                consistent=True)

    async def head(self, mall_id: str) -> int:
        return await self._read(ops.head(mall_id))

    async def heartbeat(self, mall_id: str, gateway_id: str, status: dict[str, Any]) -> None:
        await self._write(ops.heartbeat(mall_id, gateway_id, status, self._stamp()))

    async def snapshot_lines(self, mall_id: str, kind: str, after_key: str,
                             limit: int) -> list[tuple[str, str]]:
        return await self._read(ops.snapshot_lines(self.dialect, mall_id, kind, after_key,
                                                   limit))

    # -- the back office --------------------------------------------------------------
    async def create_member(self, mall_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._write(ops.create_member(mall_id, body, self.phones,
                                                   self._stamp()))

    async def update_member(self, mall_id: str, member_id: str,
                            body: dict[str, Any]) -> dict[str, Any]:
        return await self._write(ops.update_member(self.dialect, mall_id, member_id, body,
                                                   phones=self.phones, at=self._stamp()))

    async def get_member(self, mall_id: str, member_id: str) -> dict[str, Any]:
        return await self._read(ops.get_member(mall_id, member_id, self.rules, self.phones,
                                               self.now()), consistent=True)

    async def find_members_by_phone(self, mall_id: str, number: str) -> list[dict[str, Any]]:
        phone_hash = self.phones.hash_for(mall_id, number)
        if phone_hash is None:
            raise StorageError(Code.PHONE_KEY_MISSING, f"central has no phone hash key for "
                               f"mall {mall_id}: members cannot be found by phone", 409)
        return await self._read(ops.find_members_by_phone(mall_id, phone_hash, self.phones))

    async def erase_member(self, mall_id: str, member_id: str) -> None:
        await self._write(ops.erase_member(self.dialect, mall_id, member_id, self._stamp()))

    async def put_document(self, mall_id: str, kind: str, key: str,
                           payload: dict[str, Any]) -> int:
        return await self._write(ops.put_document(mall_id, kind, key, payload,
                                                  self._stamp()))

    # -- coupons ----------------------------------------------------------------------
    async def put_campaign(self, mall_id: str, campaign_id: str,
                           definition: dict[str, Any]) -> dict[str, Any]:
        return await self._write(coupons.put_campaign(mall_id, campaign_id, definition,
                                                      self._stamp()))

    async def issue_coupons(self, mall_id: str, campaign_id: str,
                            body: dict[str, Any]) -> dict[str, Any]:
        return await self._write(coupons.issue(
            self.dialect, mall_id, campaign_id, body, new_code=self._new_code,
            now=self.now(), at=self._stamp()))

    def _new_code(self, mall: str) -> str:
        return new_code(self.coupon_keys.get(mall) or self._run_key, mall)

    async def member_coupons(self, mall_id: str, member_id: str) -> list[dict[str, Any]]:
        return await self._read(coupons.member_coupons(mall_id, member_id, self.now()),
                                consistent=True)

    async def redeem_coupon(self, mall_id: str, code: str, *, redemption_id: str,
                            member_id: str | None, basket: Basket) -> dict[str, Any]:
        return await self._write(coupons.redeem(
            self.dialect, mall_id, code, redemption_id=redemption_id, member_id=member_id,
            basket=basket, now=self.now(), at=self._stamp()))

    async def void_coupon(self, mall_id: str, coupon_id: str, reason: str) -> dict[str, Any]:
        return await self._write(coupons.void(self.dialect, mall_id, coupon_id, reason=reason,
                                              now=self.now(), at=self._stamp()))

    async def mall_ids(self) -> list[str]:
        return await self._read(ops.mall_ids())

    async def review_tiers(self, mall_id: str) -> int:
        return await self._write(tiers.review_anniversaries(self.dialect, mall_id, self.rules,
                                                            self.now(), self._stamp()))

    async def purge_changes(self, mall_id: str, older_than_s: float) -> int:
        cutoff = to_text(self.now() - timedelta(seconds=older_than_s)) or ""
        return await self._write(ops.purge_changes(mall_id, cutoff))
