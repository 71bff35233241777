"""A member's year, through the public surface only, on SQLite and PostgreSQL central.

The gateway app with two tills of one store on real ptys and kiosks over a real mosquitto;
the real central over loopback with a mini-program backend's webhook receiver; one clock,
moved by the test, for the gateway and central alike. The member joins at a kiosk while
central is unreachable, earns through receipts whose lines carry categories (tobacco earns
nothing), is merged under central's id when central is back, turns silver mid-year and
earns at silver's rate on the very next sale, has a refund rung on the other till, gets the
birthday gift once although the kiosk and central's job both give it, is reminded of
expiring points on the reminder days, and steps down one tier at the anniversary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from cloud_api.client import CentralClient
from cloud_api.server.phones import PhoneKeys
from cloud_api.server.webhooks import DeliveryPolicy
from devices.kiosk.sim import KioskClient
from devices.mqtt.broker import Mosquitto
from gateway.app.keys import CENTRAL, LEDGER, READER
from gateway.loyalty import LoyaltyRules
from gateway.loyalty.versions import rules_document
from gateway.settings import Settings
from tests.cloud_api.central import MALL, Central, start_central
from tests.cloud_api.fixtures import Database
from tests.cloud_api.webhooks import Receiver, receiving
from tests.conftest import free_port
from tests.kiosk.helpers import PHONE_KEY, kiosk, kiosk_settings_data, running_gateway
from tests.pos.ptys import SOCAT, pty_pair
from tests.pos.tills import Till, open_tills, pos_section
from tests.sync.clock import FakeClock

pytestmark = pytest.mark.skipif(SOCAT is None, reason="socat is not installed")

T = TypeVar("T")
WAIT_S = 30.0
# The mall's rules: the defaults, under the mall's own version, with tobacco earning nothing.
LOYALTY: dict[str, Any] = {"version": "mall-2026.1", "earn": {
    "category_multiplier_pct": {"tobacco": 0, "food": 100}}}
RULES = LoyaltyRules.model_validate(LOYALTY)
TZ = RULES.tz
POLICY = DeliveryPolicy(max_attempts=3, retry_initial_s=60, retry_max_s=600, timeout_s=5,
                        lease_s=30, poll_s=0.02, batch=20)
SYNC = {"long_poll_s": 1, "push_interval_s": 0.05, "backoff_initial_s": 0.05,
        "backoff_max_s": 0.3, "heartbeat_s": 0.5}
NUMBER = "13900139000"
CONSENT = {"policy_version": "privacy-2025-06", "accepted": True}


# The year, in the mall's time: none of the sales falls on member day (the 18th).
JOINS = datetime(2025, 12, 8, 10, tzinfo=TZ)
UPGRADE = datetime(2026, 3, 10, 15, tzinfo=TZ)
REFUND = datetime(2026, 3, 20, 11, tzinfo=TZ)
BIRTHDAY_VISIT = datetime(2026, 5, 6, 12, tzinfo=TZ)
FIRST_REMINDER = datetime(2026, 12, 2, 9, tzinfo=TZ)  # 30 days before the 2025 points lapse
SECOND_REMINDER = datetime(2026, 12, 25, 9, tzinfo=TZ)  # 7 days before
AFTER_ANNIVERSARY = datetime(2027, 3, 12, 9, tzinfo=TZ)


async def until(check: Callable[[], Awaitable[T]], what: str) -> T:
    """`check()`'s first true answer, polled (sync and delivery signal no one)."""
    try:
        async with asyncio.timeout(WAIT_S):
            while not (result := await check()):  # noqa: ASYNC110 - polls both ends
                await asyncio.sleep(0.05)
            return result
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


class Gate:
    """Central unreachable for the gateway (503 to its calls) while closed; the back
    office still reaches central."""

    def __init__(self) -> None:
        self.closed = False

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                         ) -> web.StreamResponse:
        if self.closed and request.path.startswith("/v1/gateways/"):
            return web.json_response({"error": {"code": "unavailable", "msg": "closed"}},
                                     status=503)
        return await handler(request)


@dataclass
class Mall:
    """Everything of the scenario, as its steps use it. Central is down at first."""

    clock: FakeClock
    app: web.Application
    tills: dict[str, Till]
    k1: KioskClient
    k2: KioskClient
    receiver: Receiver
    gate: Gate
    database: Database
    central_port: int
    tokens: tuple[str, str]
    stack: contextlib.AsyncExitStack
    central: Central | None = None
    admin: CentralClient | None = None

    async def central_back(self) -> tuple[Central, CentralClient]:
        """Central starts answering, with the mall's webhook and the gate before it."""
        phones = PhoneKeys({MALL: PHONE_KEY.encode()})  # the key of the gateway's [kiosk]
        central = await start_central(
            self.database.storage(self.clock, phones=phones), port=self.central_port,
            tokens=self.tokens, webhooks=self.receiver.webhook(), delivery=POLICY,
            middlewares=[self.gate.middleware])
        self.stack.push_async_callback(central.stop)
        admin = await self.stack.enter_async_context(
            CentralClient(central.url, central.admin_token, timeout_s=10))
        self.central, self.admin = central, admin
        return central, admin

    async def edge(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = await self.app[READER].run(
            lambda c: c.execute(sql, args).fetchall())
        return rows

    async def edge_tier(self, member: str) -> str:
        ((tier,),) = await self.edge("SELECT tier FROM members WHERE id = ?", member)
        return str(tier)

    async def edge_available(self, account: str) -> int:
        return (await self.app[LEDGER].balance(account)).available

    async def central_state(self, member: str) -> dict[str, Any]:
        assert self.admin is not None, "central is not back yet"
        return await self.admin.get_member(MALL, member)

    async def outbox_empty(self) -> bool:
        return not (await self.edge("SELECT count(*) FROM outbox"))[0][0]

    async def agree(self, member: str, account: str) -> int:
        """Wait until the edge has pushed everything and both ends say the same available
        balance; that balance."""
        async def same() -> bool:
            if not await self.outbox_empty():
                return False
            state = await self.central_state(member)
            return bool(state["balance"]["available"] == await self.edge_available(account))
        await until(same, "the edge and central agree on the balance")
        return await self.edge_available(account)

    def at(self, when: datetime) -> None:
        self.clock.at = when.astimezone(TZ)

    async def sell(self, till: str, no: str, lines: list[tuple[str, int, str]],
                   member: str) -> None:
        at = self.clock.at - timedelta(minutes=5)
        reply = await self.tills[till].send({
            "receipt_no": no, "occurred_at": at.astimezone(TZ).isoformat(),
            "total_fen": sum(fen for _, fen, _ in lines), "member_code": member,
            "lines": [{"name": name, "amount_fen": fen, "category": category}
                      for name, fen, category in lines]})
        assert reply.ok, reply

    async def refund(self, till: str, no: str, original: str, fen: int) -> None:
        at = self.clock.at - timedelta(minutes=5)
        reply = await self.tills[till].send({
            "receipt_no": no, "kind": "refund", "original_no": original,
            "occurred_at": at.astimezone(TZ).isoformat(), "total_fen": fen})
        assert reply.ok, reply

    async def earned(self, receipt_no: str) -> int:
        ((points,),) = await self.edge(
            "SELECT points FROM ledger WHERE kind = 'EARN' AND source_key LIKE ?",
            f"%:{receipt_no}:%")
        return int(points)


def gateway_settings(tmp_path: Path, broker: int, central_url: str, token: str,
                     tills: dict[str, Path]) -> Settings:
    data = kiosk_settings_data(tmp_path, broker, demo_members=0)
    data |= {"central": {"url": central_url, "token": token, "timeout_s": 2.0},
             "sync": SYNC, "pos": pos_section(tills, "jsonl"), "loyalty": LOYALTY}
    return Settings.model_validate_json(json.dumps(data))


@contextlib.asynccontextmanager
async def mall(database: Database, broker: Mosquitto,
               tmp_path: Path) -> AsyncIterator[Mall]:
    """The mall with central down: central has run once, long enough to mint the
    gateway's token and take the mall's rules, and is unreachable when the gateway starts."""
    clock = FakeClock(JOINS)
    port = free_port()
    setup = await start_central(database.storage(clock), port=port)
    try:
        async with CentralClient(setup.url, setup.admin_token, timeout_s=10) as admin:
            # The mall's rules, published from its configuration for the whole year.
            await admin.publish_rules(MALL, RULES.version, rules_document(RULES),
                                      effective_at=datetime(2025, 1, 1, tzinfo=TZ).isoformat())
    finally:
        await setup.stop()
    async with contextlib.AsyncExitStack() as stack:
        receiver = await stack.enter_async_context(receiving(Receiver()))
        pairs = {pos: await stack.enter_async_context(pty_pair(tmp_path, pos))
                 for pos in ("P1", "P2")}
        settings = gateway_settings(tmp_path, broker.port, setup.url, setup.gateway_token,
                                    {pos: pair.gateway for pos, pair in pairs.items()})
        app = await stack.enter_async_context(running_gateway(settings, clock.now))
        tills = await stack.enter_async_context(open_tills(app, pairs, "jsonl"))
        k1 = await stack.enter_async_context(kiosk(broker.port, "k1"))
        k2 = await stack.enter_async_context(kiosk(broker.port, "k2"))
        yield Mall(clock, app, tills, k1, k2, receiver, Gate(), database, port,
                   (setup.gateway_token, setup.admin_token), stack)


async def test_a_members_year(database: Database, broker: Mosquitto, tmp_path: Path) -> None:
    async with mall(database, broker, tmp_path) as m:
        # -- joins at a kiosk while central is unreachable: a provisional member ----------
        assert not m.app[CENTRAL].online()
        enrolled = await m.k1.request("member.enroll", {"phone": NUMBER, "consent": CONSENT})
        assert enrolled["status"] == "ok" and enrolled["data"]["step"] == "provisional", enrolled
        provisional, session = enrolled["data"]["member_id"], enrolled["data"]["session"]
        ((account,),) = await m.edge("SELECT account_id FROM members WHERE id = ?",
                                     provisional)

        # -- earns at once: the tobacco line earns nothing; a check-in with the session ---
        await m.sell("P1", "S-1", [("拿铁(大杯)", 20_000, "food"),
                                   ("中华(软)", 10_000, "tobacco")], provisional)
        assert await m.earned("S-1") == 200
        checkin = await m.k1.request("checkin", {"session": session})
        assert checkin["status"] == "ok", checkin
        assert checkin["data"]["points"] == RULES.checkin.points
        joined = 200 + RULES.checkin.points
        assert await m.edge_available(account) == joined

        # -- central is back: merged under central's id, no point lost or doubled --------
        central, admin = await m.central_back()

        async def merged() -> str:
            rows = await m.edge("SELECT final_member_id FROM provisional_members "
                                "WHERE merged_at IS NOT NULL")
            return str(rows[0][0]) if rows else ""
        member = await until(merged, "the provisional member is merged")
        assert member != provisional
        assert await m.edge("SELECT id FROM members WHERE id = ?", provisional) == []
        assert await m.agree(member, account) == joined
        state = await m.central_state(member)
        assert sorted(e["points"] for e in state["ledger"]) == [RULES.checkin.points, 200]
        assert await m.edge("SELECT count(*) FROM ledger WHERE account_id = ?", account) \
            == [(2,)]
        by_old_id = await m.k2.request("balance.query", {"member_id": provisional})
        assert by_old_id["data"]["member_id"] == member, by_old_id
        assert by_old_id["data"]["available"] == joined

        # -- turns silver mid-year, and the very next sale earns at silver's rate ---------
        m.at(UPGRADE)
        await m.sell("P1", "S-2", [("羽绒服", 40_000, "food")], member)
        assert await m.earned("S-2") == 400  # at normal, the tier it had
        assert await m.edge_tier(member) == "silver"
        balance = await m.k1.request("balance.query", {"member_id": member})
        assert balance["data"]["tier"] == "silver", balance
        await m.sell("P1", "S-3", [("围巾", 10_000, "food")], member)
        assert await m.earned("S-3") == 110  # 100 yuan at silver x1.10
        assert await m.agree(member, account) == joined + 510
        assert (await m.central_state(member))["member"]["tier"] == "silver"

        # -- a refund on the other till reverses the sale (and keeps the tier) ------------
        m.at(REFUND)
        await m.refund("P2", "R-1", "S-2", 40_000)
        assert await m.agree(member, account) == joined + 110
        assert await m.edge_tier(member) == "silver"  # never down before the anniversary

        # -- the birthday gift, given by the kiosk and by central's job: once -------------
        await admin.update_member(MALL, member, {"birth_month": 5, "birth_day": 20})

        async def birthday_known() -> bool:
            return bool(await m.edge("SELECT 1 FROM members WHERE id = ? AND "
                                     "birth_month = 5", member))
        await until(birthday_known, "the birthday reaches the edge")
        m.at(BIRTHDAY_VISIT)
        m.gate.closed = True  # each end gives the gift without hearing of the other's
        identified = await m.k2.request("member.identify", {"by": "phone", "value": NUMBER})
        assert identified["status"] == "ok", identified
        assert [g["points"] for g in identified["data"]["gifts"]] == [RULES.birthday.points]
        assert [e.member_id for e in await central.storage.grant_birthdays(MALL)] == [member]
        m.gate.closed = False
        assert await m.agree(member, account) == joined + 110 + RULES.birthday.points
        gifts = [e for e in (await m.central_state(member))["ledger"]
                 if e["source_type"] == "birthday"]
        assert len(gifts) == 1
        assert await m.edge("SELECT count(*) FROM ledger WHERE source_type = 'birthday'") \
            == [(1,)]

        # -- expiry reminders on their days, delivered once each, signed ------------------
        def reminded_on() -> list[str]:
            return sorted(n["data"]["remind_on"] for n in m.receiver.processed.values()
                          if n["kind"] == "points.expiring")
        m.at(FIRST_REMINDER - timedelta(days=2))
        assert await central.storage.find_expiry_reminders(MALL) == 0
        m.at(FIRST_REMINDER)
        assert await central.storage.find_expiry_reminders(MALL) == 1
        assert await central.storage.find_expiry_reminders(MALL) == 0  # once a day
        await m.receiver.until(lambda: reminded_on() == ["2026-12-02"])
        m.at(SECOND_REMINDER - timedelta(days=1))
        assert await central.storage.find_expiry_reminders(MALL) == 0
        m.at(SECOND_REMINDER)
        assert await central.storage.find_expiry_reminders(MALL) == 1
        await m.receiver.until(lambda: reminded_on() == ["2026-12-02", "2026-12-25"])

        # -- one step down at the anniversary, decided by central, seen at the edge -------
        anniversary = (await m.central_state(member))["member"]["tier_anniversary"]
        assert anniversary == "2027-03-10"  # a year after the upgrade
        m.at(datetime(2027, 3, 10, 20, tzinfo=TZ))
        assert await central.storage.review_tiers(MALL) == 0  # not before the day is over
        assert await m.edge_tier(member) == "silver"
        m.at(AFTER_ANNIVERSARY)
        assert await central.storage.review_tiers(MALL) == 1

        async def stepped_down() -> bool:
            return await m.edge_tier(member) == "normal"
        await until(stepped_down, "the edge sees the step down")
        balance = await m.k1.request("balance.query", {"member_id": member})
        assert balance["data"]["tier"] == "normal", balance
        assert await m.edge("SELECT from_tier, to_tier, direction FROM tier_changes "
                            "ORDER BY at") == [("normal", "silver", "upgrade"),
                                               ("silver", "normal", "downgrade")]

        # -- the end of the year: both ends agree, every entry under the mall's rules -----
        # The points of 2025 lapsed at the end of 2026; the gift and 2026's remain.
        final = await m.agree(member, account)
        assert final == 110 + RULES.birthday.points
        state = await m.central_state(member)
        assert state["member"]["tier"] == "normal"
        central_entries = {e["entry_id"]: e["rule_version"] for e in state["ledger"]}
        edge_entries = dict(await m.edge(
            "SELECT entry_id, rule_version FROM ledger WHERE account_id = ?", account))
        assert central_entries == edge_entries
        assert set(edge_entries.values()) == {RULES.version}

        def notices() -> list[tuple[str, str]]:
            return sorted((n["kind"], n["notice_id"]) for n in m.receiver.processed.values())
        await m.receiver.until(lambda: len(m.receiver.processed) >= 5)
        kinds = sorted(n["kind"] for n in m.receiver.processed.values())
        assert kinds == ["birthday.gift", "points.expiring", "points.expiring", "tier.down",
                         "tier.up"], notices()
        reminders = sorted((n["data"]["remind_on"], n["data"]["points"], n["data"]["last_day"])
                           for n in m.receiver.processed.values()
                           if n["kind"] == "points.expiring")
        assert reminders == [("2026-12-02", joined, "2026-12-31"),
                             ("2026-12-25", joined, "2026-12-31")]
        assert all(r["signed"] for r in m.receiver.requests)
        assert len(m.receiver.requests) == len(m.receiver.processed)  # each sent once



async def test_silver_reached_while_provisional_is_kept_once_merged(
        database: Database, broker: Mosquitto, tmp_path: Path) -> None:
    """The shopper joins offline and spends 600 yuan at once: silver at the edge, offline.
    Central, once back, confirms the member and the tier as one fact with the edge's, and
    the next sale earns at silver's rate."""
    async with mall(database, broker, tmp_path) as m:
        enrolled = await m.k1.request("member.enroll", {"phone": NUMBER, "consent": CONSENT})
        provisional = enrolled["data"]["member_id"]
        ((account,),) = await m.edge("SELECT account_id FROM members WHERE id = ?",
                                     provisional)
        await m.sell("P1", "S-1", [("羽绒服", 60_000, "food")], provisional)
        assert await m.edge_tier(provisional) == "silver"
        await m.central_back()

        async def confirmed() -> str:
            rows = await m.edge("SELECT member_id FROM tier_changes WHERE confirmed = "
                                "'confirmed'")
            return str(rows[0][0]) if rows else ""
        member = await until(confirmed, "central confirms the tier of the merged member")
        assert member != provisional
        assert await m.edge("SELECT to_tier, confirmed FROM tier_changes") == [
            ("silver", "confirmed")]  # the edge's upgrade and central's: one fact
        assert await m.edge_tier(member) == "silver"
        assert (await m.central_state(member))["member"]["tier"] == "silver"
        await m.sell("P1", "S-2", [("围巾", 10_000, "food")], member)
        assert await m.earned("S-2") == 110
        assert await m.agree(member, account) == 710
