"""The order of a demo run: central, the mall's members, the serial lines, the gateway,
the simulators; a live line every few seconds; then stop the simulators, drain sync,
count, and shut everything down in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from cloud_api.client import CentralClient
from gateway.app.demo_mall.ble import walk_members
from gateway.app.demo_mall.central import running_central, seed_mall
from gateway.app.demo_mall.gateway import listen, serving
from gateway.app.demo_mall.kiosk import serve_visitors
from gateway.app.demo_mall.layout import (
    KIOSKS,
    MALL_ID,
    POS_LINES,
    Layout,
    gateway_settings,
    port_or_free,
)
from gateway.app.demo_mall.pos import TillTally, ring_up
from gateway.app.demo_mall.ptys import pty_pairs
from gateway.app.demo_mall.tally import Tallies, live_line, report
from gateway.app.factory import Stopper
from gateway.app.keys import BLE, PARTS, READER, SETTINGS, SYNC
from gateway.demo import demo_ids

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
# How long the simulators get to finish what they are sending once told to stop.
DRIVERS_STOP_S = 15.0
# How long the final drain may take: the outbox pushed, every arrival decided.
DRAIN_TIMEOUT_S = 30.0
POLL_S = 0.2


class DemoError(RuntimeError):
    """The demo could not start or run."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    directory: Path = Path("var/demo")
    duration_s: float | None = None
    http_port: int = 8080
    broker_port: int = 11883
    members: int = 20
    pos_rate: float = 1.0  # receipts per second on each till
    kiosk_every_s: float = 3.0  # seconds between visitors at each kiosk
    ble_rate_per_min: float = 30.0  # visitors walking in per minute
    summary_every_s: float = 5.0


async def run_demo(options: DemoOptions, say: Callable[[str], None],
                   ) -> tuple[dict[str, Any], list[str]]:
    """Run the demo mall until SIGINT/SIGTERM or `duration_s`; its report and what went
    wrong (nothing: an empty list)."""
    layout = Layout(options.directory.resolve())
    layout.fresh()
    log_file = logging.FileHandler(layout.log, encoding="utf-8")
    log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(log_file)
    root.setLevel(logging.INFO)
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupted.set)
    try:
        async with contextlib.AsyncExitStack() as stack:
            central = await stack.enter_async_context(running_central(layout.central_db))
            layout.write_secret(layout.admin_token, central.admin_token)
            admin = await stack.enter_async_context(
                CentralClient(central.url, central.admin_token))
            await stack.enter_async_context(pty_pairs(
                [(layout.pos_end(line), layout.gateway_end(line)) for line in POS_LINES]))
            sock = listen(options.http_port)
            staff_token = secrets.token_urlsafe(24)
            layout.write_secret(layout.staff_token, staff_token)
            settings = gateway_settings(
                layout, http_port=sock.getsockname()[1],
                broker_port=port_or_free(options.broker_port), central_url=central.url,
                token=central.gateway_token, staff_token=staff_token)
            await seed_mall(admin, options.members, settings.loyalty)
            app, stopper = await stack.enter_async_context(serving(settings, sock))
            await _ready(app, options.members)
            for line in _banner(app, central.url, layout, options, staff_token):
                say(line)
            return await _drive(app, stopper, admin, layout=layout, options=options,
                                interrupted=interrupted, say=say)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        root.removeHandler(log_file)
        log_file.close()


async def _ready(app: web.Application, members: int) -> None:
    """Wait until sync brought the members, their welcome points and the offers down, and
    every part is up (bounded: a part still not up is named by the live line)."""
    def synced(conn: sqlite3.Connection) -> bool:
        have, points, offers = conn.execute(
            "SELECT (SELECT count(*) FROM members), (SELECT count(*) FROM ledger WHERE "
            "source_type = 'central.adjust'), (SELECT count(*) FROM offers)").fetchone()
        return bool(have >= members and points >= members and offers > 0)
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            while not await app[READER].run(synced):  # noqa: ASYNC110 - sync signals no one
                await asyncio.sleep(POLL_S)
            ble = app.get(BLE)
            if ble is not None:
                await ble.refresh_keys()  # the demo members' beacon keys, just synced
            while app[PARTS].not_up():  # noqa: ASYNC110 - parts change state without an event
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        waiting = ", ".join(f"{s.name} ({s.reason or s.state.value})"
                            for s in app[PARTS].not_up())
        raise DemoError("the gateway did not get ready: " + (
            waiting or "the demo members did not arrive from central")) from None


def _banner(app: web.Application, central_url: str, layout: Layout,
            options: DemoOptions, staff_token: str) -> list[str]:
    settings = app[SETTINGS]
    broker = settings.kiosk.port
    last = demo_ids(options.members)[2]
    lines = [
        f"mallgate demo: mall {MALL_ID}, gateway {settings.site.gateway_id}, "
        f"files in {layout.root}",
        f"  dashboard  http://127.0.0.1:{settings.http.port}/?token={staff_token}  "
        f"(staff token also in {layout.staff_token}; /readyz and /metrics too)",
        f"  central    {central_url}  (back-office token in {layout.admin_token})",
        f"  broker     127.0.0.1:{broker}  mall id {MALL_ID}, kiosks {', '.join(KIOSKS)}",
    ]
    lines += [f"  POS        {line.name} {line.mode:7} {layout.pos_end(line)}"
              for line in POS_LINES]
    lines += [
        f"  members    {options.members} demo members, cards DEMO0001..{last}",
        f"  log        {layout.log}",
        "Ctrl-C stops everything." if options.duration_s is None
        else f"Running for {options.duration_s:g} s.",
    ]
    return lines


async def _drive(app: web.Application, stopper: Stopper, admin: CentralClient, *,
                 layout: Layout, options: DemoOptions, interrupted: asyncio.Event,
                 say: Callable[[str], None]) -> tuple[dict[str, Any], list[str]]:
    settings = app[SETTINGS]
    site, broker = settings.site.mall_id, settings.kiosk.port
    members = options.members
    cards = [demo_ids(n)[2] for n in range(1, members + 1)]
    tallies = Tallies(tills={line: TillTally() for line in POS_LINES})
    stop = asyncio.Event()
    drivers = [
        asyncio.create_task(ring_up(line, layout.pos_end(line), tallies.tills[line],
                                    rate=options.pos_rate, members=cards,
                                    tz=settings.loyalty.tz, stop=stop), name=f"till-{line.name}")
        for line in POS_LINES]
    drivers += [
        asyncio.create_task(serve_visitors(kid, host="127.0.0.1", port=broker, site=site,
                                           cards=cards, every_s=options.kiosk_every_s,
                                           tally=tallies.kiosk, stop=stop, seed=n),
                            name=f"kiosk-{kid}")
        for n, kid in enumerate(KIOSKS, start=1)]
    drivers.append(asyncio.create_task(
        walk_members(host="127.0.0.1", port=broker, site=site, members=members,
                     rate_per_min=options.ble_rate_per_min, stats=tallies.ble, stop=stop),
        name="ble-receivers"))
    problems: list[str] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + options.duration_s if options.duration_s is not None else None
    try:
        while True:
            wait = options.summary_every_s
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - loop.time()))
            await _first_of(interrupted, stopper.event, timeout_s=wait)
            early = [task for task in drivers if task.done()]
            if early:  # a simulator failed (_stop_drivers says why) or ended by itself
                problems += [f"{task.get_name()} ended early" for task in early
                             if not task.cancelled() and task.exception() is None]
                break
            if interrupted.is_set() or stopper.event.is_set():
                break
            if deadline is not None and loop.time() >= deadline:
                break
            say(await live_line(app, tallies, loop.time() - started))
    finally:
        stop.set()
        problems += await _stop_drivers(drivers)
    if stopper.reason is not None:
        problems.append(f"the gateway stopped: {stopper.reason}")
    else:
        await _drain(app)
    say(await live_line(app, tallies, loop.time() - started))
    summary = await report(app, tallies, admin, members)
    say(f"receipts: {tallies.receipts_sent} sent, {tallies.sales_sent} member sales, "
        f"{summary['receipts']['credited']} credited; lost: {summary['lost']}")
    if tallies.sales_sent != summary["receipts"]["credited"]:
        problems.append(f"{tallies.sales_sent} member sales sent, "
                               f"{summary['receipts']['credited']} credited")
    if summary["lost"]:
        problems.append(f"{summary['lost']} acknowledged events lost")
    return summary, problems


async def _first_of(*events: asyncio.Event, timeout_s: float) -> None:
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


def _failure(task: asyncio.Task[None]) -> str:
    if task.cancelled():
        return f"{task.get_name()} was cancelled"
    exc = task.exception()
    if exc is None:
        return f"{task.get_name()} ended early"
    log.error("%s failed", task.get_name(), exc_info=exc)
    return f"{task.get_name()} failed: {type(exc).__name__}: {exc}"


async def _stop_drivers(drivers: list[asyncio.Task[None]]) -> list[str]:
    """Let the simulators finish what they are sending; cancel one that takes too long."""
    _, late = await asyncio.wait(drivers, timeout=DRIVERS_STOP_S)
    for task in late:
        task.cancel()
    await asyncio.gather(*drivers, return_exceptions=True)
    problems = [f"{task.get_name()} did not stop in time" for task in late]
    return problems + [_failure(task) for task in drivers if task not in late
                       and not task.cancelled() and task.exception() is not None]


async def _drain(app: web.Application) -> None:
    """The final sync drain: the last print jobs closed, every arrival decided, and the
    outbox empty (bounded; what is left is reported as pending)."""
    pos = app[SETTINGS].pos
    await asyncio.sleep(pos.idle_gap_s + 0.5)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            ble = app.get(BLE)
            if ble is not None:
                await ble.settle()
            engine = app.get(SYNC)
            while engine is not None and await app[READER].run(
                    lambda c: c.execute("SELECT count(*) FROM outbox").fetchone()[0]):
                engine.nudge()
                await asyncio.sleep(POLL_S)
