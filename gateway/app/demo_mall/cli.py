"""`mallgate demo`: the command around `run_demo`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from gateway.app.demo_mall.mall import DemoError, DemoOptions, run_demo


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False),
              default=Path("var/demo"), show_default=True,
              help="Working directory: databases, broker state, serial lines and the log. "
              "Each run starts a new mall there.")
@click.option("--duration", type=click.FloatRange(min=1), default=None,
              help="Stop after this many seconds and print a summary (default: run until "
              "Ctrl-C).")
@click.option("--report", "report_file", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Write the summary to FILE as JSON.")
@click.option("--http-port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="The gateway's HTTP port; a free one if it is taken (0: any).")
@click.option("--broker-port", type=click.IntRange(0, 65535), default=11883,
              show_default=True, help="The demo broker's port; a free one if it is taken "
              "(0: any).")
@click.option("--members", type=click.IntRange(1, 9999), default=20, show_default=True,
              help="Demo members made at central (cards DEMO0001...).")
@click.option("--pos-rate", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Receipts per second on each of the three tills.")
@click.option("--kiosk-every", type=click.FloatRange(min=0.1), default=3.0,
              show_default=True, help="Seconds between visitors at each kiosk.")
@click.option("--ble-rate", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Visitors walking in per minute.")
def demo(*, directory: Path, duration: float | None, report_file: Path | None,
         http_port: int, broker_port: int, members: int, pos_rate: float,
         kiosk_every: float, ble_rate: float) -> None:
    """A whole mall on this machine: central, broker, gateway and device simulators.

    The reference central server with the demo members, the gateway synced to it, and
    simulated tills (framed, jsonl and escpos), kiosks and BLE receivers driving it. Prints
    the addresses, then a line every few seconds. Exits 1 if a part failed, a member sale
    was not credited, or an acknowledged event was lost.
    """
    options = DemoOptions(directory=directory, duration_s=duration, http_port=http_port,
                          broker_port=broker_port, members=members, pos_rate=pos_rate,
                          kiosk_every_s=kiosk_every, ble_rate_per_min=ble_rate)
    try:
        summary, problems = asyncio.run(run_demo(options, click.echo))
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    text = json.dumps(summary)
    click.echo(f"summary: {text}")
    if report_file is not None:
        report_file.parent.mkdir(parents=True, exist_ok=True)
        report_file.write_text(text + "\n", encoding="utf-8")
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        raise SystemExit(1)
