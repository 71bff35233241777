"""`mallgate deadletters list|replay`: what the gateway refused, and running it again.

Only POS dead letters are replayable: they are read again from their capture with the
current receipt templates. Kiosk requests are retried by their kiosk and events central
refused need a fix at central; those letters are kept to be read, not replayed.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from gateway.config_option import config_option
from gateway.deadletters.replayable import Letter, letters, refusal
from gateway.ledger import Ledger
from gateway.loyalty.hlc import HybridClock
from gateway.progress import progress_option, reporting
from gateway.receipts import DEAD_LETTER_SOURCE, Outcome, ReceiptPipeline
from gateway.settings import Settings
from gateway.settings.cli import load_or_exit
from gateway.store import Reader, Writer

CONFIG_OPTION = config_option


@click.group("deadletters")
def deadletters_group() -> None:
    """Input the gateway could not process, kept raw with the reason."""


def _store_or_exit(settings: Settings) -> Path:
    if not settings.store.path.exists():
        raise click.ClickException(f"no store at {settings.store.path}: has the gateway run?")
    return settings.store.path


@deadletters_group.command("list")
@CONFIG_OPTION
@click.option("--all", "show_all", is_flag=True, help="Include those already replayed.")
def list_dead_letters(config_file: Path, show_all: bool) -> None:
    """List dead letters: id, source, when, error code and reason."""
    settings = load_or_exit(config_file, dict(os.environ))
    path = _store_or_exit(settings)
    where = "" if show_all else "WHERE replayed_at IS NULL"

    async def read() -> list[tuple[object, ...]]:
        async with Reader(path, connections=1) as reader:
            return await reader.run(lambda conn: conn.execute(
                "SELECT id, source, received_at, error_code, error, length(raw), "
                f"replay_result FROM dead_letters {where} ORDER BY id").fetchall())

    rows = asyncio.run(read())
    for row_id, source, at, code, error, size, result in rows:
        replayed = f"  replayed: {result}" if result else ""
        click.echo(f"{row_id:>6} {source:<6} {at} {code:<14} {size:>6} B  {error}{replayed}")
    click.echo(f"{len(rows)} dead letter(s)")


@deadletters_group.command("replay")
@CONFIG_OPTION
@click.argument("ids", nargs=-1, type=int)
@progress_option
def replay_dead_letters(config_file: Path, ids: tuple[int, ...],
                        progress_every: float) -> None:
    """Run POS dead letters (all pending, or IDS) through the current templates again.

    Safe while the gateway runs: receipts are credited once whatever runs them. Each id
    typed is reported; one that does not exist or cannot be replayed fails the command.
    A long replay tells how far it is on stderr every --progress-every seconds.
    """
    from gateway.app.pos import receipt_parser  # noqa: PLC0415 - the POS part, only here

    settings = load_or_exit(config_file, dict(os.environ))
    path = _store_or_exit(settings)
    typed = tuple(dict.fromkeys(ids))  # in the order typed, each once

    async def replay() -> tuple[dict[int, Letter], list[Outcome]]:
        async with Writer(path) as writer, Reader(path, connections=1) as reader:
            found = await reader.run(lambda conn: letters(conn, typed))
            wanted = [i for i in (typed or sorted(found))
                      if refusal(i, found.get(i)) is None]
            if not wanted:
                return found, []
            ledger = Ledger(writer, reader, site=settings.site.gateway_id,
                            clock=HybridClock(settings.site.gateway_id), rules=settings.loyalty,
                            limits=settings.limits.plausibility())
            await ledger.reload_rules()  # a replayed sale earns by central's rules too
            pipeline = ReceiptPipeline(ledger, receipt_parser(settings),
                                       refund_window_days=settings.pos.refund_window_days,
                                       refund_restores_coupons=(
                                           settings.pos.refund_restores_coupons))
            so_far: list[Outcome] = []

            def show() -> None:
                dead = sum(1 for o in so_far if o.status == "dead")
                click.echo(f"deadletters replay: {len(so_far)} of {len(wanted)} replayed, "
                           f"{len(so_far) - dead} processed, {dead} still unreadable",
                           err=True)

            async with reporting(progress_every, show):
                return found, await pipeline.replay_dead_letters(wanted, done=so_far.append)

    found, outcomes = asyncio.run(replay())
    letter_of = {letter.capture_id: letter.id for letter in found.values()}
    for outcome in outcomes:
        detail = outcome.reason or outcome.receipt_no
        click.echo(f"dead letter {letter_of.get(outcome.capture_id, '?')} (capture "
                   f"{outcome.capture_id}): {outcome.status} {detail}".rstrip())
    refused = [reason for i in typed if (reason := refusal(i, found.get(i))) is not None]
    for reason in refused:
        click.echo(reason, err=True)
    fixed = sum(1 for o in outcomes if o.status != "dead")
    click.echo(f"{fixed} of {len(outcomes)} {DEAD_LETTER_SOURCE} dead letter(s) processed; "
               f"{len(outcomes) - fixed} still unreadable")
    if refused:
        raise click.ClickException(f"{len(refused)} of the {len(typed)} id(s) given could "
                                   "not be replayed")
