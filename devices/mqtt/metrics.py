"""The shared MQTT router's counters as Prometheus metric families (read when scraped)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from devices.mqtt.router import Router


def router_families(router: Router) -> Iterator[Metric]:
    stats = router.stats
    yield CounterMetricFamily("mallgate_mqtt_unclaimed",
                              "MQTT messages no part's topic filter matched.",
                              value=stats.unclaimed)
    yield CounterMetricFamily("mallgate_mqtt_failed",
                              "MQTT messages whose handler failed (left unacknowledged).",
                              value=stats.failed)
    dropped = CounterMetricFamily(
        "mallgate_mqtt_dropped",
        "MQTT messages dropped unhandled, by part and reason: retained (a request, event "
        "or batch published with the retain flag) or backlog (a sender's lane was full).",
        labels=["owner", "reason"])
    for (owner, reason), count in sorted(stats.dropped.items()):
        dropped.add_metric([owner, reason], count)
    yield dropped
