"""A mall's notice deliveries as Prometheus metrics (`GET /v1/malls/{mall}/metrics`).

Behind the mall's back-office token like every other mall route (Prometheus scrapes with
`authorization: {credentials: <token>}`). The deliveries by state come from the database,
so every worker answers the same; the attempts by outcome are this worker's own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Deliveries(Collector):
    def __init__(self, states: Mapping[str, Mapping[str, int]],
                 attempts: Counter[tuple[str, str]]) -> None:
        self.states = states
        self.attempts = attempts

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "mallgate_central_webhook_deliveries", "Deliveries of member notices kept, by "
            "webhook and state (pending, delivered, dead), across all workers.",
            labels=["webhook", "state"])
        for webhook, states in sorted(self.states.items()):
            for state, count in sorted(states.items()):
                gauge.add_metric([webhook, state], count)
        yield gauge
        counter = CounterMetricFamily(
            "mallgate_central_webhook_attempts", "Delivery attempts made by this worker, "
            "by webhook and outcome (delivered, retried, dead, lost_lease).",
            labels=["webhook", "outcome"])
        for (webhook, outcome), count in sorted(self.attempts.items()):
            counter.add_metric([webhook, outcome], count)
        yield counter


def render(states: Mapping[str, Mapping[str, int]],
           attempts: Counter[tuple[str, str]]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Deliveries(states, attempts))
    return generate_latest(registry)
