"""`mallgate sim pos` (a POS on a serial port) and `mallgate deadletters list|replay`."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import click

from devices.pos import sim
from devices.pos.reading import CaptureReader
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


@click.command("pos")
@click.option("--port", "path", required=True,
              help="Serial device (or pty) of the POS end of the line.")
@click.option("--format", "mode", type=click.Choice(["escpos", "framed", "jsonl"]),
              default="escpos", show_default=True, help="Protocol spoken on the line.")
@click.option("--rate", type=float, default=2.0, show_default=True,
              help="Receipts per second (0: as fast as the line and the ACKs allow).")
@click.option("--count", type=click.IntRange(1), default=100, show_default=True,
              help="Receipts to send.")
@click.option("--store", "store_id", default="S01", show_default=True)
@click.option("--pos", "pos_id", default="P1", show_default=True)
@click.option("--members", type=click.IntRange(0), default=20, show_default=True,
              help="Member codes M00000001... used on receipts (they must exist at the "
              "gateway to earn; others stay unclaimed).")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--baudrate", type=int, default=9600, show_default=True)
@click.option("--timezone", "tz_name", default="Asia/Shanghai", show_default=True,
              help="Time zone of the POS clock (the mall's).")
def sim_pos(*, path: str, mode: str, rate: float, count: int, store_id: str, pos_id: str,
            members: int, seed: int, baudrate: int, tz_name: str) -> None:
    """A POS terminal printing realistic Chinese receipts (GB18030) on PORT."""
    # POS clocks print local wall time; receipts are dated up to now.
    now = datetime.now(ZoneInfo(tz_name)).replace(tzinfo=None, microsecond=0)
    start = now - timedelta(seconds=count)
    receipts = sim.scenario(count, seed=seed, start=start,
                            members=[f"M{i:08d}" for i in range(1, members + 1)],
                            store_id=store_id, pos_id=pos_id)
    report = asyncio.run(sim.run(path, cast(sim.Mode, mode), receipts, rate=rate,
                                 baudrate=baudrate, seed=seed, store_id=store_id,
                                 pos_id=pos_id))
    kinds = Counter(r.kind for r in receipts)
    click.echo(json.dumps({"sent": report.sent, "acked": report.acked, "naks": report.naks,
                           "resends": report.resends, "noise_bytes": report.noise_bytes,
                           "kinds": dict(sorted(kinds.items()))}, ensure_ascii=False))
    if report.latencies:
        lat = sorted(report.latencies)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        click.echo(f"receipt->ACK latency: p50 {statistics.median(lat) * 1000:.1f} ms, "
                   f"p99 {p99 * 1000:.1f} ms")


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
def replay_dead_letters(config_file: Path, ids: tuple[int, ...]) -> None:
    """Run POS dead letters (all pending, or IDS) through the current templates again.

    Safe while the gateway runs: receipts are credited once whatever runs them.
    """
    settings = load_or_exit(config_file, dict(os.environ))
    path = _store_or_exit(settings)

    async def replay() -> list[Outcome]:
        async with Writer(path) as writer, Reader(path, connections=1) as reader:
            ledger = Ledger(writer, reader, site=settings.site.gateway_id,
                            clock=HybridClock(settings.site.gateway_id), rules=settings.loyalty)
            pipeline = ReceiptPipeline(ledger, CaptureReader(settings.pos, settings.loyalty.tz))
            return await pipeline.replay_dead_letters(ids)

    outcomes = asyncio.run(replay())
    for outcome in outcomes:
        detail = outcome.reason or outcome.receipt_no
        click.echo(f"capture {outcome.capture_id}: {outcome.status} {detail}".rstrip())
    fixed = sum(1 for o in outcomes if o.status != "dead")
    click.echo(f"{fixed} of {len(outcomes)} {DEAD_LETTER_SOURCE} dead letter(s) processed; "
               f"{len(outcomes) - fixed} still unreadable")
