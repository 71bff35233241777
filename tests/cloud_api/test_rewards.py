"""Rewards that events at central grant, each once: through the API of a real central over
loopback, on SQLite and PostgreSQL, with a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from cloud_api.client import CentralClient
from cloud_api.errors import CentralRejected
from cloud_api.server.app import create_central_app
from cloud_api.server.postgres_store import PostgresStorage
from cloud_api.server.sqlite_store import SqliteStorage
from cloud_api.server.storage import Storage
from gateway.loyalty import LoyaltyRules, birthday_entry, checkin_entry
from gateway.loyalty.rules import BirthdayRules, CheckinRules, TaskRules
from gateway.loyalty.versions import rules_document
from tests.cloud_api.central import GATEWAY, MALL, Central, event, running_central
from tests.cloud_api.pg import fresh_database
from tests.conftest import free_port
from tests.sync.clock import FakeClock

RULES = LoyaltyRules(
    tasks=TaskRules(new_member_points=30, referrer_points=100, referee_points=50,
                    profile_completed_points=40),
    checkin=CheckinRules(points=5), birthday=BirthdayRules(points=200, window="month"))
# 12:00 in Shanghai on 10 May 2026.
START = datetime(2026, 5, 10, 4, tzinfo=UTC)


@dataclass
class Mall:
    central: Central
    admin: CentralClient
    gateway: CentralClient
    clock: FakeClock

    @property
    def storage(self) -> Storage:
        return self.central.storage

    async def ledger(self, member_id: str) -> list[dict[str, object]]:
        state = await self.admin.get_member(MALL, member_id)
        ledger: list[dict[str, object]] = state["ledger"]
        return ledger

    async def available(self, member_id: str) -> int:
        return int((await self.admin.get_member(MALL, member_id))["balance"]["available"])


async def new_storage(request: pytest.FixtureRequest, tmp_path: Path,
                      clock: FakeClock) -> Storage:
    if request.param == "postgres":
        dsn = await fresh_database(request.getfixturevalue("postgres_server"))
        return PostgresStorage(dsn, rules=RULES, now=clock.now)
    return SqliteStorage(tmp_path / "central.db", rules=RULES, now=clock.now)


@pytest.fixture(params=["sqlite", "postgres"])
async def mall(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Mall]:
    clock = FakeClock(START)
    storage = await new_storage(request, tmp_path, clock)
    async with running_central(storage) as central, \
            CentralClient(central.url, central.admin_token, timeout_s=5) as admin, \
            CentralClient(central.url, central.gateway_token, timeout_s=5) as gateway:
        yield Mall(central, admin, gateway, clock)


def sources(ledger: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    return sorted((e["source_type"], e["source_key"], e["points"]) for e in ledger)


async def test_a_new_member_gets_the_gift_once_and_a_referral_rewards_both(
    mall: Mall,
) -> None:
    inviter = await mall.admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    assert [(r["source_type"], r["points"]) for r in inviter["rewards"]] == [
        ("gift.new_member", 30)]
    friend = await mall.admin.create_member(
        MALL, {"member_id": "M2", "account_id": "A2", "referrer": "M1"})
    assert sorted((r["source_type"], r["member_id"], r["points"])
                  for r in friend["rewards"]) == [
        ("gift.new_member", "M2", 30), ("task.referee", "M2", 50),
        ("task.referrer", "M1", 100)]
    assert await mall.available("M1") == 130
    assert await mall.available("M2") == 80
    assert sources(await mall.ledger("M1")) == [
        ("gift.new_member", "M1", 30), ("task.referrer", "M1:M2", 100)]
    # The gateway receives every grant down the change feed, once.
    page = await mall.gateway.changes(GATEWAY, 0)
    granted = sorted(c["payload"]["source_type"] for c in page.changes
                     if c["kind"] == "ledger.entry")
    assert granted == ["gift.new_member", "gift.new_member", "task.referee", "task.referrer"]


async def test_an_unknown_or_own_referrer_is_refused_and_creates_nothing(mall: Mall) -> None:
    await mall.admin.create_member(MALL, {"member_id": "M1"})
    for referrer in ("NOBODY", "M2"):
        with pytest.raises(CentralRejected) as refused:
            await mall.admin.create_member(MALL, {"member_id": "M2", "referrer": referrer})
        assert refused.value.status == 400 and refused.value.code == "invalid_member"
        assert refused.value.details["field"] == "referrer"
    with pytest.raises(CentralRejected) as later:
        await mall.admin.update_member(MALL, "M1", {"referrer": "M1"})
    assert later.value.code == "invalid_member"
    created = await mall.admin.create_member(MALL, {"member_id": "M2"})  # the id is free
    assert [r["source_type"] for r in created["rewards"]] == ["gift.new_member"]


async def test_the_profile_task_is_granted_when_an_update_completes_the_profile(
    mall: Mall,
) -> None:
    await mall.admin.create_member(MALL, {"member_id": "M1", "name": "张三"})
    partial = await mall.admin.update_member(MALL, "M1", {"phone": "13800138000"})
    assert partial["rewards"] == []
    completed = await mall.admin.update_member(MALL, "M1",
                                               {"birth_month": 3, "birth_day": 9})
    assert [(r["source_type"], r["source_key"], r["points"])
            for r in completed["rewards"]] == [("task.profile", "M1", 40)]
    again = await mall.admin.update_member(MALL, "M1", {"name": "张三丰"})
    assert again["rewards"] == []
    assert await mall.available("M1") == 30 + 40


async def test_a_member_who_joins_with_a_complete_profile_has_done_the_task(
    mall: Mall,
) -> None:
    created = await mall.admin.create_member(MALL, {
        "member_id": "M1", "name": "李四", "phone": "13900139000", "birth_month": 1,
        "birth_day": 2})
    assert sorted(r["source_type"] for r in created["rewards"]) == [
        "gift.new_member", "task.profile"]


async def test_mini_program_check_in_once_a_local_day_and_with_the_kiosks_id(
    mall: Mall,
) -> None:
    await mall.admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    first = await mall.admin.checkin(MALL, "M1")
    assert first["verdict"]["status"] == "accepted"
    assert (first["date"], first["points"]) == ("2026-05-10", 5)
    assert first["balance"]["available"] == 35
    second = await mall.admin.checkin(MALL, "M1")
    assert second["verdict"]["status"] == "duplicate"
    assert second["entry"]["entry_id"] == first["entry"]["entry_id"]
    assert second["balance"]["available"] == 35
    # A kiosk's check-in of the next local day (pushed by the gateway) makes the
    # mini-program's of that day a duplicate: the points once, whichever is first.
    mall.clock.advance(86_400)
    kiosk = checkin_entry(account_id="A1", member_id="M1", at=mall.clock.now(), rules=RULES)
    kiosk = kiosk.stamped(origin_site=GATEWAY, origin_seq=1, hlc="0000000000001-0000-gw",
                          recorded_at=mall.clock.now())
    (verdict,) = await mall.gateway.push_batch(GATEWAY, [event(kiosk)])
    assert verdict.status == "accepted"
    late = await mall.admin.checkin(MALL, "M1")
    assert late["verdict"]["status"] == "duplicate"
    assert late["entry"]["entry_id"] == kiosk.entry_id
    assert late["entry"]["actor"] == "kiosk"  # the first recording, the kiosk's
    assert await mall.available("M1") == 40
    with pytest.raises(CentralRejected) as unknown:
        await mall.admin.checkin(MALL, "NOBODY")
    assert unknown.value.status == 404


async def test_the_birthday_job_grants_each_gift_once_a_year(mall: Mall) -> None:
    await mall.admin.create_member(MALL, {"member_id": "MAY", "birth_month": 5,
                                          "birth_day": 28})
    await mall.admin.create_member(MALL, {"member_id": "JUNE", "birth_month": 6,
                                          "birth_day": 1})
    await mall.admin.create_member(MALL, {"member_id": "NONE"})
    granted = await mall.storage.grant_birthdays(MALL)
    assert [(g.member_id, g.source_key, g.points) for g in granted] == [
        ("MAY", "MAY:2026", 200)]
    assert await mall.storage.grant_birthdays(MALL) == []  # the next hour: nothing
    mall.clock.advance(25 * 86_400)  # 4 June
    assert [g.member_id for g in await mall.storage.grant_birthdays(MALL)] == ["JUNE"]
    assert await mall.storage.grant_birthdays(MALL) == []
    assert await mall.available("MAY") == 30 + 200
    assert await mall.available("NONE") == 30
    # Erased members get nothing.
    await mall.admin.erase_member(MALL, "MAY")
    mall.clock.advance(340 * 86_400)  # May of the next year
    assert await mall.storage.grant_birthdays(MALL) == []


async def test_a_gift_a_gateway_gave_first_is_not_given_again(mall: Mall) -> None:
    await mall.admin.create_member(MALL, {"member_id": "M1", "account_id": "A1",
                                          "birth_month": 5, "birth_day": 1})
    at_edge = birthday_entry(account_id="A1", member_id="M1", birth_month=5, birth_day=1,
                             at=mall.clock.now(), rules=RULES, actor="kiosk")
    assert at_edge is not None
    at_edge = at_edge.stamped(origin_site=GATEWAY, origin_seq=1,
                              hlc="0000000000001-0000-gw", recorded_at=mall.clock.now())
    (verdict,) = await mall.gateway.push_batch(GATEWAY, [event(at_edge)])
    assert verdict.status == "accepted"
    assert await mall.storage.grant_birthdays(MALL) == []
    births = [e for e in await mall.ledger("M1") if e["source_type"] == "birthday"]
    assert [e["entry_id"] for e in births] == [at_edge.entry_id]


@pytest.fixture(params=["sqlite", "postgres"])
async def bare_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return await new_storage(request, tmp_path, FakeClock(START))


async def test_the_served_central_runs_the_birthday_job(bare_storage: Storage) -> None:
    await bare_storage.open()
    admin_token = await bare_storage.add_token(MALL, "admin", None)
    await bare_storage.create_member(MALL, {"member_id": "MAY", "birth_month": 5,
                                            "birth_day": 20})
    await bare_storage.close()
    app = create_central_app(bare_storage, grant_birthdays=True)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with CentralClient(f"http://127.0.0.1:{port}", admin_token,
                                 timeout_s=5) as admin:
            async with asyncio.timeout(20):
                while True:
                    ledger = (await admin.get_member(MALL, "MAY"))["ledger"]
                    if any(e["source_type"] == "birthday" for e in ledger):
                        break
                    await asyncio.sleep(0.05)
            assert sources(ledger) == [("birthday", "MAY:2026", 200),
                                       ("gift.new_member", "MAY", 30)]
    finally:
        await runner.cleanup()


async def test_rewards_follow_the_rules_version_the_mall_published(mall: Mall) -> None:
    """A mall that publishes its rules gets their gifts, not the server's defaults: the
    new-member gift and the check-in points of the version in force."""
    document = rules_document(RULES)
    document["tasks"] = {**document["tasks"], "new_member_points": 88}
    document["checkin"] = {**document["checkin"], "points": 9}
    await mall.admin.put_config(MALL, "loyalty", "gifts-2", document | {"version": "gifts-2"},
                                effective_at=START.isoformat())
    created = await mall.admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    assert [(r["source_type"], r["points"]) for r in created["rewards"]] == [
        ("gift.new_member", 88)]
    assert (await mall.admin.checkin(MALL, "M1"))["points"] == 9
    assert {e["rule_version"] for e in await mall.ledger("M1")} == {"gifts-2"}
