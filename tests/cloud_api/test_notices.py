"""Member notices at central and their delivery to webhooks, on SQLite and PostgreSQL.

Everything goes through the API of a real central over loopback; a real aiohttp receiver
on loopback checks each delivery's signature and keeps each notice once by its id, as a
mini-program backend would. Central's clock is a test clock: retries, leases and expiry
reminders come due when the test moves it.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from cloud_api.client import CentralClient
from cloud_api.server.cli import central_group
from cloud_api.server.sqlite_store import SqliteStorage
from cloud_api.server.webhooks import DeliveryPolicy
from gateway.loyalty import Entry, EntryKind, LoyaltyRules, birthday_entry
from tests.cloud_api.central import GATEWAY, MALL, Central, event, start_central
from tests.cloud_api.fixtures import Database
from tests.cloud_api.webhooks import WAIT_S, Receiver, receiving
from tests.sync.clock import FakeClock

START = datetime(2026, 11, 30, 4, tzinfo=UTC)
POLICY = DeliveryPolicy(max_attempts=3, retry_initial_s=60, retry_max_s=600, timeout_s=5,
                        lease_s=30, poll_s=0.02, batch=20)
RULES = LoyaltyRules()


async def advancing(clock: FakeClock, check: Callable[[], bool]) -> None:
    """Move central's clock past any backoff until `check()` holds (each failure is
    recorded a moment after the receiver answers, so one move per request could come
    too early)."""
    async with asyncio.timeout(WAIT_S):
        while not check():
            clock.advance(POLICY.retry_max_s)
            await asyncio.sleep(0.02)


async def until_async(check: Callable[[], Any]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not await check():  # noqa: ASYNC110 - central's state is read by its API
            await asyncio.sleep(0.02)


async def get(central: Central, path: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {central.admin_token}"}
    async with aiohttp.ClientSession() as session, \
            session.get(central.url + path, headers=headers) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def scrape(central: Central) -> dict[tuple[str, str, str], float]:
    """The mall's metrics by (sample name, webhook, state or outcome)."""
    headers = {"Authorization": f"Bearer {central.admin_token}"}
    async with aiohttp.ClientSession() as session, \
            session.get(f"{central.url}/v1/malls/{MALL}/metrics", headers=headers) as r:
        assert r.status == 200
        text = await r.text()
    return {(sample.name, sample.labels["webhook"],
             sample.labels.get("state") or sample.labels["outcome"]): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def post(central: Central, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {central.admin_token}"}
    async with aiohttp.ClientSession() as session, \
            session.post(central.url + path, json=body, headers=headers) as response:
        return response.status, await response.json()


async def all_notices(central: Central, path: str = f"/v1/malls/{MALL}/notices",
                      limit: int = 2) -> list[dict[str, Any]]:
    """Every notice, page by page (small pages, so the cursor is exercised)."""
    found: list[dict[str, Any]] = []
    cursor = "0"
    while True:
        page = await get(central, f"{path}?cursor={cursor}&limit={limit}")
        if not page["notices"]:
            return found
        found += page["notices"]
        cursor = page["next_cursor"]


async def member(central: Central, member_id: str = "M1", account_id: str = "A1",
                 **profile: Any) -> None:
    async with CentralClient(central.url, central.admin_token, timeout_s=10) as admin:
        await admin.create_member(MALL, {"member_id": member_id, "account_id": account_id,
                                         **profile})


async def adjust(central: Central, request_id: str, points: int,
                 member_id: str = "M1") -> None:
    async with CentralClient(central.url, central.admin_token, timeout_s=10) as admin:
        await admin.adjust(MALL, member_id, request_id=request_id, points=points,
                           reason="service desk goodwill")


async def push(central: Central, *entries: Entry) -> list[str]:
    async with CentralClient(central.url, central.gateway_token, timeout_s=10) as gw:
        verdicts = await gw.push_batch(GATEWAY, [event(e) for e in entries])
    return [v.status for v in verdicts]


def earn(key: str, points: int, *, at: datetime, qual_fen: int = 0,
         expires_at: datetime | None = None) -> Entry:
    fact = Entry(kind=EntryKind.EARN, points=points, account_id="A1", member_id="M1",
                 source_type="sale", source_key=key, reason=f"sale {key}", effective_at=at,
                 qual_fen=qual_fen, expires_at=expires_at, rule_version="t")
    return fact.stamped(origin_site=GATEWAY, origin_seq=1, hlc=f"{1:013d}-0000-{GATEWAY}",
                        recorded_at=at)


async def dead_state(central: Central) -> dict[str, int]:
    status = await get(central, f"/v1/malls/{MALL}/webhooks")
    (hook,) = status["webhooks"]
    deliveries: dict[str, int] = hook["deliveries"]
    return deliveries


# -- notices kept by central ------------------------------------------------------------

async def test_expiry_reminders_appear_on_their_days_once_each(database: Database) -> None:
    clock = FakeClock(START)
    async with receiving(Receiver()) as receiver:
        central = await start_central(database.storage(clock), webhooks=receiver.webhook(),
                                      delivery=POLICY)
        try:
            await member(central)
            # 580 points lapsing at the start of 2027 in the mall's time zone (Shanghai)
            expires = datetime(2026, 12, 31, 16, tzinfo=UTC)
            assert await push(central, earn("r1", 500, at=START - timedelta(days=200),
                                            expires_at=expires),
                              earn("r2", 80, at=START - timedelta(days=100),
                                   expires_at=expires)) == ["accepted", "accepted"]
            storage = central.storage
            assert await storage.find_expiry_reminders(MALL) == 0  # 31 days before: none
            clock.at = datetime(2026, 12, 1, 17, tzinfo=UTC)  # 2 December in Shanghai
            assert await storage.find_expiry_reminders(MALL) == 1
            assert await storage.find_expiry_reminders(MALL) == 0  # again: no second
            spend = Entry(kind=EntryKind.BURN, points=-100, account_id="A1", member_id="M1",
                          source_type="redeem", source_key="gift-1", reason="gift",
                          effective_at=datetime(2026, 12, 10, tzinfo=UTC), rule_version="t")
            assert await push(central, spend.stamped(
                origin_site=GATEWAY, origin_seq=3, hlc="3",
                recorded_at=spend.effective_at)) == ["accepted"]
            clock.at = datetime(2026, 12, 24, 17, tzinfo=UTC)  # 7 days before
            assert await storage.find_expiry_reminders(MALL) == 1
            notices = await all_notices(central)
            at = "2026-12-31T16:00:00.000000+00:00"
            assert [(n["kind"], n["member_id"], n["data"]) for n in notices] == [
                ("points.expiring", "M1", {"points": 580, "expires_at": at,
                                           "last_day": "2026-12-31",
                                           "remind_on": "2026-12-02"}),
                ("points.expiring", "M1", {"points": 480, "expires_at": at,
                                           "last_day": "2026-12-31",
                                           "remind_on": "2026-12-25"}),
            ]
            clock.at = datetime(2027, 1, 2, tzinfo=UTC)  # lapsed: nothing left to remind of
            assert await storage.find_expiry_reminders(MALL) == 0
            # and the mini-program backend got each reminder once, signed
            await receiver.until(lambda: len(receiver.processed) == 2)
            assert list(receiver.processed.values()) == notices
            assert all(r["signed"] for r in receiver.requests)
            assert len(receiver.requests) == 2
        finally:
            await central.stop()


async def test_a_sale_that_upgrades_gives_one_tier_up_notice(database: Database) -> None:
    clock = FakeClock(START)
    async with receiving(Receiver()) as receiver:
        central = await start_central(database.storage(clock), webhooks=receiver.webhook(),
                                      delivery=POLICY)
        try:
            await member(central)
            sale = earn("big-sale", 600, at=START - timedelta(days=1), qual_fen=60_000)
            assert await push(central, sale) == ["accepted"]
            assert await push(central, sale) == ["duplicate"]  # again: no second notice
            (notice,) = await all_notices(central, f"/v1/malls/{MALL}/members/M1/notices")
            assert (notice["kind"], notice["data"]["from_tier"],
                    notice["data"]["to_tier"]) == ("tier.up", "normal", "silver")
            assert await all_notices(central) == [notice]
            await receiver.until(lambda: len(receiver.processed) == 1)
            assert receiver.processed == {notice["notice_id"]: notice}
        finally:
            await central.stop()


async def test_birthday_gift_and_adjustment_notices_until_erasure(database: Database) -> None:
    clock = FakeClock(START)
    central = await start_central(database.storage(clock))
    try:
        await member(central, birth_month=11, birth_day=30)
        await member(central, member_id="M2", account_id="A2")
        gift = birthday_entry(account_id="A1", member_id="M1", birth_month=11, birth_day=30,
                              at=START, rules=RULES)
        assert gift is not None
        stamped = gift.stamped(origin_site=GATEWAY, origin_seq=1, hlc="1", recorded_at=START)
        assert await push(central, stamped) == ["accepted"]
        await adjust(central, "desk-1", 50, member_id="M2")
        await adjust(central, "desk-1", 50, member_id="M2")  # a retried request: no second
        notices = await all_notices(central)
        assert [(n["kind"], n["member_id"], n["data"]["points"]) for n in notices] == [
            ("birthday.gift", "M1", RULES.birthday.points), ("points.adjusted", "M2", 50)]
        assert [n["kind"] for n in await all_notices(
            central, f"/v1/malls/{MALL}/members/M2/notices")] == ["points.adjusted"]
        async with CentralClient(central.url, central.admin_token, timeout_s=10) as admin:
            await admin.erase_member(MALL, "M2")
        # erased: the member's notices go with the rest of their personal data
        assert [n["kind"] for n in await all_notices(central)] == ["birthday.gift"]
        assert await all_notices(central, f"/v1/malls/{MALL}/members/M2/notices") == []
    finally:
        await central.stop()


async def test_notices_are_behind_the_malls_back_office_token(database: Database) -> None:
    central = await start_central(database.storage(FakeClock(START)))
    try:
        async with aiohttp.ClientSession() as session:
            for token in (central.gateway_token, "not-a-token"):
                async with session.get(f"{central.url}/v1/malls/{MALL}/notices",
                                       headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status in {401, 403}
            async with session.get(
                    f"{central.url}/v1/malls/{MALL}/notices?cursor=x",
                    headers={"Authorization": f"Bearer {central.admin_token}"}) as r:
                assert r.status == 400
    finally:
        await central.stop()


# -- delivery to webhooks ---------------------------------------------------------------

async def test_a_failing_receiver_gets_each_notice_once_after_retries(
        database: Database) -> None:
    clock = FakeClock(START)
    async with receiving(Receiver(fail_first=2)) as receiver:
        central = await start_central(database.storage(clock), webhooks=receiver.webhook(),
                                      delivery=POLICY)
        try:
            await member(central)
            await adjust(central, "desk-1", 100)
            await advancing(clock, lambda: len(receiver.processed) == 1)
            await until_async(lambda: _settled(central, delivered=1))
            (notice,) = await all_notices(central)
            assert list(receiver.processed) == [notice["notice_id"]]
            assert receiver.processed[notice["notice_id"]] == notice
            assert [(r["id"], r["attempt"], r["signed"]) for r in receiver.requests] == [
                (notice["notice_id"], str(n), True) for n in (1, 2, 3)]
            # delivered: never sent again, however long central runs
            clock.advance(POLICY.retry_max_s * 10)
            await adjust(central, "desk-2", 5)
            await receiver.until(lambda: len(receiver.processed) == 2)
            assert Counter(r["id"] for r in receiver.requests)[notice["notice_id"]] == 3
        finally:
            await central.stop()


async def _settled(central: Central, **expected: int) -> bool:
    state = await dead_state(central)
    return all(state[k] == v for k, v in expected.items()) and state["pending"] == 0


async def test_central_restarted_mid_delivery_sends_again_and_the_receiver_keeps_one(
        database: Database) -> None:
    clock = FakeClock(START)
    async with receiving(Receiver(hang_first=True)) as receiver:
        first = await start_central(database.storage(clock), webhooks=receiver.webhook(),
                                    delivery=POLICY)
        try:
            await member(first)
            await adjust(first, "desk-1", 100)
            await receiver.until(lambda: len(receiver.requests) == 1)  # in flight, held
        finally:
            await first.stop()
        receiver.release.set()
        second = await start_central(database.storage(clock),
                                     tokens=(first.gateway_token, first.admin_token),
                                     webhooks=receiver.webhook(), delivery=POLICY)
        try:
            clock.advance(POLICY.lease_s + 1)  # the dead worker's lease is over
            await receiver.until(lambda: len(receiver.requests) == 2)
            await until_async(lambda: _settled(second, delivered=1))
            (notice,) = await all_notices(second)
            assert [(r["id"], r["attempt"]) for r in receiver.requests] == [
                (notice["notice_id"], "1"), (notice["notice_id"], "2")]
            assert list(receiver.processed) == [notice["notice_id"]]  # kept once, by id
        finally:
            await second.stop()


async def test_two_workers_never_send_one_notice_twice(database: Database) -> None:
    clock = FakeClock(START)
    async with receiving(Receiver()) as receiver:
        first = await start_central(database.storage(clock), webhooks=receiver.webhook(),
                                    delivery=POLICY)
        second = await start_central(database.storage(clock),
                                     tokens=(first.gateway_token, first.admin_token),
                                     webhooks=receiver.webhook(), delivery=POLICY)
        try:
            await member(first)
            for n in range(30):
                await adjust(first if n % 2 else second, f"desk-{n}", n + 1)
            await receiver.until(lambda: len(receiver.processed) == 30)
            await until_async(lambda: _settled(first, delivered=30))
            assert Counter(r["id"] for r in receiver.requests).most_common(1)[0][1] == 1
            assert len(receiver.requests) == 30
        finally:
            await second.stop()
            await first.stop()


async def test_a_delivery_is_dead_after_the_bound_and_retried_by_the_endpoint(
        database: Database) -> None:
    clock = FakeClock(START)
    async with receiving(Receiver(fail_first=POLICY.max_attempts)) as receiver:
        central = await start_central(database.storage(clock), webhooks=receiver.webhook(),
                                      delivery=POLICY)
        try:
            await member(central)
            await adjust(central, "desk-1", 100)
            await advancing(clock, lambda: len(receiver.requests) == POLICY.max_attempts)
            await until_async(lambda: _settled(central, dead=1))
            (dead,) = (await get(central, f"/v1/malls/{MALL}/webhooks/dead"))["dead"]
            (notice,) = await all_notices(central)
            assert (dead["notice_id"], dead["webhook"], dead["kind"], dead["attempts"],
                    dead["last_error"]) == (notice["notice_id"], "mini", "points.adjusted",
                                            POLICY.max_attempts, "HTTP 500")
            assert receiver.processed == {}
            scraped = await scrape(central)
            assert scraped[("mallgate_central_webhook_deliveries", "mini", "dead")] == 1
            assert scraped[("mallgate_central_webhook_attempts_total", "mini", "retried")] \
                == POLICY.max_attempts - 1
            assert scraped[("mallgate_central_webhook_attempts_total", "mini", "dead")] == 1
            status, body = await post(central, f"/v1/malls/{MALL}/webhooks/dead:retry",
                                      {"notice_ids": ["another-notice"]})
            assert (status, body) == (200, {"retried": 0})
            status, body = await post(central, f"/v1/malls/{MALL}/webhooks/dead:retry", {})
            assert (status, body) == (200, {"retried": 1})
            await receiver.until(lambda: len(receiver.processed) == 1)
            await until_async(lambda: _settled(central, delivered=1, dead=0))
            status, body = await post(central, f"/v1/malls/{MALL}/webhooks/dead:retry",
                                      {"notice_ids": "all"})
            assert status == 400
        finally:
            await central.stop()


async def test_ops_commands_list_and_retry_dead_deliveries(tmp_path: Path) -> None:
    clock = FakeClock(START)
    db = tmp_path / "central.db"
    async with receiving(Receiver(fail_first=POLICY.max_attempts)) as receiver:
        central = await start_central(SqliteStorage(db, now=clock.now),
                                      webhooks=receiver.webhook(), delivery=POLICY)
        try:
            await member(central)
            await adjust(central, "desk-1", 100)
            await advancing(clock, lambda: len(receiver.requests) == POLICY.max_attempts)
            await until_async(lambda: _settled(central, dead=1))
            runner = CliRunner()
            listed = await asyncio.to_thread(
                runner.invoke, central_group, ["webhooks", "dead", "--db", str(db),
                                               "--mall", MALL])
            assert listed.exit_code == 0, listed.output
            (line,) = listed.output.splitlines()
            notice_id = json.loads(line)["notice_id"]
            retried = await asyncio.to_thread(
                runner.invoke, central_group, ["webhooks", "retry", "--db", str(db),
                                               "--mall", MALL, "--notice", notice_id])
            assert retried.exit_code == 0, retried.output
            assert retried.output.startswith("1 ")
            # the command stamps with the wall clock; central's test clock catches up
            clock.at = datetime.now(UTC) + timedelta(minutes=1)
            await receiver.until(lambda: list(receiver.processed) == [notice_id])
        finally:
            await central.stop()


async def test_notices_past_retention_go_once_no_webhook_waits_for_them(
        database: Database) -> None:
    clock = FakeClock(START)
    retention_s = 90 * 86400.0
    async with receiving(Receiver(fail_first=1000)) as receiver:
        central = await start_central(database.storage(clock), webhooks=receiver.webhook(),
                                      delivery=POLICY)
        try:
            await member(central)
            await adjust(central, "old", 10)
            await receiver.until(lambda: len(receiver.requests) >= 1)
            clock.advance(retention_s + 86400)
            await adjust(central, "new", 20)
            # the old notice is past retention but its delivery is still pending: kept
            assert await central.storage.purge_notices(MALL, retention_s) == 0
            receiver.fail_first = 0
            await advancing(clock, lambda: len(receiver.processed) == 2)
            await until_async(lambda: _settled(central, delivered=2))
            clock.at = START + timedelta(seconds=retention_s + 86400)  # "new" is recent
            assert await central.storage.purge_notices(MALL, retention_s) == 1
            assert [n["data"]["points"] for n in await all_notices(central)] == [20]
            assert (await dead_state(central))["delivered"] == 1
        finally:
            await central.stop()


async def test_central_started_with_the_reminder_job_finds_the_days_reminders(
        database: Database) -> None:
    clock = FakeClock(START)
    seeding = await start_central(database.storage(clock))
    try:
        await member(seeding)
        expires = datetime(2026, 12, 31, 16, tzinfo=UTC)
        assert await push(seeding, earn("r1", 300, at=START, expires_at=expires)) == [
            "accepted"]
    finally:
        await seeding.stop()
    clock.at = datetime(2026, 12, 24, 17, tzinfo=UTC)  # the 7-day reminder's day
    central = await start_central(database.storage(clock),
                                  tokens=(seeding.gateway_token, seeding.admin_token),
                                  remind_expiry=True)
    try:
        async def reminded() -> bool:
            return bool(await all_notices(central))
        await until_async(reminded)
        (notice,) = await all_notices(central)
        assert (notice["kind"], notice["data"]["points"], notice["data"]["remind_on"]) == (
            "points.expiring", 300, "2026-12-25")
    finally:
        await central.stop()
