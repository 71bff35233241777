"""Per-kiosk rate limits: the MQTT layer's token buckets, keyed by kiosk id."""

from __future__ import annotations

from devices.mqtt.limits import RateLimiter

__all__ = ["RateLimiter"]
