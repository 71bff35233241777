"""Personal data stays out of the gateway's log: a refused kiosk message through the real
gateway app and a real mosquitto, logged by the handler `gateway.logs` configures."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.mqtt.broker import Mosquitto
from gateway.logs import configure
from gateway.settings.model import LoggingSettings
from tests.kiosk.helpers import kiosk, kiosk_settings, running_gateway


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("log_format", ["console", "json"])
async def test_a_refused_spaced_phone_number_is_logged_masked(
        broker: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        root_logging: None, log_format: str) -> None:
    configure(LoggingSettings(format=log_format))  # type: ignore[arg-type]
    settings = kiosk_settings(tmp_path, broker.port)
    async with running_gateway(settings), kiosk(broker.port) as k1:
        refused = await k1.request("member.identify", {"by": "phone", "value": "138 0013 8000"})
        card = await k1.request("member.identify", {"by": "card", "value": "6222 0212 3456 7890"})
    assert refused["error"]["code"] == card["error"]["code"] == "invalid_payload"
    logged = capsys.readouterr().err
    refusals = [line for line in logged.splitlines() if "kiosk message on" in line]
    assert len(refusals) == 2, logged
    for secret in ("0013", "0212 3456"):
        assert secret not in logged
    if log_format == "json":
        assert all(json.loads(line)["level"] == "WARNING" for line in refusals)
    with sqlite3.connect(tmp_path / "gw.db") as db:
        kept = b"".join(row[0] + row[1].encode() for row in db.execute(
            "SELECT raw, error FROM dead_letters"))
    assert b"0013" not in kept and b"0212 3456" not in kept


async def test_a_refused_one_time_code_or_session_is_kept_masked(
        broker: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        root_logging: None) -> None:
    """A texted code and a session are secrets: a refused message that carries them is
    logged and kept with them masked whole."""
    configure(LoggingSettings(format="console"))
    settings = kiosk_settings(tmp_path, broker.port)
    session = "s2.k1.m-demo-0001.card.1893456000." + "Q" * 43
    async with running_gateway(settings), kiosk(broker.port) as k1:
        enrol = await k1.request("member.enroll", {
            "phone": "13800138000", "code": "493817", "unexpected": 1,
            "consent": {"policy_version": "2026-01", "accepted": True}})
        checkin = await k1.request("checkin", {"session": session, "unexpected": 1})
    assert enrol["error"]["code"] == checkin["error"]["code"] == "invalid_payload"
    logged = capsys.readouterr().err
    with sqlite3.connect(tmp_path / "gw.db") as db:
        kept = b"".join(row[0] + row[1].encode() for row in db.execute(
            "SELECT raw, error FROM dead_letters"))
    for secret in ("493817", "Q" * 43):
        assert secret not in logged
        assert secret.encode() not in kept
    assert b"******" in kept  # the code's place, masked whole
