"""`mallgate demo` as a user runs it: a real process with its children, bounded in time."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 120.0


def demo(tmp_path: Path, *args: str, http_port: int = 0) -> subprocess.Popen[str]:
    """The demo on free ports, in its own process group (as a terminal runs it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli import main; main()", "demo",
         "--dir", str(tmp_path / "mall"), "--http-port", str(http_port), "--broker-port", "0",
         *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)


def children_of(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, by PID with their command name."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name_end = stat.rindex(")")
        if int(stat[name_end + 2:].split()[1]) == pid:
            found[int(entry.name)] = stat[stat.index("(") + 1:name_end]
    return found


def dashboard(port: int, token_file: Path) -> dict[str, Any] | None:
    """The dashboard's snapshot with the demo's staff token, or None while not served."""
    if not token_file.exists():
        return None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/dashboard",
        headers={"Authorization": f"Bearer {token_file.read_text().strip()}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310 - loopback
            return dict(json.loads(reply.read()))
    except OSError:
        return None


def watch(process: subprocess.Popen[str], *, until: float,
          probe: Callable[[], None] | None = None) -> tuple[str, dict[int, str]]:
    """Wait for the demo to end, noting every child it had; its output. `probe` runs
    on each look while it runs."""
    seen: dict[int, str] = {}
    while process.poll() is None:
        assert time.monotonic() < until, "the demo did not stop in time"
        seen.update(children_of(process.pid))
        if probe is not None:
            probe()
        time.sleep(0.5)
    output = process.stdout.read() if process.stdout else ""
    return output, seen


def assert_gone(children: dict[int, str]) -> None:
    # the demo's serial lines and broker were among them, so the check means something
    assert sorted(children.values()).count("socat") == 3, children
    assert "mosquitto" in children.values(), children
    left = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert not left, f"children still running: {[children[pid] for pid in left]}"


def test_a_bounded_run_credits_every_member_sale_and_loses_nothing(tmp_path: Path) -> None:
    report_file = tmp_path / "r.json"
    port = free_port()
    process = demo(tmp_path, "--duration", "25", "--ble-rate", "90", "--report",
                   str(report_file), http_port=port)
    snapshots: list[dict[str, Any]] = []

    def look_at_the_dashboard() -> None:
        if not snapshots and (snapshot := dashboard(port, tmp_path / "mall" / "staff.token")):
            snapshots.append(snapshot)
    try:
        output, children = watch(process, until=time.monotonic() + RUN_TIMEOUT_S,
                                 probe=look_at_the_dashboard)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    # The dashboard the banner points at answered with the demo's staff token, live.
    assert snapshots, "the dashboard never answered with the demo's staff token"
    assert f"/?token={(tmp_path / 'mall' / 'staff.token').read_text().strip()}" in output
    report = json.loads(report_file.read_text())
    assert set(report) == {"receipts", "kiosk", "ble", "sync", "lost"}
    assert set(report["receipts"]) == {"sent", "credited", "duplicates", "dead_letters"}
    assert set(report["kiosk"]) == {"requests", "replies", "errors"}
    assert set(report["ble"]) == {"arrivals", "offers_shown"}
    assert set(report["sync"]) == {"pushed", "acked", "pending"}
    assert report["lost"] == 0
    sales = re.search(r"receipts: (\d+) sent, (\d+) member sales, (\d+) credited", output)
    assert sales is not None, output
    sent, member_sales, credited = map(int, sales.groups())
    assert sent == report["receipts"]["sent"] > 0
    assert credited == member_sales == report["receipts"]["credited"] > 0
    assert report["kiosk"]["replies"] > 0
    assert report["ble"]["arrivals"] > 0
    assert report["ble"]["offers_shown"] > 0
    assert report["sync"]["acked"] > 0
    assert report["sync"]["pending"] == 0
    assert "/readyz" in output and "mall id demo-mall" in output
    assert_gone(children)


def test_ctrl_c_stops_everything_cleanly(tmp_path: Path) -> None:
    process = demo(tmp_path, "--pos-rate", "2")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    seen: dict[int, str] = {}
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # the first live line: everything runs
            lines.append(line)
            seen.update(children_of(process.pid))
            assert time.monotonic() < deadline, "".join(lines)
            if line.startswith("["):
                break
        # what a terminal's Ctrl-C does: SIGINT to the whole foreground process group
        os.killpg(process.pid, signal.SIGINT)
        output, children = watch(process, until=deadline)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines) + output
    assert process.returncode == 0, output
    summary = json.loads(output.split("summary: ", 1)[1].splitlines()[0])
    assert summary["lost"] == 0
    assert_gone({**seen, **children})
