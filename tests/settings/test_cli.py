"""`mallgate config check` and `mallgate config schema`, in process and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.settings.reference import ROOT, settings_schema

SHIPPED = [ROOT / "config" / "demo.toml", ROOT / "config" / "example-mall.toml"]
BAD = """
[site]
mall_id = "demo-mall"
gateway_id = "gw-1"

[http]
port = "8080"

[store]
batch_size = 10
"""
# Overrides from the environment of the test run itself must not leak into these tests.
CLEAN_ENV: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MALLGATE__")}


def run(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={**CLEAN_ENV, **(env or {})})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(BAD, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_files_are_valid(path: Path) -> None:
    code, out, err = run("config", "check", str(path))

    assert (code, err) == (0, "")
    assert out.startswith(f"OK {path}")
    assert len(out.splitlines()) == 1


def test_invalid_file_exits_2_naming_every_key(bad_file: Path) -> None:
    code, out, err = run("config", "check", str(bad_file))

    assert (code, out) == (2, "")
    assert f"{bad_file}: invalid configuration (2 errors)" in err
    assert 'http.port = "8080": wrong type (string); allowed: integer, 1..65535' in err
    assert "store.batch_size = 10: unknown key; allowed: keys of [store]: path, batch_max, " \
           "batch_wait_ms" in err


def test_missing_file_exits_2(tmp_path: Path) -> None:
    code, _, err = run("config", "check", str(tmp_path / "absent.toml"))

    assert code == 2
    assert "file not found" in err


def test_syntax_error_exits_2_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[site]\nmall_id = "demo-mall"\n[http\n', encoding="utf-8")

    code, _, err = run("config", "check", str(path))

    assert code == 2
    assert "TOML syntax error at line 3" in err


def test_check_applies_environment_overrides_unless_told_not_to() -> None:
    env: dict[str, str | None] = {"MALLGATE__HTTP__PORT": "70000",
                                  "MALLGATE__CENTRAL__TOKEN": "tok-never-printed"}
    code, _, err = run("config", "check", str(SHIPPED[0]), env=env)
    assert code == 2
    assert "http.port = 70000" in err
    assert "MALLGATE__HTTP__PORT" in err
    assert "tok-never-printed" not in err

    code, out, _ = run("config", "check", "--no-env", str(SHIPPED[0]), env=env)
    assert code == 0
    assert "environment" not in out

    env["MALLGATE__HTTP__PORT"] = "9000"
    code, out, _ = run("config", "check", str(SHIPPED[0]), env=env)
    assert code == 0
    assert "2 environment overrides" in out
    assert ":9000" in out
    assert "tok-never-printed" not in out


def test_schema_command_prints_the_schema() -> None:
    code, out, _ = run("config", "schema")

    assert code == 0
    assert json.loads(out) == settings_schema()


def test_check_as_a_real_process(bad_file: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLGATE__")}
    command = [sys.executable, "-c", "from gateway.cli import main; main()", "config", "check"]

    bad = subprocess.run([*command, str(bad_file)], capture_output=True, text=True, env=env,
                         timeout=60, check=False)
    good = subprocess.run([*command, str(SHIPPED[0])], capture_output=True, text=True,
                          env=env, timeout=60, check=False)

    assert bad.returncode == 2
    assert "http.port" in bad.stderr
    assert "store.batch_size" in bad.stderr
    assert good.returncode == 0
    assert good.stdout.startswith("OK ")
