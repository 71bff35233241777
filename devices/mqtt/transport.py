"""paho-mqtt 2.x driven from the asyncio event loop, with manual acks and a reconnect supervisor.

paho's own network thread would run our callbacks on another thread and acknowledge QoS 1
messages before we have committed them. Here paho's socket is registered with the event loop
(`add_reader` / `add_writer`), so every callback runs on the loop, and with `manual_ack=True`
a message's PUBACK leaves only when the consumer calls `ack()` after its effect is durable.
If the gateway dies before that, the broker redelivers the message on the next connect.

The session is persistent: a fixed client id, `clean_start=False` on every connect (mosquitto
keeps a session across its own restarts only if the latest CONNECT had clean start false),
a session expiry, and subscriptions repeated on every connect. A retained birth message and a
matching retained Last Will tell everyone whether this client is online.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from devices.mqtt import const
from devices.mqtt.properties import publish_properties
from devices.mqtt.socketbuf import BufferedSocket

log = logging.getLogger(__name__)


class SessionTakenOver(ConnectionError):
    """The broker handed this link's session to another client with the same client id."""

    def __init__(self, client_id: str, broker: str) -> None:
        super().__init__(f"session taken over: another client connected to {broker} as "
                         f"{client_id} (another gateway with this client id?); not reconnecting")
        self.client_id = client_id


@dataclass(frozen=True, slots=True)
class Retained:
    """A retained message: the birth published on connect, or the Last Will."""

    topic: str
    payload: bytes
    qos: int = const.QOS_STATUS


@dataclass(frozen=True, slots=True)
class LinkConfig:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    keepalive_s: int = const.GATEWAY_KEEPALIVE_S
    session_expiry_s: int = const.GATEWAY_SESSION_EXPIRY_S
    receive_maximum: int = const.RECEIVE_MAXIMUM
    subscriptions: tuple[tuple[str, int], ...] = ()
    birth: Retained | None = None
    will: Retained | None = None
    reconnect_min_s: float = const.RECONNECT_MIN_S
    reconnect_max_s: float = const.RECONNECT_MAX_S


@dataclass(frozen=True, slots=True)
class Inbound:
    """A received message; `ack()` it once its effect is committed (QoS 1)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    generation: int  # which connection delivered it: a PUBACK is only valid on that one
    correlation: bytes | None = None


@dataclass(slots=True)
class LinkStats:
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    received: int = 0
    acked: int = 0
    stale_acks: int = 0  # acks for a message of a previous connection: the broker redelivers
    published: int = 0
    last_error: str = ""
    _reason_codes: dict[str, int] = field(default_factory=dict)


class MqttLink:
    """One MQTT v5 client, connected and reconnected for as long as the context is open."""

    def __init__(self, config: LinkConfig, *, on_connect: Callable[[], None] | None = None,
                 subscriptions: Callable[[], Sequence[tuple[str, int]]] | None = None) -> None:
        self.config = config
        # Asked on every connect, after `config.subscriptions`: the gateway's router, whose
        # routes are registered after the link is made and before it connects.
        self._subscriptions = subscriptions
        self.stats = LinkStats()
        self.connected = asyncio.Event()
        # Set once the broker has answered every subscription of this connection: a broker
        # (rumqttd) may route another client's message before a subscription sent just
        # earlier takes effect, so "ready to serve" waits for the SUBACKs.
        self.subscribed = asyncio.Event()
        self._unanswered: set[int] = set()
        self._on_connect_hook = on_connect
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._inbox: asyncio.Queue[Inbound] = asyncio.Queue()
        self._down = asyncio.Event()
        self._generation = 0
        # This connection's QoS 1 messages in arrival order: mid -> handled yet. MQTT wants
        # PUBACKs in the order the PUBLISHes came (MQTT 5 section 4.6; rumqttd drops a
        # client that answers out of order), while messages are handled concurrently.
        self._unacked: OrderedDict[int, bool] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._sock: socket.socket | None = None
        self._buffered: BufferedSocket | None = None
        self._write_scheduled = False
        self._waiting_writable = False
        self._publishes: dict[int, asyncio.Future[ReasonCode]] = {}
        self._was_up = False
        self._closing = False
        self._attempt_counted = False  # this connect attempt's failure is counted
        # Set when the broker disconnects us for another client with our id: the link
        # stops reconnecting rather than fight that client for the session.
        self.taken_over = asyncio.Event()
        self._connected_at = 0.0
        self._drops = 0  # accepted connections the broker closed in a row, soon after CONNACK
        self._client = self._make_client()

    def _make_client(self) -> paho.Client:
        cfg = self.config
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id,
                             protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls is not None:
            client.tls_set_context(cfg.tls)
        if cfg.will is not None:
            client.will_set(cfg.will.topic, cfg.will.payload, qos=cfg.will.qos, retain=True)
        # Replies and statuses queued while the broker is away are bounded; beyond this
        # paho refuses the publish and the kiosk retries its request.
        client.max_queued_messages_set(5000)
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    # -- lifetime --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._tasks = [
            asyncio.create_task(self._supervise(), name=f"mqtt-supervisor-{self.config.client_id}"),
            asyncio.create_task(self._misc(), name=f"mqtt-misc-{self.config.client_id}"),
        ]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self, *, will: bool = False) -> None:
        """Disconnect. A clean close publishes the Will's payload itself (the broker does
        not send the Will on a normal DISCONNECT); `will=True` asks the broker to send it."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.connected.is_set():
            if self.config.will is not None and not will:
                info = self.publish(self.config.will.topic, self.config.will.payload,
                                    qos=self.config.will.qos, retain=True)
                with contextlib.suppress(asyncio.TimeoutError, RuntimeError, ValueError):
                    await asyncio.wait_for(self.published(info), 2.0)
            self._client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT,
                                                          identifier=4 if will else 0))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._down.wait(), 2.0)
        self._detach()

    async def published(self, info: paho.MQTTMessageInfo) -> ReasonCode | None:
        """Wait until the broker has acknowledged a QoS 1 publish; its PUBACK reason code
        (e.g. 0x87 "Not authorized" when the ACL refuses the topic), if still known."""
        future = self._publishes.get(info.mid)
        if future is None:
            if not info.is_published():
                raise RuntimeError("published() needs a QoS 1 publish made by this link")
            return None
        return await future

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        future = self._publishes.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(reason_code)

    async def _supervise(self) -> None:
        """Connect, wait for the loss of the connection, back off with jitter, reconnect."""
        cfg = self.config
        delay = cfg.reconnect_min_s
        properties = _properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = cfg.session_expiry_s
        properties.ReceiveMaximum = cfg.receive_maximum
        first = True
        while True:
            self._down.clear()
            self._attempt_counted = False
            try:
                if first:
                    await self._loop.run_in_executor(None, lambda: self._client.connect(
                        cfg.host, cfg.port, keepalive=cfg.keepalive_s, clean_start=False,
                        properties=properties))
                    first = False
                else:
                    await self._loop.run_in_executor(None, self._client.reconnect)
            except (OSError, ssl.SSLError) as exc:
                self.stats.connect_failures += 1
                self.stats.last_error = str(exc)
                log.warning("MQTT broker %s:%s unreachable: %s", cfg.host, cfg.port, exc)
            else:
                await self._down.wait()
                if self.taken_over.is_set():
                    return
                if self._was_up:  # a connection that worked: the next outage starts afresh
                    delay = cfg.reconnect_min_s
            self._was_up = False
            # Equal jitter: never hammer the broker, never wait longer than the cap.
            await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))  # noqa: S311
            delay = min(delay * 2, cfg.reconnect_max_s)

    async def _misc(self) -> None:
        """paho's housekeeping: keepalive pings and retries of unacknowledged publishes."""
        while True:
            await asyncio.sleep(const.MISC_INTERVAL_S)
            if self._sock is not None:
                self._client.loop_misc()

    # -- paho callbacks (all run on the event loop, except socket_open during connect) ------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self.stats.connect_failures += 1
            self._attempt_counted = True
            self.stats.last_error = f"CONNACK {reason_code}"
            log.warning("MQTT broker refused the connection: %s", reason_code)
            return
        self._generation += 1
        self._unacked.clear()  # the broker redelivers what this side never acknowledged
        self.stats.connects += 1
        self._connected_at = self._loop.time()
        self._was_up = True
        extra = self._subscriptions() if self._subscriptions is not None else ()
        self.subscribed.clear()
        self._unanswered.clear()
        for topic, qos in (*self.config.subscriptions, *extra):
            # Retain as published: a message its sender retained keeps the flag even when
            # forwarded live, so a part that takes no retained input can tell it apart.
            _, mid = client.subscribe(topic, options=SubscribeOptions(
                qos=qos, noLocal=True, retainAsPublished=True))
            if mid is not None:
                self._unanswered.add(mid)
        if not self._unanswered:
            self.subscribed.set()
        if self.config.birth is not None:
            client.publish(self.config.birth.topic, self.config.birth.payload,
                           qos=self.config.birth.qos, retain=True)
        log.info("MQTT connected to %s:%s as %s (session present: %s)", self.config.host,
                 self.config.port, self.config.client_id, flags.session_present)
        self.connected.set()
        if self._on_connect_hook is not None:
            self._on_connect_hook()

    def _on_disconnect(self, client: paho.Client, userdata: Any,
                       flags: paho.DisconnectFlags, reason_code: ReasonCode,
                       properties: Properties | None) -> None:
        taken_over = self._taken_over(reason_code)
        if taken_over:
            self.stats.last_error = str(self.takeover_error())
            if not self.taken_over.is_set():
                log.error("MQTT %s", self.stats.last_error)
            self._on_loop(self.taken_over.set)
        if self.connected.is_set():
            self.stats.disconnects += 1
            if self._closing or taken_over:
                log.debug("MQTT disconnected: %s", reason_code)
            else:
                log.warning("MQTT disconnected: %s", reason_code)
        elif not self._closing and not self._attempt_counted:
            # Dropped before any CONNACK: e.g. plaintext sent to a TLS listener.
            self._attempt_counted = True
            self.stats.connect_failures += 1
            self.stats.last_error = f"connection closed before CONNACK ({reason_code})"
            log.warning("MQTT broker %s:%s closed the connection before accepting it (%s): "
                        "TLS expected?", self.config.host, self.config.port, reason_code)
        self.connected.clear()
        self.subscribed.clear()
        self._on_loop(self._down.set)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int,
                      reason_codes: list[ReasonCode], properties: Properties | None) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.warning("MQTT broker refused a subscription: %s", ", ".join(refused))
        self._unanswered.discard(mid)
        if not self._unanswered and self.connected.is_set():
            self.subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any,
                    message: paho.MQTTMessage) -> None:
        self.stats.received += 1
        if message.qos:
            self._unacked[message.mid] = False
        props = getattr(message, "properties", None)
        correlation = getattr(props, "CorrelationData", None)
        self._inbox.put_nowait(Inbound(
            topic=message.topic, payload=bytes(message.payload), qos=message.qos,
            retain=bool(message.retain), mid=message.mid, generation=self._generation,
            correlation=bytes(correlation) if correlation is not None else None,
        ))

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffered: BufferedSocket | None = None
        # paho keeps its socket in `_sock` and calls only recv, send and close on it while
        # driven from outside; swapping in the buffered one saves most system calls. If a
        # paho version keeps it elsewhere, the link simply runs unbuffered.
        if getattr(client, "_sock", None) is sock:
            buffered = BufferedSocket(cast(socket.socket, sock))
            client._sock = buffered
        self._on_loop(lambda: self._attach(sock, buffered))

    def _attach(self, sock: socket.socket, buffered: BufferedSocket | None) -> None:
        self._sock = sock
        self._buffered = buffered
        self._loop.add_reader(sock, self._readable)
        if buffered is not None and buffered.pending_output():
            self._schedule_write()  # the CONNECT, written into the buffer by paho

    def _readable(self) -> None:
        self._client.loop_read()
        # Packets read ahead into the buffer raise no new readiness: serve them now.
        while self._buffered is not None and self._buffered.buffered():
            self._client.loop_read()

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # paho closes the socket right after this returns: unregister it now.
        if threading.get_ident() == self._loop_thread:
            self._detach()
        else:
            self._loop.call_soon_threadsafe(self._detach)

    def _detach(self) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._sock)
            self._loop.remove_writer(self._sock)
            self._sock = None
        self._buffered = None
        self._waiting_writable = False

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # paho has packets to write. Rather than wait for the socket to be writable (it
        # nearly always is), write them at the end of this turn of the loop, together with
        # whatever else this turn publishes or acknowledges.
        self._on_loop(self._schedule_write)

    def _schedule_write(self) -> None:
        if not self._write_scheduled:
            self._write_scheduled = True
            self._loop.call_soon(self._write)

    def _write(self) -> None:
        self._write_scheduled = False
        if self._sock is None:
            return
        self._client.loop_write()
        self._flush()

    def _flush(self) -> None:
        # Unbuffered (a paho that keeps its socket elsewhere), paho wrote straight to the
        # socket and what is left is its own queue; buffered, it is our output buffer.
        if self._buffered is None:
            done, retry = not self._client.want_write(), self._write
        else:
            done, retry = self._buffered.flush(), self._flush
        if done and self._waiting_writable and self._sock is not None:
            self._loop.remove_writer(self._sock)
            self._waiting_writable = False
        elif not done and self._sock is not None:
            self._loop.add_writer(self._sock, retry)
            self._waiting_writable = True

    def _on_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        pass  # paho's queue is empty; our own buffer is flushed by `_flush`

    def _on_loop(self, fn: Callable[[], object]) -> None:
        if threading.get_ident() == self._loop_thread:
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _taken_over(self, reason_code: ReasonCode) -> bool:
        """Whether this disconnect hands the session to another client with our id."""
        if self._closing or not self.connected.is_set():
            return False
        if reason_code.value == const.SESSION_TAKEN_OVER:
            return True
        lasted = self._loop.time() - self._connected_at
        self._drops = self._drops + 1 if lasted < const.TAKEOVER_SHORT_S else 1
        return self._drops >= const.TAKEOVER_DROPS

    def takeover_error(self) -> SessionTakenOver:
        return SessionTakenOver(self.config.client_id, f"{self.config.host}:{self.config.port}")

    # -- use -------------------------------------------------------------------------------

    async def receive(self) -> Inbound:
        return await self._inbox.get()

    def ack(self, message: Inbound) -> None:
        """Acknowledge a QoS 1 message; call only after its effect is durable.

        PUBACKs go out in the order the messages arrived: one handled early waits for the
        ones before it. A message never acknowledged (its handler failed) holds back the
        later PUBACKs of its connection until the next connection, on which the broker
        delivers all of them again and the stored replies answer the copies."""
        if message.qos == 0:
            return
        if message.generation != self._generation or not self.connected.is_set():
            # The connection that delivered it is gone; the broker redelivers it on the new
            # one, and our idempotency answers the copy.
            self.stats.stale_acks += 1
            return
        if message.mid not in self._unacked:
            return  # acknowledged already
        self._unacked[message.mid] = True
        while self._unacked:
            mid, handled = next(iter(self._unacked.items()))
            if not handled:
                break
            del self._unacked[mid]
            self._client.ack(mid, 1)
            self.stats.acked += 1

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                expiry_s: int | None = None,
                correlation: bytes | None = None) -> paho.MQTTMessageInfo:
        properties: Properties | None = None
        if expiry_s is not None or correlation is not None:
            properties = publish_properties(expiry_s=expiry_s, correlation=correlation)
        self.stats.published += 1
        info = self._client.publish(topic, payload, qos=qos, retain=retain,
                                    properties=properties)
        if qos > 0 and info.rc == paho.MQTT_ERR_SUCCESS:
            self._publishes[info.mid] = self._loop.create_future()
        return info


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]
