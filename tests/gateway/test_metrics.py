from __future__ import annotations

from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient

from gateway.app import create_app
from gateway.app.keys import LEDGER
from gateway.settings import Settings
from tests.loyalty.helpers import at, earn


def with_http(settings: Settings, **http: object) -> Settings:
    return settings.model_copy(update={"http": settings.http.model_copy(update=http)})


async def test_metrics_count_recorded_entries_and_duplicates(
    aiohttp_client: AiohttpClient, gateway_settings: Settings,
) -> None:
    app = create_app(gateway_settings)
    client = await aiohttp_client(app)
    entry = earn(10, at(2026, 1, 1), key="m")
    await app[LEDGER].record(entry)
    await app[LEDGER].record(entry)
    reply = await client.get("/metrics")
    assert reply.status == 200
    text = await reply.text()
    assert 'mallgate_ledger_entries_recorded_total{kind="EARN"} 1.0' in text
    assert "mallgate_ledger_duplicates_total 1.0" in text
    assert "mallgate_store_ops_total 2.0" in text


async def test_metrics_need_the_ops_token_when_one_is_set(
    aiohttp_client: AiohttpClient, gateway_settings: Settings,
) -> None:
    settings = with_http(gateway_settings, ops_token=SecretStr("s3cret"))
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/metrics")).status == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    right = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert right.status == 200
    assert (await client.get("/healthz")).status == 200  # liveness stays open


async def test_metrics_refused_on_a_network_address_without_a_token(
    aiohttp_client: AiohttpClient, gateway_settings: Settings,
) -> None:
    settings = with_http(gateway_settings, host="0.0.0.0")  # noqa: S104 - the case under test
    client = await aiohttp_client(create_app(settings))
    reply = await client.get("/metrics")
    assert reply.status == 403
    assert "ops_token" in await reply.text()
