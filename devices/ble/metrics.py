"""BLE proximity as Prometheus metric families (read only when scraped)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from devices.ble.service import BleService
from gateway.metrics import counter_by


def ble_families(service: BleService) -> Iterator[Metric]:
    stats = service.stats
    yield counter_by("mallgate_ble_adverts", "Advertisements heard, by zone.", "zone",
                     stats.adverts)
    yield counter_by("mallgate_ble_frames_rejected",
                     "Advertisements that are no beacon frame the gateway reads, by reason.",
                     "reason", service.pipeline.parse_stats.rejected)
    identify = service.pipeline.identifier.stats
    yield counter_by("mallgate_ble_sightings_matched",
                     "Beacon frames attributed to a member, by how.", "via", identify.matched)
    yield CounterMetricFamily("mallgate_ble_sightings_unknown",
                              "Beacon frames that name no member here.",
                              value=identify.unknown)
    yield CounterMetricFamily("mallgate_ble_arrivals", "Members arriving in a zone.",
                              value=stats.arrivals)
    yield counter_by("mallgate_ble_exits", "Members leaving a zone, by reason.", "reason",
                     stats.exits)
    yield GaugeMetricFamily("mallgate_ble_present", "(member, zone) pairs inside now.",
                            value=len(service.pipeline.tracker.present()))
    keys = service.keyring.stats
    yield GaugeMetricFamily("mallgate_ble_keys", "Members with a rotating (EID) key loaded.",
                            value=keys.eid_members)
    yield GaugeMetricFamily("mallgate_ble_static_ids",
                            "Members with a static (trackable) beacon id.",
                            value=keys.static_ids)
    yield CounterMetricFamily("mallgate_ble_keys_invalid",
                              "Beacon keys from sync that do not parse (skipped).",
                              value=keys.invalid)
    yield from _welcome(service)
    yield from _receivers(service)


def _welcome(service: BleService) -> Iterator[Metric]:
    welcome = service.welcome
    if welcome is not None:
        yield CounterMetricFamily("mallgate_welcome_shown", "Welcome offers shown.",
                                  value=welcome.stats.shown)
        yield counter_by("mallgate_welcome_skipped", "Arrivals without an offer, by reason.",
                         "reason", welcome.stats.skipped)
        yield GaugeMetricFamily("mallgate_welcome_offers_invalid",
                                "Offers from central this gateway cannot read (skipped).",
                                value=welcome.stats.invalid_offers)
    latencies = service.stats.show_latencies
    yield SummaryMetricFamily(
        "mallgate_welcome_show_latency_seconds",
        "Arrival detected to cmd/offer.show handed to the broker link (last 1000).",
        count_value=len(latencies), sum_value=sum(latencies))


def _receivers(service: BleService) -> Iterator[Metric]:
    online = GaugeMetricFamily("mallgate_ble_receiver_online",
                               "1 if the remote receiver's retained status says online.",
                               labels=["receiver", "zone"])
    adverts = CounterMetricFamily("mallgate_ble_receiver_adverts",
                                  "Advertisements forwarded by the remote receiver.",
                                  labels=["receiver", "zone"])
    rejected = CounterMetricFamily("mallgate_ble_receiver_rejected",
                                   "Receiver messages refused (bad payload).",
                                   labels=["receiver", "zone"])
    dropped = CounterMetricFamily("mallgate_ble_receiver_dropped",
                                  "Receiver batches sampled out: over the receiver's rate "
                                  "limit or backlog, or retained.",
                                  labels=["receiver", "zone"])
    for rid, state in sorted(service.receivers.items()):
        online.add_metric([rid, state.zone], 1 if state.online else 0)
        adverts.add_metric([rid, state.zone], state.adverts)
        rejected.add_metric([rid, state.zone], state.rejected)
        dropped.add_metric([rid, state.zone], state.dropped)
    yield online
    yield adverts
    yield rejected
    yield dropped
    scanning = GaugeMetricFamily("mallgate_ble_scanner_up",
                                 "1 while the local adapter's scanner is scanning.",
                                 labels=["adapter", "zone"])
    for scanner in service.scanners:
        health = scanner.health
        scanning.add_metric([health.adapter, health.zone], 1 if health.state == "scanning" else 0)
    yield scanning
