"""`mallgate central`: the reference central server's commands, logging as the gateway does.

Central imports nothing of the gateway but the loyalty domain, so it cannot set up the
gateway's log itself; this group, mounted by the CLI in place of central's own, hands it
over (`cloud_api.server.cli.LOG_SETUP`): `central serve` then writes JSON or readable
lines, with personal data masked on every handler, exactly as `mallgate run` does.
"""

from __future__ import annotations

import click

from cloud_api.server import cli as central_cli
from gateway.app.central_rules import rules_group
from gateway.logs import configure_logging


@click.group("central", help=central_cli.central_group.help)
@click.pass_context
def central_group(ctx: click.Context) -> None:
    ctx.meta[central_cli.LOG_SETUP] = configure_logging


for _command in central_cli.central_group.commands.values():
    central_group.add_command(_command)
# The back office's commands that read a gateway configuration live on this side:
# central imports nothing of the gateway's settings.
central_group.add_command(rules_group)
