"""`mallgate central serve` as real processes on loopback ports, sharing one database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp

from cloud_api.server.cli import open_storage
from cloud_api.server.storage import Scope
from tests.conftest import free_port

# The checkout under test, ahead of any installed copy of the package.
ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from gateway.cli import main; main()"]
START_LIMIT_S = 30.0


async def issue_token(db: Path, dsn: str | None, mall: str, scope: Scope,
                      gateway: str | None = None) -> str:
    """A token issued as `mallgate central token` does (and the database created)."""
    storage = open_storage(db, dsn)
    await storage.open()
    try:
        return await storage.add_token(mall, scope, gateway)
    finally:
        await storage.close()


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MALLGATE_CENTRAL_DSN"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


async def _until_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(START_LIMIT_S), aiohttp.ClientSession() as session:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"central exited with {process.returncode} while starting")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        async with asyncio.timeout(10):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def central_processes(db: Path, dsn: str | None = None, workers: int = 1,
                            extra: Sequence[str] = (), log: Path | None = None,
                            ) -> AsyncIterator[list[str]]:
    """`workers` central processes over one database (SQLite file `db`, or `dsn` when
    given), each started with the `extra` options; yields their base URLs once every one
    answers `/healthz`. Their log (stderr) goes to the file `log`, if given."""
    store = ["--dsn", dsn] if dsn else ["--db", str(db)]
    processes: list[asyncio.subprocess.Process] = []
    urls: list[str] = []
    log_file = log.open("ab") if log is not None else None
    try:
        for _ in range(workers):
            port = free_port()
            processes.append(await asyncio.create_subprocess_exec(
                *CLI, "central", "serve", *store, "--port", str(port), *extra,
                env=_environment(), stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file or asyncio.subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            await _until_healthy(url, process)
        yield urls
    finally:
        for process in processes:
            await _stop(process)
        if log_file is not None:
            log_file.close()


@contextlib.asynccontextmanager
async def central_process(db: Path, dsn: str | None = None, *, port: int,
                          extra: Sequence[str] = ()) -> AsyncIterator[
                              asyncio.subprocess.Process]:
    """One `mallgate central serve` on `port`, yielded once it answers `/healthz`, so a
    test can kill it (`process.kill()`: SIGKILL) and start another on the same database."""
    store = ["--dsn", dsn] if dsn else ["--db", str(db)]
    process = await asyncio.create_subprocess_exec(
        *CLI, "central", "serve", *store, "--port", str(port), *extra, env=_environment(),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await _until_healthy(f"http://127.0.0.1:{port}", process)
        yield process
    finally:
        await _stop(process)
