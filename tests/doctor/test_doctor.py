"""`mallgate doctor` against real things: mosquitto, a central over loopback, ptys, files."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cloud_api.server.sqlite_store import SqliteStorage
from devices.mqtt.broker import Mosquitto
from devices.mqtt.passwd import with_password
from gateway.app.doctor.cli import diagnose
from gateway.app.doctor.model import Check, Finding, Result, exit_code, run_checks, table
from gateway.cli import main
from gateway.settings import Settings
from gateway.settings.load import load_settings
from tests.cloud_api.central import Central, running_central
from tests.conftest import free_port

CLEAN_ENV: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MALLGATE__")}
SOCAT = shutil.which("socat")
RIGHT_PASSWORD, WRONG_PASSWORD, WRONG_TOKEN = "right-password", "wrong-password", "not-the-token"


def write_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "gw.toml"
    config.write_text(f'[site]\nmall_id = "test-mall"\ngateway_id = "gw-test"\n'
                      f'[store]\npath = "{tmp_path / "gw.db"}"\n{extra}\n')
    config.chmod(0o600)
    return config


def settings_of(config: Path, **environ: str) -> Settings:
    return load_settings(config, environ=environ, secret_modes=False)


async def findings(config: Path, **environ: str) -> dict[str, Finding]:
    found = await diagnose(settings_of(config, **environ), config, 5.0)
    return {f.check: f for f in found}


def doctor(config: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["doctor", "--config", str(config)], env=CLEAN_ENV)
    return result.exit_code, result.output


# -- the table and the exit code ---------------------------------------------------------

async def test_each_check_is_bounded_and_a_broken_one_fails_alone() -> None:
    async def slow() -> list[Finding]:
        await __import__("asyncio").sleep(10)
        return []

    async def broken() -> list[Finding]:
        raise RuntimeError("boom")

    async def fine() -> list[Finding]:
        return [Finding("fine", Result.OK, "all good")]

    started = time.monotonic()
    found = await run_checks([Check("slow", slow, "wake it"), Check("broken", broken),
                              Check("fine", fine)], 0.2)
    assert time.monotonic() - started < 2
    assert [(f.check, f.result) for f in found] == [
        ("slow", Result.FAIL), ("broken", Result.FAIL), ("fine", Result.OK)]
    assert found[0].detail == "no answer within 0.2 s" and found[0].fix == "wake it"
    assert "RuntimeError: boom" in found[1].detail
    assert exit_code(found) == 2
    assert exit_code([Finding("a", Result.SKIP, ""), Finding("b", Result.WARN, "")]) == 1
    assert exit_code([Finding("a", Result.SKIP, ""), Finding("b", Result.OK, "")]) == 0
    lines = table(found)
    assert lines[0].split() == ["check", "result", "detail"]
    assert lines[2].strip() == "fix: wake it"


def test_a_bare_configuration_is_all_ok_or_skipped(tmp_path: Path) -> None:
    code, out = doctor(write_config(tmp_path))
    assert code == 0, out
    for check in ("secrets", "descriptors", "disk", "database", "serial", "ble", "broker",
                  "central"):
        assert any(line.startswith(check) for line in out.splitlines()), check


# -- secrets, store ------------------------------------------------------------------------

def test_a_world_readable_token_file_fails_with_chmod_600(tmp_path: Path) -> None:
    token = tmp_path / "central.token"
    token.write_text("secret-token\n")
    token.chmod(0o644)
    config = write_config(tmp_path, f'[central]\nurl = "http://127.0.0.1:{free_port()}"\n'
                                    f'token_file = "{token}"\n')
    code, out = doctor(config)
    assert code == 2
    assert f"token file {token} is readable by group or others (mode 644)" in out
    assert f"fix: chmod 600 {token}" in out
    assert "secret-token" not in out
    token.chmod(0o600)
    line = next(x for x in doctor(config)[1].splitlines() if x.startswith("secrets"))
    assert line.split()[1] == "ok" and "owner-only" in line


def test_a_configuration_holding_secrets_must_be_owner_only(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[kiosk]\npassword = "hunter2"\n')
    config.chmod(0o644)
    code, out = doctor(config)
    assert code == 2 and "holds [kiosk] password" in out and "hunter2" not in out


def test_a_corrupted_database_fails_and_a_sound_one_passes(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    db = tmp_path / "gw.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)")
    conn.executemany("INSERT INTO t (y) VALUES (?)", [("x" * 200,)] * 2000)
    conn.execute("CREATE INDEX t_y ON t (y)")
    conn.commit()
    conn.close()
    assert "quick_check ok" in doctor(config)[1]
    data = bytearray(db.read_bytes())
    page = 4096
    data[3 * page:3 * page + 64] = b"\xff" * 64  # an index page's header
    db.write_bytes(bytes(data))
    code, out = doctor(config)
    assert code == 2
    line = next(line for line in out.splitlines() if line.startswith("database"))
    assert "fail" in line
    assert ".recover" in out


# -- serial ports ----------------------------------------------------------------------------

def port_config(tmp_path: Path, path: Path | str) -> Path:
    return write_config(tmp_path, f'[[pos.ports]]\npath = "{path}"\nstore_id = "S01"\n'
                                  'pos_id = "P1"\nmode = "jsonl"\n')


def test_a_missing_serial_port_fails_with_a_fix(tmp_path: Path) -> None:
    missing = "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"
    code, out = doctor(port_config(tmp_path, missing))
    assert code == 2
    assert f"serial {missing}  fail    no such device" in out
    assert "fix: plug the adapter in" in out and "/dev/serial/by-id/" in out


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[Path]:
    if SOCAT is None:
        pytest.skip("socat is not installed")
    pos, gw = tmp_path / "pos", tmp_path / "gw"
    proc = subprocess.Popen([SOCAT, f"pty,raw,echo=0,link={pos}", f"pty,raw,echo=0,link={gw}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (pos.exists() and gw.exists()):
            assert time.monotonic() < deadline, "socat did not create the ptys"
            time.sleep(0.05)
        yield gw
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_free_pty_is_ok_and_one_held_by_another_process_fails(tmp_path: Path,
                                                                pty: Path) -> None:
    config = port_config(tmp_path, pty)
    code, out = doctor(config)
    assert code == 0, out
    assert f"serial {pty}" in out and "readable and writable" in out
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import os, time; fd = os.open({str(pty)!r}, os.O_RDWR | "
         "os.O_NOCTTY); print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        code, out = doctor(config)
        assert code == 2
        assert f"held by PID {holder.pid}" in out
        assert "fix: stop that process" in out
    finally:
        holder.kill()
        holder.wait()


# -- BLE ----------------------------------------------------------------------------------

async def test_ble_adapters_without_a_system_bus_are_skipped(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[ble]\nenabled = true\n[[ble.zones]]\nid = "north"\n'
                                    '[[ble.adapters]]\nname = "hci0"\nzone = "north"\n')
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={tmp_path / 'no-bus'}"
    try:
        found = await findings(config)
    finally:
        del os.environ["DBUS_SYSTEM_BUS_ADDRESS"]
    assert found["ble"].result is Result.SKIP
    assert "no D-Bus" in found["ble"].detail


# -- broker ---------------------------------------------------------------------------------

@pytest.fixture
async def secured_broker(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    passwd = tmp_path / "passwd"
    passwd.write_text(with_password("", "gateway-test-mall", RIGHT_PASSWORD))
    passwd.chmod(0o600)
    port, data = free_port(), tmp_path / "broker"
    conf = "\n".join([f"listener {port} 127.0.0.1", "allow_anonymous false",
                      f"password_file {passwd}", "use_username_as_clientid true",
                      "persistence false", "user root", f"log_dest file {data}/log"]) + "\n"
    async with Mosquitto(port, data, config_text=conf) as broker:
        yield broker


def broker_config(tmp_path: Path, broker: Mosquitto) -> Path:
    return write_config(tmp_path, f'[kiosk]\nenabled = true\nport = {broker.port}\n'
                                  'username = "gateway-test-mall"\n')


async def test_the_broker_login_with_the_right_password_is_accepted(
        tmp_path: Path, secured_broker: Mosquitto) -> None:
    found = await findings(broker_config(tmp_path, secured_broker),
                           MALLGATE__KIOSK__PASSWORD=RIGHT_PASSWORD)
    assert found["broker"].result is Result.OK, found["broker"]
    assert "MQTT v5 login accepted as gateway-test-mall" in found["broker"].detail


async def test_a_wrong_broker_password_fails_naming_the_user_and_the_fix(
        tmp_path: Path, secured_broker: Mosquitto) -> None:
    found = await findings(broker_config(tmp_path, secured_broker),
                           MALLGATE__KIOSK__PASSWORD=WRONG_PASSWORD)
    broker = found["broker"]
    assert broker.result is Result.FAIL
    assert "refused the login of gateway-test-mall" in broker.detail
    assert "MALLGATE__KIOSK__PASSWORD" in broker.fix
    assert "wrong-password" not in broker.detail + broker.fix


async def test_an_unreachable_broker_fails(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"[kiosk]\nenabled = true\nport = {free_port()}\n")
    found = await findings(config)
    assert found["broker"].result is Result.FAIL and "unreachable" in found["broker"].detail


# -- central --------------------------------------------------------------------------------

@pytest.fixture
async def central(tmp_path: Path) -> AsyncIterator[Central]:
    async with running_central(SqliteStorage(tmp_path / "central.db")) as server:
        yield server


def central_config(tmp_path: Path, url: str) -> Path:
    return write_config(tmp_path, f'[central]\nurl = "{url}"\n')


async def test_central_reachable_token_accepted_and_clocks_agree(
        tmp_path: Path, central: Central) -> None:
    found = await findings(central_config(tmp_path, central.url),
                           MALLGATE__CENTRAL__TOKEN=central.gateway_token)
    assert found["central"].result is Result.OK
    assert found["central auth"].result is Result.OK, found["central auth"]
    assert found["clock"].result is Result.OK
    assert "central's clock is" in found["clock"].detail


async def test_a_wrong_token_fails_with_how_to_get_one(tmp_path: Path,
                                                       central: Central) -> None:
    found = await findings(central_config(tmp_path, central.url),
                           MALLGATE__CENTRAL__TOKEN=WRONG_TOKEN)
    assert found["central"].result is Result.OK
    auth = found["central auth"]
    assert auth.result is Result.FAIL and "token refused (HTTP 401)" in auth.detail
    assert "mallgate central token --mall test-mall --gateway gw-test" in auth.fix
    assert "not-the-token" not in auth.detail + auth.fix


async def test_an_unreachable_central_fails_and_skips_what_needs_it(tmp_path: Path) -> None:
    found = await findings(central_config(tmp_path, f"http://127.0.0.1:{free_port()}"),
                           MALLGATE__CENTRAL__TOKEN=WRONG_TOKEN)
    assert found["central"].result is Result.FAIL
    assert found["central auth"].result is Result.SKIP
    assert found["clock"].result is Result.SKIP
