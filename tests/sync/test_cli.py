"""`mallgate sync now` and `mallgate sync status` as real processes against central."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from cloud_api.client import CentralClient
from tests.cloud_api.central import MALL, Central

CLI = [sys.executable, "-c", "from gateway.cli import main; main()"]


async def mallgate(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    async with asyncio.timeout(60):
        out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


@pytest.mark.parametrize("storage", ["sqlite"], indirect=True)  # the CLI, not storage
async def test_sync_now_then_status(central: Central, admin: CentralClient,
                                    tmp_path: Path) -> None:
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    await admin.adjust(MALL, "M1", request_id="g", points=10, reason="gift")
    config = tmp_path / "gw.toml"
    config.write_text(
        f'[site]\nmall_id = "{MALL}"\ngateway_id = "gw-test"\n'
        f'[store]\npath = "{tmp_path / "gw.db"}"\n'
        f'[central]\nurl = "{central.url}"\ntimeout_s = 5.0\n', encoding="utf-8")
    (tmp_path / "token").write_text(central.gateway_token)
    (tmp_path / "token").chmod(0o600)  # a token file others can read is refused
    env_config = str(config)
    code, out = await mallgate("sync", "status", "--config", env_config)
    assert code == 1 and "no store" in out
    config.write_text(config.read_text() + f'token_file = "{tmp_path / "token"}"\n')
    code, out = await mallgate("sync", "now", "--config", env_config)
    assert code == 0, out
    now = json.loads(out)
    assert now["cursor"] == now["central_head"] == 2 and now["outbox_depth"] == 0
    code, out = await mallgate("sync", "status", "--config", env_config)
    assert code == 0, out
    status = json.loads(out)
    assert status["cursor_lag"] == 0 and status["last_pull_ok"] is not None


async def test_sync_now_says_why_it_failed(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text('[site]\nmall_id = "m"\ngateway_id = "g"\n'
                      f'[store]\npath = "{tmp_path / "gw.db"}"\n', encoding="utf-8")
    code, out = await mallgate("sync", "now", "--config", str(config))
    assert code == 1 and "no [central] url" in out
    config.write_text(config.read_text() + '[central]\nurl = "http://127.0.0.1:9"\n'
                      'token = "t"\ntimeout_s = 1.0\n')
    code, out = await mallgate("sync", "now", "--config", str(config))
    assert code == 1 and "sync failed" in out
