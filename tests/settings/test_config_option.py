"""Every command that reads the configuration takes the same `--config`."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from gateway.cli import main
from gateway.config_option import CONFIG_ENV


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix}{name} ")
        else:
            found.append((f"{prefix}{name}", command))
    return found


def test_every_config_option_is_required_unless_the_environment_names_the_file() -> None:
    options = {name: param for name, command in _commands(main) for param in command.params
               if isinstance(param, click.Option) and "--config" in param.opts}
    assert {"run", "doctor", "ledger balance", "ledger history", "deadletters list",
            "sync status", "pos captures list", "kiosk qr-token",
            "sim kiosk"} <= set(options)
    helps = {param.help for param in options.values()}
    assert len(helps) == 1, helps
    for name, param in options.items():
        assert param.required, name
        assert param.envvar == CONFIG_ENV, name


def test_the_environment_names_the_file_and_without_it_config_is_required(
        tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(f'[site]\nmall_id = "m"\ngateway_id = "g"\n'
                      f'[store]\npath = "{tmp_path / "none.db"}"\n')
    runner = CliRunner()
    named = runner.invoke(main, ["ledger", "balance", "A1"], env={CONFIG_ENV: str(config)})
    assert named.exit_code == 1 and "no store at" in named.output, named.output
    missing = runner.invoke(main, ["ledger", "balance", "A1"], env={CONFIG_ENV: None})
    assert missing.exit_code == 2 and "Missing option '--config'" in missing.output
