"""`Storage` over SQL, for every backend: each method runs one operation of `operations`.

A backend supplies only its I/O: how an operation runs as one write transaction, as one
consistent read, or as a single statement, and its `Dialect`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from cloud_api.server import operations as ops
from cloud_api.server.grants import GrantThrottle
from cloud_api.server.ids import hash_token, new_token
from cloud_api.server.queries import Dialect, Op, T
from cloud_api.server.storage import (
    ChangePage,
    Parsed,
    Principal,
    Scope,
    Storage,
    Verdict,
    utc_now,
)
from gateway.loyalty import Entry, LoyaltyRules
from gateway.loyalty.wire import to_text


class SqlStorage(Storage):
    dialect: Dialect

    def __init__(self, *, rules: LoyaltyRules | None = None,
                 now: Callable[[], datetime] = utc_now) -> None:
        self.rules = rules or LoyaltyRules()
        self.now = now
        self.grants = GrantThrottle()

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
        return await self._write(ops.accept_batch(self.dialect, mall_id, origin, items,
                                                  self.now()))

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
        return await self._write(ops.create_member(mall_id, body, self._stamp()))

    async def update_member(self, mall_id: str, member_id: str,
                            body: dict[str, Any]) -> dict[str, Any]:
        return await self._write(ops.update_member(self.dialect, mall_id, member_id, body,
                                                   self._stamp()))

    async def get_member(self, mall_id: str, member_id: str) -> dict[str, Any]:
        return await self._read(ops.get_member(mall_id, member_id, self.rules, self.now()),
                                consistent=True)

    async def erase_member(self, mall_id: str, member_id: str) -> None:
        await self._write(ops.erase_member(self.dialect, mall_id, member_id, self._stamp()))

    async def put_document(self, mall_id: str, kind: str, key: str,
                           payload: dict[str, Any]) -> int:
        return await self._write(ops.put_document(mall_id, kind, key, payload,
                                                  self._stamp()))

    async def mall_ids(self) -> list[str]:
        return await self._read(ops.mall_ids())

    async def purge_changes(self, mall_id: str, older_than_s: float) -> int:
        cutoff = to_text(self.now() - timedelta(seconds=older_than_s)) or ""
        return await self._write(ops.purge_changes(mall_id, cutoff))
