"""Prometheus metrics: each part of the gateway registers a collector reading its counters.

Parts keep plain counters (cheap, no locks on hot paths); the collectors turn them into
metric families only when `/metrics` is scraped. A part registers with
`app[METRICS].add(families)`, where `families()` yields prometheus_client metric families.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

Families = Callable[[], Iterable[Metric]]


class _FunctionCollector(Collector):
    def __init__(self, families: Families) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families()


class Metrics:
    """One registry per application, so tests and two apps in a process never mix."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)

    def add(self, families: Families) -> None:
        self.registry.register(_FunctionCollector(families))

    def render(self) -> bytes:
        return generate_latest(self.registry)
