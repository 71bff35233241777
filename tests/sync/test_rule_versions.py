"""Rules versions reach a gateway by the change feed, and by the snapshot when the feed's
changes were purged while it was away."""

from __future__ import annotations

from datetime import UTC, datetime

from cloud_api.client import CentralClient
from gateway.loyalty import LoyaltyRules
from gateway.loyalty.versions import rules_document
from sync.state import read_status
from tests.cloud_api.central import MALL, Central
from tests.sync.edge import Edge


def doubled(version: str) -> dict[str, object]:
    document = rules_document(LoyaltyRules())
    document["earn"] |= {"points_per_yuan": 2}
    return document | {"version": version}


async def test_a_resynced_gateway_gets_the_rules_whose_changes_were_purged(
        central: Central, edge: Edge, admin: CentralClient) -> None:
    edge.engine.on_documents = edge.ledger.reload_rules
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    await edge.engine.sync_now()
    # Away: central publishes two versions, then forgets its change log.
    await admin.put_config(MALL, "loyalty", "x2", doubled("x2"),
                           effective_at="2026-01-01T00:00:00+08:00")
    await admin.put_config(MALL, "loyalty", "x2-later", doubled("x2-later"),
                           effective_at="2099-01-01T00:00:00Z")
    assert await central.storage.purge_changes(MALL, older_than_s=-1) > 0
    await edge.engine.sync_now()
    assert edge.engine.counters["resyncs"] == 1
    now = datetime(2026, 6, 1, tzinfo=UTC)
    status = await edge.read(lambda c: read_status(c, now))
    assert status.rules_in_force == "x2" and status.refused_changes == 0
    assert [u["version"] for u in status.rules_upcoming] == ["x2-later"]
    book = edge.ledger.book
    assert [v.version for v in book.versions] == ["x2", "x2-later"]
    assert book.at(now).earn.points_per_yuan == 2
