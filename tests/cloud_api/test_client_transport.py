"""The client's transport: a private CA from [central] ca_file, and redirects never followed."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from cloud_api.client import CentralClient, CentralRedirected
from cloud_api.errors import CentralUnavailable
from tests.certs import make_ca, make_server_cert
from tests.conftest import free_port

Serve = Callable[[web.Application, ssl.SSLContext | None], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start small aiohttp servers on loopback; each call returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, tls: ssl.SSLContext | None) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
        return f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def central_like(seen: list[str]) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        return web.json_response({"verdicts": [], "ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def server_tls(tmp_path: Path) -> ssl.SSLContext:
    ca_key, ca = make_ca(tmp_path, "ca")
    make_server_cert(tmp_path, ca_key, ca)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    return context


async def test_a_private_ca_is_trusted_through_ca_file(tmp_path: Path, serve: Serve) -> None:
    seen: list[str] = []
    url = await serve(central_like(seen), server_tls(tmp_path))
    async with CentralClient(url, "tok", ca_file=tmp_path / "ca.crt") as central:
        assert await central.heartbeat("gw-1", {}) == {"verdicts": [], "ok": True}
    async with CentralClient(url, "tok") as central:  # the system's CAs do not know it
        with pytest.raises(CentralUnavailable, match="certificate"):
            await central.heartbeat("gw-1", {})
    assert seen == ["POST /v1/gateways/gw-1/heartbeat"]


async def test_a_redirect_is_an_error_naming_where_and_nothing_is_resent(
        tmp_path: Path, serve: Serve) -> None:
    plain_seen: list[str] = []
    plain = await serve(central_like(plain_seen), None)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(plain + request.path)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", moved)
    url = await serve(app, server_tls(tmp_path))
    async with CentralClient(url, "tok", ca_file=tmp_path / "ca.crt") as central:
        with pytest.raises(CentralRedirected) as refused:
            await central.push_batch("gw-1", ['{"event_id":"e1","type":"t","payload":{}}'])
        assert refused.value.location == f"{plain}/v1/gateways/gw-1/events:batch"
        assert refused.value.status == 307 and "[central] url" in str(refused.value)
        with pytest.raises(CentralRedirected):
            async for _ in central.snapshot("gw-1"):
                pass
    assert plain_seen == []  # the batch and the token never went over plain HTTP
