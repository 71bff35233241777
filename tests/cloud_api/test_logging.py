"""`mallgate central serve` logs as the gateway does: one JSON object per line for a
collector or readable lines for a terminal, personal data masked in both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cloud_api.server.cli import central_group
from tests.cloud_api.central import MALL
from tests.cloud_api.pg import fresh_database
from tests.cloud_api.processes import central_processes, issue_token
from tests.cloud_api.test_phones import KEY, NUMBER, sql

# Older member systems of Chinese malls keyed members by their mobile number; one such
# member whose profile's phone field is no number is named in central's log at start.
LEGACY = ("INSERT INTO members (mall_id, member_id, account_id, profile, edge_view, "
          "version, erased_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, NULL, '')")
MASKED = "138****8000"


@pytest.fixture(params=["sqlite", "postgres"])
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "postgres":
        return "postgres", await fresh_database(request.getfixturevalue("postgres_server"))
    return "sqlite", str(tmp_path / "central.db")


async def test_central_logs_json_or_readable_lines_with_phone_numbers_masked(
    place: tuple[str, str], tmp_path: Path,
) -> None:
    kind, where = place
    db, dsn = (tmp_path / "unused.db", where) if kind == "postgres" else (Path(where), None)
    await issue_token(db, dsn, MALL, "admin")  # the database, as an older central left it
    await sql(place, LEGACY, MALL, NUMBER, "A1", '{"name": "李四", "phone": "n/a"}',
              f'{{"member_id": "{NUMBER}", "account_id": "A1", "version": 1}}')
    keys = tmp_path / "phone-keys"
    keys.write_text(f"{MALL}={KEY.decode()}\n")
    keys.chmod(0o600)
    start = ["--phone-key-file", str(keys)]

    as_json = tmp_path / "central.json.log"
    async with central_processes(db, dsn, extra=[*start, "--log-format", "json"],
                                 log=as_json):
        pass
    records = [json.loads(line) for line in as_json.read_text().splitlines()]
    named = [r for r in records if "no phone number" in r["msg"]]
    assert len(named) == 1, records
    assert named[0]["level"] == "WARNING"
    assert named[0]["logger"] == "cloud_api.server.sql_storage"
    assert MASKED in named[0]["msg"]
    assert NUMBER not in as_json.read_text()

    readable = tmp_path / "central.log"
    async with central_processes(db, dsn, extra=start, log=readable):  # console: default
        pass
    lines = readable.read_text().splitlines()
    (line,) = [line for line in lines if "no phone number" in line]
    assert " WARNING cloud_api.server.sql_storage: " in line and MASKED in line
    assert not line.startswith("{")
    assert NUMBER not in readable.read_text()


def test_central_serve_will_not_log_without_the_gateway_log_setup(tmp_path: Path) -> None:
    """Central's own group, mounted without the composition root, refuses to serve rather
    than log personal data unmasked."""
    result = CliRunner().invoke(central_group, ["serve", "--db", str(tmp_path / "c.db"),
                                                "--port", "1"])
    assert result.exit_code == 2
    assert "run it as `mallgate central serve`" in result.output
