from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from gateway.app import GIL_SWITCH_INTERVAL_S, create_app
from gateway.app.keys import LEDGER
from gateway.settings import Settings
from gateway.store import load_migrations
from tests.conftest import free_port
from tests.loyalty.helpers import at, earn

ROOT = Path(__file__).resolve().parents[2]


async def test_health_and_readiness(aiohttp_client: AiohttpClient,
                                    gateway_settings: Settings) -> None:
    client = await aiohttp_client(create_app(gateway_settings))
    health = await client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {"status": "ok", "mall": "test-mall", "gateway": "gw-test"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    latest = load_migrations()[-1].version
    assert (await ready.json())["checks"] == {"store": f"ok (schema {latest})"}


async def test_the_app_wires_a_ledger_on_the_configured_store(
    aiohttp_client: AiohttpClient, gateway_settings: Settings,
) -> None:
    app = create_app(gateway_settings)
    await aiohttp_client(app)
    recorded = await app[LEDGER].record(earn(42, at(2026, 1, 1), key="wired"))
    assert recorded.entry.origin_site == "gw-test"
    assert gateway_settings.store.path.exists()
    assert (await app[LEDGER].balance("A1", at(2026, 1, 2))).available == 42


async def test_the_gateway_shortens_the_gil_switch_interval_while_it_runs(
    aiohttp_client: AiohttpClient, gateway_settings: Settings,
) -> None:
    before = sys.getswitchinterval()
    assert before != GIL_SWITCH_INTERVAL_S
    client = await aiohttp_client(create_app(gateway_settings))
    assert sys.getswitchinterval() == GIL_SWITCH_INTERVAL_S
    await client.close()
    assert sys.getswitchinterval() == before


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - loopback test URL
        return dict(json.loads(reply.read()))


def test_mallgate_run_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "gw.toml"
    config.write_text(
        f'[site]\nmall_id = "m1"\ngateway_id = "gw-1"\n[store]\npath = "{tmp_path / "db"}"\n'
        f'[http]\nport = {port}\n[logging]\nformat = "json"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli import main; main()", "run", "--config",
         str(config)],
        cwd=ROOT, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the gateway did not start listening"
                time.sleep(0.1)
        assert health["status"] == "ok"
        assert _get(f"http://127.0.0.1:{port}/readyz")["status"] == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        logs = [json.loads(line) for line in (proc.stderr.read() if proc.stderr else "")
                .splitlines() if line.startswith("{")]
        assert any("listening" in line["msg"] for line in logs)
        assert any(line["msg"].startswith("store closed") for line in logs)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_with_an_invalid_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[site]\nmall_id = "m1"\ngateway_id = "gw-1"\n[http]\nport = 0\n')
    result = subprocess.run(
        [sys.executable, "-c", "from gateway.cli import main; main()", "run", "--config",
         str(config)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "http.port" in result.stderr


def test_run_on_a_busy_port_exits_1_before_starting_any_part(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "gw.toml"
        config.write_text(
            f'[site]\nmall_id = "m1"\ngateway_id = "gw-1"\n[store]\npath = "{tmp_path / "db"}"\n'
            f'[http]\nport = {port}\n')
        result = subprocess.run(
            [sys.executable, "-c", "from gateway.cli import main; main()", "run", "--config",
             str(config)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert f"cannot listen on http://127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "db").exists()  # nothing was started: not even the store
