"""Central keeps a member's phone number as the mall's keyed hash and a masked form, never
in clear (unless told to keep it, encrypted): in its database, in the change feed, in its
replies. The service desk finds members by the number all the same."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from cryptography.fernet import Fernet

from cloud_api.client import CentralClient
from cloud_api.server.phones import PhoneKeys
from cloud_api.server.postgres_store import PostgresStorage
from cloud_api.server.sqlite_store import SqliteStorage
from cloud_api.server.storage import Storage
from gateway.members import phone_hash
from tests.cloud_api.central import GATEWAY, MALL, Central, running_central
from tests.cloud_api.pg import fresh_database

KEY = b"phone-key-of-the-test-mall"
NUMBER = "13800138000"
TYPED = "+86 138-0013-8000"
OTHER = "other-mall"  # a mall central has no phone key for
SEAL = Fernet.generate_key()


def keyed_storage(kind: str, where: str, *, seal: bool = False) -> Storage:
    phones = PhoneKeys({MALL: KEY}, seal_key=SEAL if seal else None)
    if kind == "postgres":
        return PostgresStorage(where, phones=phones)
    return SqliteStorage(where, phones=phones)


@pytest.fixture(params=["sqlite", "postgres"])
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """A backend and where its database is (a file, or a fresh PostgreSQL database)."""
    if request.param == "postgres":
        return "postgres", await fresh_database(request.getfixturevalue("postgres_server"))
    return "sqlite", str(tmp_path / "central.db")


@pytest.fixture
async def keyed(place: tuple[str, str]) -> AsyncIterator[Central]:
    async with running_central(keyed_storage(*place)) as central:
        yield central


async def sql(place: tuple[str, str], statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the database itself, beside the server."""
    kind, where = place
    if kind == "sqlite":
        with contextlib.closing(sqlite3.connect(where)) as conn, conn:
            return conn.execute(statement, args).fetchall()
    conn = await asyncpg.connect(where)
    try:
        numbered = statement
        for n in range(len(args)):
            numbered = numbered.replace("?", f"${n + 1}", 1)
        return [tuple(r) for r in await conn.fetch(numbered, *args)]
    finally:
        await conn.close()


async def everything_stored(place: tuple[str, str]) -> str:
    """Every row of the tables that hold members, as text."""
    rows = [await sql(place, f"SELECT * FROM {table}")
            for table in ("members", "changes", "documents")]
    return repr(rows)


async def admin_get(central: Central, path: str, token: str | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(
            central.url + path,
            headers={"Authorization": f"Bearer {token or central.admin_token}"}) as reply:
        return reply.status, await reply.json()


async def test_a_phone_is_stored_as_its_keyed_hash_and_masked_form_only(
    keyed: Central, place: tuple[str, str],
) -> None:
    async with CentralClient(keyed.url, keyed.admin_token) as admin, \
            CentralClient(keyed.url, keyed.gateway_token) as gw:
        created = await admin.create_member(MALL, {
            "member_id": "M1", "account_id": "A1", "name": "张三", "phone": TYPED,
            "identifiers": [{"kind": "card", "value": "C-1"}]})
        await admin.update_member(MALL, "M1", {"tier": "gold"})
        state = await admin.get_member(MALL, "M1")
        page = await gw.changes(GATEWAY, 0)
    stored = await everything_stored(place)
    assert NUMBER not in stored and "0013" not in stored
    assert await sql(place, "SELECT phone_hash, phone_masked, phone_encrypted FROM members") \
        == [(phone_hash(KEY, NUMBER), "138****8000", None)]
    for member in (created, state["member"]):
        assert member["phone_masked"] == "138****8000" and "phone" not in member
    views = [c["payload"] for c in page.changes if c["kind"] == "member.upsert"]
    assert len(views) == 2
    for view in views:
        assert view["identifiers"] == [{"kind": "card", "value": "C-1"},
                                       {"kind": "phone_hash", "value": phone_hash(KEY, NUMBER)}]
        assert view["phone_masked"] == "138****8000"
    assert NUMBER not in repr(page.changes)


async def test_a_changed_or_removed_phone_replaces_the_stored_one(
    keyed: Central, place: tuple[str, str],
) -> None:
    async with CentralClient(keyed.url, keyed.admin_token) as admin:
        await admin.create_member(MALL, {"member_id": "M1", "phone": NUMBER})
        changed = await admin.update_member(MALL, "M1", {"phone": "13900139000"})
        assert changed["phone_masked"] == "139****9000"
        assert await sql(place, "SELECT phone_hash FROM members") == [
            (phone_hash(KEY, "13900139000"),)]
        removed = await admin.update_member(MALL, "M1", {"phone": ""})
        assert "phone_masked" not in removed
        assert await sql(place, "SELECT phone_hash, phone_masked FROM members") == [
            (None, None)]
        await admin.erase_member(MALL, "M1")


async def test_erasure_forgets_the_phone(keyed: Central, place: tuple[str, str]) -> None:
    async with CentralClient(keyed.url, keyed.admin_token) as admin:
        await admin.create_member(MALL, {"member_id": "M1", "phone": NUMBER})
        await admin.erase_member(MALL, "M1")
    assert await sql(place, "SELECT phone_hash, phone_masked, phone_encrypted "
                            "FROM members") == [(None, None, None)]
    assert "138****8000" not in await everything_stored(place)


async def test_a_malformed_phone_is_an_invalid_member(keyed: Central) -> None:
    async with aiohttp.ClientSession() as session, session.post(
            f"{keyed.url}/v1/malls/{MALL}/members", json={"phone": "call me"},
            headers={"Authorization": f"Bearer {keyed.admin_token}"}) as reply:
        body = await reply.json()
    assert reply.status == 400
    assert body["error"]["code"] == "invalid_member"
    assert body["error"]["details"]["field"] == "phone"


async def test_the_service_desk_finds_members_by_phone(keyed: Central) -> None:
    async with CentralClient(keyed.url, keyed.admin_token) as admin:
        for member, number in (("M1", NUMBER), ("M2", TYPED), ("M3", "13900139000")):
            await admin.create_member(MALL, {"member_id": member, "account_id": "A1",
                                             "phone": number})
        await admin.erase_member(MALL, "M2")
    status, found = await admin_get(keyed, f"/v1/malls/{MALL}/members?phone=008613800138000")
    assert status == 200
    assert [(m["member_id"], m["phone_masked"]) for m in found["members"]] == [
        ("M1", "138****8000")]
    status, found = await admin_get(keyed, f"/v1/malls/{MALL}/members?phone=13700137000")
    assert (status, found) == (200, {"members": []})
    for query, code in (("?phone=abc", "invalid_parameter"), ("", "invalid_parameter")):
        status, refused = await admin_get(keyed, f"/v1/malls/{MALL}/members{query}")
        assert (status, refused["error"]["code"]) == (400, code)
    status, refused = await admin_get(keyed, f"/v1/malls/{MALL}/members?phone={NUMBER}",
                                      token=keyed.gateway_token)
    assert (status, refused["error"]["code"]) == (403, "forbidden")


async def test_a_mall_without_a_phone_key_keeps_only_the_masked_form(
    keyed: Central, place: tuple[str, str],
) -> None:
    token = await keyed.storage.add_token(OTHER, "admin", None)
    async with CentralClient(keyed.url, token) as admin:
        created = await admin.create_member(OTHER, {"member_id": "M1", "phone": NUMBER})
    assert created["phone_masked"] == "138****8000"
    assert NUMBER not in await everything_stored(place)
    assert await sql(place, "SELECT phone_hash, phone_masked FROM members") == [
        (None, "138****8000")]
    status, refused = await admin_get(keyed, f"/v1/malls/{OTHER}/members?phone={NUMBER}",
                                      token=token)
    assert (status, refused["error"]["code"]) == (409, "phone_key_missing")
    status, refused = await admin_get(keyed, f"/v1/malls/{MALL}/members?phone={NUMBER}",
                                      token=token)
    assert status == 403  # and no other mall's members, whatever the number


async def test_the_number_itself_is_kept_only_encrypted_when_asked(
    place: tuple[str, str],
) -> None:
    async with running_central(keyed_storage(*place, seal=True)) as central, \
            CentralClient(central.url, central.admin_token) as admin:
        await admin.create_member(MALL, {"member_id": "M1", "phone": TYPED})
        state = await admin.get_member(MALL, "M1")
        assert (state["member"]["phone"], state["member"]["phone_masked"]) == (
            NUMBER, "138****8000")
    assert NUMBER not in await everything_stored(place)
    ((sealed,),) = await sql(place, "SELECT phone_encrypted FROM members")
    assert Fernet(SEAL).decrypt(sealed.encode()).decode() == NUMBER


async def test_clear_numbers_of_an_older_central_are_converted_when_the_key_is_there(
    place: tuple[str, str],
) -> None:
    kind, where = place
    # An older central kept the number in the profile; it has no key for the mall yet.
    unkeyed = PostgresStorage(where) if kind == "postgres" else SqliteStorage(where)
    async with running_central(unkeyed):
        pass
    legacy = ("INSERT INTO members (mall_id, member_id, account_id, profile, edge_view, "
              "version, erased_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, NULL, '')")
    for member, number in (("M1", NUMBER), ("M2", "n/a")):
        await sql(place, legacy, MALL, member, member,
                  f'{{"name": "李四", "phone": "{number}"}}',
                  f'{{"member_id": "{member}", "account_id": "{member}", "version": 1}}')
    async with running_central(unkeyed):
        pass  # still no key: left as it was
    assert NUMBER in await everything_stored(place)

    async with running_central(keyed_storage(*place)) as central, \
            CentralClient(central.url, central.admin_token) as admin, \
            CentralClient(central.url, central.gateway_token) as gw:
        state = await admin.get_member(MALL, "M1")
        assert state["member"]["phone_masked"] == "138****8000"
        assert state["member"]["version"] == 2 and state["member"]["name"] == "李四"
        (change,) = (await gw.changes(GATEWAY, 0)).changes
        assert change["payload"]["identifiers"] == [
            {"kind": "phone_hash", "value": phone_hash(KEY, NUMBER)}]
        assert change["payload"]["version"] == 2
        # Not a phone number: kept as it was, for an operator to correct.
        assert (await admin.get_member(MALL, "M2"))["member"]["phone"] == "n/a"
    assert NUMBER not in await everything_stored(place)


async def test_a_clear_number_left_over_is_converted_at_the_next_profile_write(
    keyed: Central, place: tuple[str, str],
) -> None:
    await sql(place, "INSERT INTO members (mall_id, member_id, account_id, profile, "
                     "edge_view, version, erased_at, updated_at) VALUES (?, 'M1', 'A1', ?, "
                     "'{}', 1, NULL, '')", MALL, f'{{"phone": "{NUMBER}"}}')
    async with CentralClient(keyed.url, keyed.admin_token) as admin:
        updated = await admin.update_member(MALL, "M1", {"tier": "gold"})
    assert updated["phone_masked"] == "138****8000" and "phone" not in updated
    assert NUMBER not in await everything_stored(place)
