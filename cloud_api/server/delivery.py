"""Central's delivery of member notices to webhooks, and its daily expiry reminder job.

Each central worker runs one `Deliverer` per process. A pass queues, for every webhook,
the notices it has not had, claims the due ones with a lease (`notice_ops`), sends them
signed (`webhooks.sign`) and records each outcome: delivered (never sent again), retried
after the backoff, or dead after `DeliveryPolicy.max_attempts` (listed and retried by
`GET /v1/malls/{mall}/webhooks/dead`, `POST .../dead:retry` and `mallgate central
webhooks dead|retry`). Outcomes are counted per webhook (`counts`, and by state in the
database: `GET /v1/malls/{mall}/webhooks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence

import aiohttp

from cloud_api.server.jobs import every_hour_per_mall
from cloud_api.server.notice_ops import Claimed
from cloud_api.server.storage import Storage
from cloud_api.server.webhooks import (
    ATTEMPT_HEADER,
    NOTICE_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryPolicy,
    Webhook,
    sign,
)

log = logging.getLogger(__name__)

# The reminder job runs hourly: a reminder is due on a day, so any hour of it will do,
# and a central restarted in the evening still sends the day's reminders.
# Retry-After honoured only up to the policy's longest delay (and only when a number).
RETRY_AFTER_STATUSES = frozenset({429, 503})


def worker_name() -> str:
    """A name unique to this process's deliverer: who holds a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Deliverer:
    def __init__(self, storage: Storage, webhooks: Mapping[str, Sequence[Webhook]],
                 policy: DeliveryPolicy | None = None) -> None:
        self.storage = storage
        self.webhooks = webhooks
        self.policy = policy or DeliveryPolicy()
        self.owner = worker_name()
        # (mall, webhook, outcome) → how many: delivered, retried, dead, lost_lease.
        self.counts: Counter[tuple[str, str, str]] = Counter()

    async def run(self) -> None:
        """Deliver until cancelled; a failed pass (database away) is logged and retried."""
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout_s)
        failing = False
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    attempted = await self.deliver_due(session)
                except Exception:  # the database away: the next pass tries again
                    if not failing:  # logged once per outage, not every second
                        log.exception("webhook delivery failed; retrying every %g s",
                                      self.policy.poll_s)
                    failing, attempted = True, 0
                else:
                    if failing:
                        log.info("webhook delivery going again")
                    failing = False
                if not attempted:  # a backlog is worked through without pausing
                    await asyncio.sleep(self.policy.poll_s)

    async def deliver_due(self, session: aiohttp.ClientSession) -> int:
        """One pass over every webhook; returns how many attempts were made."""
        attempts = 0
        for mall_id, hooks in self.webhooks.items():
            for hook in hooks:
                await self.storage.queue_deliveries(mall_id, hook.name, self.policy.batch)
                claimed = await self.storage.claim_deliveries(
                    mall_id, hook.name, owner=self.owner, lease_s=self.policy.lease_s,
                    limit=self.policy.batch)
                # Sent side by side: all of them end within one timeout, well inside
                # the lease, so no other worker takes one over while it is in flight.
                await asyncio.gather(*(self._send(session, hook, c) for c in claimed))
                attempts += len(claimed)
        return attempts

    async def _send(self, session: aiohttp.ClientSession, hook: Webhook,
                    claimed: Claimed) -> None:
        notice_id = str(claimed.notice["notice_id"])
        body = json.dumps(claimed.notice, ensure_ascii=False,
                          separators=(",", ":")).encode()  # the exact bytes signed
        stamp = int(time.time())
        headers = {"Content-Type": "application/json", NOTICE_ID_HEADER: notice_id,
                   TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(hook.secret, stamp,
                                                                         body),
                   ATTEMPT_HEADER: str(claimed.attempt)}
        retry_after: float | None = None
        try:
            async with session.post(hook.url, data=body, headers=headers) as response:
                if 200 <= response.status < 300:
                    await self.storage.delivered(hook.mall_id, hook.name, notice_id)
                    self.counts[(hook.mall_id, hook.name, "delivered")] += 1
                    return
                error = f"HTTP {response.status}"
                if response.status in RETRY_AFTER_STATUSES:
                    with contextlib.suppress(ValueError):
                        retry_after = float(response.headers.get("Retry-After", ""))
        except TimeoutError:
            error = f"no reply within {self.policy.timeout_s:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}"
        await self._failed(hook, notice_id, claimed.attempt, error, retry_after)

    async def _failed(self, hook: Webhook, notice_id: str, attempt: int, error: str,
                      retry_after: float | None) -> None:
        dead = attempt >= self.policy.max_attempts
        retry_in = None if dead else self.policy.retry_delay(attempt, retry_after)
        kept = await self.storage.delivery_failed(hook.mall_id, hook.name, notice_id,
                                                  owner=self.owner, error=error,
                                                  retry_in_s=retry_in)
        outcome = "lost_lease" if not kept else "dead" if dead else "retried"
        self.counts[(hook.mall_id, hook.name, outcome)] += 1
        if dead and kept:
            log.warning("mall %s: notice %s dead for webhook %s after %d attempts (%s)",
                        hook.mall_id, notice_id, hook.name, attempt, error)


async def remind_forever(storage: Storage) -> None:
    """Keep the expiry reminders due, for every mall, once an hour."""
    async def remind(mall_id: str) -> None:
        created = await storage.find_expiry_reminders(mall_id)
        if created:
            log.info("mall %s: %d expiry reminders", mall_id, created)

    await every_hour_per_mall(storage, "the expiry reminders", remind)
