"""The demo's kiosks: `devices.kiosk.sim` member sessions on each kiosk until told to stop,
remembering every reply that moved points (the loss check looks for each of them)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from typing import Any

from devices.kiosk.protocol import Topics
from devices.kiosk.sim import KioskClient, SessionStats, member_session
from devices.mqtt.transport import MqttLink

# Refusals that are the loyalty rules' answer, not a failure: a member checks in once a
# day, and cannot spend points it does not have.
RULES_ANSWERS = frozenset({"already_checked_in", "insufficient_points", "offline_limit"})
POINT_MOVES = frozenset({"checkin", "redeem"})
CONNECT_TIMEOUT_S = 10.0


@dataclass(slots=True)
class KioskTally:
    requests: int = 0
    replies: int = 0
    errors: int = 0  # unanswered requests, and error replies that are not the rules' answers
    moved: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (op, reply data)


class TalliedKiosk(KioskClient):
    """A kiosk client that counts its requests and keeps the replies that moved points."""

    def __init__(self, link: MqttLink, topics: Topics, kid: str, tally: KioskTally) -> None:
        super().__init__(link, topics, kid)
        self.tally = tally

    async def request(self, op: str, data: dict[str, Any], *, request_id: str | None = None,
                      payload: bytes | None = None, wait_s: float = 10) -> dict[str, Any]:
        self.tally.requests += 1
        try:
            reply = await super().request(op, data, request_id=request_id, payload=payload,
                                          wait_s=wait_s)
        except TimeoutError:
            self.tally.errors += 1
            raise
        self.tally.replies += 1
        if reply.get("status") == "ok":
            if op in POINT_MOVES:
                self.tally.moved.append((op, reply["data"]))
        elif reply.get("error", {}).get("code") not in RULES_ANSWERS:
            self.tally.errors += 1
        return reply


async def serve_visitors(kid: str, *, host: str, port: int, site: str, cards: list[str],
                         every_s: float, tally: KioskTally, stop: asyncio.Event,
                         seed: int) -> None:
    """Kiosk `kid` plays one member session every `every_s` seconds until `stop`."""
    topics = Topics(site)
    rng = random.Random(seed)  # noqa: S311 - simulated visitors, not security
    async with MqttLink(KioskClient.config(topics, kid, host, port)) as link:
        await asyncio.wait_for(link.connected.wait(), CONNECT_TIMEOUT_S)
        client = TalliedKiosk(link, topics, kid, tally)
        try:
            while not stop.is_set():
                # A visitor whose request went unanswered walks away; it is counted.
                with contextlib.suppress(TimeoutError):
                    await member_session(client, rng.choice(cards), SessionStats(), rng)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every_s)
        finally:
            await client.close()
