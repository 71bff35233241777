"""The gateway side of the kiosk link: messages in, validated, served, replied, then acked.

For each request: rate limit, validate against the contract, run the operation (its reply
committed with its effect), publish the reply, and only then return to the router, which
sends the PUBACK. If the
gateway dies anywhere before the PUBACK, the broker redelivers the request and the stored
reply answers it, so the effect happens exactly once. Input that fails validation is kept
raw in `dead_letters` with its reason, answered with a clear error, and the service keeps
serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from devices.kiosk import const
from devices.kiosk.limits import RateLimiter
from devices.kiosk.protocol import (
    KioskContract,
    KioskError,
    ProtocolError,
    Topics,
    decode_event,
    decode_request,
    decode_status,
    error_reply,
)
from devices.mqtt.contract import encode
from devices.mqtt.router import Router
from devices.mqtt.topics import level
from devices.mqtt.transport import Inbound, MqttLink
from gateway.deadletters import keep_with
from gateway.ids import new_ulid
from gateway.loyalty.wire import to_text
from gateway.operations.model import Reply
from gateway.operations.service import Operations
from gateway.store import Writer

log = logging.getLogger(__name__)
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
DEAD_LETTER_SOURCE = "kiosk"
# lty/v1/{site}/kiosk/{kid}/...: the level that names the kiosk.
KID_LEVEL = 4
# The dead-letter limit of messages outside the kiosk tree, which name no kiosk.
UNCLAIMED_SENDER = "(unclaimed)"


@dataclass(slots=True)
class KioskState:
    online: bool
    boot: int | None
    since: datetime
    last_seen: datetime


@dataclass(slots=True)
class KioskStats:
    requests: int = 0
    replied: int = 0
    retries: int = 0  # requests answered from a stored reply
    rejected: Counter[str] = field(default_factory=Counter)  # by error code
    dead_letters: int = 0
    dead_letters_dropped: int = 0  # bad messages over the kiosk's dead-letter limit: not kept
    events: int = 0
    events_dropped: int = 0  # events over the kiosk's event rate limit
    commands: int = 0  # commands published to kiosks (offer.show, ...)


class KioskService:
    def __init__(self, *, link: MqttLink, ops: Operations, topics: Topics,
                 contract: KioskContract,
                 writer: Writer, limiter: RateLimiter, max_payload_bytes: int) -> None:
        self.link = link
        self.ops = ops
        self.topics = topics
        self.contract = contract
        self.writer = writer
        self.limiter = limiter
        self.max_payload_bytes = max_payload_bytes
        self.kiosks: dict[str, KioskState] = {}
        self.stats = KioskStats()
        # Per kiosk: events apart from requests, and what a kiosk's bad messages may write.
        self.event_limiter = RateLimiter(const.EVENT_RATE_PER_S, const.EVENT_BURST)
        self.dead_letter_limiter = RateLimiter(const.DEAD_LETTER_RATE_PER_S,
                                               const.DEAD_LETTER_BURST)

    def register(self, router: Router) -> None:
        """Take every kiosk's requests, events and status from the shared link, and keep
        what no part claims as a dead letter."""
        # One lane per kiosk and kind: a kiosk's requests are answered in the order it sent
        # them, while other kiosks are served (and their writes committed) alongside.
        kid = level(KID_LEVEL)
        requests, events, status = self.topics.subscriptions
        router.add("kiosk", requests, const.QOS_REQUEST, self.handle, lane=kid)
        router.add("kiosk", events, const.QOS_REQUEST, self.handle, lane=kid)
        router.add("kiosk", status, const.QOS_REQUEST, self.handle, lane=kid, retained=True)
        router.unclaimed = self.unclaimed

    def command(self, kid: str, name: str, data: dict[str, Any], *, expiry_s: int) -> str:
        """Publish command `name` (e.g. "offer.show") to kiosk `kid`, QoS 1 with a message
        expiry (a command is stale after it); returns the command's id."""
        command_id = new_ulid()
        message = {"v": 1, "id": command_id, "ts": to_text(self.ops.ledger.now()),
                   "data": data}
        self.link.publish(self.topics.command(kid, name), encode(message),
                          qos=const.QOS_REQUEST, expiry_s=expiry_s)
        self.stats.commands += 1
        return command_id

    async def run(self) -> None:
        """Prune stored replies until cancelled (messages come from the router)."""
        await self._prune_replies()

    async def _prune_replies(self) -> None:
        """Forget stored replies after the retention: a retry that late is a new request,
        and the ledger's own idempotency (entry ids from the request) still applies it once."""
        while True:
            cutoff = to_text(self.ops.ledger.now() - timedelta(seconds=const.REPLY_RETENTION_S))
            removed = await self.writer.submit(partial(_delete_replies_before, cutoff))
            if removed:
                log.info("forgot %s kiosk replies older than %s", removed, cutoff)
            await asyncio.sleep(const.PRUNE_INTERVAL_S)

    async def handle(self, message: Inbound) -> None:
        """One message of the kiosk tree; the router acknowledges it once this returns."""
        where = self.topics.parse(message.topic)
        now = self.ops.ledger.now()
        if where is None:
            await self.unclaimed(message)
            return
        if where.kind == "status":
            await self._status(where.kid, message, now)
        elif where.kind == "evt":
            self.stats.events += 1
            if not self.event_limiter.allow(where.kid, time.monotonic()):
                self.stats.events_dropped += 1
                return
            try:
                decode_event(self.contract, where.name, message.payload)
            except ProtocolError as bad:
                await self._dead_letter(message, bad, now, where.kid)
                return
            self._seen(where.kid, now)
        else:
            await self._request(where.kid, where.name, message, now)

    async def _request(self, kid: str, op: str, message: Inbound, now: datetime) -> None:
        self.stats.requests += 1
        self._seen(kid, now)
        if not self.limiter.allow(kid, time.monotonic()):
            self.stats.rejected["rate_limited"] += 1
            request_id = _quick_id(message.payload)
            self._reply(kid, error_reply(request_id, KioskError(
                "rate_limited", "too many requests from this kiosk; retry shortly")),
                message.correlation)
            return
        try:
            request = decode_request(self.contract, kid, op, message.payload,
                                     max_bytes=self.max_payload_bytes)
        except ProtocolError as bad:
            await self._dead_letter(message, bad, now, kid)
            self._reply(kid, error_reply(bad.request_id, bad), message.correlation)
            return
        try:
            reply, retry = await self.ops.handle(request.operation())
        except Exception as exc:
            log.exception("kiosk %s %s failed", kid, op)
            reply, retry = error_reply(request.id, KioskError(
                "internal", f"the gateway could not serve this request ({type(exc).__name__}); "
                "retry with the same id")), False
        self.stats.retries += retry
        if reply["status"] == "error":
            self.stats.rejected[reply["error"]["code"]] += 1
        self._reply(kid, reply, request.id.encode())

    def _reply(self, kid: str, reply: Reply, correlation: bytes | None) -> None:
        self.stats.replied += 1
        self.link.publish(self.topics.reply(kid), encode(reply), qos=const.QOS_REPLY,
                          expiry_s=const.REPLY_EXPIRY_S, correlation=correlation)

    async def _status(self, kid: str, message: Inbound, now: datetime) -> None:
        try:
            status = decode_status(kid, message.payload, self.contract)
        except ProtocolError as bad:
            await self._dead_letter(message, bad, now, kid)
            return
        previous = self.kiosks.get(kid)
        if previous is None or previous.online != status.online:
            log.info("kiosk %s %s (boot %s)", kid, "online" if status.online else "offline",
                     status.boot)
            self.kiosks[kid] = KioskState(status.online, status.boot, now, now)
        else:
            previous.boot, previous.last_seen = status.boot, now

    async def unclaimed(self, message: Inbound) -> None:
        """A message outside the kiosk tree that no other part took: a dead letter."""
        await self._dead_letter(message, ProtocolError(
            "invalid_payload", f"not a kiosk topic: {message.topic[:200]}"),
            self.ops.ledger.now(), UNCLAIMED_SENDER)

    def _seen(self, kid: str, now: datetime) -> None:
        state = self.kiosks.get(kid)
        if state is not None:
            state.last_seen = now

    async def _dead_letter(self, message: Inbound, error: KioskError, now: datetime,
                           sender: str) -> None:
        self.stats.rejected[error.code] += 1
        if not self.dead_letter_limiter.allow(sender, time.monotonic()):
            # Counted, not kept: the dead letters already kept show what this sender sends.
            self.stats.dead_letters_dropped += 1
            return
        self.stats.dead_letters += 1
        await keep_with(self.writer, source=DEAD_LETTER_SOURCE, raw=message.payload,
                        code=error.code, error=error.msg, context={"topic": message.topic},
                        at=to_text(now) or "")
        log.warning("kiosk message on %s refused: %s %s", message.topic[:200], error.code,
                    error.msg)


def _delete_replies_before(cutoff: str | None, conn: sqlite3.Connection) -> int:
    return conn.execute("DELETE FROM kiosk_requests WHERE created_at < ?", (cutoff,)).rowcount


def _quick_id(payload: bytes) -> str | None:
    """The request id for a rate-limited reply, without validating the whole request."""
    if len(payload) > const.MAX_PAYLOAD_BYTES:
        return None
    try:
        value = json.loads(payload).get("id")
    except (ValueError, AttributeError, RecursionError):
        return None
    return value if isinstance(value, str) and _ULID.match(value) else None
