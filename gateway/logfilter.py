"""A logging filter that masks personal data in every record, whoever logged it.

DESIGN.md section 8: logs have personal data masked. Callers format what they refuse or
fail on (a kiosk's refused message quotes the value that broke the contract, an exception
may carry a receipt line), so the mask is applied where every record passes: on the
handlers `gateway.logs` installs. The rules are the core's, `gateway.redaction.redact`:
mobile and card numbers, and quoted values of personal keys.

The record is changed in place (message formatted and masked, arguments dropped, the
exception and stack texts masked, string `extra` fields masked), so every handler and
formatter after this one sees only the masked record.
"""

from __future__ import annotations

import logging
import traceback

from gateway.redaction import redact

# Attributes every record has; anything else was passed with `extra=` and may be logged
# (the JSON format writes it out).
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class PersonalDataFilter(logging.Filter):
    """Masks mobile numbers, card numbers and personal keyed values; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit: keep what was written
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        return True
