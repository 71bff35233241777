"""WAL checkpoints off the commit path.

SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold: that
commit copies the WAL back into the database file and fsyncs it, and every producer of
its batch waits (a latency spike every few thousand writes). The writer therefore turns
automatic checkpoints off, and this thread checkpoints from its own connection in PASSIVE
mode, which never blocks the writer or the readers: commits only ever fsync the WAL.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass

from gateway.store.db import BUSY_TIMEOUT_MS, StrPath

log = logging.getLogger(__name__)

# Often enough that the WAL stays small (a few MB at thousands of writes per second), rare
# enough that an idle gateway does no measurable work.
CHECKPOINT_INTERVAL_S = 0.5


@dataclass
class CheckpointStats:
    runs: int = 0
    failures: int = 0
    last_wal_pages: int = 0  # WAL size seen by the last checkpoint
    last_copied_pages: int = 0  # of which copied into the database file


class Checkpointer:
    def __init__(self, path: StrPath, *, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self.path = path
        self.interval_s = interval_s
        self.stats = CheckpointStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-checkpointer",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the checkpoint in progress, if any (blocking: call from a thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = FULL")  # fsync the database file it writes
            while not self._stop.wait(self.interval_s):
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            busy, wal_pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            # The WAL only grows meanwhile; nothing committed is at risk. Logged once per
            # outage, counted every time.
            if not self._failing:
                log.warning("store checkpoint failed (will retry): %s", exc)
            self._failing = True
            self.stats.failures += 1
            return
        if self._failing:
            log.info("store checkpoints work again")
        self._failing = False
        self.stats.runs += 1
        self.stats.last_wal_pages, self.stats.last_copied_pages = wal_pages, copied
        del busy  # PASSIVE: a busy checkpoint simply copies what it can
