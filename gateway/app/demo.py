"""Demo seeding: members, beacon keys and welcome offers for `config/demo.toml`.

Only with `[kiosk] demo_members > 0`, and each kind only into an empty store: a real
mall's members, keys and offers come from central through sync. Runs once at start,
after the store opens and before any part that serves them.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiohttp import web

from devices.ble.demo import demo_key
from devices.ble.identity import ble_key_value
from gateway.app.keys import LEDGER, SETTINGS, WRITER
from gateway.demo import DEMO_SOURCE, WELCOME_POINTS, demo_ids
from gateway.ledger import Ledger
from gateway.loyalty import Entry, EntryKind
from gateway.loyalty.calendar import expiry_for
from gateway.loyalty.wire import to_text
from gateway.members import (
    NewMember,
    add_members,
    give_identifiers,
    has_members,
    members_without,
    phone_hash,
)
from gateway.store import Writer

log = logging.getLogger(__name__)

_CHUNK = 1000

DEMO_OFFERS: dict[str, dict[str, Any]] = {
    "demo-welcome-vip": {
        "title": "Welcome back, valued member", "priority": 10,
        "message": "A free coffee at the atrium cafe, today only.",
        "target": {"tiers": ["gold", "diamond"]},
        "reward": {"kind": "free_item", "description": "One free coffee", "valid_days": 1,
                   "sku": "CAFE-COFFEE"},
    },
    "demo-welcome": {
        "title": "Welcome to the Demo Mall", "priority": 0,
        "message": "10% off at any store on the ground floor.",
        "target": {},
        "reward": {"kind": "percentage", "description": "10% off one purchase",
                   "valid_days": 7, "percent": 10, "cap_fen": 5000},
    },
}


async def seed_demo_members(writer: Writer, ledger: Ledger, count: int, *, now: datetime,
                            phone_key: bytes | None) -> int:
    """Create `count` demo members if the store has no members yet; how many were made."""
    if await writer.submit(has_members):
        return 0
    tiers = [tier.code for tier in ledger.rules.tiers.tiers]
    stamp = str(to_text(now))
    for start in range(1, count + 1, _CHUNK):
        numbers = range(start, min(count, start + _CHUNK - 1) + 1)

        def insert(conn: sqlite3.Connection, numbers: range = numbers) -> None:
            add_members(conn, (demo_member(n, tiers, phone_key) for n in numbers), stamp)
        await writer.submit(insert)
        rules = ledger.rules
        await ledger.record_many([
            Entry(kind=EntryKind.EARN, points=WELCOME_POINTS, account_id=demo_ids(n)[1],
                  member_id=demo_ids(n)[0], source_type=DEMO_SOURCE, source_key=demo_ids(n)[0],
                  reason="Demo welcome points", effective_at=now,
                  expires_at=expiry_for(now, rules.expiry, rules.tz),
                  rule_version=rules.version, actor="demo")
            for n in numbers])
    return count


def demo_member(n: int, tiers: list[str], phone_key: bytes | None) -> NewMember:
    member, account, card, phone = demo_ids(n)
    identifiers = [("card", card)]
    if phone_key is not None:
        identifiers.append(("phone_hash", phone_hash(phone_key, phone)))
    return NewMember(id=member, account_id=account, display_name=f"Demo *{n % 100:02d}",
                     tier=tiers[n % len(tiers)], identifiers=tuple(identifiers))


def seed_demo_offers(conn: sqlite3.Connection, now: datetime) -> int:
    """Add the demo offers if the store has none; how many were added."""
    if conn.execute("SELECT 1 FROM offers LIMIT 1").fetchone() is not None:
        return 0
    conn.executemany(
        "INSERT INTO offers (id, title, definition, updated_at) VALUES (?, ?, ?, ?)",
        [(offer_id, offer["title"], json.dumps(offer), to_text(now))
         for offer_id, offer in DEMO_OFFERS.items()])
    return len(DEMO_OFFERS)


async def seed_demo_ble(writer: Writer, now: datetime) -> int:
    """Beacon keys for the demo members that lack one (the keys `mallgate sim ble` derives
    too) and the demo offers; how many keys were added."""
    def seed(conn: sqlite3.Connection) -> int:
        members = members_without(conn, "ble_key", id_prefix="m-demo-")
        give_identifiers(conn, "ble_key",
                         {member: ble_key_value(demo_key(member)) for member in members},
                         str(to_text(now)))
        seed_demo_offers(conn, now)
        return len(members)
    return await writer.submit(seed)


async def demo_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    writer, ledger = app[WRITER], app[LEDGER]
    k = settings.kiosk
    phone_key = k.phone_hash_key.get_secret_value().encode("utf-8") if k.phone_hash_key else None
    made = await seed_demo_members(writer, ledger, k.demo_members, now=ledger.now(),
                                   phone_key=phone_key)
    if made:
        log.info("demo: created %s demo members (cards DEMO0001...)", made)
    if settings.ble.enabled:
        keyed = await seed_demo_ble(writer, ledger.now())
        if keyed:
            log.info("demo: gave %s demo members beacon keys and added demo offers", keyed)
    yield
