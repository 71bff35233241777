"""The kiosk part: the demo broker, the MQTT link and the kiosk service."""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator

from aiohttp import web

from devices.ble.remote import ReceiverTopics
from devices.kiosk import const
from devices.kiosk.limits import RateLimiter
from devices.kiosk.metrics import kiosk_families
from devices.kiosk.ops import IdentityKeys, Operations
from devices.kiosk.protocol import Topics, default_contract
from devices.kiosk.service import KioskService
from devices.mqtt.broker import Mosquitto
from devices.mqtt.contract import gateway_status
from devices.mqtt.transport import LinkConfig, MqttLink, Retained
from gateway.app.keys import CENTRAL, KIOSK, LEDGER, METRICS, READER, SETTINGS, WRITER
from gateway.app.supervisor import part_task
from gateway.ledger.codec import to_text
from gateway.settings import Settings

log = logging.getLogger(__name__)


def link_config(settings: Settings, topics: Topics, now_text: str) -> LinkConfig:
    k = settings.kiosk
    tls = ssl.create_default_context(cafile=k.ca_file) if k.tls else None
    return LinkConfig(
        host="127.0.0.1" if k.broker == "embedded" else k.host, port=k.port,
        client_id=k.client_id or f"mallgate-{settings.site.gateway_id}",
        username=k.username,
        password=k.password.get_secret_value() if k.password else None,
        tls=tls, keepalive_s=k.keepalive_s, session_expiry_s=k.session_expiry_s,
        subscriptions=(
            *((topic, const.QOS_REQUEST) for topic in topics.subscriptions),
            # BLE remote receivers' sightings (QoS 0) and statuses, when there are any
            *((topic, 0) for topic in receiver_subscriptions(settings))),
        birth=Retained(topics.gateway_status, gateway_status(True, now_text)),
        will=Retained(topics.gateway_status, gateway_status(False, now_text)),
    )


def receiver_subscriptions(settings: Settings) -> tuple[str, ...]:
    if not (settings.ble.enabled and settings.ble.receivers):
        return ()
    return ReceiverTopics(settings.site.mall_id).subscriptions


def identity_keys(settings: Settings) -> IdentityKeys:
    k = settings.kiosk
    return IdentityKeys(
        qr_key=k.qr_key.get_secret_value().encode("utf-8") if k.qr_key else None,
        phone_key=(k.phone_hash_key.get_secret_value().encode("utf-8")
                   if k.phone_hash_key else None),
        skew_s=k.clock_skew_s)


def _link_check(link: MqttLink) -> str | None:
    if link.connected.is_set():
        return None
    return f"MQTT broker {link.config.host}:{link.config.port} not connected"


async def kiosk_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    k = settings.kiosk
    ledger, writer = app[LEDGER], app[WRITER]
    async with contextlib.AsyncExitStack() as stack:
        if k.broker == "embedded":
            await stack.enter_async_context(Mosquitto(k.port, k.embedded_dir.resolve()))
        topics = Topics(settings.site.mall_id)
        link = await stack.enter_async_context(
            MqttLink(link_config(settings, topics, str(to_text(ledger.now())))))
        service = KioskService(
            link=link, topics=topics, contract=default_contract(), writer=writer,
            ops=Operations(ledger=ledger, reader=app[READER], writer=writer,
                           keys=identity_keys(settings),
                           central_online=app[CENTRAL].online,
                           claim_days=settings.pos.claim_days,
                           site=settings.site.gateway_id,
                           offer_claim_s=settings.ble.welcome.claim_s),
            limiter=RateLimiter(k.rate_per_s, k.rate_burst),
            max_payload_bytes=k.max_payload_bytes)
        app[KIOSK] = service
        app[METRICS].add(lambda: kiosk_families(service))
        await stack.enter_async_context(part_task(app, "kiosk", service.run,
                                                  check=lambda: _link_check(link)))
        yield
