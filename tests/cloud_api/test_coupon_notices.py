"""`coupon.expiring` notices from central's reminder job, on SQLite and PostgreSQL: once per
coupon and reminder day, for coupons still usable, never to erased members, by the
reminder days of the rules in force; delivered to the webhook receiver once each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cloud_api.client import CentralClient
from gateway.loyalty import LoyaltyRules
from gateway.loyalty.versions import rules_document
from tests.cloud_api.central import MALL, Central, start_central
from tests.cloud_api.fixtures import Database
from tests.cloud_api.test_notices import POLICY, all_notices
from tests.cloud_api.webhooks import Receiver, receiving
from tests.sync.clock import FakeClock

START = datetime(2026, 11, 30, 4, tzinfo=UTC)  # noon in Shanghai, the mall's time zone


async def coupons_issued(central: Central) -> dict[str, dict[str, Any]]:
    """M1 with a 10-day coupon and a 60-day one, M2 with a voided one, M3 erased with
    one: each member's coupons by campaign."""
    async with CentralClient(central.url, central.admin_token, timeout_s=10) as admin:
        for member in ("M1", "M2", "M3"):
            await admin.create_member(MALL, {"member_id": member, "account_id": "A" + member})
        await admin.put_coupon_campaign(MALL, "short", {
            "terms": {"kind": "cash_voucher", "off_fen": 500}, "valid_days": 10})
        await admin.put_coupon_campaign(MALL, "long", {
            "terms": {"kind": "cash_voucher", "off_fen": 500}, "valid_days": 60})
        await admin.issue_coupons(MALL, "short", member_ids=["M1", "M2", "M3"])
        await admin.issue_coupons(MALL, "long", member_ids=["M1"])
        found = {f"{m}/{c['campaign_id']}": c for m in ("M1", "M2", "M3")
                 for c in await admin.member_coupons(MALL, m)}
        await admin.void_coupon(MALL, found["M2/short"]["coupon_id"], "withdrawn")
        await admin.erase_member(MALL, "M3")
        return found


async def test_coupon_expiring_notices_once_per_coupon_and_reminder_day(
        database: Database) -> None:
    clock = FakeClock(START)
    async with receiving(Receiver()) as receiver:
        central = await start_central(database.storage(clock), webhooks=receiver.webhook(),
                                      delivery=POLICY)
        try:
            coupons = await coupons_issued(central)
            short = coupons["M1/short"]
            assert datetime.fromisoformat(short["valid_until"]) == START + timedelta(days=10)
            storage = central.storage
            # Valid for 10 days, within the 30-day reminder: told at once, once.
            assert await storage.find_expiry_reminders(MALL) == 1
            assert await storage.find_expiry_reminders(MALL) == 0
            clock.at = START + timedelta(days=2)
            assert await storage.find_expiry_reminders(MALL) == 0  # the same reminder
            clock.at = START + timedelta(days=3, hours=1)  # 7 days before its end
            assert await storage.find_expiry_reminders(MALL) == 1
            assert await storage.find_expiry_reminders(MALL) == 0
            clock.at = START + timedelta(days=11)  # expired: nothing to remind of
            assert await storage.find_expiry_reminders(MALL) == 0

            notices = await all_notices(central)
            assert [(n["kind"], n["member_id"], n["account_id"], n["data"])
                    for n in notices] == [
                ("coupon.expiring", "M1", "AM1", {
                    "coupon_code": short["code"],
                    "expires_at": "2026-12-10T04:00:00.000000+00:00",
                    "last_day": "2026-12-10", "remind_on": on})
                for on in ("2026-11-30", "2026-12-03")]
            await receiver.until(lambda: len(receiver.processed) == 2)
            assert list(receiver.processed.values()) == notices
            assert len(receiver.requests) == 2 and all(r["signed"] for r in receiver.requests)
        finally:
            await central.stop()


async def test_coupon_reminders_follow_the_rules_in_force(database: Database) -> None:
    clock = FakeClock(START)
    central = await start_central(database.storage(clock))
    try:
        document = rules_document(LoyaltyRules())
        document["expiry"] = {**document["expiry"], "reminder_days": [3]}
        async with CentralClient(central.url, central.admin_token, timeout_s=10) as admin:
            await admin.publish_rules(MALL, "short-reminders", document | {
                "version": "short-reminders"})
        coupons = await coupons_issued(central)
        storage = central.storage
        clock.at = START + timedelta(days=3, hours=1)  # 7 days before: not a reminder day
        assert await storage.find_expiry_reminders(MALL) == 0
        clock.at = START + timedelta(days=7, hours=1)  # 3 days before
        assert await storage.find_expiry_reminders(MALL) == 1
        (notice,) = await all_notices(central)
        assert (notice["member_id"], notice["data"]["coupon_code"],
                notice["data"]["remind_on"]) == ("M1", coupons["M1/short"]["code"],
                                                 "2026-12-07")
    finally:
        await central.stop()
