"""Prometheus families of the POS ports and the receipt pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway.metrics import counter_by

if TYPE_CHECKING:
    from devices.pos.service import PosService

_LABELS = ["path", "store", "pos", "mode"]


def pos_families(service: PosService) -> Iterator[Metric]:
    up = GaugeMetricFamily("mallgate_pos_port_up", "1 while the POS port is open.",
                           labels=_LABELS)
    counters = {
        name: CounterMetricFamily(f"mallgate_pos_{name}", text, labels=_LABELS)
        for name, text in (("bytes", "Bytes read from the port."),
                           ("receipts", "Print jobs or messages committed."),
                           ("errors", "Rejected frames or lines, and dead-lettered receipts."),
                           ("outages", "Times the port went down."))
    }
    for supervisor in service.supervisors:
        state = supervisor.state
        labels = [state.path, state.store_id, state.pos_id, state.mode]
        up.add_metric(labels, 1 if state.up else 0)
        for name, value in (("bytes", state.bytes_in), ("receipts", state.receipts),
                            ("errors", state.errors), ("outages", state.outages)):
            counters[name].add_metric(labels, value)
    yield up
    yield from counters.values()
    stats = service.pipeline.stats
    yield counter_by("mallgate_pos_captures", "POS captures processed, by outcome (sale, "
                     "refund, copy, non_sale, duplicate, dead, refused).", "outcome",
                     stats.by_status)
    yield counter_by("mallgate_pos_dead_letters", "POS captures dead-lettered, by error code.",
                     "code", stats.dead_by_code)
    review = CounterMetricFamily(
        "mallgate_pos_points_review", "Points printed as used on receipts beyond the member's "
        "points or offline allowance: not applied, kept for review (needs_review).")
    review.add_metric([], stats.flagged_points)
    yield review
    unknown = CounterMetricFamily(
        "mallgate_pos_lines_unknown_category", "Sale lines naming a category the loyalty "
        "rules do not list ([loyalty.earn] category_multiplier_pct): earned at the base rate.")
    unknown.add_metric([], stats.unknown_category_lines)
    yield unknown
    yield counter_by("mallgate_pos_refunds", "POS refunds by how their original sale was found: "
                     "linked (on any till of the store), held (not found: kept for review as "
                     "refund_unmatched), applied_late (held, then applied when the sale "
                     "arrived).", "result", stats.refunds)
    if service.holds is not None:
        h = service.holds.stats
        yield counter_by("mallgate_pos_holds", "Till authorizations and voids, by result.",
                         "result", {"granted": h.granted, "refused": h.refused,
                                    "voided": h.voided, "retry": h.retries})
        held = CounterMetricFamily("mallgate_pos_coupons_held",
                                   "Coupons granted till holds took off their baskets.")
        held.add_metric([], h.coupons_held)
        yield held
        yield counter_by("mallgate_pos_coupon_refusals", "Till authorizations refused for a "
                         "coupon, by code (coupon_code_mistyped, coupon_unknown, expired, "
                         "already_held, ...).", "code", dict(h.coupon_refusals))
