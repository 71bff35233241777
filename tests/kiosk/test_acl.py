"""The shipped ACL (config/mosquitto/acl) in a real mosquitto: each kiosk only its own tree."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from devices.mqtt.broker import Mosquitto
from devices.mqtt.transport import LinkConfig, MqttLink
from gateway.cli import main
from tests.conftest import free_port
from tests.kiosk.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
SITE = "mall-a"


@pytest.fixture
def logins(tmp_path: Path) -> dict[str, str]:
    """Kiosk logins made with `mallgate kiosk add`, the gateway's with mosquitto_passwd."""
    passwd = tmp_path / "passwd"
    passwords = {}
    for kid in ("k1", "k2", "rx-1"):
        result = CliRunner().invoke(main, ["kiosk", "add", kid, "--passwd-file", str(passwd)])
        assert result.exit_code == 0, result.output
        passwords[kid] = result.output.split("password ")[1].split()[0]
    gateway = f"gateway-{SITE}"
    passwords[gateway] = "gateway-secret"
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), gateway, passwords[gateway]],
                   check=True, capture_output=True)
    return passwords


@pytest.fixture
async def secured(tmp_path: Path, logins: dict[str, str]) -> AsyncIterator[Mosquitto]:
    """mosquitto with the production ACL and password file, on a loopback port (no TLS)."""
    acl = tmp_path / "acl"
    acl.write_text((ROOT / "config/mosquitto/acl").read_text().replace("{site}", SITE))
    port = free_port()
    data = tmp_path / "broker"
    conf = "\n".join([
        f"listener {port} 127.0.0.1", "allow_anonymous false",
        f"password_file {tmp_path / 'passwd'}", f"acl_file {acl}",
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
