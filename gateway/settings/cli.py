"""`mallgate config ...` commands."""

from __future__ import annotations

import os
from pathlib import Path

import click

from gateway.settings.advice import advice
from gateway.settings.load import ENV_PREFIX, SettingsError, load_settings
from gateway.settings.model import Settings
from gateway.settings.reference import schema_text

EXIT_INVALID = 2
@click.group("config")
def config_group() -> None:
    """Validate and describe the configuration file."""


def summary(settings: Settings) -> str:
    """One line saying what a valid configuration sets up; never shows a secret."""
    central = settings.central
    if central.url is None:
        sync = "standalone (no central)"
    else:
        auth = "token set" if central.token is not None else "no token"
        sync = f"central {central.url} ({auth})"
    return (f"mall {settings.site.mall_id}, gateway {settings.site.gateway_id}, "
            f"http {settings.http.host}:{settings.http.port}, store {settings.store.path}, "
            f"{sync}, loyalty rules {settings.loyalty.version} "
            f"({len(settings.loyalty.tiers.tiers)} tiers)")


def load_or_exit(file: Path, environ: dict[str, str]) -> Settings:
    """Load the settings for a command; print every error and exit 2 if invalid."""
    try:
        return load_settings(file, environ=environ)
    except SettingsError as exc:
        click.echo(str(exc), err=True)
        raise click.exceptions.Exit(EXIT_INVALID) from None


@config_group.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--no-env", is_flag=True,
              help=f"Ignore {ENV_PREFIX}SECTION__KEY environment overrides.")
def check(file: Path, no_env: bool) -> None:
    """Validate FILE with the environment overrides; exit 2 listing every error."""
    environ = {} if no_env else dict(os.environ)
    settings = load_or_exit(file, environ)
    overrides = sum(name.startswith(ENV_PREFIX) for name in environ)
    note = f" ({overrides} environment override{'s' * (overrides != 1)})" if overrides else ""
    click.echo(f"OK {file}{note}: {summary(settings)}")
    for sentence in advice(settings):
        click.echo(f"warning: {sentence}", err=True)


@config_group.command("schema")
def schema() -> None:
    """Print the JSON Schema of the configuration file."""
    click.echo(schema_text(), nl=False)
