"""`mallgate pos captures list|show` and `mallgate pos try-template` on a real store."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from devices.pos.printouts import DEFAULT_TEMPLATE, Printout
from gateway.cli import main
from gateway.store import migrate

CLEAN_ENV: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MALLGATE__")}
AT = datetime(2026, 11, 22, 14, 5, 9)
SALE = Printout("万达广场 星巴克", "20261122-0001", AT, (("拿铁(大杯)", 3200),),
                member_code="M12345678")
COPY = Printout("万达广场 星巴克", "20261122-0001", AT, (("拿铁(大杯)", 3200),),
                copy_label="商户联")
NATURAL_MEMBER = r"(?P<member_code>\d{8})"


def _toml_template(member_code: str) -> str:
    fields = {**DEFAULT_TEMPLATE["fields"], "member_code": member_code}
    lines = [f"{name} = {json.dumps(value)}" for name, value in fields.items()]
    lines += [f"{name}_marker = {json.dumps(value)}"
              for name, value in DEFAULT_TEMPLATE["markers"].items()]
    return "\n".join(["[[pos.templates]]", 'store_id = "S01"', *lines,
                      f"item = {json.dumps(DEFAULT_TEMPLATE['item'])}"])


def _config(tmp_path: Path, member_code: str = DEFAULT_TEMPLATE["fields"]["member_code"],
            ) -> Path:
    config = tmp_path / "gw.toml"
    config.write_text(f'[site]\nmall_id = "m1"\ngateway_id = "gw-1"\n[store]\n'
                      f'path = "{tmp_path / "gw.db"}"\n{_toml_template(member_code)}\n',
                      encoding="utf-8")
    return config


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "gw.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    no_total = b'{"seq":1,"receipt_no":"A-1","occurred_at":"2026-11-22T14:05:09"}\n'
    for mode, raw in (("escpos", SALE.escpos()), ("escpos", COPY.escpos()),
                      ("jsonl", no_total)):
        conn.execute("INSERT INTO pos_captures (store_id, pos_id, mode, raw, received_at, status)"
                     " VALUES ('S01', 'P1', ?, ?, '2026-11-22T06:05:10Z', 'sale')", (mode, raw))
    conn.close()
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=CLEAN_ENV)
    return result.exit_code, result.output


def test_captures_list_shows_every_capture_newest_first(tmp_path: Path, store: Path) -> None:
    code, out = run("pos", "captures", "list", "--config", str(_config(tmp_path)))
    assert code == 0, out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["3", "2", "1"]
    assert "S01" in lines[2] and "escpos" in lines[2]
    assert lines[-1] == "3 capture(s)"


def test_captures_show_numbers_the_text_and_writes_every_raw_byte(tmp_path: Path,
                                                                  store: Path) -> None:
    raw_file = tmp_path / "job.bin"
    code, out = run("pos", "captures", "show", "1", "--config", str(_config(tmp_path)),
                    "--raw", str(raw_file))
    assert code == 0, out
    assert raw_file.read_bytes() == SALE.escpos()  # NUL bytes and all, not cut at the first
    assert b"\x00" in raw_file.read_bytes()
    assert "\n 1 | 万达广场 星巴克\n 2 | 单号: 20261122-0001\n" in out
    assert "会员: M12345678" in out


def test_try_template_names_each_field_its_line_and_the_classification(
        tmp_path: Path, store: Path) -> None:
    config = str(_config(tmp_path))
    code, out = run("pos", "try-template", "--config", config, "--store", "S01",
                    "--capture", "1")
    assert code == 0, out
    assert "classified: sale: no marker matched; it earns points" in out
    assert "receipt_no   '20261122-0001'" in out and "line 2: '单号: 20261122-0001'" in out
    assert "member_code  'M12345678'" in out
    assert "result: sale 20261122-0001" in out and "member M12345678" in out
    code, out = run("pos", "try-template", "--config", config, "--store", "S01",
                    "--capture", "2")
    assert "classified: copy: copy_marker matched '商户联' on line 2; it never earns" in out


def test_try_template_warns_when_the_member_code_is_taken_from_the_receipt_number(
        tmp_path: Path) -> None:
    job = tmp_path / "job.bin"
    job.write_bytes(SALE.escpos())
    code, out = run("pos", "try-template", "--config", str(_config(tmp_path, NATURAL_MEMBER)),
                    "--store", "S01", str(job))
    assert code == 0, out
    assert ("warning: member_code '20261122' was taken from inside the receipt_no "
            "'20261122-0001' (line 2)") in out


def test_try_template_on_a_jsonl_capture_gives_the_worded_reason(tmp_path: Path,
                                                                 store: Path) -> None:
    code, out = run("pos", "try-template", "--config", str(_config(tmp_path)), "--store",
                    "S01", "--capture", "3")
    assert code == 0, out
    assert "result: dead letter (bad_payload: the receipt has no total_fen field)" in out


def test_an_unknown_capture_is_an_error(tmp_path: Path, store: Path) -> None:
    code, out = run("pos", "captures", "show", "99", "--config", str(_config(tmp_path)))
    assert code == 1 and "no capture 99" in out
