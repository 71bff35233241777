"""`mallgate sim pos`: a POS terminal printing receipts on a serial port."""

from __future__ import annotations

import asyncio
import json
import statistics
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import click

from devices.pos import sim
from gateway.demo import demo_ids
from gateway.progress import progress_option


def _progress(count: int) -> Callable[[sim.SimReport], None]:
    def show(report: sim.SimReport) -> None:
        click.echo(f"sim pos: sent {report.sent}/{count}, acked {report.acked}, "
                   f"naks {report.naks}, resends {report.resends}", err=True)
    return show


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
              help="Receipts carry the cards of demo members 1..N (DEMO0001..., as "
              "`mallgate demo` and config/demo.toml create them); sales without one stay "
              "unclaimed.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--baudrate", type=int, default=9600, show_default=True)
@click.option("--timezone", "tz_name", default="Asia/Shanghai", show_default=True,
              help="Time zone of the POS clock (the mall's).")
@click.option("--authorize", is_flag=True,
              help="framed/jsonl: the till authorizes points before paying with them (some "
              "refused for lack of points), and now and then voids or abandons a hold.")
@click.option("--coupon", "coupons", multiple=True, metavar="MEMBER_CODE=COUPON_CODE",
              help="With --authorize: a coupon of a member (by the code on their receipts) "
              "that their till takes off their next sale; repeat for more.")
@progress_option
def sim_pos(*, path: str, mode: str, rate: float, count: int, store_id: str, pos_id: str,
            members: int, seed: int, baudrate: int, tz_name: str, authorize: bool,
            coupons: tuple[str, ...], progress_every: float) -> None:
    """A POS terminal printing realistic Chinese receipts (GB18030) on PORT."""
    # POS clocks print local wall time; receipts are dated up to now.
    now = datetime.now(ZoneInfo(tz_name)).replace(tzinfo=None, microsecond=0)
    start = now - timedelta(seconds=count)
    by_member: dict[str, list[str]] = {}
    for given in coupons:
        member, sep, code = given.partition("=")
        if not sep or not member or not code:
            raise click.BadParameter(f"{given!r}: give MEMBER_CODE=COUPON_CODE",
                                     param_hint="--coupon")
        by_member.setdefault(member, []).append(code)
    receipts = sim.scenario(count, seed=seed, start=start,
                            members=[demo_ids(n)[2] for n in range(1, members + 1)],
                            store_id=store_id, pos_id=pos_id)
    report = asyncio.run(sim.run(path, cast(sim.Mode, mode), receipts, rate=rate,
                                 baudrate=baudrate, seed=seed, store_id=store_id,
                                 pos_id=pos_id, authorize=authorize,
                                 progress=_progress(count), progress_every=progress_every,
                                 coupons=by_member))
    kinds = Counter(r.kind for r in receipts)
    summary = {"sent": report.sent, "acked": report.acked, "naks": report.naks,
               "resends": report.resends, "noise_bytes": report.noise_bytes,
               "kinds": dict(sorted(kinds.items()))}
    if authorize or report.holds.sales_refused:
        summary["holds"] = report.holds.as_dict()
    if by_member:
        summary["coupons"] = report.coupons.as_dict()
    click.echo(json.dumps(summary, ensure_ascii=False))
    if report.latencies:
        lat = sorted(report.latencies)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        click.echo(f"receipt->ACK latency: p50 {statistics.median(lat) * 1000:.1f} ms, "
                   f"p99 {p99 * 1000:.1f} ms")
