"""The production install of docs/installing.md: a wheel of mallgate, installed with its
runtime dependencies only into a fresh virtual environment, runs.

Building the wheel and fetching the dependencies need PyPI; without it the test is skipped,
and the wheel's metadata (which never needs the network once the wheel is built) is
checked whenever the build succeeded."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Bounds: a wheel builds in seconds; the dependencies are ~40 wheels, a minute or two.
BUILD_TIMEOUT_S = 180
INSTALL_TIMEOUT_S = 420
# What a production box must not get: test tools, type checkers, the fake BlueZ and the
# source build of dbus-python (it needs a compiler).
DEV_ONLY = {"pytest", "pytest-aiohttp", "pytest-asyncio", "hypothesis", "mypy", "ruff",
            "types-pyyaml", "types-jsonschema", "python-dbusmock", "dbus-python", "iotcore"}
OFFLINE = re.compile(r"Could not find a version|No matching distribution|"
                     r"NewConnectionError|Failed to establish|Temporary failure in name|"
                     r"ConnectTimeout|ReadTimeout|Network is unreachable", re.IGNORECASE)


def pip(python: Path | str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONPATH": ""}
    try:
        return subprocess.run([str(python), "-m", "pip", *args], capture_output=True,
                              text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip(f"pip {args[0]} took over {timeout:.0f} s (slow or no network)")


def skip_if_offline(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        if OFFLINE.search(result.stderr + result.stdout):
            pytest.skip(f"{what}: PyPI is not reachable")
        pytest.fail(f"{what} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def runtime_requirements(wheel: Path) -> list[str]:
    """The names of the wheel's dependencies outside any extra."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    names = []
    for line in text.splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            requirement = line.removeprefix("Requires-Dist:").strip()
            names.append(re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower())
    return names


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel --no-deps .` as the guide builds it (setuptools fetched by pip)."""
    out = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("build")
    result = pip(sys.executable, "wheel", "--no-deps", "--wheel-dir", str(out),
                 "--cache-dir", str(build / "cache"), str(ROOT), timeout=BUILD_TIMEOUT_S)
    skip_if_offline(result, "building the wheel")
    (built,) = out.glob("mallgate-*.whl")
    return built


def test_the_wheel_depends_on_no_test_tool(wheel: Path) -> None:
    names = runtime_requirements(wheel)
    assert "aiohttp" in names and "paho-mqtt" in names
    assert not DEV_ONLY & set(names), sorted(DEV_ONLY & set(names))


def test_the_wheel_installs_into_a_fresh_venv_and_runs(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    # Binary wheels only: the guide promises nothing is compiled on the gateway box.
    result = pip(python, "install", "--only-binary", ":all:", str(wheel),
                 timeout=INSTALL_TIMEOUT_S)
    skip_if_offline(result, "installing the wheel's dependencies")
    installed = pip(python, "list", "--format=freeze", timeout=60).stdout.lower()
    present = {line.split("==")[0] for line in installed.splitlines()}
    assert "mallgate" in present
    assert not DEV_ONLY & present, sorted(DEV_ONLY & present)
    help_text = subprocess.run([str(target / "bin" / "mallgate"), "--help"],
                               capture_output=True, text=True, timeout=60, check=True,
                               cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""}).stdout
    assert "run" in help_text and "central" in help_text
