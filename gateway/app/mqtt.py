"""The shared MQTT part: the demo broker, one link and the router that kiosks and BLE
receivers register with.

Opened when `[kiosk]` is enabled or `[ble]` has remote receivers, with the broker settings
of `[kiosk]` (host, port, credentials, TLS, the embedded demo broker). It opens in two
steps around the devices' wiring: `mqtt_context` starts the broker and makes the link and
the router; the devices register their topics and handlers; `mqtt_link_context` then
connects, subscribing what they registered, and dispatches messages as the supervised part
`mqtt`, healthy while the broker is connected. Nothing is dispatched before every device
has registered, so a request queued in the persistent session is never taken for a stray.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator

from aiohttp import web

from devices.mqtt.broker import demo_broker
from devices.mqtt.contract import gateway_status
from devices.mqtt.metrics import router_families
from devices.mqtt.router import Router
from devices.mqtt.topics import gateway_status_topic
from devices.mqtt.transport import LinkConfig, MqttLink, Retained
from gateway.app.keys import LEDGER, METRICS, MQTT, SETTINGS
from gateway.app.supervisor import part_task
from gateway.loyalty.wire import to_text
from gateway.settings import Settings

log = logging.getLogger(__name__)


def link_config(settings: Settings, now_text: str) -> LinkConfig:
    k = settings.kiosk
    tls = ssl.create_default_context(cafile=k.ca_file) if k.tls else None
    status = gateway_status_topic(settings.site.mall_id)
    return LinkConfig(
        host="127.0.0.1" if k.broker == "embedded" else k.host, port=k.port,
        client_id=k.client_id or f"mallgate-{settings.site.gateway_id}",
        username=k.username,
        password=k.password.get_secret_value() if k.password else None,
        tls=tls, keepalive_s=k.keepalive_s, session_expiry_s=k.session_expiry_s,
        birth=Retained(status, gateway_status(True, now_text)),
        will=Retained(status, gateway_status(False, now_text)),
    )


class Mqtt:
    """What the devices' wiring reaches through `app[MQTT]`: the link to publish on and
    the router to register with."""

    def __init__(self, link: MqttLink, router: Router) -> None:
        self.link = link
        self.router = router


async def serve_link(mqtt: Mqtt) -> None:
    """The `mqtt` part's work: dispatch the link's messages until the link's session is
    taken over by another client with its id; then the part goes down with that reason,
    and each restart finds it so again, rather than take the session back in a loop."""
    link = mqtt.link
    if link.taken_over.is_set():
        raise link.takeover_error()
    dispatching = asyncio.create_task(mqtt.router.run(link), name="mqtt-dispatch")
    taken = asyncio.create_task(link.taken_over.wait(), name="mqtt-takeover")
    try:
        await asyncio.wait({dispatching, taken}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (dispatching, taken):
            task.cancel()
        await asyncio.wait({dispatching, taken})
    if not dispatching.cancelled():
        dispatching.result()  # the dispatcher ended first: its error is the part's
        return
    raise link.takeover_error()


def _link_check(link: MqttLink) -> str | None:
    if link.connected.is_set():
        return None
    return f"MQTT broker {link.config.host}:{link.config.port} not connected"


async def mqtt_context(app: web.Application) -> AsyncIterator[None]:
    """Before the devices: the demo broker, the link (not yet connected) and the router."""
    settings = app[SETTINGS]
    k = settings.kiosk
    async with contextlib.AsyncExitStack() as stack:
        if k.broker == "embedded":
            await stack.enter_async_context(
                demo_broker(k.port, k.embedded_dir.resolve(), k.embedded_broker))
        router = Router()
        link = MqttLink(link_config(settings, str(to_text(app[LEDGER].now()))),
                        subscriptions=lambda: router.subscriptions)
        app[MQTT] = Mqtt(link, router)
        app[METRICS].add(lambda: router_families(router))
        yield


async def mqtt_link_context(app: web.Application) -> AsyncIterator[None]:
    """After the devices: connect, subscribe what they registered, dispatch to them."""
    mqtt = app[MQTT]
    if not mqtt.router.routes:
        log.warning("MQTT link opened with no part to serve")
    async with (mqtt.link,
                part_task(app, "mqtt", lambda: serve_link(mqtt),
                          check=lambda: _link_check(mqtt.link))):
        yield
