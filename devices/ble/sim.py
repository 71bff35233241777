"""`mallgate sim ble`'s engine: a `Scenario`'s receivers publishing through a real broker.

`publish_scenario` plays the batches of a `devices.ble.scenario.Scenario` through the
broker, one MQTT client per receiver (with a retained birth and a Last Will, as a real
node), QoS 0, paced by the event loop's clock; `summary` says what was sent and where each
member lingered, which is where the gateway should greet them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import paho.mqtt.client as paho

from devices.ble.remote import ReceiverTopics, encode_batch, encode_receiver_status
from devices.ble.scenario import (
    Batch,
    Heard,
    Leg,
    Scenario,
    ScenarioConfig,
    SimReceiver,
    Visit,
    eid_ad,
    ibeacon_ad,
)
from devices.mqtt.transport import LinkConfig, MqttLink, Retained

# The simulator's whole surface in one place: the scenario's pieces are re-exported.
__all__ = [
    "Batch", "Heard", "Leg", "Pacer", "PublishStats", "Scenario", "ScenarioConfig",
    "SimReceiver", "Visit", "eid_ad", "ibeacon_ad", "progress_line", "publish_scenario",
    "receiver_link_config", "rfc3339", "summary",
]


def rfc3339(at: float) -> str:
    """A batch's `ts`: Unix seconds as an RFC 3339 UTC time with milliseconds."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


class Pacer:
    """Scenario time on the event loop's clock: `speed` scenario seconds per real second.

    At speed 1 with the scenario started at the wall clock's now, scenario time is wall
    time, which is what a gateway stamping adverts with its own clock expects.
    """

    def __init__(self, start: float, *, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start = start
        self.speed = speed
        self._loop = asyncio.get_running_loop()
        self._origin = self._loop.time()

    def now(self) -> float:
        """The scenario time now."""
        return self.start + (self._loop.time() - self._origin) * self.speed

    async def sleep_until(self, at: float) -> None:
        # always yield: paho writes queued messages only when the loop gets control
        await asyncio.sleep(max(0.0, (at - self.now()) / self.speed))


@dataclass(slots=True)
class PublishStats:
    batches: int = 0
    adverts: int = 0
    dropped: int = 0  # batches paho refused while the broker was away (QoS 0: lost)
    by_kind: Counter[str] = field(default_factory=Counter)
    last_sent_at: float | None = None  # scenario time of the last batch published


def receiver_link_config(topics: ReceiverTopics, rid: str, host: str, port: int, *,
                         username: str | None = None, password: str | None = None,
                         boot: int = 1) -> LinkConfig:
    """A receiver's MQTT client: retained birth and Will on its status topic, no session."""
    status = topics.status(rid)
    return LinkConfig(
        host=host, port=port, client_id=f"receiver-{rid}", username=username,
        password=password, keepalive_s=15, session_expiry_s=0,
        birth=Retained(status, encode_receiver_status(True, boot=boot, version="mallgate-sim")),
        will=Retained(status, encode_receiver_status(False, boot=boot)),
        reconnect_min_s=0.1, reconnect_max_s=2.0)


async def publish_scenario(scenario: Scenario, *, host: str, port: int, site: str,
                           username: str | None = None, password: str | None = None,
                           pacer: Pacer | None = None, stats: PublishStats | None = None,
                           connect_timeout_s: float = 10.0) -> PublishStats:
    """Publish the scenario's batches as its receivers would, in scenario time.

    Raises `ConnectionError` when a receiver cannot connect within `connect_timeout_s`.
    """
    topics = ReceiverTopics(site)
    stats = stats if stats is not None else PublishStats()
    async with contextlib.AsyncExitStack() as stack:
        links: dict[str, MqttLink] = {}
        for receiver in scenario.config.receivers:
            config = receiver_link_config(topics, receiver.rid, host, port, username=username,
                                          password=password)
            links[receiver.rid] = await stack.enter_async_context(MqttLink(config))
        try:
            async with asyncio.timeout(connect_timeout_s):
                for link in links.values():
                    await link.connected.wait()
        except TimeoutError:
            error = next((link.stats.last_error for link in links.values()
                          if link.stats.last_error), "no answer")
            raise ConnectionError(f"MQTT broker {host}:{port}: {error}") from None
        pacer = pacer or Pacer(scenario.start)
        for batch in scenario.batches():
            await pacer.sleep_until(batch.send_at)
            payload = encode_batch(batch.seq, batch.adverts, ts=rfc3339(batch.send_at))
            info = links[batch.rid].publish(topics.adv(batch.rid), payload, qos=0)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                stats.dropped += 1
                continue
            stats.batches += 1
            stats.adverts += len(batch.heard)
            stats.by_kind.update(h.kind for h in batch.heard)
            stats.last_sent_at = batch.send_at
    return stats


def progress_line(scenario: Scenario, stats: PublishStats) -> str:
    """One line on how far the run is: what was published so far, and until when."""
    line = (f"sim ble: published {stats.adverts} adverts in {stats.batches} batches, "
            f"{stats.dropped} lost")
    if stats.last_sent_at is not None:
        line += f", {stats.last_sent_at - scenario.start:.0f} s into the scenario"
    return line


def summary(scenario: Scenario, stats: PublishStats) -> list[str]:
    """Lines for a person: what was sent, and per member where they lingered."""
    receivers = len(scenario.config.receivers)
    lines = [f"published {stats.adverts} adverts in {stats.batches} batches from {receivers} "
             f"receivers (seed {scenario.seed})"]
    if stats.dropped:
        lines.append(f"  {stats.dropped} batches lost while the broker was unreachable")
    if stats.by_kind:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(stats.by_kind.items()))
        lines.append(f"  adverts by kind: {kinds}")
    until = stats.last_sent_at if stats.last_sent_at is not None else -math.inf
    lingered: dict[str, list[str]] = {}
    passed: dict[str, list[str]] = {}
    strangers = 0
    for visit in scenario.visits:
        if visit.start > until:
            continue
        if visit.member_id is None:
            strangers += 1
            continue
        for leg in visit.legs:
            if leg.mode == "pass" and leg.start <= until:
                passed.setdefault(visit.member_id, []).append(leg.zone)
            elif leg.mode == "linger" and leg.end <= until:
                lingered.setdefault(visit.member_id, []).append(leg.zone)
    members = sorted(set(lingered) | set(passed))
    lines.append(f"visitors: {len(members)} members, {strangers} strangers")
    if members:
        lines.append(f"  {'member':16} {'lingered in':40} walked past")
        for member in members:
            stay = ", ".join(lingered.get(member, [])) or "-"
            past = ", ".join(passed.get(member, [])) or "-"
            lines.append(f"  {member:16} {stay:40} {past}")
    return lines
