"""A kiosk that speaks the real protocol through the real broker: for tests, demos and load.

`KioskClient` is what a kiosk app does: a persistent session, a retained birth with a Will,
requests with a fresh ULID each (or a given one, to retry), and replies matched by id.
`run_sessions` plays realistic member sessions: scan (which opens the member's session at
this kiosk), look at the balance, check in, now and then redeem a gift.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devices.kiosk import const
from devices.kiosk.protocol import Topics
from devices.mqtt.contract import encode
from devices.mqtt.transport import LinkConfig, MqttLink, Retained
from gateway.ids import new_ulid


class KioskClient:
    def __init__(self, link: MqttLink, topics: Topics, kid: str, *, boot: int = 1) -> None:
        self.link = link
        self.topics = topics
        self.kid = kid
        self.boot = boot
        self.seq = 0
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._pump = asyncio.create_task(self._receive(), name=f"kiosk-{kid}-replies")

    @staticmethod
    def config(topics: Topics, kid: str, host: str, port: int, *, boot: int = 1,
               username: str | None = None, password: str | None = None) -> LinkConfig:
        status = topics.status(kid)
        return LinkConfig(
            host=host, port=port, client_id=f"kiosk-{kid}", username=username,
            password=password, keepalive_s=15, session_expiry_s=600,
            subscriptions=((topics.reply(kid), 1), (topics.kiosk(kid) + "/cmd/+", 1)),
            birth=Retained(status, encode({"online": True, "boot": boot})),
            will=Retained(status, encode({"online": False, "boot": boot})),
            reconnect_min_s=0.1, reconnect_max_s=2.0)

    async def close(self) -> None:
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump

    def envelope(self, data: dict[str, Any], request_id: str) -> bytes:
        self.seq += 1
        return encode({"v": 1, "id": request_id,
                       "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                       "boot": self.boot, "seq": self.seq, "data": data})

    async def request(self, op: str, data: dict[str, Any], *, request_id: str | None = None,
                      payload: bytes | None = None, wait_s: float = 10) -> dict[str, Any]:
        """Send a request (or raw `payload`) and wait for the reply carrying its id."""
        request_id = request_id or new_ulid()
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        body = payload if payload is not None else self.envelope(data, request_id)
        if len(body) > const.MAX_PAYLOAD_BYTES:
            # The broker would drop the connection, and paho would resend the message after
            # every reconnect: refuse it here instead.
            raise ValueError(f"request of {len(body)} bytes is over the broker's limit")
        self.link.publish(self.topics.request(self.kid, op), body, qos=const.QOS_REQUEST,
                          expiry_s=30, correlation=request_id.encode())
        try:
            return await asyncio.wait_for(future, wait_s)
        finally:
            self._waiting.pop(request_id, None)

    async def session(self, by: str, value: str) -> str:
        """Identify a member at this kiosk (`by` "card", "qr" or "phone"); the session the
        reply opens, which check-in, redeem and offer claims need."""
        reply = await self.request("member.identify", {"by": by, "value": value})
        if reply["status"] != "ok":
            raise LookupError(f"member.identify by {by}: {reply['error']['code']}")
        return str(reply["data"]["session"])

    async def _receive(self) -> None:
        while True:
            message = await self.link.receive()
            self.link.ack(message)
            if not message.topic.endswith("/rsp"):
                continue
            reply = json.loads(message.payload)
            key = reply.get("re") or (message.correlation or b"").decode()
            future = self._waiting.get(key)
            if future is not None and not future.done():
                future.set_result(reply)


@dataclass(slots=True)
class SessionStats:
    requests: int = 0
    by_outcome: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)


async def member_session(client: KioskClient, card: str, stats: SessionStats,
                         rng: random.Random) -> None:
    """One visitor at a kiosk: scan the card, look at points, check in, maybe redeem."""
    async def ask(op: str, data: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        reply = await client.request(op, data)
        stats.latencies_ms.append((time.perf_counter() - started) * 1000)
        stats.requests += 1
        stats.by_outcome[f"{op}:{reply.get('error', {}).get('code', 'ok')}"] += 1
        return reply

    found = await ask("member.identify", {"by": "card", "value": card})
    if found["status"] != "ok":
        return
    # Writes on the member go with the session the identification opened at this kiosk.
    member, session = found["data"]["member_id"], found["data"]["session"]
    await ask("balance.query", {"member_id": member})
    await ask("checkin", {"session": session})
    if rng.random() < 0.3:
        await ask("redeem", {"session": session, "kind": "gift", "item": "tote-bag",
                             "points": rng.choice([50, 100, 200])})


async def run_sessions(host: str, port: int, site: str, *, kiosks: int, sessions: int,
                       cards: list[str], seed: int = 1) -> SessionStats:
    """`kiosks` kiosks each serving `sessions` visitors picked from `cards`."""
    topics = Topics(site)
    stats = SessionStats()
    rng = random.Random(seed)  # noqa: S311 - simulated visitors, not security

    async def one(kid: str) -> None:
        async with MqttLink(KioskClient.config(topics, kid, host, port)) as link:
            await asyncio.wait_for(link.connected.wait(), 10)
            client = KioskClient(link, topics, kid)
            try:
                for _ in range(sessions):
                    await member_session(client, rng.choice(cards), stats, rng)
            finally:
                await client.close()

    async with asyncio.TaskGroup() as group:
        for k in range(1, kiosks + 1):
            group.create_task(one(f"k{k}"))
    return stats
