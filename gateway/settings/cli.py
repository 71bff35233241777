"""`mallgate config ...` commands."""

from __future__ import annotations

import click


@click.group("config")
def config_group() -> None:
    """Validate and describe the configuration file."""
