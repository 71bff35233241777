"""The CLI loads only what the command needs: `--help` and `run` stay light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from gateway.cli import COMMANDS, SIMULATORS, LazyGroup, main

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("asyncpg", "bleak", "dbus_fast", "cloud_api.server")


def loaded_after(code: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """The `heavy` modules a fresh interpreter has loaded after running `code`."""
    probe = (f"import sys\n{code}\nimport json\n"
             f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({heavy!r}))))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def test_help_imports_neither_the_central_server_nor_device_libraries() -> None:
    # nor the settings models: listing the commands needs none of them
    assert loaded_after(
        "from gateway.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass",
        (*HEAVY, "pydantic", "gateway.settings")) == []
    # and the probe does see them when they are loaded
    assert "cloud_api.server" in loaded_after("import cloud_api.server.app")


def test_the_app_without_ble_loads_no_bleak_and_no_central_server(tmp_path: Path) -> None:
    settings = json.dumps({
        "site": {"mall_id": "m", "gateway_id": "g"}, "store": {"path": str(tmp_path / "db")},
        "central": {"url": "http://127.0.0.1:9", "token": "t"},
        "kiosk": {"enabled": True}, "ble": {"enabled": False}})
    assert loaded_after(
        "from gateway.settings import Settings\nfrom gateway.app import create_app\n"
        f"create_app(Settings.model_validate_json({settings!r}))") == []


def test_each_lazy_command_is_there_with_the_help_the_listing_shows() -> None:
    for group, lazy in ((main, COMMANDS), (main.commands["sim"], SIMULATORS)):
        assert isinstance(group, LazyGroup)
        ctx = click.Context(group)
        for name, (_, short_help) in lazy.items():
            command = group.get_command(ctx, name)
            assert command is not None and command.name == name
            assert command.get_short_help_str(limit=200) == short_help
