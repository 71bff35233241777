"""The shipped broker configuration (config/mosquitto/mallgate.conf) with its TLS listener,
in a real mosquitto: kiosks over TLS with their logins, the gateway over TLS by settings,
and clients that do not trust the broker's certificate, or speak plaintext, kept out."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from devices.kiosk.sim import KioskClient
from devices.mqtt.broker import Mosquitto
from devices.mqtt.passwd import with_password
from devices.mqtt.transport import LinkConfig, MqttLink
from gateway.cli import main
from gateway.settings import Settings
from tests.certs import make_ca, make_server_cert
from tests.conftest import free_port
from tests.kiosk.helpers import TOPICS, eventually, kiosk_settings_data, running_gateway

ROOT = Path(__file__).resolve().parents[2]
SITE = "test-mall"  # the helpers' site


def shipped_config(tmp_path: Path, plain_port: int, tls_port: int) -> str:
    """config/mosquitto/mallgate.conf with this test's ports and paths."""
    text = (ROOT / "config/mosquitto/mallgate.conf").read_text()
    for old, new in (("listener 1883 127.0.0.1", f"listener {plain_port} 127.0.0.1"),
                     ("listener 8883", f"listener {tls_port} 127.0.0.1"),
                     ("/etc/mosquitto/mallgate/certs/", f"{tmp_path}/"),
                     ("/etc/mosquitto/mallgate/", f"{tmp_path}/"),
                     ("/var/lib/mosquitto/", f"{tmp_path}/data/"),
                     ("log_dest syslog", f"log_dest file {tmp_path}/data/log\nuser root")):
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture
def logins(tmp_path: Path) -> dict[str, str]:
    """The broker's certificates, a kiosk login made with `mallgate kiosk add` and the
    gateway's; passwords by login."""
    ca_key, ca = make_ca(tmp_path, "ca")
    make_server_cert(tmp_path, ca_key, ca)
    (tmp_path / "acl").write_text(
        (ROOT / "config/mosquitto/acl").read_text().replace("{site}", SITE))
    result = CliRunner().invoke(main, ["kiosk", "add", "k1", "--site", SITE,
                                       "--passwd-file", str(tmp_path / "passwd"),
                                       "--acl-file", str(tmp_path / "acl")])
    assert result.exit_code == 0, result.output
    gateway = f"gateway-{SITE}"
    passwd = tmp_path / "passwd"
    passwd.write_text(with_password(passwd.read_text(), gateway, "gateway-secret"))
    return {"k1": result.output.split("password ")[1].split()[0], gateway: "gateway-secret"}


@pytest.fixture
async def tls_port(tmp_path: Path, logins: dict[str, str]) -> AsyncIterator[int]:
    """The shipped configuration running; its TLS listener's port."""
    (tmp_path / "data").mkdir()
    plain, tls = free_port(), free_port()
    async with Mosquitto(plain, tmp_path / "data",
                         config_text=shipped_config(tmp_path, plain, tls)):
        yield tls


def trusting(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


async def test_kiosks_and_the_gateway_talk_over_tls(
        tls_port: int, logins: dict[str, str], tmp_path: Path) -> None:
    port, gateway = tls_port, f"gateway-{SITE}"
    settings = Settings.model_validate_json(json.dumps(kiosk_settings_data(
        tmp_path, port, tls=True, ca_file=str(tmp_path / "ca.crt"), username=gateway,
        password=logins[gateway])))
    config = replace(KioskClient.config(TOPICS, "k1", "127.0.0.1", port, username="k1",
                                        password=logins["k1"]),
                     tls=trusting(tmp_path / "ca.crt"))
    async with running_gateway(settings), MqttLink(config) as link:
        await asyncio.wait_for(link.connected.wait(), 10)
        k1 = KioskClient(link, TOPICS, "k1")
        try:
            reply = await k1.request("member.identify", {"by": "card", "value": "DEMO0001"})
        finally:
            await k1.close()
    assert reply["status"] == "ok" and reply["data"]["member_id"] == "m-demo-0001"


@pytest.mark.parametrize("client", ["untrusting", "plaintext"])
async def test_an_untrusted_or_plaintext_client_is_kept_out(
        tls_port: int, logins: dict[str, str], tmp_path: Path, client: str) -> None:
    make_ca(tmp_path, "stranger")
    config = KioskClient.config(TOPICS, "k1", "127.0.0.1", tls_port, username="k1",
                                password=logins["k1"])
    if client == "untrusting":
        config = replace(config, tls=trusting(tmp_path / "stranger.crt"))
    async with MqttLink(config) as link:
        await eventually(lambda: link.stats.connect_failures >= 1)
        assert not link.connected.is_set()
        assert link.stats.last_error


async def test_a_crowd_on_the_kiosk_port_never_locks_out_the_gateway(
        tmp_path: Path, logins: dict[str, str]) -> None:
    (tmp_path / "data").mkdir()
    plain, tls = free_port(), free_port()
    gateway = f"gateway-{SITE}"
    crowd: list[asyncio.StreamWriter] = []
    async with Mosquitto(plain, tmp_path / "data",
                         config_text=shipped_config(tmp_path, plain, tls)):
        try:
            for _ in range(510):  # idle, never starting TLS: more than the port allows
                crowd.append((await asyncio.open_connection("127.0.0.1", tls))[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", tls)
            crowd.append(writer)
            assert await asyncio.wait_for(reader.read(1), 5) == b""  # closed by the broker
            config = LinkConfig(host="127.0.0.1", port=plain, client_id=gateway,
                                username=gateway, password=logins[gateway], keepalive_s=5,
                                reconnect_min_s=1)
            async with MqttLink(config) as link:
                await asyncio.wait_for(link.connected.wait(), 10)
        finally:
            for writer in crowd:
                writer.close()
