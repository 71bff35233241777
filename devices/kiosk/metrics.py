"""The kiosk link's counters as Prometheus metric families (read only when scraped)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from devices.kiosk.service import KioskService
from gateway.metrics import counter_by


def kiosk_families(service: KioskService) -> Iterator[Metric]:
    stats, link = service.stats, service.link.stats
    yield GaugeMetricFamily("mallgate_kiosk_broker_connected",
                            "1 while the gateway is connected to the MQTT broker.",
                            value=1 if service.link.connected.is_set() else 0)
    yield CounterMetricFamily("mallgate_kiosk_broker_connects",
                              "Successful connections to the broker.", value=link.connects)
    yield CounterMetricFamily("mallgate_kiosk_broker_disconnects",
                              "Connections to the broker lost.", value=link.disconnects)
    yield CounterMetricFamily("mallgate_kiosk_requests", "Kiosk requests received.",
                              value=stats.requests)
    yield CounterMetricFamily("mallgate_kiosk_retries",
                              "Requests answered from their stored reply (a retried id).",
                              value=stats.retries)
    yield counter_by("mallgate_kiosk_rejected", "Requests answered with an error, by error code.",
                     "code", stats.rejected)
    yield CounterMetricFamily("mallgate_kiosk_dead_letters",
                              "Kiosk messages kept in dead letters (invalid input).",
                              value=stats.dead_letters)
    yield CounterMetricFamily("mallgate_kiosk_dead_letters_dropped",
                              "Invalid kiosk messages over the kiosk's dead-letter limit: "
                              "answered and counted, not kept.",
                              value=stats.dead_letters_dropped)
    yield CounterMetricFamily("mallgate_kiosk_events", "Kiosk events received.",
                              value=stats.events)
    yield CounterMetricFamily("mallgate_kiosk_events_dropped",
                              "Kiosk events over the kiosk's event rate limit (dropped).",
                              value=stats.events_dropped)
    online = GaugeMetricFamily("mallgate_kiosk_online",
                               "1 if the kiosk's retained status says online.",
                               labels=["kiosk"])
    for kid, state in sorted(service.kiosks.items()):
        online.add_metric([kid], 1 if state.online else 0)
    yield online
