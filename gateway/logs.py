"""Logging: readable lines in a terminal, one JSON object per line for a collector."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.logfilter import PersonalDataFilter
from gateway.settings.model import LoggingSettings

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
LOG_FORMATS = ("console", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class JsonFormatter(logging.Formatter):
    """Fields passed with `extra=` become keys of the object."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:  # exc_text: the masked text the filter made
            payload["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


class RepeatLimit(logging.Filter):
    """Lets the first `burst` records of one message (logger, level, format) through per
    `window_s`, and drops the rest, counting them: the first record let through after that
    says how many were dropped. A failure that repeats in a tight loop (every accept of a
    flooded socket failing) then costs a few lines a minute instead of megabytes a second.
    """

    def __init__(self, burst: int = 10, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst, self.window_s, self._clock = burst, window_s, clock
        # key -> (window start, records let through in it, records dropped since reported)
        self._seen: dict[tuple[str, int, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        start, passed, dropped = self._seen.get(key, (now, 0, 0))
        if now - start >= self.window_s:
            start, passed = now, 0
        if passed >= self.burst:
            self._seen[key] = (start, passed, dropped + 1)
            return False
        if dropped:
            record.msg = f"{record.msg} [{dropped} more like this dropped]"
        if len(self._seen) > 10_000:  # many distinct messages: forget, do not grow
            self._seen.clear()
        self._seen[key] = (start, passed + 1, 0)
        return True


def configure(settings: LoggingSettings) -> None:
    """The gateway's log, as its `[logging]` settings say."""
    configure_logging(settings.level, settings.format)


def configure_logging(level: str, log_format: str) -> None:
    """One handler on stderr for the whole process: `json` (one object per line, for a
    collector) or `console` (readable lines), repeats limited, personal data masked.

    `mallgate run` sets it up from `[logging]`, `mallgate central serve` from its options
    (handed over by gateway/app/central.py): the same lines from both, masked the same."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatLimit())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(PersonalDataFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
