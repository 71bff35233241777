"""The dashboard in a real browser: `mallgate run` in a subprocess, headless Chromium
opening `/` with a staff token, the page rendered from the gateway's own data."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gateway.clock import utc_now
from gateway.deadletters import keep_with
from gateway.http.tokens import token_hash
from gateway.receipts.rows import utc_text
from gateway.store import Writer
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")
TOKEN = "staff-token-for-the-browser"  # noqa: S105 - a test token
DEAD_LETTERS = 7  # a number the page can only show if it read this store
BROWSER_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(scripts/debian-packages.txt; scripts/bootstrap as root)")


async def _fill(path: Path) -> None:
    async with Writer(path) as writer:
        for n in range(DEAD_LETTERS):
            await keep_with(writer, source="kiosk", raw=b"{}", code="invalid_payload",
                            error=f"test letter {n}", at=utc_text(utc_now()))


def _chromium(tmp_path: Path, url: str, *output: str) -> str:
    assert CHROMIUM is not None
    # The page fetches one snapshot, then opens the event stream 2 s later: a virtual time
    # budget below that lets the page settle with data and without an open stream.
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
         "--window-size=1280,900", "--virtual-time-budget=1500", *output, url],
        capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_dashboard_renders_the_gateways_parts_and_figures(tmp_path: Path) -> None:
    store = tmp_path / "gw.db"
    asyncio.run(_fill(store))
    port = free_port()
    config = tmp_path / "gw.toml"
    config.write_text(
        f'[site]\nmall_id = "test-mall"\ngateway_id = "gw-browser"\nname = "Test Mall"\n'
        f'[store]\npath = "{store}"\n[http]\nport = {port}\n'
        f'[[http.tokens]]\nname = "desk"\nrole = "staff"\nsha256 = "{token_hash(TOKEN)}"\n',
        encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLGATE__")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli import main; main()", "run", "--config",
         str(config)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**env, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # noqa: S310
                    break
            except OSError:
                assert proc.poll() is None, "the gateway exited"
                assert time.monotonic() < deadline, "the gateway did not start listening"
                time.sleep(0.1)
        url = f"{base}/?token={TOKEN}"
        dom = _chromium(tmp_path, url, "--dump-dom")
        assert "Test Mall / gw-browser" in dom
        assert '<td>store</td><td class="up">up</td>' in dom
        assert f'id="dead-letters" class="figure">{DEAD_LETTERS}<' in dom
        assert 'id="board"' in dom and 'id="board" hidden' not in dom

        screenshot = tmp_path / "dashboard.png"
        _chromium(tmp_path, url, f"--screenshot={screenshot}")
        assert screenshot.stat().st_size > 10_000  # a page drawn, not a blank one
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
