"""Enrolment at central: a one-time code sent through the mall's SMS webhook, checked with
limited attempts and a short life, kept only hashed; the member created once per phone; a
gateway's provisional member confirmed with its account kept. On SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from cloud_api.client import CentralClient
from cloud_api.errors import CentralRejected, CentralUnavailable
from cloud_api.server.phones import PhoneKeys
from cloud_api.server.postgres_store import PostgresStorage
from cloud_api.server.sqlite_store import SqliteStorage
from cloud_api.server.storage import Storage
from gateway.members import phone_hash
from tests.cloud_api.central import GATEWAY, MALL, Central, running_central
from tests.cloud_api.pg import fresh_database
from tests.cloud_api.sms import SmsGateway, sms_gateway

KEY = b"phone-key-of-the-test-mall"
NUMBER = "13900139000"
CONSENT = {"policy_version": "2026-01", "accepted_at": "2026-11-22T02:00:00+00:00"}


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture(params=["sqlite", "postgres"])
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "postgres":
        return "postgres", await fresh_database(request.getfixturevalue("postgres_server"))
    return "sqlite", str(tmp_path / "central.db")


@pytest.fixture
async def sms() -> AsyncIterator[SmsGateway]:
    async with sms_gateway() as gateway:
        yield gateway


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def central(place: tuple[str, str], sms: SmsGateway,
                  clock: Clock) -> AsyncIterator[Central]:
    kind, where = place
    phones = PhoneKeys({MALL: KEY})
    storage: Storage = (PostgresStorage(where, phones=phones, now=clock) if kind == "postgres"
                        else SqliteStorage(where, phones=phones, now=clock))
    async with running_central(storage, code_sender=sms.sender) as running:
        yield running


@pytest.fixture
async def gw(central: Central) -> AsyncIterator[CentralClient]:
    async with CentralClient(central.url, central.gateway_token, timeout_s=5) as client:
        yield client


async def rows(place: tuple[str, str], statement: str) -> list[tuple[Any, ...]]:
    kind, where = place
    if kind == "sqlite":
        with contextlib.closing(sqlite3.connect(where)) as conn:
            return conn.execute(statement).fetchall()
    conn = await asyncpg.connect(where)
    try:
        return [tuple(r) for r in await conn.fetch(statement)]
    finally:
        await conn.close()


async def refused(call: Any) -> str:
    with pytest.raises(CentralRejected) as caught:
        await call
    return caught.value.code


async def test_a_code_enrols_a_member_once(gw: CentralClient, sms: SmsGateway,
                                           place: tuple[str, str]) -> None:
    sent = await gw.request_enrolment_code(GATEWAY, "+86 139-0013-9000")
    assert sent["phone_masked"] == "139****9000"
    code = sms.code_for(NUMBER)
    assert len(code) == 6 and code.isdigit()
    kept = await rows(place, "SELECT code_hash FROM enrolment_codes")
    assert len(kept) == 1 and code not in str(kept[0][0])  # only its keyed hash

    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    body = {"enrolment_id": "k1-01", "phone": NUMBER, "code": wrong, "consent": CONSENT,
            "referrer": "m-friend"}
    assert await refused(gw.enrol(GATEWAY, body)) == "invalid_code"
    enrolled = await gw.enrol(GATEWAY, {**body, "code": code})
    assert enrolled["created"] is True
    member = enrolled["member"]
    assert member["phone_masked"] == "139****9000"
    assert {"kind": "phone_hash", "value": phone_hash(KEY, NUMBER)} in member["identifiers"]
    # A retry of the same enrolment is the same member, even though the code is used up.
    again = await gw.enrol(GATEWAY, {**body, "code": code})
    assert again == {"member": member, "created": False}
    # The same phone enrolled again (another kiosk, a new code) is the same member.
    await gw.request_enrolment_code(GATEWAY, NUMBER)
    second = await gw.enrol(GATEWAY, {**body, "enrolment_id": "k2-01",
                                      "code": sms.code_for(NUMBER)})
    assert second["created"] is False
    assert second["member"]["member_id"] == member["member_id"]
    profiles = await rows(place, "SELECT profile FROM members")
    assert len(profiles) == 1
    assert '"policy_version": "2026-01"' in profiles[0][0]
    assert NUMBER not in profiles[0][0]


async def test_codes_are_short_lived_and_their_attempts_limited(
        gw: CentralClient, sms: SmsGateway, clock: Clock) -> None:
    body = {"enrolment_id": "k1-02", "phone": NUMBER, "consent": CONSENT}
    assert await refused(gw.enrol(GATEWAY, {**body, "code": "123456"})) == "code_expired"
    await gw.request_enrolment_code(GATEWAY, NUMBER)
    code = sms.code_for(NUMBER)
    wrong = f"{(int(code) + 7) % 1_000_000:06d}"
    for _ in range(5):
        assert await refused(gw.enrol(GATEWAY, {**body, "code": wrong})) == "invalid_code"
    # The attempts are spent: the right code no longer works.
    assert await refused(gw.enrol(GATEWAY, {**body, "code": code})) == "too_many_attempts"
    await gw.request_enrolment_code(GATEWAY, NUMBER)
    clock.at += timedelta(seconds=301)
    assert await refused(gw.enrol(GATEWAY, {**body, "code": sms.code_for(NUMBER)})) == \
        "code_expired"
    # An enrolment needs a code or a provisional member.
    assert await refused(gw.enrol(GATEWAY, body)) == "invalid_request"


async def test_a_provisional_member_keeps_its_account_and_one_phone_is_one_member(
        gw: CentralClient, admin: CentralClient) -> None:
    # The gateway sends the number's keyed hash and masked form, never the number.
    first = await gw.enrol(GATEWAY, {
        "enrolment_id": "p-1", "phone_hash": phone_hash(KEY, NUMBER),
        "phone_masked": "139****9000", "consent": CONSENT,
        "provisional_member_id": "p-1", "account_id": "pa-1"})
    assert first["created"] is True and first["member"]["account_id"] == "pa-1"
    assert first["member"]["phone_masked"] == "139****9000"
    assert {"kind": "phone_hash", "value": phone_hash(KEY, NUMBER)} in \
        first["member"]["identifiers"]
    # Another kiosk enrolled the same phone offline too: the same member.
    second = await gw.enrol(GATEWAY, {
        "enrolment_id": "p-2", "phone": NUMBER, "consent": CONSENT,
        "provisional_member_id": "p-2", "account_id": "pa-2"})
    assert second["created"] is False
    assert second["member"]["member_id"] == first["member"]["member_id"]
    found = await admin._request("GET", f"/v1/malls/{MALL}/members",
                                 params={"phone": "+86 139 0013 9000"})
    assert [m["member_id"] for m in found["members"]] == [first["member"]["member_id"]]
    assert found["members"][0]["phone_verified"] is False


async def test_a_code_that_cannot_be_sent_is_unavailable(gw: CentralClient,
                                                         sms: SmsGateway) -> None:
    sms.failing = True
    with pytest.raises(CentralUnavailable):
        await gw.request_enrolment_code(GATEWAY, NUMBER)


@pytest.fixture
async def admin(central: Central) -> AsyncIterator[CentralClient]:
    async with CentralClient(central.url, central.admin_token, timeout_s=5) as client:
        yield client


async def test_an_enrolment_is_a_new_member_with_its_rewards(
        gw: CentralClient, admin: CentralClient, sms: SmsGateway) -> None:
    """An enrolment creates the member as the back office does, referral included: both
    sides get their points once, a retry grants nothing again; a referrer who is not a
    member is left out and the shopper is enrolled all the same."""
    await admin.create_member(MALL, {"member_id": "m-friend", "account_id": "a-friend"})
    await gw.request_enrolment_code(GATEWAY, NUMBER)
    body = {"enrolment_id": "k1-03", "phone": NUMBER, "consent": CONSENT,
            "referrer": "m-friend", "code": sms.code_for(NUMBER)}
    member = (await gw.enrol(GATEWAY, body))["member"]["member_id"]
    await gw.enrol(GATEWAY, body)  # a retry
    friend = await admin.get_member(MALL, "m-friend")
    new = await admin.get_member(MALL, member)
    assert [(e["source_type"], e["points"]) for e in friend["ledger"]] == [
        ("task.referrer", 100)]
    assert [(e["source_type"], e["points"]) for e in new["ledger"]] == [
        ("task.referee", 50)]
    # A provisional member naming no member of the mall is confirmed without a referral.
    other = "13700137000"
    confirmed = await gw.enrol(GATEWAY, {
        "enrolment_id": "p-3", "phone_hash": phone_hash(KEY, other),
        "phone_masked": "137****7000", "consent": CONSENT, "referrer": "m-nobody",
        "provisional_member_id": "p-3", "account_id": "pa-3"})
    assert confirmed["created"] is True
    state = await admin.get_member(MALL, confirmed["member"]["member_id"])
    assert state["ledger"] == []
