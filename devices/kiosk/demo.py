"""Demo members, so a person with mosquitto_pub can try the kiosk operations at once.

Only for `[kiosk] demo_members > 0` (config/demo.toml); a production store is filled by
sync from central. Member n is `m-demo-NNNN` with card `DEMONNNN`, phone 1380000NNNN (when a
phone hash key is set) and 500 welcome points.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from devices.kiosk.identity import phone_hash
from gateway.ledger import Ledger
from gateway.loyalty import Entry, EntryKind
from gateway.loyalty.calendar import expiry_for
from gateway.loyalty.wire import to_text
from gateway.store import Writer

DEMO_SOURCE = "demo.welcome"
WELCOME_POINTS = 500
_CHUNK = 1000


def demo_ids(n: int) -> tuple[str, str, str, str]:
    """Member id, account id, card number and phone number of demo member `n`."""
    return f"m-demo-{n:04d}", f"a-demo-{n:04d}", f"DEMO{n:04d}", f"1380000{n:04d}"


async def seed_demo_members(writer: Writer, ledger: Ledger, count: int, *, now: datetime,
                            phone_key: bytes | None) -> int:
    """Create `count` demo members if the store has no members yet; how many were made."""
    def has_members(conn: sqlite3.Connection) -> bool:
        return conn.execute("SELECT 1 FROM members LIMIT 1").fetchone() is not None
    if await writer.submit(has_members):
        return 0
    tiers = [tier.code for tier in ledger.rules.tiers.tiers]
    stamp = to_text(now)
    for start in range(1, count + 1, _CHUNK):
        numbers = range(start, min(count, start + _CHUNK - 1) + 1)

        def insert(conn: sqlite3.Connection, numbers: range = numbers) -> None:
            for n in numbers:
                member, account, card, phone = demo_ids(n)
                conn.execute("INSERT INTO accounts (id, owner_member_id, updated_at) "
                             "VALUES (?, ?, ?)", (account, member, stamp))
                conn.execute(
                    "INSERT INTO members (id, account_id, display_name_masked, tier, "
                    "updated_at) VALUES (?, ?, ?, ?, ?)",
                    (member, account, f"Demo *{n % 100:02d}", tiers[n % len(tiers)], stamp))
                conn.execute("INSERT INTO member_identifiers (kind, value, member_id) "
                             "VALUES ('card', ?, ?)", (card, member))
                if phone_key is not None:
                    conn.execute("INSERT INTO member_identifiers (kind, value, member_id) "
                                 "VALUES ('phone_hash', ?, ?)",
                                 (phone_hash(phone_key, phone), member))
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
