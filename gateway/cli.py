"""The `mallgate` command line: one group, each sub-command defined next to what it drives."""

from __future__ import annotations

import click

from gateway.settings.cli import config_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mallgate")
def main() -> None:
    """mallgate: the in-store edge gateway of a shopping mall's membership system."""


main.add_command(config_group)
