"""Typed keys of the aiohttp application: how handlers reach the core's parts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from gateway.ledger import Ledger
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store import Reader, Writer

SETTINGS = web.AppKey("settings", Settings)
NOW: web.AppKey[Callable[[], datetime]] = web.AppKey("now")
WRITER = web.AppKey("writer", Writer)
READER = web.AppKey("reader", Reader)
LEDGER = web.AppKey("ledger", Ledger)
METRICS = web.AppKey("metrics", Metrics)
