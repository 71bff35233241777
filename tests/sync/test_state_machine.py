"""Two gateways, central and a lossy network, driven by hypothesis in any order.

Whatever is recorded where, whatever replies are lost and whenever each gateway pushes or
pulls, once the network heals and both gateways sync, central and both gateways hold the
same entries exactly once and agree on every balance: the fold of the union.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from cloud_api.client import CentralClient
from cloud_api.errors import CentralError
from cloud_api.server.sqlite_store import SqliteStorage
from gateway.loyalty import Entry, EntryKind, fold
from gateway.settings.sync import SyncSettings
from tests.cloud_api.central import MALL, Central, start_central
from tests.scale import examples
from tests.sync.edge import FAST, Edge, open_edge
from tests.sync.faults import Faults

T = TypeVar("T")
MEMBERS = {"M0": "A0", "M1": "A1", "M2": "A2"}
GATEWAYS = ("gw-a", "gw-b")
T0 = datetime(2026, 5, 1, 4, tzinfo=UTC)
# Small batches, so a push of everything pending goes in several overlapping batches.
SETTINGS = SyncSettings(**{**FAST.model_dump(), "batch_max_events": 3})


def fact(kind: EntryKind, points: int, member: str, key: str, minute: int) -> Entry:
    return Entry(kind=kind, points=points, account_id=MEMBERS[member], member_id=member,
                 source_type="sm", source_key=key, reason=key,
                 effective_at=T0 + timedelta(minutes=minute), rule_version="t")


class SyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.stack = contextlib.AsyncExitStack()
        self.tmp = Path(tempfile.mkdtemp(prefix="mallgate-sm-"))
        self.faults = Faults()
        self.edges: dict[str, Edge] = {}
        self.minute = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    @initialize()
    def start(self) -> None:
        async def start() -> None:
            central = await start_central(SqliteStorage(self.tmp / "central.db"),
                                          middlewares=[self.faults.middleware()])
            self.stack.push_async_callback(central.stop)
            self.central: Central = central
            self.admin = await self.stack.enter_async_context(
                CentralClient(central.url, central.admin_token, timeout_s=5))
            for member, account in MEMBERS.items():
                await self.admin.create_member(MALL, {"member_id": member,
                                                      "account_id": account})
            for gateway in GATEWAYS:
                token = await central.storage.add_token(MALL, "gateway", gateway)
                self.edges[gateway] = await self.stack.enter_async_context(open_edge(
                    self.tmp / f"{gateway}.db", central.url, token, gateway_id=gateway,
                    settings=SETTINGS))
        self.run(start())

    def _next_minute(self) -> int:
        self.minute += 1
        return self.minute

    @rule(gateway=st.sampled_from(GATEWAYS), member=st.sampled_from(sorted(MEMBERS)),
          points=st.integers(1, 50))
    def earn(self, gateway: str, member: str, points: int) -> None:
        minute = self._next_minute()
        self.run(self.edges[gateway].ledger.record(
            fact(EntryKind.EARN, points, member, f"{gateway}:earn:{minute}", minute)))

    @rule(gateway=st.sampled_from(GATEWAYS), member=st.sampled_from(sorted(MEMBERS)),
          day=st.integers(0, 2))
    def check_in(self, gateway: str, member: str, day: int) -> None:
        """The same fact at both gateways (one check-in a day): recorded once centrally."""
        self.run(self.edges[gateway].ledger.record(
            fact(EntryKind.EARN, 5, member, f"checkin:{member}:{day}", day * 1440)))

    @rule(gateway=st.sampled_from(GATEWAYS), member=st.sampled_from(sorted(MEMBERS)),
          cost=st.integers(1, 80))
    def redeem_offline(self, gateway: str, member: str, cost: int) -> None:
        minute = self._next_minute()
        self.run(self.edges[gateway].ledger.record(
            fact(EntryKind.BURN, -cost, member, f"{gateway}:burn:{minute}", minute)))

    @rule(member=st.sampled_from(sorted(MEMBERS)), points=st.integers(1, 30))
    def central_gift(self, member: str, points: int) -> None:
        minute = self._next_minute()
        self.faults.plan.clear()  # the back office's own calls are not on the lossy link
        self.run(self.admin.adjust(MALL, member, request_id=f"gift:{minute}", points=points,
                                   reason="gift"))

    @rule(fault=st.sampled_from(["lost", "5xx", "lost"]))
    def lossy_network(self, fault: str) -> None:
        self.faults.plan.append(fault)

    @rule(gateway=st.sampled_from(GATEWAYS))
    def push(self, gateway: str) -> None:
        with contextlib.suppress(CentralError):
            self.run(self.edges[gateway].engine.push_once())

    @rule(gateway=st.sampled_from(GATEWAYS))
    def push_everything(self, gateway: str) -> None:
        with contextlib.suppress(CentralError):
            self.run(self.edges[gateway].engine.push())

    @rule(gateway=st.sampled_from(GATEWAYS))
    def pull(self, gateway: str) -> None:
        with contextlib.suppress(CentralError):
            self.run(self.edges[gateway].engine.pull_once())

    @invariant()
    def local_balances_never_hide_local_entries(self) -> None:
        for edge in self.edges.values():
            for account in MEMBERS.values():
                balance = self.run(edge.ledger.balance(account))
                assert balance.available == balance.confirmed + balance.pending

    def teardown(self) -> None:
        try:
            if self.edges:
                self.run(self.converge())
        finally:
            self.run(self.stack.aclose())
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    async def converge(self) -> None:
        self.faults.plan.clear()
        for _ in range(2):  # the second round brings each gateway the other's entries
            for edge in self.edges.values():
                await edge.engine.sync_now()
        union: dict[str, Entry] = {}
        for edge in self.edges.values():
            assert await edge.scalar("SELECT count(*) FROM outbox") == 0
            for account in MEMBERS.values():
                union.update((e.entry_id, e) for e, _ in await edge.ledger.entries(account))
        for member, account in MEMBERS.items():
            central = await self.admin.get_member(MALL, member)
            ids = [e["entry_id"] for e in central["ledger"]]
            assert len(ids) == len(set(ids))
            expected = fold([e for e in union.values() if e.account_id == account],
                            datetime.now(UTC), journal=False).available
            assert central["balance"]["available"] == expected
            for edge in self.edges.values():
                balance = await edge.ledger.balance(account)
                local_ids = {e.entry_id for e, _ in await edge.ledger.entries(account)}
                assert local_ids == set(ids)
                assert (balance.available, balance.pending) == (expected, 0)


SyncMachine.TestCase.settings = settings(
    max_examples=examples(6), stateful_step_count=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestSyncStateMachine = SyncMachine.TestCase
