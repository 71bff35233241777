"""`/api/v1` through the app's factory on a real store: members, balances, history, the
audited replay, the event stream, and `mallgate http token`."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import datetime
from pathlib import Path

from click.testing import CliRunner
from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient

from devices.pos.printouts import DEFAULT_TEMPLATE
from gateway.app import create_app
from gateway.app.keys import LEDGER, WRITER
from gateway.cli import main
from gateway.http.tokens import Tokens
from gateway.members import NewMember, add_members
from gateway.settings import Settings, load_settings
from tests.http.conftest import bearer, with_tokens
from tests.loyalty.helpers import at, earn
from tests.pos.fixtures import own
from tests.pos.helpers import RULES, Clock, open_pipeline, pos_settings

MEMBER = NewMember(id="m-1", account_id="a-1", display_name="Li *3", tier="gold",
                   identifiers=(("card", "CARD0001"), ("phone_hash", "ab" * 16)))


async def test_a_member_is_found_by_card_and_phone_hash_with_balance_and_history(
        aiohttp_client: AiohttpClient, api_settings: Settings) -> None:
    app = create_app(api_settings)
    client = await aiohttp_client(app)
    await app[WRITER].submit(lambda conn: add_members(conn, [MEMBER], "2026-01-01T00:00:00"))
    await app[LEDGER].record(earn(120, at(2026, 1, 1), key="r1", account="a-1", member="m-1"))
    await app[LEDGER].record(earn(30, at(2026, 1, 2), key="r2", account="a-1", member="m-1"))

    found = await client.get("/api/v1/members", params={"card": "CARD0001"},
                             headers=bearer("pos"))
    assert found.status == 200
    assert await found.json() == {"member_id": "m-1", "account_id": "a-1",
                                  "display_name": "Li *3", "tier": "gold"}
    by_hash = await client.get("/api/v1/members", params={"phone_hash": "ab" * 16},
                               headers=bearer("staff"))
    assert (await by_hash.json())["member_id"] == "m-1"
    missing = await client.get("/api/v1/members", params={"card": "NOPE"},
                               headers=bearer("staff"))
    assert missing.status == 404
    both = await client.get("/api/v1/members", params={"card": "C", "phone_hash": "h"},
                            headers=bearer("staff"))
    assert both.status == 400

    balance = await (await client.get("/api/v1/members/m-1/balance",
                                      headers=bearer("pos"))).json()
    # Nothing acknowledged by central yet: all of it pending.
    assert (balance["available"], balance["confirmed"], balance["pending"]) == (150, 0, 150)
    # r1's points lapse first, a year after noon of 1 January 2026 (Shanghai)
    assert (balance["expiring_points"], balance["expiring_last_day"],
            balance["expiring_at"]) == (120, "2027-01-01", "2027-01-01T04:00:00.000000+00:00")
    history = await (await client.get("/api/v1/members/m-1/history",
                                      headers=bearer("staff"))).json()
    assert [line["reason"] for line in history["history"]][:2] == ["earn r1", "earn r2"]
    assert history["history"][1]["available"] == 150


def _config(tmp_path: Path, total_pattern: str) -> Path:
    fields = DEFAULT_TEMPLATE["fields"]
    path = tmp_path / "gw.toml"
    path.write_text(f"""
[site]
mall_id = "test-mall"
gateway_id = "gw-test"

[store]
path = "{tmp_path / "gw.db"}"

[[pos.templates]]
store_id = "S01"
receipt_no = '{fields["receipt_no"]}'
occurred_at = '{fields["occurred_at"]}'
total = '{total_pattern}'
member_code = '{fields["member_code"]}'
""", encoding="utf-8")
    return path


async def test_a_replay_runs_the_core_replay_and_writes_an_audit_row(
        aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    unreadable = own("gb18030-chinese-mode.bin").replace("合计".encode("gb18030"),
                                                          "总计".encode("gb18030"))
    clock = Clock(datetime(2026, 11, 22, 16, 0, tzinfo=RULES.tz))
    async with open_pipeline(tmp_path / "gw.db", clock, pos_settings()) as pipeline:
        assert (await pipeline.ingest(store_id="S01", pos_id="P1", mode="escpos",
                                      raw=unreadable)).status == "dead"
    fixed = _config(tmp_path, r"[合总]计[:\uff1a]\s*(?P<total>[¥￥]?[\d,]+\.\d{2})")
    app = create_app(with_tokens(load_settings(fixed, environ={})))
    client = await aiohttp_client(app)

    listed = await (await client.get("/api/v1/deadletters", headers=bearer("ops"))).json()
    (letter,) = listed["dead_letters"]
    refused = await client.post(f"/api/v1/deadletters/{letter['id']}/replay",
                                headers=bearer("staff"))
    assert refused.status == 403
    reply = await client.post(f"/api/v1/deadletters/{letter['id']}/replay",
                              headers=bearer("ops"))
    assert reply.status == 200, await reply.text()
    body = await reply.json()
    assert (body["status"], body["receipt_no"]) == ("sale", "20261122-0001")
    again = await client.post(f"/api/v1/deadletters/{letter['id']}/replay",
                              headers=bearer("ops"))
    assert again.status == 409

    with sqlite3.connect(tmp_path / "gw.db") as conn:
        rows = conn.execute("SELECT token_name, role, action, target, outcome "
                            "FROM audit_log ORDER BY id").fetchall()
    assert rows == [("ops-1", "ops", "deadletter.replay", str(letter["id"]), "sale"),
                    ("ops-1", "ops", "deadletter.replay", str(letter["id"]),
                     f"dead letter {letter['id']}: not replayable (already replayed: sale)")]
    receipts = await (await client.get("/api/v1/receipts", headers=bearer("staff"))).json()
    assert receipts["receipts"][0]["receipt_no"] == "20261122-0001"


async def test_the_event_stream_sends_a_snapshot_with_the_parts_token_in_the_query(
        aiohttp_client: AiohttpClient, api_settings: Settings) -> None:
    client = await aiohttp_client(create_app(api_settings))
    refused = await client.get("/api/v1/events", params={"token": "nope"})
    assert refused.status == 401
    reply = await client.get("/api/v1/events", params={"token": "staff-token-for-tests"})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    data = None
    async with asyncio.timeout(10):
        while data is None:
            line = (await reply.content.readline()).decode()
            if line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
    reply.close()
    assert "store" in {part["name"] for part in data["parts"]}
    assert data["dead_letters"] == {"pending": 0}
    assert len(data["events_per_minute"]) == 30
    assert data["sync"] is None


async def test_the_query_token_is_taken_by_the_event_stream_only(
        aiohttp_client: AiohttpClient, api_settings: Settings) -> None:
    client = await aiohttp_client(create_app(api_settings))
    reply = await client.get("/api/v1/parts", params={"token": "staff-token-for-tests"})
    assert reply.status == 401


async def test_the_ops_token_is_a_token_of_the_ops_role(
        aiohttp_client: AiohttpClient, gateway_settings: Settings) -> None:
    settings = gateway_settings.model_copy(update={"http": gateway_settings.http.model_copy(
        update={"ops_token": SecretStr("s3cret")})})
    client = await aiohttp_client(create_app(settings))
    parts = await client.get("/api/v1/parts", headers={"Authorization": "Bearer s3cret"})
    assert parts.status == 200
    members = await client.get("/api/v1/members", params={"card": "X"},
                               headers={"Authorization": "Bearer s3cret"})
    assert members.status == 403


async def test_the_dashboard_page_and_its_files_are_served_without_a_token(
        aiohttp_client: AiohttpClient, api_settings: Settings) -> None:
    client = await aiohttp_client(create_app(api_settings))
    page = await client.get("/")
    assert page.status == 200
    assert '<canvas id="chart"' in await page.text()
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    for name in ("dashboard.js", "dashboard.css"):
        assert (await client.get(f"/static/{name}")).status == 200
    assert (await client.get("/static/index.html")).status == 404


def test_http_token_prints_a_token_once_and_a_table_that_lets_it_in(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["http", "token", "--role", "staff", "--name", "desk-1"])
    assert result.exit_code == 0, result.output
    token = result.output.split("holder): ", 1)[1].split()[0]
    table = result.output.split("\n\n", 1)[1].split("\n\n", 1)[1]
    config = tmp_path / "gw.toml"
    config.write_text(f'[site]\nmall_id = "m"\ngateway_id = "g"\n\n{table}',
                      encoding="utf-8")
    caller = Tokens(load_settings(config, environ={}).http).match(token)
    assert caller is not None
    assert (caller.name, caller.role) == ("desk-1", "staff")
    assert token not in table
