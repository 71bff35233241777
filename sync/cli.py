"""`mallgate sync ...`: look at the sync state, or sync once now."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path

import click

from cloud_api.errors import CentralError
from gateway.clock import utc_now
from gateway.config_option import config_option
from gateway.loyalty.hlc import HybridClock
from gateway.loyalty.wire import to_text
from gateway.settings.cli import load_or_exit
from gateway.store import Reader, Writer
from sync.connect import central_client
from sync.engine import SyncEngine
from sync.feed import FeedPage
from sync.held import pending_letter
from sync.state import SyncStatus, read_status

_config = config_option


@click.group("sync")
def sync_group() -> None:
    """Sync with central: state and a one-off run."""


def _print(status: SyncStatus) -> None:
    click.echo(json.dumps(status.as_json(), indent=2, ensure_ascii=False))


@sync_group.command("status")
@_config
def status(config_file: Path) -> None:
    """Mode and last error of the running gateway, outbox depth, oldest pending event,
    cursor lag, last successes, dead letters."""
    settings = load_or_exit(config_file, dict(os.environ))

    async def read() -> SyncStatus:
        async with Reader(settings.store.path) as reader:
            now = utc_now()
            return await reader.run(lambda c: read_status(c, now))

    if not settings.store.path.exists():
        raise click.ClickException(f"no store at {settings.store.path} yet")
    _print(asyncio.run(read()))


@sync_group.command("now")
@_config
def now(config_file: Path) -> None:
    """Push the whole outbox and pull up to central's head once, then exit."""
    settings = load_or_exit(config_file, dict(os.environ))
    client = central_client(settings)
    if client is None:
        raise click.ClickException("no [central] url configured, or [sync] enabled = false")

    async def run() -> SyncStatus:
        settings.store.path.parent.mkdir(parents=True, exist_ok=True)
        async with Writer(settings.store.path) as writer, \
                Reader(settings.store.path) as reader, client:
            engine = SyncEngine(client, writer, reader, gateway_id=settings.site.gateway_id,
                                settings=settings.sync,
                                clock=HybridClock(settings.site.gateway_id),
                                limits=settings.limits.plausibility())
            return await engine.sync_now()

    try:
        _print(asyncio.run(run()))
    except CentralError as exc:
        raise click.ClickException(f"sync failed: {exc}") from None


@sync_group.command("discard")
@_config
@click.argument("ids", nargs=-1, type=int, required=True)
def discard(config_file: Path, ids: tuple[int, ...]) -> None:
    """Give up refused changes from central (dead letters of source `sync`) for good; the
    changes of their members that waited behind them are applied. Safe while the gateway
    runs. A refused change central corrects needs no discard: its newer version replaces
    it at the next sync."""
    settings = load_or_exit(config_file, dict(os.environ))
    if not settings.store.path.exists():
        raise click.ClickException(f"no store at {settings.store.path} yet")
    limits = settings.limits.plausibility()

    def op(conn: sqlite3.Connection) -> list[str]:
        at = to_text(utc_now()) or ""
        problems = [p for i in ids if (p := pending_letter(conn, i)) is not None]
        if problems:
            return problems
        page = FeedPage(conn, at=at, limits=limits, cursor=None)
        for letter_id in ids:
            page.discard(letter_id, "discarded by an operator")
        page.finish()
        return []

    async def run() -> list[str]:
        async with Writer(settings.store.path) as writer:
            return await writer.submit(op)

    problems = asyncio.run(run())
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.ClickException("nothing discarded")
    click.echo(f"{len(ids)} refused change(s) discarded")
