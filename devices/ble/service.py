"""BLE proximity in the gateway: receivers in, arrivals out, welcome offers to kiosks.

Every advertisement, from a local scanner's callback or a remote receiver's batch, goes
through the pure pipeline on the event loop (parse, resolve, track). An arrival becomes a
task: the welcome decision (member, offers, cooldown) commits the visit and the showing,
and then `cmd/offer.show` goes to each of the zone's kiosks. A clock tick turns EID windows
and reports members gone silent; a slower loop reloads beacon keys that sync changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from devices.ble import const
from devices.ble.keyring import Keyring
from devices.ble.pipeline import Pipeline
from devices.ble.protocol import Advertisement
from devices.ble.proximity import Arrival, Exit
from devices.ble.remote import (
    ReceiverPayloadError,
    ReceiverTopics,
    decode_batch,
    decode_receiver_status,
)
from devices.ble.transport import ScannerReceiver
from devices.mqtt.contract import Contract
from devices.mqtt.limits import RateLimiter
from devices.mqtt.router import Router
from devices.mqtt.topics import level
from devices.mqtt.transport import Inbound
from gateway.loyalty.wire import to_text
from gateway.offers.welcome import Decision, Welcome
from gateway.settings.ble import BleSettings
from gateway.store import Reader

log = logging.getLogger(__name__)

OFFER_SHOW = "offer.show"
# lty/v1/{site}/receiver/{rid}/...: the level that names the receiver.
RID_LEVEL = 4
REFUSAL_LOG_INTERVAL_S = 60.0


class Commands(Protocol):
    """Where `cmd/...` messages to kiosks go: the kiosk service, handed in by the gateway's
    composition root (this package never imports the kiosk one)."""

    def command(self, kid: str, name: str, data: dict[str, Any], *, expiry_s: int) -> str: ...


@dataclass(slots=True)
class ReceiverState:
    zone: str
    online: bool | None = None  # from its retained status; None until one is seen
    batches: int = 0
    adverts: int = 0
    rejected: int = 0  # batches refused (bad payload)
    dropped: int = 0  # batches sampled out: over the rate limit or backlog, or retained
    last_seen: float | None = None
    warned_at: float = float("-inf")  # last refusal logged


@dataclass(slots=True)
class BleStats:
    adverts: Counter[str] = field(default_factory=Counter)  # by zone
    arrivals: int = 0
    exits: Counter[str] = field(default_factory=Counter)  # by reason
    unknown_receivers: int = 0  # batches from a receiver id not in the settings
    shows_published: int = 0
    decision_errors: int = 0
    # arrival detected -> last cmd/offer.show handed to the MQTT client, in seconds
    show_latencies: list[float] = field(default_factory=list)


class BleService:
    def __init__(self, *, settings: BleSettings, pipeline: Pipeline, keyring: Keyring,
                 reader: Reader, welcome: Welcome | None, commands: Commands | None,
                 topics: ReceiverTopics, contract: Contract,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.keyring = keyring
        self.reader = reader
        self.welcome = welcome
        self.commands = commands
        self.topics = topics
        self.contract = contract
        self.clock = clock
        self.stats = BleStats()
        self.receivers = {r.id: ReceiverState(r.zone) for r in settings.receivers}
        self.batch_limiter = RateLimiter(const.RECEIVER_BATCHES_PER_S,
                                         const.RECEIVER_BATCH_BURST)
        self.decisions: list[Decision] = []  # the most recent, newest last (dashboard)
        self.scanners: list[ScannerReceiver] = []  # local adapters, for their health
        self._tasks: set[asyncio.Task[None]] = set()

    # -- input ----------------------------------------------------------------------------

    def feed(self, advertisement: Advertisement, zone: str, at: float) -> None:
        """One advertisement heard in `zone` at `at` (Unix seconds); never raises."""
        self.stats.adverts[zone] += 1
        events = self.pipeline.feed(advertisement, zone, at)
        for event in events:
            if isinstance(event, Arrival):
                match = self.pipeline.last_match
                self._arrived(event, match.via if match else "eid")
            else:
                self._exited(event)

    def register(self, router: Router) -> None:
        """Take the remote receivers' batches and statuses from the shared MQTT link (QoS 0:
        a lost batch is replaced by the next). Each receiver's batches are one bounded
        lane: handled in order, one at a time, yielding to kiosk requests between them,
        and dropped (counted) when the gateway is behind."""
        rid = level(RID_LEVEL)
        batches, statuses = self.topics.subscriptions
        router.add("ble", batches, 0, self.handle, lane=rid, backlog=const.RECEIVER_BACKLOG,
                   on_drop=self._dropped)
        router.add("ble", statuses, 0, self.handle, lane=rid, retained=True)

    def _dropped(self, message: Inbound, why: str) -> None:
        where = self.topics.parse(message.topic)
        state = self.receivers.get(where[0]) if where is not None else None
        if state is not None:
            state.dropped += 1

    async def handle(self, message: Inbound) -> None:
        """A message on a remote receiver's topic."""
        where = self.topics.parse(message.topic)
        state = self.receivers.get(where[0]) if where is not None else None
        if where is None or state is None:
            self.stats.unknown_receivers += 1
            return  # the ACL lets only configured receivers publish; nothing to keep
        rid, kind = where
        now = self.clock()
        state.last_seen = now
        try:
            if kind == "status":
                state.online = decode_receiver_status(self.contract, rid,
                                                      message.payload).online
                return
            if not self.batch_limiter.allow(rid, time.monotonic()):
                state.dropped += 1  # sampled: sightings may be, presence survives it
                return
            batch = decode_batch(self.contract, rid, message.payload, received_at=now)
        except ReceiverPayloadError as bad:
            state.rejected += 1
            # A broken receiver sends several batches a second: every one is counted, one
            # a minute is logged.
            if now - state.warned_at >= REFUSAL_LOG_INTERVAL_S:
                state.warned_at = now
                log.warning("receiver %s: message refused (%s so far): %s %s", rid,
                            state.rejected, bad.code, bad.msg)
            return
        state.batches += 1
        state.adverts += len(batch.sightings)
        for advertisement, at in batch.sightings:
            self.feed(advertisement, state.zone, at)

    # -- loops ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Tick and reload keys until cancelled (receivers are run by the caller)."""
        await self.refresh_keys()
        ticks = asyncio.create_task(self._tick_loop(), name="ble-tick")
        try:
            while True:
                await asyncio.sleep(self.settings.key_refresh_s)
                try:
                    await self.refresh_keys()
                except Exception:
                    log.exception("reloading beacon keys failed; retrying later")
        finally:
            ticks.cancel()
            for task in list(self._tasks):
                task.cancel()

    async def refresh_keys(self) -> int:
        now = self.clock()
        return await self.reader.run(lambda conn: self.keyring.refresh(conn, now))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_s)
            for event in self.pipeline.tick(self.clock()):
                self._exited(event)

    async def settle(self) -> None:
        """Wait until every arrival seen so far is decided and its offer published."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- arrivals -------------------------------------------------------------------------

    def _arrived(self, arrival: Arrival, via: str) -> None:
        self.stats.arrivals += 1
        task = asyncio.create_task(self._decide(arrival, via, time.perf_counter()),
                                   name="ble-arrival")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _exited(self, exit_: Exit) -> None:
        self.stats.exits[exit_.reason] += 1

    async def _decide(self, arrival: Arrival, via: str, detected: float) -> None:
        if self.welcome is None:
            return
        at = datetime.fromtimestamp(arrival.at, UTC)
        try:
            decision = await self.welcome.arrive(arrival.member_id, arrival.zone, at, via)
        except Exception:
            # The member is still inside; a later arrival (after an exit) decides again.
            self.stats.decision_errors += 1
            log.exception("welcome decision for an arrival in %s failed", arrival.zone)
            return
        self.decisions = [*self.decisions[-49:], decision]
        if decision.offer is None or self.commands is None:
            return
        data = show_data(decision)
        for kid in decision.kiosks:
            self.commands.command(kid, OFFER_SHOW, data,
                                  expiry_s=self.settings.welcome.show_expiry_s)
            self.stats.shows_published += 1
        latencies = self.stats.show_latencies
        latencies.append(time.perf_counter() - detected)
        del latencies[:-1000]


def show_data(decision: Decision) -> dict[str, Any]:
    """The `data` of `cmd/offer.show`: enough for the kiosk to greet the member by tier and
    name (masked) and to claim the offer with `offer.claim`."""
    offer, member = decision.offer, decision.member
    assert offer is not None and member is not None  # noqa: S101 - only called for a shown offer
    definition = offer.definition
    return {
        "offer_id": offer.id,
        "zone": decision.zone,
        "member": {"member_id": member.member_id, "display_name": member.display_name,
                   "tier": member.tier},
        "title": definition.title,
        "message": definition.message,
        "reward": definition.reward.description if definition.reward else None,
        "claim_until": to_text(decision.claim_until),
    }
