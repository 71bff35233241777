"""A provisional member merged under central's id survives SIGKILL at each step: after a
restart the member is one member at both ends, with every point once."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud_api.client import CentralClient
from cloud_api.server.phones import PhoneKeys
from cloud_api.server.postgres_store import PostgresStorage
from cloud_api.server.sqlite_store import SqliteStorage
from cloud_api.server.storage import Storage
from gateway.members import phone_hash
from tests.cloud_api.central import MALL, Central, running_central
from tests.cloud_api.pg import fresh_database
from tests.sync.children import run_child
from tests.sync.edge import open_edge
from tests.sync.enrol_child import NUMBER, PHONE_KEY

POINTS = ["after_enrol", "after_push", "before_confirm", "after_confirm", "after_merge"]


@pytest.fixture(params=["sqlite", "postgres"])
async def keyed_central(request: pytest.FixtureRequest,
                        tmp_path: Path) -> AsyncIterator[Central]:
    phones = PhoneKeys({MALL: PHONE_KEY})
    storage: Storage
    if request.param == "postgres":
        dsn = await fresh_database(request.getfixturevalue("postgres_server"))
        storage = PostgresStorage(dsn, phones=phones)
    else:
        storage = SqliteStorage(tmp_path / "central.db", phones=phones)
    async with running_central(storage) as central:
        yield central


async def child(db: Path, central: Central, *kill: str) -> tuple[int, str]:
    return await run_child("tests.sync.enrol_child", str(db), central.url,
                           central.gateway_token, *kill)


@pytest.mark.parametrize("point", POINTS)
async def test_sigkill_at_each_step_of_a_merge_loses_and_doubles_nothing(
        keyed_central: Central, tmp_path: Path, point: str) -> None:
    db = tmp_path / "gw.db"
    code, output = await child(db, keyed_central, point)
    assert code == -signal.SIGKILL, output
    code, output = await child(db, keyed_central)
    assert code == 0 and "done" in output, output

    async with open_edge(db, keyed_central.url, keyed_central.gateway_token) as edge:
        (provisional, account, final) = await edge.read(lambda c: c.execute(
            "SELECT member_id, account_id, final_member_id FROM provisional_members "
            "WHERE merged_at IS NOT NULL").fetchone())
        assert await edge.scalar("SELECT count(*) FROM provisional_members") == 1
        assert await edge.scalar("SELECT count(*) FROM members WHERE id = ?",
                                 provisional) == 0
        assert await edge.scalar("SELECT member_id FROM member_identifiers WHERE "
                                 "kind = 'phone_hash' AND value = ?",
                                 phone_hash(PHONE_KEY, NUMBER)) == final
        assert await edge.scalar("SELECT member_id FROM member_aliases WHERE alias_id = ?",
                                 provisional) == final
        assert await edge.scalar("SELECT account_id FROM members WHERE id = ?",
                                 final) == account
        # One check-in, once, on the account the member keeps.
        assert await edge.scalar("SELECT count(*) FROM ledger WHERE account_id = ?",
                                 account) == 1
        edge_available = (await edge.ledger.balance(account)).available
    async with CentralClient(keyed_central.url, keyed_central.admin_token) as admin:
        found = await admin._request("GET", f"/v1/malls/{MALL}/members",
                                     params={"phone": NUMBER})
        assert [m["member_id"] for m in found["members"]] == [final]
        state = await admin.get_member(MALL, final)
    assert len(state["ledger"]) == 1
    assert state["balance"]["available"] == edge_available > 0
