"""The `mallgate` command line: one group, each sub-command defined next to what it drives.

Sub-command groups are imported only when invoked (or listed with their help), so
`mallgate --help` and `mallgate run` load neither the central server nor its database
drivers, and `run` loads a device's libraries only when the configuration enables it.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path

import click

from gateway.config_option import config_option

# name -> ("module:attribute" of the click command, its one-line help). The help is
# written here so that listing the commands imports none of them; a test checks that it
# matches each command's own.
Lazy = dict[str, tuple[str, str]]
COMMANDS: Lazy = {
    "central": ("gateway.app.central:central_group",
                "The reference central member API (the cloud side of sync)."),
    "config": ("gateway.settings.cli:config_group",
               "Validate and describe the configuration file."),
    "demo": ("gateway.app.demo_mall.cli:demo",
             "A whole mall on this machine: central, broker, gateway and device simulators."),
    "doctor": ("gateway.app.doctor.cli:doctor",
               "Check ports, BLE adapters, broker, central, clock, disk, store and secrets."),
    "deadletters": ("gateway.deadletters.cli:deadletters_group",
                    "Input the gateway could not process, kept raw with the reason."),
    "http": ("gateway.http.cli:http_group", "The local HTTP API: bearer tokens of its roles."),
    "kiosk": ("devices.kiosk.cli:kiosk_group",
              "Kiosks and BLE receivers over MQTT: broker logins and demo QR tokens."),
    "ledger": ("gateway.ledger.cli:ledger_group", "Read an account's points ledger."),
    "pos": ("devices.pos.installer:pos_group",
            "POS installer tools: stored captures and trying receipt templates."),
    "sync": ("sync.cli:sync_group", "Sync with central: state and a one-off run."),
}
SIMULATORS: Lazy = {
    "ble": ("devices.ble.cli:sim_ble", "Remote BLE receivers publishing what they hear of "
            "members walking through the mall."),
    "kiosk": ("devices.kiosk.cli:sim_kiosk",
              "Play kiosks through member sessions against the running gateway's broker."),
    "pos": ("devices.pos.cli:sim_pos",
            "A POS terminal printing realistic Chinese receipts (GB18030) on PORT."),
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def __init__(self, *args: object, lazy: Lazy, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            target = self.lazy[cmd_name][0]
            module, _, attribute = target.partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{target} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, short) in self.lazy.items()]
        for name in super().list_commands(ctx):
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mallgate")
def main() -> None:
    """mallgate: the in-store edge gateway of a shopping mall's membership system."""
    mask_unconfigured_logging()


def mask_unconfigured_logging() -> None:
    """Commands that set up no logging of their own (`sync now`, `deadletters replay`, ...)
    still print warnings, through Python's last-resort handler: it gets the personal-data
    filter every configured handler carries, once."""
    from gateway.logfilter import PersonalDataFilter  # noqa: PLC0415 - light, stdlib only

    last_resort = logging.lastResort
    if last_resort is not None and not any(
            isinstance(f, PersonalDataFilter) for f in last_resort.filters):
        last_resort.addFilter(PersonalDataFilter())


@main.command("run")
@config_option
def run(config_file: Path) -> None:
    """Run the gateway with CONFIG until SIGINT or SIGTERM."""
    from gateway import logs  # noqa: PLC0415 - only this command needs them
    from gateway.app import run as serve  # noqa: PLC0415
    from gateway.settings.cli import load_or_exit  # noqa: PLC0415

    settings = load_or_exit(config_file, dict(os.environ))
    logs.configure(settings.logging)
    sys.exit(serve(settings))


@main.group("sim", cls=LazyGroup, lazy=SIMULATORS)
def sim_group() -> None:
    """Simulators that speak the real device protocols to a running gateway."""
