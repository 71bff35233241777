"""Running a test's child gateway process (the one a test kills) and collecting its output."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def run_child(module: str, *args: str, timeout_s: float = 60) -> tuple[int, str]:
    """`python -m module args...` from the repository root: its exit code and output.
    A child still running after `timeout_s` is killed and the test fails."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()
