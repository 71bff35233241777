"""How far a resync from central's snapshot is: rows applied, phase, rate.

A snapshot of a large mall takes minutes. The engine keeps one `SnapshotProgress` while
it applies one, logs it every few seconds (`gateway.progress.Throttle`), answers it in
its status and the sync part's health, and stores it with each chunk (in `sync_state`,
under `SNAPSHOT_PROGRESS`) so `mallgate sync status`, which reads only the store, shows
it beside a running gateway. It is cleared in the transaction that ends the snapshot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from gateway.loyalty.wire import to_text
from sync.apply import SNAPSHOT_STATE, get_state, set_state

SNAPSHOT_PROGRESS = "snapshot_progress"  # {"phase", "rows_applied", "started_at", ...}
# Header and end lines are not rows.
ROW_TYPES = frozenset({"member", "ledger", "coupon_campaign", "coupon"})


def rows_in(lines: Iterable[Mapping[str, Any]]) -> int:
    """The member, ledger, campaign and coupon lines among `lines`."""
    return sum(1 for line in lines if line.get("type") in ROW_TYPES)


@dataclass(slots=True)
class SnapshotProgress:
    started_at: datetime  # when this run of the resync started (a resumed one included)
    updated_at: datetime
    phase: str = "member"  # the phase being applied: member, ledger, coupon_campaign, coupon
    rows_applied: int = 0  # rows of this snapshot applied, by earlier interrupted runs too
    rows_before: int = 0  # of those, the ones applied before this run started

    @classmethod
    def begin(cls, now: datetime, kept: Mapping[str, Any] | None) -> SnapshotProgress:
        """A run starting at `now`; `kept` is the stored progress of the interrupted run it
        resumes, or None for a fresh snapshot."""
        rows = int(kept.get("rows_applied", 0)) if kept else 0
        phase = str(kept.get("phase", "member")) if kept else "member"
        return cls(started_at=now, updated_at=now, phase=phase, rows_applied=rows,
                   rows_before=rows)

    def rate_per_s(self) -> float | None:
        """Rows per second in this run; None before a chunk had time to commit."""
        elapsed = (self.updated_at - self.started_at).total_seconds()
        return (self.rows_applied - self.rows_before) / elapsed if elapsed > 0 else None

    def as_json(self) -> dict[str, Any]:
        rate = self.rate_per_s()
        return {"phase": self.phase, "rows_applied": self.rows_applied,
                "started_at": to_text(self.started_at), "updated_at": to_text(self.updated_at),
                "rate_per_s": None if rate is None else round(rate, 1)}

    def describe(self) -> str:
        rate = self.rate_per_s()
        pace = f", {rate:.0f} rows/s" if rate is not None else ""
        return f"{self.phase} phase, {self.rows_applied} rows applied{pace}"


def store_progress(conn: sqlite3.Connection, progress: SnapshotProgress, rows: int,
                   now: datetime, at: str) -> SnapshotProgress:
    """The progress after the chunk being committed on `conn`: `rows` more applied, in
    the phase the chunk left the snapshot in. It is kept with the chunk, or cleared when
    the chunk ended the snapshot. The caller takes the result only once the chunk has
    committed, so a chunk rolled back counts nothing."""
    state = get_state(conn, SNAPSHOT_STATE)
    after = replace(progress, rows_applied=progress.rows_applied + rows, updated_at=now,
                    phase=str(state.get("phase", progress.phase)) if state else "done")
    if state is None:
        conn.execute("DELETE FROM sync_state WHERE name = ?", (SNAPSHOT_PROGRESS,))
    else:
        set_state(conn, SNAPSHOT_PROGRESS, after.as_json(), at)
    return after


def kept_progress(conn: sqlite3.Connection) -> Mapping[str, Any] | None:
    """The progress stored by the last chunk of a snapshot still being applied."""
    if get_state(conn, SNAPSHOT_STATE) is None:
        return None
    kept = get_state(conn, SNAPSHOT_PROGRESS)
    return kept if isinstance(kept, Mapping) else None
