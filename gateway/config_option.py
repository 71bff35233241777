"""The one `--config` of every command that reads the gateway's configuration.

Apart from `gateway.settings` on purpose: `mallgate --help` builds the `run` command with
it, and must not load the settings models (pydantic) to do so.
"""

from __future__ import annotations

from pathlib import Path

import click

CONFIG_ENV = "MALLGATE_CONFIG"

config_option = click.option(
    "--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
    required=True, envvar=CONFIG_ENV, show_envvar=True,
    help=f"The gateway's TOML configuration; required unless {CONFIG_ENV} names it.",
)
