"""The `mallgate` command line: one group, each sub-command defined next to what it drives."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cloud_api.server.cli import central_group
from devices.ble.cli import sim_ble
from devices.kiosk.cli import kiosk_group, sim_kiosk
from devices.pos.cli import deadletters_group, sim_pos
from gateway import app, logs
from gateway.ledger.cli import ledger_group
from gateway.settings.cli import config_group, load_or_exit
from sync.cli import sync_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mallgate")
def main() -> None:
    """mallgate: the in-store edge gateway of a shopping mall's membership system."""


@main.command("run")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
              required=True, help="The gateway's TOML configuration.")
def run(config_file: Path) -> None:
    """Run the gateway with CONFIG until SIGINT or SIGTERM."""
    settings = load_or_exit(config_file, dict(os.environ))
    logs.configure(settings.logging)
    app.run(settings)


main.add_command(config_group)
main.add_command(ledger_group)
main.add_command(kiosk_group)
main.add_command(central_group)
main.add_command(sync_group)
main.add_command(deadletters_group)


@main.group("sim")
def sim_group() -> None:
    """Simulators that speak the real device protocols to a running gateway."""


sim_group.add_command(sim_ble)
sim_group.add_command(sim_kiosk)
sim_group.add_command(sim_pos)
