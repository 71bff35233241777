"""Scenario tests run the whole mall: a real mosquitto per test, and central on every
storage backend (PostgreSQL from the machine's binaries, skipped without them)."""

from __future__ import annotations

from tests.cloud_api.fixtures import database, postgres_server
from tests.kiosk.conftest import broker

__all__ = ["broker", "database", "postgres_server"]
