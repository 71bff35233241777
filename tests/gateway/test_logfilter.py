"""The log filter: phone- and card-shaped values masked in every part of a record."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from gateway.logfilter import PersonalDataFilter
from gateway.logs import JsonFormatter, configure
from gateway.settings.model import LoggingSettings

PHONE = "138 0013 8000"
CARD = "6222021234567890"


def fail(error: Exception) -> None:
    raise error


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(PersonalDataFilter())
    logger = logging.getLogger("test.logfilter")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def test_message_args_and_exception_text_are_masked(
        captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.warning("refused %s with card %s", PHONE, CARD)
    logger.info(f"member said {CARD}")  # what a careless caller writes
    try:
        fail(ValueError(f"bad value {PHONE!r} for {{'card': 'VIP-1234-77'}}"))
    except ValueError:
        logger.exception("failed on %r", {"phone": "13912345678"})
    out = stream.getvalue()
    for secret in ("0013", "02123456", "VIP-1234", "13912345678", "1234 5678"):
        assert secret not in out
    assert "138 **** 8000" in out and "************7890" in out
    assert "Traceback" in out and "ValueError" in out


def test_extra_fields_and_the_json_format_are_masked_too() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PersonalDataFilter())
    record = logging.makeLogRecord({"msg": "kiosk %s", "args": (PHONE,), "levelno": 30,
                                    "levelname": "WARNING", "phone_seen": "13800138000"})
    try:
        fail(RuntimeError(CARD))
    except RuntimeError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    handler.handle(record)
    line = json.loads(stream.getvalue())
    assert line["msg"] == "kiosk 138 **** 8000"
    assert line["phone_seen"] == "138****8000"
    assert CARD not in line["exc"] and "RuntimeError" in line["exc"]


def test_configure_installs_the_filter_on_its_handler() -> None:
    root = logging.getLogger()
    before = root.handlers[:], root.level
    try:
        configure(LoggingSettings())
        assert all(any(isinstance(f, PersonalDataFilter) for f in h.filters)
                   for h in root.handlers)
    finally:
        root.handlers[:], level = before
        root.setLevel(level)


def test_a_command_without_logging_of_its_own_still_masks_its_warnings() -> None:
    """A command that sets up no handler (`sync now`, `deadletters replay`) warns through
    Python's last-resort handler: the `mallgate` group gives it the same filter."""
    script = """
import logging, click
from gateway.cli import main

@main.command("leak")
def leak() -> None:
    logging.getLogger("gateway.test").warning("member 13800138000 not found")

main(["leak"])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "138****8000" in done.stderr
    assert "13800138000" not in done.stderr
