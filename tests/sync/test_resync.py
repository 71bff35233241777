"""A gateway away longer than central's change log resyncs from the snapshot."""

from __future__ import annotations

from typing import Any

from cloud_api.client import CentralClient
from gateway.loyalty.wire import to_text
from sync.apply import apply_snapshot_lines
from tests.cloud_api.central import MALL, Central
from tests.sync.edge import Edge
from tests.sync.test_faults import earn


async def away_while_central_changes(central: Central, edge: Edge,
                                     admin: CentralClient) -> None:
    for n in range(3):
        await admin.create_member(MALL, {"member_id": f"M{n}", "account_id": f"A{n}",
                                         "identifiers": [{"kind": "card", "value": f"C{n}"}]})
    await edge.ledger.record_many([earn(n) for n in range(6)])
    await edge.engine.sync_now()
    # The gateway is away; meanwhile central erases M0, adds M7, grants points ...
    await admin.erase_member(MALL, "M0")
    await admin.create_member(MALL, {"member_id": "M7", "account_id": "A7"})
    await admin.adjust(MALL, "M1", request_id="g1", points=25, reason="gift")
    # ... and forgets its change log, tombstone included.
    assert await central.storage.purge_changes(MALL, older_than_s=-1) > 0


async def test_an_expired_cursor_resyncs_from_the_snapshot(
    central: Central, edge: Edge, admin: CentralClient,
) -> None:
    await away_while_central_changes(central, edge, admin)
    await edge.ledger.record(earn(100))  # recorded at the edge meanwhile: still pushed
    status = await edge.engine.sync_now()
    assert edge.engine.counters["resyncs"] == 1
    members = await edge.read(lambda c: [r[0] for r in c.execute(
        "SELECT id FROM members ORDER BY id")])
    assert members == ["M1", "M2", "M7"]  # M0 purged though its tombstone was gone
    assert await edge.scalar("SELECT count(*) FROM member_identifiers WHERE value = 'C0'") == 0
    assert (await edge.ledger.balance("A1")).confirmed == \
        (await admin.get_member(MALL, "M1"))["balance"]["available"]
    assert status.outbox_depth == 0 and not status.resync_in_progress
    assert status.cursor == await central.storage.head(MALL)


async def test_an_interrupted_snapshot_resumes_where_it_stopped(
    central: Central, edge: Edge, admin: CentralClient,
) -> None:
    await away_while_central_changes(central, edge, admin)
    lines: list[dict[str, Any]] = [
        line async for line in edge.client.snapshot(edge.engine.gateway_id)]
    at = to_text(edge.ledger.now()) or ""
    first = lines[:3]  # the header and two members, then the connection broke
    await edge.writer.submit(lambda c: apply_snapshot_lines(c, first, at))
    assert (await edge.engine.status()).resync_in_progress
    await edge.engine.sync_now()  # finishes the snapshot first, from M1 on
    status = await edge.engine.status()
    assert not status.resync_in_progress and status.cursor_lag == 0
    members = await edge.read(lambda c: [r[0] for r in c.execute(
        "SELECT id FROM members ORDER BY id")])
    assert members == ["M1", "M2", "M7"]
