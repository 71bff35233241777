"""`mallgate central rules publish` and `list` as real processes against a central on
loopback: the `[loyalty]` section of a gateway configuration becomes the version in force,
and every refusal exits 1 with central's reason."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import ANY

import pytest

from tests.cloud_api.central import MALL, Central
from tests.conftest import free_port

CLI = [sys.executable, "-c", "from gateway.cli import main; main()"]
sqlite = pytest.mark.parametrize("storage", ["sqlite"], indirect=True)  # the CLI


async def mallgate(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def gateway_config(tmp_path: Path, *, version: str = "2026.07",
                   points_per_yuan: int = 2) -> Path:
    config = tmp_path / "gw.toml"
    config.write_text(
        f'[site]\nmall_id = "{MALL}"\ngateway_id = "gw-test"\n'
        f'[store]\npath = "{tmp_path / "gw.db"}"\n'
        f'[loyalty]\nversion = "{version}"\n'
        f'[loyalty.earn]\npoints_per_yuan = {points_per_yuan}\n', encoding="utf-8")
    return config


def token_file(tmp_path: Path, token: str, mode: int = 0o600,
               name: str = "admin.token") -> Path:
    path = tmp_path / name
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


def central_args(central: Central, tmp_path: Path) -> list[str]:
    return ["--url", central.url, "--mall", MALL,
            "--token-file", str(token_file(tmp_path, central.admin_token))]


async def listed(central: Central, tmp_path: Path) -> dict[str, object]:
    code, out, err = await mallgate("central", "rules", "list", "--json",
                                    *central_args(central, tmp_path))
    assert code == 0, err
    answer: dict[str, object] = json.loads(out)
    return answer


@sqlite
async def test_the_rules_of_a_configuration_are_published_and_in_force(
        central: Central, tmp_path: Path) -> None:
    config = gateway_config(tmp_path)
    code, out, err = await mallgate("central", "rules", "publish", "--config", str(config),
                                    *central_args(central, tmp_path))
    assert code == 0, err
    assert "published rules version 2026.07" in out and "server_seq" in out
    # Central applies it from now: the book it computes with has these rules in force.
    in_force = (await central.storage.rule_book(MALL)).at(datetime.now(UTC))
    assert (in_force.version, in_force.earn.points_per_yuan) == ("2026.07", 2)
    answer = await listed(central, tmp_path)
    assert answer["in_force"] == "2026.07"
    code, out, err = await mallgate("central", "rules", "list",
                                    *central_args(central, tmp_path))
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["VERSION", "2026.07"]
    assert out.rstrip().endswith("in force")
    # The gateway running that configuration gets the version by sync and applies it.
    gateway_token = token_file(tmp_path, central.gateway_token, name="gateway.token")
    config.write_text(config.read_text(encoding="utf-8") + (
        f'[central]\nurl = "{central.url}"\ntoken_file = "{gateway_token}"\n'
        'timeout_s = 5.0\n'), encoding="utf-8")
    code, out, err = await mallgate("sync", "now", "--config", str(config))
    assert code == 0, err
    assert json.loads(out)["rules_in_force"] == "2026.07"
    # The same rules again: nothing changes, and the answer says so.
    code, out, err = await mallgate("central", "rules", "publish", "--config", str(config),
                                    *central_args(central, tmp_path))
    assert code == 0, err
    assert "already published" in out


@sqlite
async def test_a_later_version_waits_for_its_effective_time(
        central: Central, tmp_path: Path) -> None:
    config = gateway_config(tmp_path, version="next-year", points_per_yuan=5)
    code, _, err = await mallgate("central", "rules", "publish", "--config", str(config),
                                  "--effective-at", "2099-01-01T00:00:00+08:00",
                                  *central_args(central, tmp_path))
    assert code == 0, err
    answer = await listed(central, tmp_path)
    assert answer["in_force"] is None
    assert answer["versions"] == [{
        "version": "next-year", "effective_at": "2098-12-31T16:00:00.000000+00:00",
        "server_seq": ANY, "published_at": ANY, "in_force": False}]


@sqlite
async def test_a_dry_run_prints_the_document_and_publishes_nothing(
        central: Central, tmp_path: Path) -> None:
    config = gateway_config(tmp_path)
    code, out, err = await mallgate("central", "rules", "publish", "--config", str(config),
                                    "--version", "trial", "--dry-run")
    assert code == 0, err
    body = json.loads(out)
    assert body["version"] == body["payload"]["version"] == "trial"
    assert body["payload"]["earn"]["points_per_yuan"] == 2 and "effective_at" not in body
    assert (await listed(central, tmp_path))["versions"] == []


@sqlite
async def test_central_refuses_with_its_reason_and_exit_1(
        central: Central, tmp_path: Path) -> None:
    args = central_args(central, tmp_path)
    code, _, err = await mallgate("central", "rules", "publish",
                                  "--config", str(gateway_config(tmp_path)), *args)
    assert code == 0, err
    # Changed rules under the version already published: refused, the old rules stay.
    changed = gateway_config(tmp_path, points_per_yuan=3)
    code, out, err = await mallgate("central", "rules", "publish", "--config", str(changed),
                                    *args)
    assert code == 1 and out == ""
    assert "rules_version_exists" in err and "publish a new version" in err
    assert "Traceback" not in err
    # A version central cannot take: its reason, from central.
    code, _, err = await mallgate("central", "rules", "publish", "--config", str(changed),
                                  "--version", "v" * 65, *args)
    assert code == 1 and "invalid_rules" in err and "1 to 64 characters" in err, err
    rules = (await central.storage.rule_book(MALL)).at(datetime.now(UTC))
    assert (rules.version, rules.earn.points_per_yuan) == ("2026.07", 2)


@sqlite
async def test_a_token_file_others_can_read_is_refused(
        central: Central, tmp_path: Path) -> None:
    loose = token_file(tmp_path, central.admin_token, mode=0o644)
    code, _, err = await mallgate("central", "rules", "publish",
                                  "--config", str(gateway_config(tmp_path)),
                                  "--url", central.url, "--mall", MALL,
                                  "--token-file", str(loose))
    assert code == 2 and "readable by group or others" in err and "chmod 600" in err, err
    assert await central.storage.rule_documents(MALL) == []


async def test_an_unreachable_central_exits_1_with_one_line(tmp_path: Path) -> None:
    code, out, err = await mallgate(
        "central", "rules", "publish", "--config", str(gateway_config(tmp_path)),
        "--url", f"http://127.0.0.1:{free_port()}", "--mall", MALL, "--timeout", "5",
        "--token-file", str(token_file(tmp_path, "t")))
    assert code == 1 and out == ""
    assert err.startswith("Error: central unreachable:") and len(err.splitlines()) == 1, err
