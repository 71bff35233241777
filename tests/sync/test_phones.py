"""A member created centrally with a phone number is found at a kiosk by that number:
central derives the same keyed hash the gateway computes from the number typed in."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cloud_api.client import CentralClient
from cloud_api.server.phones import PhoneKeys
from cloud_api.server.sqlite_store import SqliteStorage
from gateway.members import IdentityKeys, find_member, lookup_for
from tests.cloud_api.central import MALL, running_central
from tests.sync.edge import open_edge

KEY = "phone-key-shared-by-central-and-the-kiosks"


async def test_a_kiosk_finds_a_member_created_centrally_by_phone(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "central.db",
                            phones=PhoneKeys({MALL: KEY.encode("utf-8")}))
    async with running_central(storage) as central, \
            CentralClient(central.url, central.admin_token) as admin, \
            open_edge(tmp_path / "gw.db", central.url, central.gateway_token) as edge:
        await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1",
                                         "name": "王五", "phone": "13800138000"})
        await edge.engine.sync_now()
        # As the kiosk operation does it: the mall's [kiosk] phone_hash_key, the typed number.
        keys = IdentityKeys(qr_key=None, phone_key=KEY.encode("utf-8"), skew_s=30)
        lookup = lookup_for("phone", "+86 138 0013 8000", keys, datetime.now(UTC))
        member = await edge.read(lambda conn: find_member(conn, lookup))
        assert member is not None and (member.id, member.account_id) == ("M1", "A1")
        assert "13800138000" not in repr(await edge.read(
            lambda conn: conn.execute("SELECT * FROM member_identifiers").fetchall()))
