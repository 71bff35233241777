"""`mallgate sim pos` on a real pty, and `mallgate deadletters list|replay` on a real store."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import serial
from click.testing import CliRunner

from devices.pos.jobs import Splitter
from devices.pos.printouts import DEFAULT_TEMPLATE
from gateway.cli import main
from gateway.deadletters import keep
from tests.pos.fixtures import own
from tests.pos.helpers import RULES, Clock, open_pipeline, pos_settings

SOCAT = shutil.which("socat")
CLEAN_ENV: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MALLGATE__")}


@pytest.fixture
def pty_links(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    if SOCAT is None:
        pytest.skip("socat is not installed")
    pos, gw = tmp_path / "pos", tmp_path / "gw"
    proc = subprocess.Popen([SOCAT, f"pty,raw,echo=0,link={pos}",
                             f"pty,raw,echo=0,link={gw}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (pos.exists() and gw.exists()):
            assert time.monotonic() < deadline, "socat did not create the ptys"
            time.sleep(0.01)
        yield pos, gw
    finally:
        proc.kill()
        proc.wait()


def test_sim_pos_prints_progress_on_stderr_while_it_runs(
        pty_links: tuple[Path, Path]) -> None:
    pos, gw = pty_links
    with serial.Serial(str(gw), 115200, timeout=0.2) as port:
        result = CliRunner().invoke(main, ["sim", "pos", "--port", str(pos), "--format",
                                           "escpos", "--rate", "10", "--count", "8",
                                           "--progress-every", "0.2"], env=CLEAN_ENV)
        while port.read(65536):
            pass
    assert result.exit_code == 0, result.output
    progress = [line for line in result.stderr.splitlines() if line.startswith("sim pos: sent")]
    assert progress, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["sent"] == 8


def test_sim_pos_prints_receipts_on_a_pty(pty_links: tuple[Path, Path]) -> None:
    pos, gw = pty_links
    with serial.Serial(str(gw), 115200, timeout=0.2) as port:
        result = CliRunner().invoke(main, ["sim", "pos", "--port", str(pos), "--format",
                                           "escpos", "--rate", "0", "--count", "12"],
                                    env=CLEAN_ENV)
        assert result.exit_code == 0, result.output
        assert '"sent": 12' in result.output
        data = b""
        while chunk := port.read(65536):
            data += chunk
    splitter = Splitter("gb18030")
    jobs = [j for j in splitter.feed(data, 0.0) + splitter.flush() if j.has_content]
    assert len(jobs) == 12
    assert all("单号" in j.text or "厨房单" in j.text or "交班报表" in j.text for j in jobs)


def _config(tmp_path: Path, total_pattern: str) -> Path:
    fields = DEFAULT_TEMPLATE["fields"]
    path = tmp_path / "gw.toml"
    path.write_text(f"""
[site]
mall_id = "test-mall"
gateway_id = "gw-test"

[store]
path = "{tmp_path / "gw.db"}"

[[pos.ports]]
path = "/dev/null"
store_id = "S01"
pos_id = "P1"

[[pos.templates]]
store_id = "S01"
receipt_no = '{fields["receipt_no"]}'
occurred_at = '{fields["occurred_at"]}'
total = '{total_pattern}'
member_code = '{fields["member_code"]}'
""", encoding="utf-8")
    return path


def test_deadletters_list_and_replay_after_a_template_fix(tmp_path: Path) -> None:
    unreadable = own("gb18030-chinese-mode.bin").replace("合计".encode("gb18030"),
                                                          "总计".encode("gb18030"))

    async def ingest() -> str:
        clock = Clock(datetime(2026, 11, 22, 16, 0, tzinfo=RULES.tz))
        async with open_pipeline(tmp_path / "gw.db", clock, pos_settings()) as pipeline:
            outcome = await pipeline.ingest(store_id="S01", pos_id="P1", mode="escpos",
                                            raw=unreadable)
            return outcome.status

    assert asyncio.run(ingest()) == "dead"
    runner = CliRunner()
    strict = _config(tmp_path, DEFAULT_TEMPLATE["fields"]["total"])
    listed = runner.invoke(main, ["deadletters", "list", "--config", str(strict)],
                           env=CLEAN_ENV)
    assert listed.exit_code == 0, listed.output
    assert "missing_field" in listed.output and "1 dead letter(s)" in listed.output
    again = runner.invoke(main, ["deadletters", "replay", "--config", str(strict)],
                          env=CLEAN_ENV)
    assert "0 of 1 pos dead letter(s) processed" in again.output
    fixed = _config(tmp_path, r"[合总]计[:\uff1a]\s*(?P<total>[¥￥]?[\d,]+\.\d{2})")
    replayed = runner.invoke(main, ["deadletters", "replay", "--config", str(fixed)],
                             env=CLEAN_ENV)
    assert replayed.exit_code == 0, replayed.output
    assert "sale 20261122-0001" in replayed.output
    assert "1 of 1 pos dead letter(s) processed" in replayed.output
    after = runner.invoke(main, ["deadletters", "list", "--config", str(fixed)],
                          env=CLEAN_ENV)
    assert "0 dead letter(s)" in after.output


def test_deadletters_replay_reports_each_id_typed_and_fails_on_those_it_cannot_replay(
        tmp_path: Path) -> None:
    unreadable = own("gb18030-chinese-mode.bin").replace("合计".encode("gb18030"),
                                                          "总计".encode("gb18030"))

    async def ingest() -> None:
        clock = Clock(datetime(2026, 11, 22, 16, 0, tzinfo=RULES.tz))
        async with open_pipeline(tmp_path / "gw.db", clock, pos_settings()) as pipeline:
            outcome = await pipeline.ingest(store_id="S01", pos_id="P1", mode="escpos",
                                            raw=unreadable)
            assert outcome.status == "dead"
            await pipeline.ledger.record_with([], lambda conn, _: keep(
                conn, source="kiosk", raw=b"{", code="bad_json", error="not JSON",
                context={"topic": "t"}, at="2026-11-22T08:00:00Z"))

    asyncio.run(ingest())
    runner = CliRunner()
    fixed = _config(tmp_path, r"[合总]计[:\uff1a]\s*(?P<total>[¥￥]?[\d,]+\.\d{2})")
    unknown = runner.invoke(main, ["deadletters", "replay", "--config", str(fixed), "9999"],
                            env=CLEAN_ENV)
    assert unknown.exit_code != 0
    assert "dead letter 9999: no such dead letter" in unknown.output
    assert "0 of 0 pos dead letter(s) processed" in unknown.output

    mixed = runner.invoke(main, ["deadletters", "replay", "--config", str(fixed),
                                 "2", "1", "9999", "1"], env=CLEAN_ENV)
    assert mixed.exit_code != 0
    assert "dead letter 1 (capture 1): sale 20261122-0001" in mixed.output
    assert "dead letter 2: not replayable (source kiosk" in mixed.output
    assert "dead letter 9999: no such dead letter" in mixed.output
    assert "1 of 1 pos dead letter(s) processed" in mixed.output
    assert "2 of the 3 id(s) given could not be replayed" in mixed.output

    again = runner.invoke(main, ["deadletters", "replay", "--config", str(fixed), "1"],
                          env=CLEAN_ENV)
    assert again.exit_code != 0
    assert "dead letter 1: not replayable (already replayed: sale)" in again.output


def test_deadletters_replay_of_many_prints_progress_on_stderr(tmp_path: Path) -> None:
    unreadable = own("gb18030-chinese-mode.bin").replace("合计".encode("gb18030"),
                                                          "总计".encode("gb18030"))
    many = 500

    async def ingest() -> None:
        clock = Clock(datetime(2026, 11, 22, 16, 0, tzinfo=RULES.tz))
        async with open_pipeline(tmp_path / "gw.db", clock, pos_settings()) as pipeline:
            for _ in range(many):
                outcome = await pipeline.ingest(store_id="S01", pos_id="P1", mode="escpos",
                                                raw=unreadable)
                assert outcome.status == "dead"

    asyncio.run(ingest())
    strict = _config(tmp_path, DEFAULT_TEMPLATE["fields"]["total"])
    result = CliRunner().invoke(main, ["deadletters", "replay", "--config", str(strict),
                                       "--progress-every", "0.05"], env=CLEAN_ENV)
    assert result.exit_code == 0, result.output
    progress = [line for line in result.stderr.splitlines()
                if line.startswith("deadletters replay:")]
    assert progress, result.stderr
    assert all(f" of {many} replayed" in line for line in progress)
    assert "deadletters replay:" not in result.stdout
    assert result.stdout.splitlines()[-1] == (f"0 of {many} pos dead letter(s) processed; "
                                              f"{many} still unreadable")


def test_a_dead_letter_whose_capture_bytes_were_pruned_is_not_replayable(
        tmp_path: Path) -> None:
    unreadable = own("gb18030-chinese-mode.bin").replace("合计".encode("gb18030"),
                                                          "总计".encode("gb18030"))

    async def ingest() -> None:
        clock = Clock(datetime(2026, 11, 22, 16, 0, tzinfo=RULES.tz))
        async with open_pipeline(tmp_path / "gw.db", clock, pos_settings()) as pipeline:
            await pipeline.ingest(store_id="S01", pos_id="P1", mode="escpos", raw=unreadable)
            await pipeline.ledger.record_with([], lambda conn, _: conn.execute(
                "UPDATE pos_captures SET raw = x''"))  # past pos_capture_retention_days

    asyncio.run(ingest())
    fixed = _config(tmp_path, r"[合总]计[:\uff1a]\s*(?P<total>[¥￥]?[\d,]+\.\d{2})")
    runner = CliRunner()
    typed = runner.invoke(main, ["deadletters", "replay", "--config", str(fixed), "1"],
                          env=CLEAN_ENV)
    assert typed.exit_code != 0
    assert "dead letter 1: not replayable (its capture's raw bytes were deleted" in typed.output
    every = runner.invoke(main, ["deadletters", "replay", "--config", str(fixed)],
                          env=CLEAN_ENV)
    assert "0 of 0 pos dead letter(s) processed" in every.output
