"""`mallgate http token`: a new bearer token of the local API, printed once."""

from __future__ import annotations

from typing import get_args

import click
from pydantic import ValidationError

from gateway.http.tokens import new_token, token_hash
from gateway.settings.model import ApiRole, HttpToken


@click.group("http")
def http_group() -> None:
    """The local HTTP API: bearer tokens of its roles."""


@http_group.command("token")
@click.option("--role", required=True, type=click.Choice(get_args(ApiRole)),
              help="ops: metrics, parts, dead letters and their replay; staff: members, "
                   "receipts and the dashboard; pos: a till's member lookup and balance.")
@click.option("--name", default=None, help="Who holds it, written in the audit log "
              "(default: the role and a short random suffix).")
def token(role: str, name: str | None) -> None:
    """Make a new token of ROLE: print it once, and the [[http.tokens]] table that lets it
    in (the configuration keeps only its SHA-256)."""
    secret = new_token()
    name = name or f"{role}-{token_hash(secret)[:6]}"
    try:  # the table printed must load: checked by the model the configuration uses
        HttpToken.model_validate({"name": name, "role": role, "sha256": token_hash(secret)})
    except ValidationError:
        raise click.BadParameter("letters, digits and _.- only, up to 64",
                                 param_hint="--name") from None
    click.echo(f"token (shown once, give it to its holder): {secret}")
    click.echo("\nadd to the gateway's configuration, then restart it:\n")
    click.echo("[[http.tokens]]")
    click.echo(f'name = "{name}"')
    click.echo(f'role = "{role}"')
    click.echo(f'sha256 = "{token_hash(secret)}"')
