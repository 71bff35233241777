"""The sync engine: pushes the outbox up, pulls the change feed down, keeps going.

Three loops run side by side: the pusher (outbox → `events:batch`, verdicts settled in one
transaction), the puller (long-poll `changes`, each page applied with its cursor in one
transaction; a 410 switches it to a snapshot resync while the pusher carries on) and the
heartbeat. Each loop retries failures with full-jitter backoff; nothing is lost across a
crash because every step is durable before the next one and idempotent when repeated.

The loops report central's answers and failures to the mode (`sync.mode`); a fourth loop
looks at the evidence every second, so a silent central turns the stored mode offline
even when no request failed. `online` never waits for that look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from cloud_api.client import CentralClient, Verdict
from cloud_api.errors import (
    CentralAuthError,
    CentralError,
    CentralUnavailable,
    CursorExpired,
    PayloadTooLarge,
)
from gateway.backoff import Backoff
from gateway.clock import utc_now
from gateway.loyalty import Plausibility
from gateway.loyalty.hlc import HybridClock
from gateway.loyalty.limits import DEFAULT_LIMITS
from gateway.loyalty.wire import to_text
from gateway.progress import Throttle
from gateway.settings.sync import SyncSettings
from gateway.store import Reader, StoreError, Writer
from sync.apply import (
    SNAPSHOT_STATE,
    Applied,
    apply_changes,
    apply_snapshot_lines,
    get_state,
    load_cursor,
    resumable,
    set_state,
)
from sync.held import Refusals, refusals
from sync.mode import Direction, Mode, SyncMode, describe
from sync.outbox import OutboxEvent, Settled, all_final, dead_letter, next_batch, settle
from sync.snapshot_progress import SnapshotProgress, kept_progress, rows_in, store_progress
from sync.state import HEAD, LAST_PULL, LAST_PUSH, MODE, SyncStatus, read_status

log = logging.getLogger(__name__)

# Snapshot lines applied per transaction. Each chunk costs a commit (an fsync) and a range
# read; at 2,000 a million members took 38.7-41 s, at 5,000 32.5-33.7 s, for about 15 MB
# more peak memory (the chunk being applied and the one being parsed). Since member views
# carry their phone's masked form and tier facts and each line is checked, 5,000 peaked
# at 154 MB (over the 150 MB bound); 4,000 takes 36.4 s at 147.5 MB.
SNAPSHOT_CHUNK = 4000
# Seconds between two log lines on a snapshot's progress: a person following the log sees
# it move, and a million-member snapshot (a few hundred chunks) writes a few dozen lines.
SNAPSHOT_LOG_S = 5.0
MIN_BATCH_BYTES = 4096
# How often the engine compares the evidence with the clock, in seconds: a silent central
# is logged and stored as offline within this of the bound (`online` itself is exact).
WATCH_S = 1.0


class SyncEngine:
    def __init__(
        self, client: CentralClient, writer: Writer, reader: Reader, *, gateway_id: str,
        settings: SyncSettings, clock: HybridClock, now: Callable[[], datetime] = utc_now,
        rand: Callable[[float, float], float] = random.uniform,
        limits: Plausibility = DEFAULT_LIMITS,
        on_documents: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """`on_documents`: awaited after a page that stored configuration versions or
        offers (the gateway rebuilds its rule book from the store)."""
        self.client = client
        self.on_documents = on_documents
        self.writer = writer
        self.reader = reader
        self.gateway_id = gateway_id
        self.settings = settings
        self.clock = clock
        self.now = now
        self.limits = limits
        # Refused changes from central not yet resolved, as of the last page applied (or
        # status read): the sync part's health check reads it without touching the store.
        self.refusals = Refusals()
        # While a resync applies central's snapshot: how far it is (None otherwise).
        self.snapshot: SnapshotProgress | None = None
        self._snapshot_log: Throttle | None = None
        self.state = SyncMode(settings.online_fresh_s)
        self.counters: dict[str, int] = {"pushed": 0, "duplicates": 0, "rejected": 0,
                                         "unsettled": 0, "pulled": 0, "resyncs": 0,
                                         "refused_changes": 0}
        self._max_events = settings.batch_max_events
        self._max_bytes = settings.batch_max_bytes
        self._push_backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s, rand)
        self._pull_backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s, rand)
        self._beat_backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s, rand)
        self._wake_pusher = asyncio.Event()

    def _at(self) -> str:
        return to_text(self.now()) or ""

    @property
    def mode(self) -> Mode:
        return self.state.mode

    @property
    def last_error(self) -> str | None:
        return self.state.last_error

    @property
    def online(self) -> bool:
        """Central answered a push (or heartbeat) and a pull within `online_fresh_s`:
        online redemptions may go ahead. Read at `now()`, so it turns false the moment the
        evidence is too old, whatever the loops are doing. Other parts read it through the
        core's `CentralStatus` (app[CENTRAL])."""
        return self.state.online(self.now())

    # -- the mode -----------------------------------------------------------------------
    async def _enter(self, mode: Mode, error: str | None = None) -> None:
        """The one way the mode changes: checked against `sync.mode.TRANSITIONS` (raises
        `IllegalTransition`), logged once, and stored with its time and the last error so
        `mallgate sync status` shows it. Nothing is written when the mode stays."""
        change = self.state.move(mode, self.now(), error)
        if change is None:
            return
        level, message = describe(change, self.state.last_error)
        log.log(level, message)
        at = to_text(change.at) or ""
        record = {"mode": change.new.value, "since": at, "last_error": self.state.last_error}
        await self.writer.submit(lambda c: set_state(c, MODE, record, at))

    async def _answered(self, direction: Direction) -> None:
        """Central answered in `direction`; online again if that was the missing piece."""
        now = self.now()
        self.state.answered(direction, now)
        if self.state.mode is not Mode.ONLINE:
            await self._review(now)

    async def _review(self, now: datetime | None = None, *, resynced: bool = False) -> None:
        due = self.state.due(now or self.now(), resynced=resynced)
        if due is not None:
            await self._enter(*due)

    def nudge(self) -> None:
        """New outbox rows: push now rather than at the next interval."""
        self._wake_pusher.set()

    # -- one step each ------------------------------------------------------------------
    async def push_once(self) -> int:
        """Send the next batch and settle its verdicts; returns how many events were sent
        (0: the outbox is empty). A 413 halves the batch and tries again at once."""
        batch, verdicts = await self._send_next()
        if batch:
            await self._settle(batch, verdicts)
        return len(batch)

    async def push(self) -> int:
        """Push batch after batch until nothing is left to send; returns how many events
        were sent. Raises as `push_once` does, once what was sent is settled.

        While one batch's verdicts are settled on the gateway, the next batch is read and
        sent: it leaves out the batch being settled, whose events are still in the outbox
        until then. The next batch goes only when central gave every event of the one
        before a final verdict: an unsettled event must hold back the later events of its
        account, and only its recorded failure tells the next read which those are. Until
        a settle commits, the next read may still see an earlier failure it clears, and
        then holds that account back one batch longer, never less."""
        sent = 0
        settling: asyncio.Task[None] | None = None
        in_flight: frozenset[int] = frozenset()
        try:
            while True:
                batch, verdicts = await self._send_next(in_flight)
                if settling is not None:
                    # One settle at a time, so a read never misses more than the batch
                    # still settling.
                    previous, settling = settling, None
                    await previous
                if not batch:
                    if not in_flight:
                        return sent
                    in_flight = frozenset()  # read again, with that batch settled
                    continue
                sent += len(batch)
                if not all_final(batch, verdicts):
                    await self._settle(batch, verdicts)  # records the failures and raises
                    in_flight = frozenset()
                    continue
                settling = asyncio.create_task(self._settle(batch, verdicts))
                in_flight = frozenset(event.seq for event in batch)
        finally:
            if settling is not None:
                await settling

    async def _send_next(self, exclude: frozenset[int] = frozenset(),
                         ) -> tuple[list[OutboxEvent], list[Verdict]]:
        """Read the next batch (without `exclude`) and send it; ([], []) if none."""
        while True:
            batch = await self.reader.run(lambda c: next_batch(
                c, max_events=self._max_events, max_bytes=self._max_bytes, exclude=exclude))
            if not batch:
                return [], []
            key = f"{self.gateway_id}:{batch[0].seq}-{batch[-1].seq}:{len(batch)}"
            try:
                verdicts = await self.client.push_batch(
                    self.gateway_id, [e.body for e in batch], idempotency_key=key)
            except PayloadTooLarge as exc:
                await self._too_large(batch, exc)
                continue
            await self._answered(Direction.PUSH)
            # After a 413 the limits were halved; grow them back as batches go through.
            self._max_events = min(self.settings.batch_max_events, self._max_events * 2)
            self._max_bytes = min(self.settings.batch_max_bytes, self._max_bytes * 2)
            return batch, verdicts

    async def _settle(self, batch: list[OutboxEvent], verdicts: list[Verdict]) -> None:
        """Commit central's verdicts on the gateway; raises if an event got none final."""
        at = self._at()

        def commit(conn: sqlite3.Connection) -> Settled:
            result = settle(conn, batch, verdicts, at)
            set_state(conn, LAST_PUSH, at, at)
            return result
        settled = await self.writer.submit(commit)
        self.counters["pushed"] += settled.acknowledged
        self.counters["duplicates"] += settled.duplicates
        self.counters["rejected"] += settled.rejected
        self.counters["unsettled"] += settled.unsettled
        if settled.unsettled:
            raise CentralUnavailable(f"{settled.unsettled} events got no final verdict",
                                     code="unsettled")

    async def _too_large(self, batch: list[OutboxEvent], exc: PayloadTooLarge) -> None:
        if len(batch) > 1:
            self._max_events = max(1, len(batch) // 2)
            self._max_bytes = max(MIN_BATCH_BYTES, sum(e.size for e in batch) // 2)
            log.info("central refused a batch as too large; sending %d events at most",
                     self._max_events)
            return
        # One event alone is too large: it can never be sent; it must not block the rest.
        (event,) = batch
        at = self._at()
        await self.writer.submit(lambda c: dead_letter(c, event, "too_large", str(exc), at))
        self.counters["rejected"] += 1

    async def pull_once(self, wait_s: int = 0) -> bool:
        """Fetch and apply one page; True if central has more right away."""
        if await self.reader.run(lambda c: get_state(c, SNAPSHOT_STATE)) is not None:
            await self.resync()  # a resync a crash interrupted: finish it first
        cursor = await self.reader.run(load_cursor) or 0
        try:
            page = await self.client.changes(self.gateway_id, cursor,
                                             limit=self.settings.page_limit, wait_s=wait_s)
        except CursorExpired:
            log.warning("change feed cursor %d expired at central: resyncing from a snapshot",
                        cursor)
            await self.resync()
            return True
        await self._answered(Direction.PULL)
        at = self._at()

        def commit(conn: sqlite3.Connection) -> Any:
            applied = apply_changes(conn, page.changes, page.allowances,
                                    cursor=page.next_cursor, at=at, clock=self.clock,
                                    limits=self.limits)
            set_state(conn, LAST_PULL, at, at)
            set_state(conn, HEAD, page.head, at)
            return applied, refusals(conn)
        applied, self.refusals = await self.writer.submit(commit)
        self.counters["pulled"] += len(page.changes)
        self._count_refused(applied)
        if applied.documents and self.on_documents is not None:
            await self.on_documents()
        if applied.skipped:
            log.warning("ignored change kinds this gateway does not know: %s",
                        sorted(set(applied.skipped)))
        return page.next_cursor < page.head

    async def resync(self) -> None:
        """Apply central's snapshot, resuming where an interrupted one stopped."""
        if self.state.running:  # a one-off resync (`sync now`) is not the gateway's mode
            await self._enter(Mode.RESYNCING)
        self.counters["resyncs"] += 1
        progress: Mapping[str, Any] = await self.reader.run(
            lambda c: get_state(c, SNAPSHOT_STATE)) or {}
        if not resumable(progress):
            progress = {}  # none, or kept by an older version: a fresh snapshot
        kept = await self.reader.run(kept_progress) if progress else None
        self.snapshot = SnapshotProgress.begin(self.now(), kept)
        self._snapshot_log = Throttle(SNAPSHOT_LOG_S, self.now)
        log.info("applying central's snapshot%s",
                 f", resumed after {self.snapshot.rows_applied} rows" if kept else "")
        stream = self.client.snapshot(
            self.gateway_id, cursor=int(progress["cursor"]) if progress else None,
            phase=progress.get("phase", "member"), after=progress.get("after", ""),
            idle_timeout_s=self.client.timeout_s)
        # One chunk is applied on the writer thread while the next one is downloaded and
        # parsed; chunks still commit in order, each with the progress to resume from.
        applying: asyncio.Task[None] | None = None
        chunk: list[dict[str, Any]] = []
        try:
            async for line in stream:
                chunk.append(line)
                if len(chunk) >= SNAPSHOT_CHUNK or line["type"] == "end":
                    if applying is not None:
                        await applying
                    applying = asyncio.create_task(self._apply_snapshot(chunk))
                    chunk = []
            if applying is not None:
                await applying
            if chunk:
                await self._apply_snapshot(chunk)
        finally:
            if applying is not None and not applying.done():
                applying.cancel()
            done, self.snapshot = self.snapshot, None
        if done is not None:
            seconds = (done.updated_at - done.started_at).total_seconds()
            log.info("central's snapshot applied: %d rows in %.1f s", done.rows_applied,
                     seconds)
        # The whole snapshot came: central answered the pull side.
        self.state.answered(Direction.PULL, self.now())
        await self._review(resynced=True)

    async def _apply_snapshot(self, lines: list[dict[str, Any]]) -> None:
        now = self.now()
        at = to_text(now) or ""
        before = self.snapshot or SnapshotProgress.begin(now, None)

        def commit(conn: sqlite3.Connection) -> tuple[Applied, Refusals, SnapshotProgress]:
            applied = apply_snapshot_lines(conn, lines, at, self.limits)
            after = store_progress(conn, before, rows_in(lines), now, at)
            return applied, refusals(conn) if applied.refused or applied.released \
                else self.refusals, after
        applied, self.refusals, after = await self.writer.submit(commit)
        if self.snapshot is not None:
            self.snapshot = after
        self._count_refused(applied)
        if after.phase != "done" and self._snapshot_log is not None \
                and self._snapshot_log.due():
            log.info("central's snapshot: %s", after.describe())
        if applied.documents and self.on_documents is not None:
            await self.on_documents()

    def _count_refused(self, applied: Applied) -> None:
        """Refused changes are counted and logged; sync goes on with the rest."""
        if applied.refused:
            self.counters["refused_changes"] += applied.refused
            log.warning("refused %d change(s) from central, kept in dead letters: %s",
                        applied.refused, self.refusals.first)

    async def heartbeat(self) -> None:
        status = await self.status()
        await self.client.heartbeat(self.gateway_id, {
            "outbox_depth": status.outbox_depth, "oldest_pending_s": status.oldest_pending_s,
            "cursor": str(status.cursor or 0), "hlc": str(self.clock.stamp()),
        })
        # The push side's evidence while the outbox is idle.
        await self._answered(Direction.PUSH)

    async def sync_now(self) -> SyncStatus:
        """Push everything, then pull up to central's head; errors reach the caller."""
        await self.push()
        while await self.pull_once():
            pass
        return await self.status()

    async def status(self) -> SyncStatus:
        now = self.now()
        await self._review(now)  # the mode reported is the one the evidence supports now
        status = await self.reader.run(lambda c: read_status(c, now))
        self.refusals = status.refusals
        if self.state.running:  # newer than the store: the latest error, not the last change's
            status.mode = self.mode.value
            status.mode_since = to_text(self.state.since)
            status.last_error = self.last_error
        if self.snapshot is not None:  # fresher than the last chunk's row in the store
            status.resync_in_progress = True
            status.snapshot = self.snapshot.as_json()
        status.clock_offset_ms = self.client.clock_offset_ms
        status.hlc_ahead_ms = self.clock.offset_ms()
        return status

    # -- the loops ----------------------------------------------------------------------
    async def run(self) -> None:
        # Starting is not online: a redemption in the first moments after a start must not
        # count on a central that may be unreachable. The first pull and the first
        # heartbeat go at once, so a healthy central is online within a round trip.
        await self._enter(Mode.STARTING)
        self.refusals = await self.reader.run(refusals)  # kept by an earlier run
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._push_loop(), name="sync-push")
                tasks.create_task(self._pull_loop(), name="sync-pull")
                tasks.create_task(self._heartbeat_loop(), name="sync-heartbeat")
                tasks.create_task(self._watch_loop(), name="sync-watch")
        finally:
            with contextlib.suppress(StoreError):  # the store closed first: nothing to keep
                await self._enter(Mode.STOPPED)

    async def _push_loop(self) -> None:
        while True:
            try:
                sent = await self.push()
            except CentralError as exc:
                await asyncio.sleep(await self._failed(exc, self._push_backoff, Direction.PUSH))
                continue
            self._push_backoff.reset()
            if not sent:
                self._wake_pusher.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_pusher.wait(),
                                           self.settings.push_interval_s)

    async def _pull_loop(self) -> None:
        # A pull's answer is evidence only when it arrives, so a healthy long-poll in flight
        # ages the pull side's evidence by up to `long_poll_s` (the settings keep the bound
        # above that), and a stalled one ends at the client's timeout (`timeout_s` plus the
        # wait) as a failure. With no fresh evidence, at start and after a failure, the
        # pull asks for an answer at once (wait 0): a long-poll would leave a healthy
        # central looking offline until its wait ran out.
        wait_s = 0
        while True:
            try:
                more = await self.pull_once(wait_s=wait_s)
            except CentralError as exc:
                wait_s = 0
                await asyncio.sleep(await self._failed(exc, self._pull_backoff, Direction.PULL))
                continue
            self._pull_backoff.reset()
            wait_s = self.settings.long_poll_s
            if not more and wait_s == 0:
                await asyncio.sleep(self.settings.push_interval_s)

    async def _heartbeat_loop(self) -> None:
        # The first heartbeat goes at start: central sees the gateway at once, and an idle
        # outbox still gets the push side's evidence. A failed one is retried with backoff,
        # not after `heartbeat_s`, so a recovery is seen as soon as central answers.
        while True:
            try:
                await self.heartbeat()
            except CentralError as exc:
                await asyncio.sleep(await self._failed(exc, self._beat_backoff, Direction.PUSH))
                continue
            self._beat_backoff.reset()
            await asyncio.sleep(self.settings.heartbeat_s)

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            await self._review()

    async def _failed(self, exc: CentralError, backoff: Backoff, direction: Direction,
                      ) -> float:
        """Record a loop's failure; returns how long the loop waits before its retry."""
        retry_after = exc.retry_after if isinstance(exc, CentralUnavailable) else None
        refused = isinstance(exc, CentralAuthError)
        # No answer, a 5xx or a 429: central is not serving this side. Events left without
        # a verdict, or a request refused for good, were answered: sync is not offline.
        silent = isinstance(exc, CentralUnavailable) and exc.code != "unsettled"
        delay = backoff.max_s if refused else backoff.next_delay(retry_after)
        self.state.note(str(exc))
        if refused or silent:
            self.state.failed(direction)
            mode = self.state.after_failure(refused=refused)
            if mode is not None:
                await self._enter(mode)  # logged when the mode changes, not per retry
        elif backoff.failures == 1:  # once per run of failures, not once per retry
            log.warning("sync with central failing: %s", exc)
        return delay
