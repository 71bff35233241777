"""The client's failure classes against real sockets: silent, refused, 5xx, 429."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from cloud_api.client import CentralClient, retry_after_s
from cloud_api.errors import CentralError, CentralRejected, CentralUnavailable
from tests.conftest import free_port


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Accepts TCP connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def answering(status: int, headers: dict[str, str] | None = None,
                    text: str = "") -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, headers=headers, text=text)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_silent_central_times_out_as_unavailable() -> None:
    async with silent_server() as port, \
            CentralClient(f"http://127.0.0.1:{port}", "t", timeout_s=0.3) as client:
        with pytest.raises(CentralUnavailable) as caught:
            await client.heartbeat("gw", {})
    assert caught.value.code == "timeout"
    assert isinstance(caught.value, TimeoutError)


async def test_a_refused_connection_is_unavailable() -> None:
    async with CentralClient(f"http://127.0.0.1:{free_port()}", "t") as client:
        with pytest.raises(CentralUnavailable) as caught:
            await client.changes("gw", 0)
    assert caught.value.code == "unreachable" and caught.value.retryable


async def test_5xx_is_retryable_and_429_carries_retry_after() -> None:
    async with answering(503, text="busy") as url, CentralClient(url, "t") as client:
        with pytest.raises(CentralUnavailable) as caught:
            await client.changes("gw", 0)
        assert caught.value.status == 503 and caught.value.retry_after is None
    async with answering(429, {"Retry-After": "7"}) as url, CentralClient(url, "t") as client:
        with pytest.raises(CentralUnavailable) as limited:
            await client.push_batch("gw", [])
        assert limited.value.retry_after == 7.0


async def test_other_4xx_are_permanent_with_the_error_body() -> None:
    body = '{"error": {"code": "invalid_request", "message": "nope", "details": {"k": 1}}}'
    async with answering(400, text=body) as url, CentralClient(url, "t") as client:
        with pytest.raises(CentralRejected) as caught:
            await client.get_member("m", "x")
    error: CentralError = caught.value
    assert (error.code, error.details, error.retryable) == ("invalid_request", {"k": 1}, False)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_s("120") == 120.0
    assert retry_after_s(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None
