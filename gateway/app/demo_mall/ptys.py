"""Serial lines without hardware: one socat pseudo-terminal pair per POS line.

The till simulator opens one end, the gateway's port the other, both through pyserial,
as they would a USB serial adapter. Each socat is a child process, killed when the
context closes, so a demo leaves none behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

START_TIMEOUT_S = 10.0


class SocatMissing(RuntimeError):
    """socat is not installed."""


class PtyPair:
    def __init__(self, one: Path, other: Path) -> None:
        self.ends = (one, other)
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        socat = shutil.which("socat")
        if socat is None:
            raise SocatMissing("socat is not installed: install Debian's `socat` package")
        one, other = self.ends
        self._process = await asyncio.create_subprocess_exec(
            socat, f"pty,raw,echo=0,link={one}", f"pty,raw,echo=0,link={other}",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal must not pull the serial lines
            # away while the demo drains; the demo kills it last.
            start_new_session=True)
        async with asyncio.timeout(START_TIMEOUT_S):
            while not (one.exists() and other.exists()):
                if self._process.returncode is not None:
                    raise RuntimeError(f"socat exited with {self._process.returncode}")
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        for end in self.ends:
            end.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def pty_pairs(pairs: Sequence[tuple[Path, Path]]) -> AsyncIterator[list[PtyPair]]:
    started: list[PtyPair] = []
    try:
        for one, other in pairs:
            pair = PtyPair(one, other)
            started.append(pair)
            await pair.start()
        yield started
    finally:
        for pair in started:
            await pair.stop()
