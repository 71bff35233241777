"""`/metrics`, and the collectors of the core's own parts (store, ledger)."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway.app.keys import LEDGER, METRICS, PARTS, WRITER
from gateway.http.auth import require_ops
from gateway.metrics import Families, Metrics, counter_by
from gateway.parts import PartState


def store_families(app: web.Application) -> Families:
    def families() -> Iterator[Metric]:
        if WRITER not in app:
            return
        stats = app[WRITER].stats
        yield CounterMetricFamily("mallgate_store_batches", "Transactions committed by the "
                                  "single writer.", value=stats.batches)
        yield CounterMetricFamily("mallgate_store_batches_failed", "Batches rolled back as a "
                                  "whole.", value=stats.batches_failed)
        yield CounterMetricFamily("mallgate_store_ops", "Write operations committed.",
                                  value=stats.ops)
        yield CounterMetricFamily("mallgate_store_ops_failed", "Write operations that failed.",
                                  value=stats.ops_failed)
        yield GaugeMetricFamily("mallgate_store_queue_depth", "Writes waiting for the writer.",
                                value=stats.queue_depth)
    return families


def ledger_families(app: web.Application) -> Families:
    def families() -> Iterator[Metric]:
        if LEDGER not in app:
            return
        stats = app[LEDGER].stats
        yield counter_by("mallgate_ledger_entries_recorded", "Ledger entries recorded, by kind.",
                         "kind", stats.by_kind)
        yield CounterMetricFamily("mallgate_ledger_duplicates", "Recordings of a fact already "
                                  "in the ledger (applied once, counted here).",
                                  value=stats.duplicates)
    return families


def part_families(app: web.Application) -> Families:
    def families() -> Iterator[Metric]:
        up = GaugeMetricFamily("mallgate_part_up", "1 while the part is up: its task runs "
                               "and it can do its job; 0 while starting, degraded or down.",
                               labels=["part"])
        restarts = CounterMetricFamily("mallgate_part_restarts", "Times the part's task was "
                                       "started again after it ended.", labels=["part"])
        for status in app[PARTS].statuses():
            up.add_metric([status.name], 1.0 if status.state is PartState.UP else 0.0)
            restarts.add_metric([status.name], status.restarts)
        yield up
        yield restarts
    return families


async def metrics_view(request: web.Request) -> web.Response:
    require_ops(request)
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    metrics = Metrics()
    metrics.add(store_families(app))
    metrics.add(ledger_families(app))
    metrics.add(part_families(app))
    app[METRICS] = metrics
    app.router.add_get("/metrics", metrics_view)
