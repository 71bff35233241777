"""The demo's central: the reference server on SQLite on a free loopback port, its tokens,
and the demo mall made through its back-office API as a mall's own back office would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from cloud_api.client import CentralClient
from cloud_api.server.app import create_central_app
from cloud_api.server.phones import PhoneKeys
from cloud_api.server.sqlite_store import SqliteStorage
from devices.ble.demo import demo_key
from devices.ble.identity import ble_key_value
from gateway.app.demo import DEMO_OFFERS
from gateway.app.demo_mall.layout import GATEWAY_ID, MALL_ID, PHONE_HASH_KEY
from gateway.demo import WELCOME_POINTS, demo_ids
from gateway.loyalty import LoyaltyRules
from gateway.members import phone_hash


@dataclass(frozen=True, slots=True)
class Central:
    url: str
    gateway_token: str
    admin_token: str


@contextlib.asynccontextmanager
async def running_central(db: Path) -> AsyncIterator[Central]:
    """Central on 127.0.0.1 on a port the system picks, with a gateway token for the demo
    gateway and a back-office token for the demo itself."""
    # The mall's phone hash key, as the demo gateway's: kiosks enrol members by phone.
    storage = SqliteStorage(db, phones=PhoneKeys({MALL_ID: PHONE_HASH_KEY.encode()}))
    runner = web.AppRunner(create_central_app(storage), access_log=None,
                           shutdown_timeout=1.0, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield Central(f"http://{host}:{port}",
                      await storage.add_token(MALL_ID, "gateway", GATEWAY_ID),
                      await storage.add_token(MALL_ID, "admin", None))
    finally:
        await runner.cleanup()


def demo_profile(n: int, tiers: list[str]) -> dict[str, Any]:
    """Demo member n as the back office creates it: the card the POS simulator prints,
    the phone's keyed hash kiosks look up, and the beacon key the BLE simulator uses."""
    member, account, card, phone = demo_ids(n)
    return {
        "member_id": member, "account_id": account, "name": f"Demo {n:04d}", "phone": phone,
        "tier": tiers[n % len(tiers)],
        "identifiers": [
            {"kind": "card", "value": card},
            {"kind": "phone_hash", "value": phone_hash(PHONE_HASH_KEY.encode(), phone)},
            {"kind": "ble_key", "value": ble_key_value(demo_key(member))},
        ],
    }


async def seed_mall(admin: CentralClient, members: int, rules: LoyaltyRules) -> None:
    """The demo members with their welcome points, and the demo welcome offers."""
    tiers = [tier.code for tier in rules.tiers.tiers]
    for n in range(1, members + 1):
        profile = demo_profile(n, tiers)
        await admin.create_member(MALL_ID, profile)
        await admin.adjust(MALL_ID, profile["member_id"],
                           request_id=f"demo-welcome-{profile['member_id']}",
                           points=WELCOME_POINTS, reason="Demo welcome points")
    for offer_id, offer in DEMO_OFFERS.items():
        await admin.put_offer(MALL_ID, offer_id, offer)


async def central_entries(admin: CentralClient, members: int) -> list[dict[str, Any]]:
    """Every ledger entry central holds for the demo members (wire form)."""
    entries: list[dict[str, Any]] = []
    for n in range(1, members + 1):
        state = await admin.get_member(MALL_ID, demo_ids(n)[0])
        entries += state["ledger"]
    return entries
