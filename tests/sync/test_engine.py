"""Push and pull between a gateway's store and the real central, step by step."""

from __future__ import annotations

from datetime import UTC, datetime

from cloud_api.client import CentralClient
from gateway.ledger.allowance import allowance_left
from gateway.loyalty import LoyaltyRules, checkin_entry, redemption_entry
from tests.cloud_api.central import MALL, Central
from tests.sync.edge import Edge

RULES = LoyaltyRules()
NOW = datetime(2026, 5, 1, 4, tzinfo=UTC)


async def test_a_member_created_centrally_checks_in_at_the_edge_and_central_sees_it(
    edge: Edge, admin: CentralClient,
) -> None:
    await admin.create_member(MALL, {
        "member_id": "M1", "account_id": "A1", "name": "张三", "phone": "13800000000",
        "tier": "silver", "identifiers": [{"kind": "qr_token", "value": "QR-1"}]})
    await edge.engine.sync_now()
    row = await edge.read(lambda c: c.execute(
        "SELECT m.id, m.account_id, m.display_name_masked, m.tier FROM member_identifiers i "
        "JOIN members m ON m.id = i.member_id WHERE i.kind = 'qr_token' AND i.value = 'QR-1'"
    ).fetchone())
    assert row == ("M1", "A1", "张*", "silver")
    await edge.ledger.record(checkin_entry(account_id="A1", member_id="M1", at=NOW,
                                           rules=RULES))
    status = await edge.engine.sync_now()
    assert status.outbox_depth == 0 and status.cursor_lag == 0
    state = await admin.get_member(MALL, "M1")
    assert state["balance"]["available"] == RULES.checkin.points
    balance = await edge.ledger.balance("A1")
    assert (balance.confirmed, balance.pending) == (RULES.checkin.points, 0)


async def test_entries_made_centrally_come_down_acknowledged_without_outbox_rows(
    edge: Edge, admin: CentralClient,
) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    await admin.adjust(MALL, "M1", request_id="adj", points=500, reason="welcome")
    await edge.engine.sync_now()
    balance = await edge.ledger.balance("A1")
    assert (balance.available, balance.confirmed, balance.pending) == (500, 500, 0)
    assert await edge.scalar("SELECT count(*) FROM outbox") == 0
    assert await edge.read(lambda c: allowance_left(c, "A1", cap=500)) == 500


async def test_pending_local_entries_stay_visible_until_acknowledged(
    edge: Edge, admin: CentralClient,
) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    await admin.adjust(MALL, "M1", request_id="adj", points=300, reason="welcome")
    await edge.engine.pull_once()
    await edge.ledger.record(redemption_entry(account_id="A1", member_id="M1",
                                              request_id="k1", cost=100, item="mug", at=NOW,
                                              rules=RULES))
    await edge.engine.pull_once()  # a download does not hide the unacknowledged burn
    balance = await edge.ledger.balance("A1")
    assert (balance.available, balance.confirmed, balance.pending) == (200, 300, -100)
    assert await edge.read(lambda c: allowance_left(c, "A1", cap=500)) == 200
    await edge.engine.sync_now()
    balance = await edge.ledger.balance("A1")
    assert (balance.available, balance.confirmed, balance.pending) == (200, 200, 0)
    assert await edge.read(lambda c: allowance_left(c, "A1", cap=500)) == 200


async def test_erasure_purges_the_member_from_the_edge(
    edge: Edge, admin: CentralClient,
) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1", "name": "李四",
                                     "identifiers": [{"kind": "card", "value": "C9"}]})
    await edge.engine.sync_now()
    assert await edge.scalar("SELECT count(*) FROM member_identifiers") == 1
    await admin.erase_member(MALL, "M1")
    await edge.engine.sync_now()
    assert await edge.scalar("SELECT count(*) FROM members") == 0
    assert await edge.scalar("SELECT count(*) FROM member_identifiers") == 0


async def test_a_rejected_event_goes_to_dead_letters_and_never_blocks_the_rest(
    edge: Edge, central: Central,
) -> None:
    good = checkin_entry(account_id="A1", member_id="M1", at=NOW, rules=RULES)
    await edge.ledger.record(good)
    await edge.writer.submit(lambda c: c.execute(
        "INSERT INTO outbox (event_id, event_type, account_id, payload, created_at) "
        "VALUES ('bad', 'ledger.entry', 'A1', '{\"points\": 1}', '2026-05-01')"))
    await edge.ledger.record(checkin_entry(account_id="A2", member_id="M2", at=NOW,
                                           rules=RULES))
    status = await edge.engine.sync_now()
    assert status.outbox_depth == 0 and status.dead_letters == 1
    assert edge.engine.counters["pushed"] == 2
    code = await edge.scalar("SELECT error_code FROM dead_letters WHERE source = 'sync.push'")
    assert code == "invalid_entry"


async def test_offers_and_config_versions_reach_the_edge(
    edge: Edge, admin: CentralClient,
) -> None:
    await admin.put_offer(MALL, "welcome", {"title": "Free coffee", "zone": "entrance"})
    await admin.put_config(MALL, "loyalty", "2026.2", {"checkin": {"points": 7}})
    await edge.engine.sync_now()
    assert await edge.scalar("SELECT title FROM offers WHERE id = 'welcome'") == "Free coffee"
    assert await edge.scalar("SELECT version FROM config_versions WHERE kind = 'loyalty'") \
        == "2026.2"


async def test_record_remote_is_acknowledged_idempotent_and_never_queued(edge: Edge) -> None:
    remote = checkin_entry(account_id="A1", member_id="M1", at=NOW, rules=RULES).stamped(
        origin_site="gw-other", origin_seq=9, hlc="0000000000001-0000-gw-other",
        recorded_at=NOW)
    assert await edge.ledger.record_remote([(remote, 41)]) == 1
    assert await edge.ledger.record_remote([(remote, 41)]) == 0
    assert await edge.scalar("SELECT count(*) FROM outbox") == 0
    assert await edge.scalar("SELECT server_seq FROM ledger_sync") == 41
    assert await edge.scalar("SELECT origin_site FROM ledger") == "gw-other"
    balance = await edge.ledger.balance("A1")
    assert (balance.confirmed, balance.pending) == (RULES.checkin.points, 0)
