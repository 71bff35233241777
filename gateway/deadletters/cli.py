"""`mallgate deadletters list|replay`: what the gateway refused, and running it again.

Only POS dead letters are replayable: they are read again from their capture with the
current receipt templates. Kiosk requests are retried by their kiosk and events central
refused need a fix at central; those letters are kept to be read, not replayed.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import click

from gateway.ledger import Ledger
from gateway.loyalty.hlc import HybridClock
from gateway.receipts import DEAD_LETTER_SOURCE, Outcome, ReceiptPipeline
from gateway.settings import Settings
from gateway.settings.cli import load_or_exit
from gateway.store import Reader, Writer

CONFIG_OPTION = click.option(
    "--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
    default=Path("config/demo.toml"), show_default=True, help="The gateway's configuration.",
)


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


@dataclass(frozen=True, slots=True)
class _Letter:
    id: int
    source: str
    capture_id: int | None
    replay_result: str | None  # set once it was replayed
    raw_kept: bool  # its capture still has its raw bytes ([store] pos_capture_retention_days)


def _letters(conn: sqlite3.Connection, ids: tuple[int, ...]) -> dict[int, _Letter]:
    """The letters among `ids`, or every pending POS letter when `ids` is empty."""
    query = ("SELECT id, source, json_extract(context, '$.capture_id'), replay_result, "
             "coalesce((SELECT length(raw) > 0 FROM pos_captures WHERE id = "
             "json_extract(context, '$.capture_id')), 0) FROM dead_letters ")
    if ids:
        rows = conn.execute(query + f"WHERE id IN ({', '.join('?' * len(ids))})", ids)
    else:
        rows = conn.execute(query + "WHERE source = ? AND replayed_at IS NULL",
                            (DEAD_LETTER_SOURCE,))
    return {row[0]: _Letter(row[0], row[1], row[2], row[3], bool(row[4])) for row in rows}


def _refusal(letter_id: int, letter: _Letter | None) -> str | None:
    """Why the typed id cannot be replayed, or None if it can."""
    if letter is None:
        return f"dead letter {letter_id}: no such dead letter"
    if letter.source != DEAD_LETTER_SOURCE or letter.capture_id is None:
        return (f"dead letter {letter_id}: not replayable (source {letter.source}; only "
                f"{DEAD_LETTER_SOURCE} dead letters are)")
    if letter.replay_result is not None:
        return (f"dead letter {letter_id}: not replayable (already replayed: "
                f"{letter.replay_result})")
    if not letter.raw_kept:
        return (f"dead letter {letter_id}: not replayable (its capture's raw bytes were "
                "deleted after [store] pos_capture_retention_days)")
    return None


@deadletters_group.command("replay")
@CONFIG_OPTION
@click.argument("ids", nargs=-1, type=int)
def replay_dead_letters(config_file: Path, ids: tuple[int, ...]) -> None:
    """Run POS dead letters (all pending, or IDS) through the current templates again.

    Safe while the gateway runs: receipts are credited once whatever runs them. Each id
    typed is reported; one that does not exist or cannot be replayed fails the command.
    """
    from gateway.app.pos import receipt_parser  # noqa: PLC0415 - the POS part, only here

    settings = load_or_exit(config_file, dict(os.environ))
    path = _store_or_exit(settings)
    typed = tuple(dict.fromkeys(ids))  # in the order typed, each once

    async def replay() -> tuple[dict[int, _Letter], list[Outcome]]:
        async with Writer(path) as writer, Reader(path, connections=1) as reader:
            letters = await reader.run(lambda conn: _letters(conn, typed))
            wanted = [i for i in (typed or sorted(letters))
                      if _refusal(i, letters.get(i)) is None]
            if not wanted:
                return letters, []
            ledger = Ledger(writer, reader, site=settings.site.gateway_id,
                            clock=HybridClock(settings.site.gateway_id), rules=settings.loyalty,
                            limits=settings.limits.plausibility())
            pipeline = ReceiptPipeline(ledger, receipt_parser(settings),
                                       refund_window_days=settings.pos.refund_window_days)
            return letters, await pipeline.replay_dead_letters(wanted)

    letters, outcomes = asyncio.run(replay())
    letter_of = {letter.capture_id: letter.id for letter in letters.values()}
    for outcome in outcomes:
        detail = outcome.reason or outcome.receipt_no
        click.echo(f"dead letter {letter_of.get(outcome.capture_id, '?')} (capture "
                   f"{outcome.capture_id}): {outcome.status} {detail}".rstrip())
    refused = [reason for i in typed if (reason := _refusal(i, letters.get(i))) is not None]
    for reason in refused:
        click.echo(reason, err=True)
    fixed = sum(1 for o in outcomes if o.status != "dead")
    click.echo(f"{fixed} of {len(outcomes)} {DEAD_LETTER_SOURCE} dead letter(s) processed; "
               f"{len(outcomes) - fixed} still unreadable")
    if refused:
        raise click.ClickException(f"{len(refused)} of the {len(typed)} id(s) given could "
                                   "not be replayed")
