"""Demo welcome offers, so the demo mall greets its demo members without a central.

Only with `[kiosk] demo_members > 0` (config/demo.toml) and an empty `offers` table: a
real mall's offers come from central through sync.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from gateway.loyalty.wire import to_text

DEMO_OFFERS: dict[str, dict[str, Any]] = {
    "demo-welcome-vip": {
        "title": "Welcome back, valued member", "priority": 10,
        "message": "A free coffee at the atrium cafe, today only.",
        "target": {"tiers": ["gold", "diamond"]},
        "reward": {"kind": "free_item", "description": "One free coffee", "valid_days": 1},
    },
    "demo-welcome": {
        "title": "Welcome to the Demo Mall", "priority": 0,
        "message": "10% off at any store on the ground floor.",
        "target": {},
        "reward": {"kind": "percentage", "description": "10% off one purchase",
                   "valid_days": 7},
    },
}


def seed_demo_offers(conn: sqlite3.Connection, now: datetime) -> int:
    """Add the demo offers if the store has none; how many were added."""
    if conn.execute("SELECT 1 FROM offers LIMIT 1").fetchone() is not None:
        return 0
    conn.executemany(
        "INSERT INTO offers (id, title, definition, updated_at) VALUES (?, ?, ?, ?)",
        [(offer_id, offer["title"], json.dumps(offer), to_text(now))
         for offer_id, offer in DEMO_OFFERS.items()])
    return len(DEMO_OFFERS)
