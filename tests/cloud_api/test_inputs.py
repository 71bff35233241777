"""Every request body is checked against the contract, and every error, whatever caused
it, is the documented JSON shape: never a plain-text page, never a 500 for bad input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.cloud_api.central import GATEWAY, MALL, Central

MEMBERS = f"/v1/malls/{MALL}/members"


@dataclass
class Reply:
    status: int
    content_type: str
    body: Any

    @property
    def code(self) -> str:
        assert self.content_type == "application/json", (self.status, self.body)
        assert set(self.body) == {"error"}, self.body
        error = self.body["error"]
        assert isinstance(error["message"], str) and isinstance(error["details"], dict)
        return str(error["code"])


async def call(central: Central, method: str, path: str, body: Any = None, *,
               raw: bytes | None = None, token: str | None = None) -> Reply:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Authorization": f"Bearer {token or central.admin_token}",
               "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session, session.request(
            method, central.url + path, data=data, headers=headers) as response:
        text = await response.text()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
        return Reply(response.status, response.content_type, parsed)


@pytest.mark.parametrize("profile", [
    {"birth_month": 13, "birth_day": 1},
    {"birth_month": 1, "birth_day": 32},
    {"birth_month": 2, "birth_day": 30},
    {"birth_month": 4, "birth_day": 31},
    {"birth_month": "1", "birth_day": 2},
    {"birth_month": 1.5, "birth_day": 2},
    {"birth_month": True, "birth_day": 2},
    {"name": 5},
    {"tags": "vip"},
    {"tags": ["x" * 10_000]},
    {"member_id": ""},
    {"member_id": "m" * 500},
    {"identifiers": [{"kind": "card"}]},
    {"tier_anniversary": "not a date"},
    {"colour": "red"},
])
async def test_a_member_outside_the_contract_is_refused(central: Central,
                                                        profile: dict[str, Any]) -> None:
    created = await call(central, "POST", MEMBERS, profile)
    assert (created.status, created.code) == (400, "invalid_member")
    await call(central, "POST", MEMBERS, {"member_id": "M1"})
    updated = await call(central, "PATCH", MEMBERS + "/M1", profile)
    assert (updated.status, updated.code) == (400, "invalid_member")


async def test_nan_and_infinity_are_not_json(central: Central) -> None:
    for raw in (b'{"birth_month": NaN, "birth_day": 1}', b'{"birth_month": Infinity}'):
        reply = await call(central, "POST", MEMBERS, raw=raw)
        assert (reply.status, reply.code) == (400, "invalid_json")


@pytest.mark.parametrize(("path", "body"), [
    ("/M1/redemptions", {"request_id": "r", "cost": "5"}),
    ("/M1/redemptions", {"request_id": "r", "cost": 2**63}),
    ("/M1/redemptions", {"request_id": "r", "cost": 1.0}),
    ("/M1/redemptions", {"request_id": "r" * 1000, "cost": 5}),
    ("/M1/redemptions", {"request_id": "r", "cost": 5, "item": "x" * 1_000_000}),
    ("/M1/redemptions", {"cost": 5}),
    ("/M1/adjustments", {"request_id": "a", "points": 0, "reason": "x"}),
    ("/M1/adjustments", {"request_id": "a", "points": 10**15, "reason": "x"}),
    ("/M1/adjustments", {"request_id": "a", "points": -(2**63), "reason": "x"}),
    ("/M1/adjustments", {"request_id": "a", "points": 5, "reason": ""}),
    ("/M1/adjustments", {"request_id": "a", "points": 5}),
])
async def test_entries_made_centrally_are_checked(central: Central, path: str,
                                                  body: dict[str, Any]) -> None:
    await call(central, "POST", MEMBERS, {"member_id": "M1"})
    reply = await call(central, "POST", MEMBERS + path, body)
    assert (reply.status, reply.code) == (400, "invalid_request")
    state = await call(central, "GET", MEMBERS + "/M1")
    assert state.body["ledger"] == []


async def test_documents_and_heartbeats_are_checked(central: Central) -> None:
    config = await call(central, "PUT", f"/v1/malls/{MALL}/config/loyalty", {"payload": {}})
    assert (config.status, config.code) == (400, "invalid_request")
    offer = await call(central, "PUT", f"/v1/malls/{MALL}/offers/o1", ["not", "an", "object"])
    assert (offer.status, offer.code) == (400, "invalid_json")
    beat = await call(central, "POST", f"/v1/gateways/{GATEWAY}/heartbeat",
                      {"outbox_depth": "many"}, token=central.gateway_token)
    assert (beat.status, beat.code) == (400, "invalid_request")
    batch = await call(central, "POST", f"/v1/gateways/{GATEWAY}/events:batch",
                       {"events": "all of them"}, token=central.gateway_token)
    assert (batch.status, batch.code) == (400, "invalid_batch")


@pytest.mark.parametrize(("raw", "code"), [
    (b"{not json", "invalid_json"),
    (b"[" * 10_000 + b"]" * 10_000, "invalid_json"),
    (b'{"member_id": "\xff\xfe"}', "invalid_json"),
    (b'{"birth_month": 9223372036854775808, "birth_day": 1}', "invalid_member"),
    (b"{\"birth_month\": 1" + b"0" * 5000 + b", \"birth_day\": 1}", "invalid_json"),
    (b"", "invalid_json"),
])
async def test_unparseable_bodies_get_the_json_error(central: Central, raw: bytes,
                                                     code: str) -> None:
    reply = await call(central, "POST", MEMBERS, raw=raw)
    assert (reply.status, reply.code) == (400, code)
    pushed = await call(central, "POST", f"/v1/gateways/{GATEWAY}/events:batch", raw=raw,
                        token=central.gateway_token)
    assert pushed.status == 400 and pushed.code in {"invalid_json", "invalid_batch"}


async def test_an_oversized_body_is_413_json(central: Central) -> None:
    raw = json.dumps({"name": "x" * (3 * 1024 * 1024)}).encode()
    reply = await call(central, "POST", MEMBERS, raw=raw)
    assert (reply.status, reply.code) == (413, "too_large")


async def test_unknown_routes_and_methods_answer_json(central: Central) -> None:
    missing = await call(central, "GET", "/v1/nowhere")
    assert (missing.status, missing.code) == (404, "not_found")
    wrong = await call(central, "DELETE", f"/v1/malls/{MALL}/offers/o1")
    assert (wrong.status, wrong.code) == (405, "method_not_allowed")


async def test_an_unexpected_failure_is_a_json_500_with_an_error_id(
    central: Central, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*_: object) -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(central.storage, "get_member", broken)
    reply = await call(central, "GET", MEMBERS + "/M1")
    assert (reply.status, reply.code) == (500, "internal")
    error_id = reply.body["error"]["details"]["error_id"]
    assert "disk on fire" not in json.dumps(reply.body)
    assert any(error_id in record.getMessage() and record.exc_info
               for record in caplog.records)
