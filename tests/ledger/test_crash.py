"""A SIGKILL at any moment never loses a recorded entry or its outbox row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.store.test_crash import kill_points, run_and_kill

CHILD = Path(__file__).with_name("crash_child.py")


def test_recorded_entries_and_their_outbox_rows_survive_sigkill(tmp_path: Path) -> None:
    db_path = tmp_path / "ledger.db"
    acknowledged: set[str] = set()
    for round_no, kill_after in enumerate(kill_points(3)):
        acknowledged |= run_and_kill(db_path, f"r{round_no}", kill_after,
                                     tmp_path / "child.err", child_script=CHILD)
        conn = sqlite3.connect(db_path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            in_ledger = {key for (key,) in conn.execute("SELECT source_key FROM ledger")}
            orphans = conn.execute(
                "SELECT count(*) FROM ledger l LEFT JOIN outbox o ON o.event_id = l.entry_id "
                "WHERE o.event_id IS NULL").fetchone()[0]
            seqs = [seq for (seq,) in conn.execute(
                "SELECT origin_seq FROM ledger ORDER BY origin_seq")]
        finally:
            conn.close()
        missing = acknowledged - in_ledger
        assert not missing, f"round {round_no}: {len(missing)} acknowledged entries lost"
        assert orphans == 0  # entry and outbox row commit together or not at all
        assert seqs == list(range(1, len(seqs) + 1))  # the site's sequence has no gap
