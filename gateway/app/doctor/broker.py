"""Check of the MQTT broker: reachable, and the gateway's login accepted (MQTT v5 CONNACK).

A login is a session: brokers key it by client id, and the production mosquitto by user
name (`use_username_as_clientid`). While the gateway runs, logging in as it would take its
session over, so the doctor then only asks whether the broker answers, without
credentials. Otherwise it connects exactly as the gateway does (its client id, clean start
off, its session expiry, nothing subscribed or acknowledged) and disconnects: the
gateway's persistent session and the requests queued in it are left as they were.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.app.doctor.model import Finding, Result
from gateway.settings import Settings
from gateway.store.lock import holder, is_locked

NAME = "broker"
_BAD_LOGIN = {0x86, 0x87}  # bad user name or password, not authorized


def _connect(host: str, port: int, settings: Settings, timeout_s: float, *,
             login: bool) -> ReasonCode | str:
    """The CONNACK's reason code, or why there was none."""
    k = settings.kiosk
    client_id = (k.client_id or f"mallgate-{settings.site.gateway_id}" if login
                 else f"mallgate-doctor-{os.getpid()}")
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
    if login and k.username is not None:
        client.username_pw_set(k.username, k.password.get_secret_value() if k.password else None)
    if k.tls:
        client.tls_set_context(ssl.create_default_context(cafile=k.ca_file))
    answer: list[ReasonCode | str] = []
    client.on_connect = lambda _c, _u, _f, code, _p: answer.append(code)
    client.on_disconnect = lambda _c, _u, _f, code, _p: answer.append(f"closed ({code})")
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = k.session_expiry_s if login else 0
    try:
        client.connect(host, port, keepalive=10, clean_start=not login, properties=properties)
    except (OSError, ssl.SSLError) as exc:
        return str(exc)
    deadline = time.monotonic() + timeout_s
    try:
        while not answer and time.monotonic() < deadline:
            client.loop(timeout=0.1)
    finally:
        client.disconnect()
    return answer[0] if answer else f"no CONNACK within {timeout_s:g} s"


async def broker(settings: Settings, timeout_s: float) -> list[Finding]:
    k = settings.kiosk
    if not (k.enabled or (settings.ble.enabled and settings.ble.receivers)):
        return [Finding(NAME, Result.SKIP, "no part talks MQTT ([kiosk] and remote BLE "
                                           "receivers are off)")]
    host = "127.0.0.1" if k.broker == "embedded" else k.host
    where = f"{'mqtts' if k.tls else 'mqtt'}://{host}:{k.port}"
    running = holder(settings.store.path) if is_locked(settings.store.path) else None
    answer = await asyncio.to_thread(_connect, host, k.port, settings, timeout_s,
                                     login=running is None)
    if isinstance(answer, str):
        if k.broker == "embedded":
            return [Finding(NAME, Result.SKIP, f"{where}: the embedded broker is started by "
                                               f"the gateway and is not running ({answer})")]
        return [Finding(NAME, Result.FAIL, f"{where} unreachable: {answer}",
                        "is mosquitto running (systemctl status mosquitto)? check [kiosk] "
                        "host, port and tls against its listener, and the firewall")]
    return [_verdict(settings, where, answer, running)]


def _verdict(settings: Settings, where: str, answer: ReasonCode, running: int | None,
             ) -> Finding:
    k = settings.kiosk
    if running is not None:
        return Finding(NAME, Result.OK, f"{where} answers MQTT v5; login not tried: the "
                       f"running gateway (PID {running}) holds it (see its /readyz)")
    if answer.value in _BAD_LOGIN:
        who = k.username or "(anonymous)"
        return Finding(NAME, Result.FAIL, f"{where} refused the login of {who}: {answer}",
                       "check [kiosk] username and MALLGATE__KIOSK__PASSWORD against the "
                       "broker's password file (mosquitto_passwd), and the user's ACL")
    if answer.is_failure:
        return Finding(NAME, Result.FAIL, f"{where} refused the connection: {answer}",
                       "read the broker's log for why it refused the client")
    who = f" as {k.username}" if k.username else " anonymously"
    return Finding(NAME, Result.OK, f"{where}: MQTT v5 login accepted{who}")
