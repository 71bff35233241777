"""The outbox side of sync: choosing the next batch and settling central's verdicts.

Batches follow the outbox order. An event central did not settle (no verdict, or a
transient one) is retried, and later events of its account wait behind it, so an
account's entries reach central in order while other accounts go on. Both functions run
inside one store transaction each.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from cloud_api.client import Verdict, event_json
from gateway.deadletters import keep

DEAD_LETTER_SOURCE = "sync.push"


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    seq: int
    event_id: str
    event_type: str
    account_id: str | None
    payload: str
    body: str  # as sent: the event's JSON within the batch

    @property
    def size(self) -> int:
        return len(self.body.encode())


def next_batch(conn: sqlite3.Connection, *, max_events: int, max_bytes: int,
               exclude: Collection[int] = ()) -> list[OutboxEvent]:
    """The next events to push, in outbox order, at most `max_events` and `max_bytes`
    (always at least one, so a single large event still gets its verdict or its 413).

    `exclude` holds the seqs of a batch sent whose verdicts may not be settled yet: its
    events may still be in the outbox, and are not sent twice."""
    batch: list[OutboxEvent] = []
    size = 0
    # Later events of an account with a failing event wait behind it while it is retried;
    # everything else goes in outbox order.
    for seq, event_id, event_type, account_id, payload in conn.execute(
        "SELECT seq, event_id, event_type, account_id, payload FROM outbox "
        "WHERE account_id IS NULL "
        "OR account_id NOT IN (SELECT account_id FROM sync_failures "
        "                      WHERE account_id IS NOT NULL) "
        "OR event_id IN (SELECT event_id FROM sync_failures) "
        "ORDER BY seq LIMIT ?", (max_events + len(exclude),),
    ):
        if seq in exclude:
            continue
        event = OutboxEvent(seq, event_id, event_type, account_id, payload,
                            event_json(event_id, event_type, payload))
        if batch and (len(batch) >= max_events or size + event.size > max_bytes):
            break
        batch.append(event)
        size += event.size
    return batch


# Verdicts that settle an event for good; any other answer (or none) leaves it failing.
FINAL = frozenset({"accepted", "duplicate", "rejected"})


def all_final(batch: Sequence[OutboxEvent], verdicts: Sequence[Verdict]) -> bool:
    """Whether central settled every event of the batch for good (see `settle`)."""
    statuses = {v.event_id: v.status for v in verdicts}
    return all(statuses.get(event.event_id) in FINAL for event in batch)


@dataclass(frozen=True, slots=True)
class Settled:
    acknowledged: int = 0
    duplicates: int = 0
    rejected: int = 0
    unsettled: int = 0


def settle(conn: sqlite3.Connection, batch: Sequence[OutboxEvent],
           verdicts: Sequence[Verdict], at: str) -> Settled:
    """Apply central's verdicts: acknowledged and duplicate events leave the outbox and
    their entries are marked acknowledged; rejected ones move to dead letters; the rest
    stay, counted as failing."""
    by_id = {v.event_id: v for v in verdicts}
    acked: list[tuple[int | None, str, str]] = []
    done: list[tuple[int]] = []
    failing: list[tuple[str, str | None, str, str]] = []
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for event in batch:
        verdict = by_id.get(event.event_id)
        status = verdict.status if verdict else None
        if verdict is not None and status in {"accepted", "duplicate"}:
            acked.append((verdict.server_seq, at, event.event_id))
            done.append((event.seq,))
            counts[verdict.status] += 1
        elif verdict is not None and status == "rejected":
            dead_letter(conn, event, verdict.code or "rejected", verdict.message or "", at)
            counts["rejected"] += 1
        else:
            failing.append((event.event_id, event.account_id,
                            f"no final verdict ({status or 'missing'})", at))
    acked.sort(key=lambda row: row[2])  # by entry_id: the key indexes are walked forwards
    conn.executemany(
        "INSERT INTO ledger_sync (entry_id, server_seq, acked_at) "
        "SELECT entry_id, ?, ? FROM ledger WHERE entry_id = ? "
        "ON CONFLICT (entry_id) DO UPDATE SET server_seq = excluded.server_seq "
        "WHERE ledger_sync.server_seq IS NULL", acked)
    conn.executemany("DELETE FROM outbox WHERE seq = ?", done)
    if conn.execute("SELECT 1 FROM sync_failures LIMIT 1").fetchone():
        conn.executemany("DELETE FROM sync_failures WHERE event_id = ?",
                         [(event_id,) for _, _, event_id in acked])
    conn.executemany(
        "INSERT INTO sync_failures VALUES (?, ?, 1, ?, ?) ON CONFLICT DO UPDATE SET "
        "attempts = attempts + 1, last_error = excluded.last_error, "
        "last_at = excluded.last_at", failing)
    return Settled(counts["accepted"], counts["duplicate"], counts["rejected"], len(failing))


def dead_letter(conn: sqlite3.Connection, event: OutboxEvent, code: str, message: str,
                at: str) -> None:
    """Keep a refused event raw with why, out of the queue, replayable after a fix."""
    keep(conn, source=DEAD_LETTER_SOURCE, raw=event.payload, code=code, error=message,
         context={"event_id": event.event_id, "event_type": event.event_type,
                  "outbox_seq": event.seq}, at=at)
    conn.execute("DELETE FROM outbox WHERE seq = ?", (event.seq,))
    conn.execute("DELETE FROM sync_failures WHERE event_id = ?", (event.event_id,))
