"""One link, many devices: each registers its topic filters and a handler; the router owns
the link's subscriptions and hands every inbound message to the handler whose filter
matches.

Each message runs in its own task, so that the writes of many messages group-commit, and
is acknowledged (PUBACK, for QoS 1) only after its handler returns: durable before
acknowledged. A handler that raises leaves its message unacknowledged, and the broker
redelivers it after the next reconnect. A message no filter claims (a subscription left in
the persistent session from an earlier configuration, say) is counted and given to the
`unclaimed` handler, which keeps it as a dead letter; without one it is logged.

The filter a topic matches is looked up once per topic and remembered: topics name a
kiosk or receiver and an operation, so there are few of them, and the request path pays
one dictionary lookup.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from devices.mqtt.topics import matches, valid_filter
from devices.mqtt.transport import Inbound, MqttLink

log = logging.getLogger(__name__)

# Takes one message; returns once its effect is durable (or raises: not acknowledged).
Handler = Callable[[Inbound], Awaitable[None]]

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


@dataclass(slots=True)
class RouterStats:
    unclaimed: int = 0  # messages no filter matched
    failed: int = 0  # handlers that raised: left unacknowledged


class Router:
    def __init__(self, *, unclaimed: Handler | None = None) -> None:
        self.routes: list[Route] = []
        # What keeps a message nobody claims (the kiosk service's dead letters).
        self.unclaimed = unclaimed
        self.stats = RouterStats()
        self._by_topic: dict[str, Handler | None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._logged_at = float("-inf")

    def add(self, owner: str, topic_filter: str, qos: int, handler: Handler) -> None:
        """Route messages matching `topic_filter` to `handler`, subscribed with `qos`.
        Filters are tried in the order they were added: the first match takes the message."""
        if not valid_filter(topic_filter):
            raise ValueError(f"{topic_filter!r} is not an MQTT topic filter")
        if qos not in (0, 1):
            raise ValueError("QoS 0 or 1: the gateway never uses QoS 2")
        if any(route.topic_filter == topic_filter for route in self.routes):
            raise ValueError(f"{topic_filter!r} is already routed")
        self.routes.append(Route(owner, topic_filter, qos, handler))
        self._by_topic.clear()

    @property
    def subscriptions(self) -> tuple[tuple[str, int], ...]:
        """Every registered filter with its QoS: what the link subscribes on each connect."""
        return tuple((route.topic_filter, route.qos) for route in self.routes)

    def handler_for(self, topic: str) -> Handler | None:
        try:
            return self._by_topic[topic]
        except KeyError:
            pass
        handler = next((route.handler for route in self.routes
                        if matches(route.topic_filter, topic)), None)
        if len(self._by_topic) >= ROUTE_CACHE_MAX:
            self._by_topic.clear()
        self._by_topic[topic] = handler
        return handler

    async def run(self, link: MqttLink) -> None:
        """Dispatch `link`'s messages until cancelled; cancels the messages in flight."""
        try:
            while True:
                message = await link.receive()
                task = asyncio.create_task(self._serve(link, message), name="mqtt-message")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def _serve(self, link: MqttLink, message: Inbound) -> None:
        handler = self.handler_for(message.topic)
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
