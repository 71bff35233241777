"""Durable before acknowledged: a SIGKILL never loses an acknowledged write."""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from tests.scale import rounds

CHILD = Path(__file__).with_name("crash_child.py")
PRODUCERS = 64
# Bounds each round; a healthy round takes well under a second.
ROUND_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")


def kill_points(default_rounds: int) -> list[int]:
    """Varied kill moments (acknowledged writes before the kill); more under make chaos."""
    return [1_200 + (n * 937) % 3_800 for n in range(rounds(default_rounds))]


def pump_lines(stream: IO[bytes], lines: queue.Queue[bytes | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def complete_ids(lines: list[bytes]) -> set[str]:
    # A line cut short by the kill has no newline; it is ignored, which only makes the
    # check weaker, never wrong.
    return {line.decode().rstrip("\n") for line in lines if line.endswith(b"\n")}


def run_and_kill(db_path: Path, prefix: str, kill_after: int, stderr_path: Path,
                 child_script: Path = CHILD) -> set[str]:
    """Run the child until it acknowledged `kill_after` ids, SIGKILL it, return all it acked."""
    with stderr_path.open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, str(child_script), str(db_path), prefix, str(PRODUCERS)],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    assert child.stdout is not None
    lines: queue.Queue[bytes | None] = queue.Queue()
    pump = threading.Thread(target=pump_lines, args=(child.stdout, lines), daemon=True)
    pump.start()
    received: list[bytes] = []
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    try:
        while len(received) < kill_after:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                pytest.fail(f"child exited early: {stderr_path.read_text()}")
            received.append(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=ROUND_TIMEOUT_S)
    pump.join(timeout=ROUND_TIMEOUT_S)
    while (line := lines.get_nowait()) is not None:
        received.append(line)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return complete_ids(received)


def stored_ids(db_path: Path) -> set[str]:
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return {event_id for (event_id,) in conn.execute("SELECT event_id FROM outbox")}
    finally:
        conn.close()


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    db_path = tmp_path / "crash.db"
    acknowledged: set[str] = set()
    # Several kill points on the same file: each round also reopens a database whose
    # previous writer was killed mid-batch.
    for round_no, kill_after in enumerate(kill_points(5)):
        acked = run_and_kill(db_path, f"r{round_no}", kill_after, tmp_path / "child.err")
        assert len(acked) >= kill_after
        acknowledged |= acked

        missing = acknowledged - stored_ids(db_path)
        assert not missing, f"round {round_no}: {len(missing)} acknowledged ids lost"
