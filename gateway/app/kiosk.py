"""The kiosk part: the kiosk service, registered with the shared MQTT link's router."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from devices.kiosk.limits import RateLimiter
from devices.kiosk.metrics import kiosk_families
from devices.kiosk.protocol import REPLIES, Topics, default_contract
from devices.kiosk.service import KioskService
from gateway.app.keys import CENTRAL, KIOSK, LEDGER, METRICS, MQTT, READER, SETTINGS, WRITER
from gateway.app.supervisor import part_task
from gateway.coupons import CouponIssuer
from gateway.members import IdentityKeys
from gateway.operations.service import Operations
from gateway.operations.sessions import Sessions, session_key
from gateway.settings import Settings

log = logging.getLogger(__name__)


def identity_keys(settings: Settings) -> IdentityKeys:
    k = settings.kiosk
    return IdentityKeys(
        qr_key=k.qr_key.get_secret_value().encode("utf-8") if k.qr_key else None,
        phone_key=(k.phone_hash_key.get_secret_value().encode("utf-8")
                   if k.phone_hash_key else None),
        skew_s=k.clock_skew_s)


def coupon_issuer(settings: Settings) -> CouponIssuer:
    site = settings.site
    key = site.coupon_key.get_secret_value().encode("utf-8") if site.coupon_key else None
    return CouponIssuer.for_run(site.mall_id, site.gateway_id, key)


async def kiosk_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    k = settings.kiosk
    ledger, writer, mqtt = app[LEDGER], app[WRITER], app[MQTT]
    key = await writer.submit(lambda conn: session_key(conn, ledger.now()))
    service = KioskService(
        link=mqtt.link, topics=Topics(settings.site.mall_id), contract=default_contract(),
        writer=writer,
        ops=Operations(ledger=ledger, reader=app[READER], writer=writer,
                       keys=identity_keys(settings), replies=REPLIES,
                       central_online=app[CENTRAL].online,
                       claim_days=settings.pos.claim_days,
                       sessions=Sessions(key, k.session_s),
                       site=settings.site.gateway_id,
                       offer_claim_s=settings.ble.welcome.claim_s,
                       enrolment=app[CENTRAL].enrolment,
                       coupons=coupon_issuer(settings)),
        limiter=RateLimiter(k.rate_per_s, k.rate_burst),
        max_payload_bytes=k.max_payload_bytes)
    service.register(mqtt.router)
    app[KIOSK] = service
    app[METRICS].add(lambda: kiosk_families(service))
    # The part prunes stored replies; the `mqtt` part serves the requests.
    async with part_task(app, "kiosk", service.run):
        yield
