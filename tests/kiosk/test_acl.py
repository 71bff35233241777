"""The shipped ACL (config/mosquitto/acl) in a real mosquitto: each kiosk only its own tree."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from devices.mqtt.broker import Mosquitto
from devices.mqtt.passwd import check_password, with_password
from devices.mqtt.transport import LinkConfig, MqttLink
from gateway.cli import main
from tests.conftest import free_port
from tests.kiosk.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
SITE = "mall-a"


def add_login(command: str, login: str, tmp_path: Path) -> str:
    """A login made with `mallgate kiosk add` or `add-receiver`; its password."""
    result = CliRunner().invoke(main, ["kiosk", command, login, "--site", SITE,
                                       "--passwd-file", str(tmp_path / "passwd"),
                                       "--acl-file", str(tmp_path / "acl")])
    assert result.exit_code == 0, result.output
    return result.output.split("password ")[1].split()[0]


@pytest.fixture
def logins(tmp_path: Path) -> dict[str, str]:
    """The shipped ACL, kiosks and a receiver added with the CLI, the gateway's login."""
    (tmp_path / "acl").write_text(
        (ROOT / "config/mosquitto/acl").read_text().replace("{site}", SITE))
    passwords = {kid: add_login("add", kid, tmp_path) for kid in ("k1", "k2")}
    passwords["rx-1"] = add_login("add-receiver", "rx-1", tmp_path)
    gateway = f"gateway-{SITE}"
    passwords[gateway] = "gateway-secret"
    passwd = tmp_path / "passwd"
    passwd.write_text(with_password(passwd.read_text(), gateway, passwords[gateway]))
    return passwords


@pytest.fixture
async def secured(tmp_path: Path, logins: dict[str, str]) -> AsyncIterator[Mosquitto]:
    """mosquitto with the production ACL and password file, on a loopback port (no TLS)."""
    port = free_port()
    data = tmp_path / "broker"
    conf = "\n".join([
        f"listener {port} 127.0.0.1", "allow_anonymous false",
        f"password_file {tmp_path / 'passwd'}", f"acl_file {tmp_path / 'acl'}",
        "use_username_as_clientid true", "max_packet_size 16384", "set_tcp_nodelay true",
        "persistence false", "user root", f"log_dest file {data}/log",
    ]) + "\n"
    async with Mosquitto(port, data, config_text=conf) as broker:
        yield broker


@contextlib.asynccontextmanager
async def login(broker: Mosquitto, user: str, password: str,
                *subs: str) -> AsyncIterator[MqttLink]:
    cfg = LinkConfig(host="127.0.0.1", port=broker.port, client_id=user, username=user,
                     password=password, keepalive_s=5,
                     subscriptions=tuple((s, 1) for s in subs), reconnect_min_s=5)
    async with MqttLink(cfg) as link:
        yield link


async def test_a_kiosk_cannot_publish_into_another_kiosks_tree(
        secured: Mosquitto, logins: dict[str, str]) -> None:
    base = f"lty/v1/{SITE}/kiosk"
    gw = f"gateway-{SITE}"
    async with (login(secured, gw, logins[gw], f"{base}/+/req/+") as gateway,
                login(secured, "k1", logins["k1"], f"{base}/+/rsp", f"{base}/+/cmd/+") as k1):
        await asyncio.wait_for(gateway.connected.wait(), 10)
        await asyncio.wait_for(k1.connected.wait(), 10)
        # A PUBACK comes back only after the broker has handled what was sent before it,
        # so both subscriptions are in place after these.
        await gateway.published(gateway.publish(f"lty/v1/{SITE}/barrier", b"", qos=1))
        await k1.published(k1.publish(f"{base}/k1/evt/heartbeat", b"", qos=1))
        refused = await asyncio.wait_for(k1.published(
            k1.publish(f"{base}/k2/req/redeem", b"forged", qos=1)), 10)
        assert refused is not None and refused.value == 0x87  # Not authorized
        accepted = await asyncio.wait_for(k1.published(
            k1.publish(f"{base}/k1/req/redeem", b"own", qos=1)), 10)
        assert accepted is not None and not accepted.is_failure
        got = await asyncio.wait_for(gateway.receive(), 10)
        assert (got.topic, got.payload) == (f"{base}/k1/req/redeem", b"own")
        # Replies and commands for k2 never reach k1, though it subscribed to `+`.
        for topic in (f"{base}/k2/rsp", f"{base}/k2/cmd/offer.show", f"{base}/k1/rsp"):
            await gateway.published(gateway.publish(topic, topic.encode(), qos=1))
        only = await asyncio.wait_for(k1.receive(), 10)
        assert only.topic == f"{base}/k1/rsp"  # the two before it were not delivered


async def test_a_receiver_publishes_only_its_own_sightings(
        secured: Mosquitto, logins: dict[str, str]) -> None:
    base = f"lty/v1/{SITE}/receiver"
    gw = f"gateway-{SITE}"
    async with (login(secured, gw, logins[gw], f"{base}/+/adv") as gateway,
                login(secured, "rx-1", logins["rx-1"]) as rx):
        await asyncio.wait_for(gateway.connected.wait(), 10)
        await asyncio.wait_for(rx.connected.wait(), 10)
        await gateway.published(gateway.publish(f"lty/v1/{SITE}/barrier", b"", qos=1))
        refused = await asyncio.wait_for(rx.published(
            rx.publish(f"{base}/rx-2/adv", b"forged", qos=1)), 10)
        assert refused is not None and refused.value == 0x87  # Not authorized
        accepted = await asyncio.wait_for(rx.published(
            rx.publish(f"{base}/rx-1/adv", b"own", qos=1)), 10)
        assert accepted is not None and not accepted.is_failure
        got = await asyncio.wait_for(gateway.receive(), 10)
        assert (got.topic, got.payload) == (f"{base}/rx-1/adv", b"own")


async def test_a_wrong_password_is_refused(secured: Mosquitto, logins: dict[str, str]) -> None:
    async with login(secured, "k1", logins["k2"]) as k1:  # another kiosk's password
        await eventually(lambda: k1.stats.connect_failures >= 1)
        assert not k1.connected.is_set()


async def test_a_receiver_login_cannot_act_as_a_kiosk(
        secured: Mosquitto, logins: dict[str, str]) -> None:
    kiosks, receivers = f"lty/v1/{SITE}/kiosk", f"lty/v1/{SITE}/receiver"
    gw = f"gateway-{SITE}"
    async with (login(secured, gw, logins[gw], f"{kiosks}/+/req/+", f"{receivers}/+/adv")
                as gateway,
                login(secured, "rx-1", logins["rx-1"]) as rx,
                login(secured, "k1", logins["k1"]) as k1):
        for link in (gateway, rx, k1):
            await asyncio.wait_for(link.connected.wait(), 10)
        await gateway.published(gateway.publish(f"lty/v1/{SITE}/barrier", b"", qos=1))
        # A receiver asking to redeem in its own name, as if it were kiosk rx-1.
        forged = await asyncio.wait_for(rx.published(
            rx.publish(f"{kiosks}/rx-1/req/redeem", b"forged", qos=1)), 10)
        assert forged is not None and forged.value == 0x87  # Not authorized
        # A kiosk forging sightings.
        sighting = await asyncio.wait_for(k1.published(
            k1.publish(f"{receivers}/k1/adv", b"forged", qos=1)), 10)
        assert sighting is not None and sighting.value == 0x87
        # Each still does its own job, and the gateway sees only that.
        for link, topic in ((rx, f"{receivers}/rx-1/adv"), (k1, f"{kiosks}/k1/req/redeem")):
            own = await asyncio.wait_for(link.published(link.publish(topic, b"own", qos=1)), 10)
            assert own is not None and not own.is_failure
        got = {(m.topic, m.payload) for m in
               [await asyncio.wait_for(gateway.receive(), 10) for _ in range(2)]}
        assert got == {(f"{receivers}/rx-1/adv", b"own"), (f"{kiosks}/k1/req/redeem", b"own")}


def test_adding_a_login_puts_no_password_on_a_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    password = add_login("add", "k1", tmp_path)
    user, hashed = (tmp_path / "passwd").read_text().strip().split(":", 1)
    assert user == "k1" and hashed.startswith("$7$") and check_password(hashed, password)


@pytest.mark.skipif(os.geteuid() != 0, reason="hands the files to mosquitto only as root")
def test_as_root_the_files_go_to_the_broker_user(tmp_path: Path) -> None:
    add_login("add-receiver", "rx-1", tmp_path)
    broker = pwd.getpwnam("mosquitto")
    for name in ("passwd", "acl"):
        info = (tmp_path / name).stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (broker.pw_uid, 0o600), name


def test_one_id_cannot_hold_both_roles_and_old_patterns_are_refused(tmp_path: Path) -> None:
    add_login("add", "k1", tmp_path)
    add_login("add", "k1", tmp_path)  # renewing keeps one block
    assert (tmp_path / "acl").read_text().count("user k1\n") == 1
    args = ["--site", SITE, "--passwd-file", str(tmp_path / "passwd"),
            "--acl-file", str(tmp_path / "acl")]
    result = CliRunner().invoke(main, ["kiosk", "add-receiver", "k1", *args])
    assert result.exit_code == 1 and "already a kiosk login" in result.output
    (tmp_path / "acl").write_text("pattern write lty/v1/mall-a/kiosk/%u/req/+\n")
    result = CliRunner().invoke(main, ["kiosk", "add", "k2", *args])
    assert result.exit_code == 1 and "delete them" in result.output
