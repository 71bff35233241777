"""Prometheus metrics: each part of the gateway registers a collector reading its counters.

Parts keep plain counters (cheap, no locks on hot paths); the collectors turn them into
metric families only when `/metrics` is scraped. A part registers with
`app[METRICS].add(families)`, where `families()` yields prometheus_client metric families.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

Families = Callable[[], Iterable[Metric]]


def counter_by(name: str, documentation: str, label: str,
               counts: Mapping[str, int]) -> CounterMetricFamily:
    """A counter family with one sample per key of `counts` (a Counter by reason, kind...),
    in key order."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, count in sorted(counts.items()):
        family.add_metric([key], count)
    return family


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
