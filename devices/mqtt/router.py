"""One link, many devices: each registers its topic filters and a handler; the router owns
the link's subscriptions and hands every inbound message to the handler whose filter
matches.

A route may put its messages in lanes: messages whose topics give the same lane key (one
kiosk's requests, one receiver's batches) are handled one at a time in arrival order, and
different lanes run side by side, so that the writes of many kiosks group-commit while one
kiosk's requests are answered in the order it sent them. A lane yields to the event loop
between its messages, so a busy lane cannot hold up the others. A route without lanes runs
each message in its own task. A lane of a QoS 0 route may be bounded: past its backlog a
message is dropped and counted (sightings may be sampled; requests never are, and their
backlog is bounded by the link's receive maximum instead).

Every message is acknowledged (PUBACK, for QoS 1) only after its handler returns: durable
before acknowledged. A handler that raises leaves its message unacknowledged, and the broker
redelivers it after the next reconnect. A message no filter claims (a subscription left in
the persistent session from an earlier configuration, say) is counted and given to the
`unclaimed` handler, which keeps it as a dead letter; without one it is logged.

The filter a topic matches is looked up once per topic and remembered: topics name a
kiosk or receiver and an operation, so there are few of them, and the request path pays
one dictionary lookup.

A retained message on a route that takes none (a request or event a client published with
the retain flag, which the broker replays on every subscribe) is counted, cleared from the
broker and acknowledged, never handled.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from devices.mqtt.topics import matches, valid_filter
from devices.mqtt.transport import Inbound, MqttLink

log = logging.getLogger(__name__)

# Takes one message; returns once its effect is durable (or raises: not acknowledged).
Handler = Callable[[Inbound], Awaitable[None]]
# The lane of a message, from its topic (e.g. the kiosk id).
LaneKey = Callable[[str], str]
# Told of each message dropped unhandled, with why: "backlog" or "retained".
DropHook = Callable[[Inbound, str], None]

# Topics whose route is remembered; past this (a flood of made-up topics) it starts afresh.
ROUTE_CACHE_MAX = 4096
# An unclaimed message without a dead-letter handler is logged at most this often.
UNCLAIMED_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class Route:
    owner: str  # which device registered it: "kiosk", "ble"
    topic_filter: str
    qos: int
    handler: Handler
    lane: LaneKey | None = None  # None: every message in its own task
    backlog: int | None = None  # most messages waiting in one lane (QoS 0 routes only)
    retained: bool = False  # whether retained messages are handled (statuses) or dropped
    on_drop: DropHook | None = None


@dataclass(slots=True)
class RouterStats:
    unclaimed: int = 0  # messages no filter matched
    failed: int = 0  # handlers that raised: left unacknowledged
    # Messages dropped unhandled, by (owner, "backlog" | "retained").
    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)


class _Lane:
    __slots__ = ("pending", "task")

    def __init__(self) -> None:
        self.pending: deque[Inbound] = deque()
        self.task: asyncio.Task[None] | None = None


class Router:
    def __init__(self, *, unclaimed: Handler | None = None) -> None:
        self.routes: list[Route] = []
        # What keeps a message nobody claims (the kiosk service's dead letters).
        self.unclaimed = unclaimed
        self.stats = RouterStats()
        self._by_topic: dict[str, tuple[Route, str | None] | None] = {}
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._logged_at = float("-inf")

    def add(self, owner: str, topic_filter: str, qos: int, handler: Handler, *,
            lane: LaneKey | None = None, backlog: int | None = None, retained: bool = False,
            on_drop: DropHook | None = None) -> None:
        """Route messages matching `topic_filter` to `handler`, subscribed with `qos`.
        Filters are tried in the order they were added: the first match takes the message.

        With `lane`, messages whose topics give the same key are handled one at a time in
        arrival order; `backlog` bounds each lane (QoS 0 only: a QoS 1 message is never
        dropped). `retained`: whether retained messages are handled; if not, they are
        dropped. `on_drop` is told of every message dropped either way."""
        if not valid_filter(topic_filter):
            raise ValueError(f"{topic_filter!r} is not an MQTT topic filter")
        if qos not in (0, 1):
            raise ValueError("QoS 0 or 1: the gateway never uses QoS 2")
        if any(route.topic_filter == topic_filter for route in self.routes):
            raise ValueError(f"{topic_filter!r} is already routed")
        if backlog is not None and (lane is None or qos != 0 or backlog < 1):
            raise ValueError("a backlog bounds the lanes of a QoS 0 route, at least 1")
        self.routes.append(Route(owner, topic_filter, qos, handler, lane=lane,
                                 backlog=backlog, retained=retained, on_drop=on_drop))
        self._by_topic.clear()

    @property
    def subscriptions(self) -> tuple[tuple[str, int], ...]:
        """Every registered filter with its QoS: what the link subscribes on each connect."""
        return tuple((route.topic_filter, route.qos) for route in self.routes)

    def handler_for(self, topic: str) -> Handler | None:
        found = self._route_for(topic)
        return found[0].handler if found is not None else None

    def _route_for(self, topic: str) -> tuple[Route, str | None] | None:
        """The route taking `topic` and the topic's lane key, remembered per topic."""
        try:
            return self._by_topic[topic]
        except KeyError:
            pass
        route = next((route for route in self.routes
                      if matches(route.topic_filter, topic)), None)
        found = None if route is None else (
            route, route.lane(topic) if route.lane is not None else None)
        if len(self._by_topic) >= ROUTE_CACHE_MAX:
            self._by_topic.clear()
        self._by_topic[topic] = found
        return found

    async def run(self, link: MqttLink) -> None:
        """Dispatch `link`'s messages until cancelled; cancels the messages in flight."""
        try:
            while True:
                self.dispatch(link, await link.receive())
        finally:
            for lane in self._lanes.values():
                if lane.task is not None:
                    lane.task.cancel()
            for task in list(self._tasks):
                task.cancel()

    def dispatch(self, link: MqttLink, message: Inbound) -> None:
        """Hand `message` to its lane, or to a task of its own; never waits."""
        found = self._route_for(message.topic)
        if found is None:
            if message.retain:  # replayed on every subscribe: counted once per replay
                self.stats.unclaimed += 1
                self.stats.dropped[("unclaimed", "retained")] += 1
                link.ack(message)
                return
            self._spawn(self._serve(link, None, message))
            return
        route, key = found
        if message.retain and not route.retained:
            self._drop(link, route, message, "retained")
            # Cleared, so the broker stops replaying it to every new subscription.
            link.publish(message.topic, b"", qos=1, retain=True)
            return
        if key is None:
            self._spawn(self._serve(link, route.handler, message))
            return
        lane_id = (route.topic_filter, key)
        lane = self._lanes.get(lane_id)
        if lane is None:
            lane = self._lanes[lane_id] = _Lane()
        elif route.backlog is not None and len(lane.pending) >= route.backlog:
            self._drop(link, route, message, "backlog")
            return
        lane.pending.append(message)
        if lane.task is None:
            lane.task = asyncio.create_task(self._drain(link, route, lane_id, lane),
                                            name=f"mqtt-lane-{route.owner}-{key}")

    def _spawn(self, serving: Awaitable[None]) -> None:
        task = asyncio.ensure_future(serving)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _drop(self, link: MqttLink, route: Route, message: Inbound, why: str) -> None:
        self.stats.dropped[(route.owner, why)] += 1
        if route.on_drop is not None:
            route.on_drop(message, why)
        link.ack(message)

    async def _drain(self, link: MqttLink, route: Route, lane_id: tuple[str, str],
                     lane: _Lane) -> None:
        """Handle a lane's messages in arrival order until it is empty, then retire it."""
        try:
            while lane.pending:
                await self._serve(link, route.handler, lane.pending.popleft())
                if lane.pending:
                    await asyncio.sleep(0)  # let the other lanes (and the link) run
        finally:
            lane.task = None
            if not lane.pending:
                self._lanes.pop(lane_id, None)

    async def _serve(self, link: MqttLink, handler: Handler | None, message: Inbound) -> None:
        try:
            if handler is not None:
                await handler(message)
            else:
                await self._unclaimed(message)
        except Exception:
            # Not acked: the broker redelivers it after the next reconnect.
            self.stats.failed += 1
            log.exception("MQTT message on %s failed", message.topic[:200])
            return
        link.ack(message)

    async def _unclaimed(self, message: Inbound) -> None:
        self.stats.unclaimed += 1
        if self.unclaimed is not None:
            await self.unclaimed(message)
            return
        now = asyncio.get_running_loop().time()
        if now - self._logged_at >= UNCLAIMED_LOG_INTERVAL_S:
            self._logged_at = now
            log.warning("MQTT message on %s claimed by no part (%s so far): dropped",
                        message.topic[:200], self.stats.unclaimed)
