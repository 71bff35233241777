"""A member enrolled at a kiosk offline survives a resync from central's snapshot: central
does not know it yet, which does not make it a member central dropped."""

from __future__ import annotations

from functools import partial

from cloud_api.client import CentralClient
from gateway.members.provisional import Provisional, add_provisional
from tests.cloud_api.central import Central
from tests.sync.edge import Edge
from tests.sync.test_resync import away_while_central_changes


async def test_a_resync_keeps_provisional_members(central: Central, edge: Edge,
                                                  admin: CentralClient) -> None:
    # "p-…" sorts between central's members and after them: both purges must skip it.
    for member, account in (("M15", "pa-15"), ("p-zz", "pa-zz")):
        provisional = Provisional(
            member_id=member, account_id=account, enrolment_id=f"e-{member}",
            phone_hash=f"hash-{member}", phone_masked="139****9000",
            consent={"policy_version": "v1", "accepted_at": "2026-11-22T02:00:00+00:00"},
            referrer=None, created_at="2026-11-22T02:00:00+00:00")
        await edge.writer.submit(partial(add_provisional, p=provisional))
    await away_while_central_changes(central, edge, admin)
    await edge.engine.sync_now()
    assert edge.engine.counters["resyncs"] == 1
    members = await edge.read(lambda c: [r[0] for r in c.execute(
        "SELECT id FROM members ORDER BY id")])
    assert members == ["M1", "M15", "M2", "M7", "p-zz"]  # M0 purged, the provisional kept
    assert await edge.scalar("SELECT count(*) FROM member_identifiers WHERE "
                             "kind = 'phone_hash'") == 2
