"""The sync engine's state as operators see it: queue depth, lag, last successes.

`read_status` reads only the store, so `mallgate sync status` works beside a running
gateway: the running engine stores its mode, when it took it and the last error each time
the mode changes. The engine's own status adds what only it knows (the latest error, clock
offset).
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from gateway.loyalty.versions import RULES_KIND
from gateway.loyalty.wire import to_text
from sync.apply import SNAPSHOT_STATE, get_state, load_cursor
from sync.held import Refusals, refusals
from sync.outbox import DEAD_LETTER_SOURCE
from sync.snapshot_progress import kept_progress

LAST_PUSH = "last_push_ok"
LAST_PULL = "last_pull_ok"
HEAD = "central_head"
MODE = "mode"  # {"mode", "since", "last_error"}, written at each change of mode


@dataclass(slots=True)
class SyncStatus:
    # A `sync.mode.Mode` value; None when no engine ever ran on this store.
    mode: str | None = None
    mode_since: str | None = None
    outbox_depth: int = 0
    oldest_pending_s: float | None = None
    failing_events: int = 0
    dead_letters: int = 0
    cursor: int | None = None
    central_head: int | None = None
    cursor_lag: int | None = None
    last_push_ok: str | None = None
    last_pull_ok: str | None = None
    resync_in_progress: bool = False
    # While a resync applies central's snapshot: its phase, rows applied so far, when this
    # run started and its rate, as of the last chunk committed.
    snapshot: dict[str, Any] | None = None
    # Changes from central the gateway could not apply, kept in dead letters (source
    # `sync`) until resolved, and the changes of their members waiting behind them.
    refused_changes: int = 0
    held_changes: int = 0
    first_refused: str | None = None
    # Loyalty rules versions central published: the one in force (None: the local
    # `[loyalty]` settings), since when, and those dated later.
    rules_in_force: str | None = None
    rules_since: str | None = None
    rules_upcoming: list[dict[str, str]] = field(default_factory=list)
    last_error: str | None = None
    clock_offset_ms: float | None = None
    hlc_ahead_ms: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def refusals(self) -> Refusals:
        return Refusals(self.refused_changes, self.held_changes, self.first_refused)


def read_status(conn: sqlite3.Connection, now: datetime) -> SyncStatus:
    depth, oldest = conn.execute("SELECT count(*), min(created_at) FROM outbox").fetchone()
    (failing,) = conn.execute("SELECT count(*) FROM sync_failures").fetchone()
    (dead,) = conn.execute("SELECT count(*) FROM dead_letters WHERE source = ? AND "
                           "replayed_at IS NULL", (DEAD_LETTER_SOURCE,)).fetchone()
    cursor = load_cursor(conn)
    head = get_state(conn, HEAD)
    recorded = get_state(conn, MODE) or {}
    refused = refusals(conn)
    in_force, since, upcoming = rule_versions(conn, now)
    return SyncStatus(
        mode=recorded.get("mode"), mode_since=recorded.get("since"),
        last_error=recorded.get("last_error"),
        outbox_depth=int(depth),
        oldest_pending_s=(now - datetime.fromisoformat(oldest)).total_seconds()
        if oldest else None,
        failing_events=int(failing), dead_letters=int(dead), cursor=cursor,
        central_head=head,
        cursor_lag=None if head is None else max(0, int(head) - (cursor or 0)),
        last_push_ok=get_state(conn, LAST_PUSH), last_pull_ok=get_state(conn, LAST_PULL),
        resync_in_progress=get_state(conn, SNAPSHOT_STATE) is not None,
        snapshot=dict(kept) if (kept := kept_progress(conn)) is not None else None,
        refused_changes=refused.count, held_changes=refused.held, first_refused=refused.first,
        rules_in_force=in_force, rules_since=since, rules_upcoming=upcoming,
    )


def rule_versions(conn: sqlite3.Connection,
                  now: datetime) -> tuple[str | None, str | None, list[dict[str, str]]]:
    """The stored rules version in force at `now`, its effective time, and the later
    ones (only versions the edge could parse are stored)."""
    at = to_text(now) or ""
    rows = conn.execute(
        "SELECT version, effective_at FROM config_versions WHERE kind = ? AND "
        "effective_at IS NOT NULL", (RULES_KIND,)).fetchall()
    # Compared as instants: central sends UTC text, but a time is a time whatever its text.
    dated = sorted((to_text(datetime.fromisoformat(t)) or "", str(v)) for v, t in rows)
    past = [(t, v) for t, v in dated if t <= at]
    upcoming = [{"version": v, "effective_at": t} for t, v in dated if t > at]
    return (past[-1][1], past[-1][0], upcoming) if past else (None, None, upcoming)
