"""Real pseudo-terminal pairs from socat: one end for the POS, the other for the gateway.

Killing socat makes both ends vanish like an unplugged USB adapter; starting it again
recreates them under the same names, like a replug.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import serial_asyncio_fast

SOCAT = shutil.which("socat")
START_TIMEOUT_S = 10.0


class PtyPair:
    def __init__(self, directory: Path, name: str = "pos") -> None:
        self.pos = directory / f"{name}-pos"
        self.gateway = directory / f"{name}-gw"
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        assert SOCAT is not None, "socat is needed (scripts/debian-packages.txt)"
        self._proc = await asyncio.create_subprocess_exec(
            SOCAT, f"pty,raw,echo=0,link={self.pos}", f"pty,raw,echo=0,link={self.gateway}",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        async with asyncio.timeout(START_TIMEOUT_S):
            while not (self.pos.exists() and self.gateway.exists()):  # noqa: ASYNC110 - files
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        for link in (self.pos, self.gateway):
            with contextlib.suppress(FileNotFoundError):
                link.unlink()


@contextlib.asynccontextmanager
async def pty_pair(directory: Path, name: str = "pos") -> AsyncIterator[PtyPair]:
    pair = PtyPair(directory, name)
    await pair.start()
    try:
        yield pair
    finally:
        await pair.stop()


async def open_pos_end(pair: PtyPair) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await serial_asyncio_fast.open_serial_connection(
        url=str(pair.pos), baudrate=115200)
    return reader, writer
