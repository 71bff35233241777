"""Slow clients cannot take the gateway's HTTP server: a bounded slowloris against the real
process, while a fresh client still gets `/readyz` and the log stays small."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SLOW_CLIENTS = 300
SLOW_FOR_S = 6.0  # each slow client gives up after this long, whatever happens
STARTUP_S = 20.0


async def slow_client(port: int, until: float) -> bool:
    """Send headers one byte every 0.2 s; whether the server closed the connection."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    request = b"GET /readyz HTTP/1.1\r\nHost: gw\r\nX-Slow: " + b"a" * 200
    try:
        for byte in request:
            if time.monotonic() > until:
                return False
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.2)
            if reader.at_eof():
                return True
    except OSError:
        return True
    else:
        return False
    finally:
        writer.close()


async def ready(port: int) -> int:
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/readyz", timeout=aiohttp.ClientTimeout(total=3)) as rsp:
        return rsp.status


async def test_a_slowloris_neither_blocks_readyz_nor_floods_the_log(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "mallgate.toml"
    config.write_text(f"""
[site]
mall_id = "test-mall"
gateway_id = "gw-test"
[store]
path = "{tmp_path / 'gw.db'}"
[http]
port = {port}
max_connections = 100
header_timeout_s = 2.0
""")
    log = tmp_path / "gateway.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLGATE__")}
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from gateway.cli import main; main()", "run", "--config",
            str(config), cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                if await ready(port) == 200:
                    break
            except (aiohttp.ClientError, TimeoutError):
                pass
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.2)
        until = time.monotonic() + SLOW_FOR_S
        slow = [asyncio.create_task(slow_client(port, until)) for _ in range(SLOW_CLIENTS)]
        await asyncio.sleep(1.0)  # all connected, each holding its connection
        statuses = []
        for _ in range(5):
            started = time.monotonic()
            statuses.append(await ready(port))
            assert time.monotonic() - started < 2.0
            await asyncio.sleep(0.5)
        closed = await asyncio.wait_for(asyncio.gather(*slow), SLOW_FOR_S + 5)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
    assert statuses == [200] * 5
    # Evicted at the limit or timed out: no slow client kept its connection to the end.
    assert all(closed), f"{closed.count(False)} slow clients were never closed"
    assert log.stat().st_size < 20_000, log.read_text()[-2000:]
