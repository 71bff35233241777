"""`mallgate doctor --config FILE`: check what the configuration needs, print a table, exit
0 (all ok), 1 (a warning) or 2 (a failure)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from gateway.app.doctor import ble, broker, central, serial, system
from gateway.app.doctor.model import Check, Finding, exit_code, run_checks, table
from gateway.config_option import config_option
from gateway.settings import Settings
from gateway.settings.cli import EXIT_INVALID
from gateway.settings.load import SettingsError, load_settings

DEFAULT_TIMEOUT_S = 5.0


def checks(settings: Settings, config_file: Path, timeout_s: float) -> list[Check]:
    """Every check, in the order an installer fixes things: files, then devices, then
    the network."""
    return [
        Check("secrets", lambda: system.secrets(settings, config_file)),
        Check("descriptors", lambda: system.descriptor_limit(settings)),
        Check("disk", lambda: system.disk(settings)),
        Check("database", lambda: system.database(settings),
              "the store is locked or very slow: is a backup or a long query running?"),
        Check("serial", lambda: serial.ports(settings),
              "a port did not answer: unplug and replug its adapter, check dmesg"),
        Check("ble", lambda: ble.adapters(settings),
              "bluetoothd did not answer: sudo systemctl restart bluetooth"),
        Check("broker", lambda: broker.broker(settings, timeout_s * 0.8),
              "check [kiosk] host, port and tls against the broker's listener"),
        Check("central", lambda: central.central(settings),
              "central did not answer in time: check [central] url and the network"),
    ]


async def diagnose(settings: Settings, config_file: Path, timeout_s: float) -> list[Finding]:
    return await run_checks(checks(settings, config_file, timeout_s), timeout_s)


@click.command("doctor")
@config_option
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.1, 120), default=DEFAULT_TIMEOUT_S,
              show_default=True, help="Longest wait for each check, in seconds.")
def doctor(config_file: Path, timeout_s: float) -> None:
    """Check ports, BLE adapters, broker, central, clock, disk, store and secrets."""
    try:
        # A token file others can read is one finding below, not the end of the checks.
        settings = load_settings(config_file, environ=dict(os.environ), secret_modes=False)
    except SettingsError as exc:
        click.echo(str(exc), err=True)
        click.echo(f"fix the configuration first: mallgate config check {config_file}",
                   err=True)
        raise click.exceptions.Exit(EXIT_INVALID) from None
    findings = asyncio.run(diagnose(settings, config_file, timeout_s))
    for line in table(findings):
        click.echo(line)
    raise click.exceptions.Exit(exit_code(findings))
