"""The audit log: every write a staff or ops token asks for, as a row and a log line.

The row is committed before the reply, so a caller never sees a write the log lacks."""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime

from gateway.http.tokens import Caller
from gateway.receipts.rows import utc_text
from gateway.store import Writer

log = logging.getLogger("mallgate.audit")


async def audit(writer: Writer, caller: Caller, *, action: str, target: str, outcome: str,
                remote: str | None, at: datetime) -> None:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO audit_log (at, token_name, role, action, target, outcome, "
                     "remote) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (utc_text(at), caller.name, caller.role, action, target, outcome, remote))

    await writer.submit(op)
    log.info("audit: %s by %s (%s) on %s from %s: %s", action, caller.name, caller.role,
             target, remote or "?", outcome)
