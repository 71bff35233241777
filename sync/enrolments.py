"""Enrolment with central: its calls lent to the kiosks, and provisional members confirmed.

`CentralEnrolments` is the core's `EnrolmentPort` over the contract's client: a refusal
(`invalid_code`, ...) is `EnrolmentRefused`, anything else that keeps central from
answering is `EnrolmentUnavailable`, on which a kiosk enrols the member provisionally.

`ProvisionalConfirmer` (the `enrolments` part) has central confirm every provisional
member while central is reachable, then merges each under central's id in one writer op
(`gateway.members.provisional.merge_provisional`). Each step can be interrupted:

- before central answers: the enrolment is sent again; central answers the same member
  (idempotent by `enrolment_id`);
- after central answered, before the merge committed: the same;
- after the merge committed: the member is no longer pending; nothing is sent again.

Central confirms a new member with the provisional account, so no entry moves. When the
phone was already a member (enrolled through another channel meanwhile), that member has
an account of its own: the provisional account's available points move to it in the same
op, as a pair of adjustments with ids derived from the provisional member (recorded once
whatever is retried), the points keeping the latest expiry they had. Points the
provisional account cannot pass on (still pending, or a debt) are kept as a dead letter
for an operator, never dropped unseen.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from cloud_api.client import CentralClient
from cloud_api.errors import CentralError, CentralRejected
from gateway.central import EnrolmentRefused, EnrolmentUnavailable
from gateway.deadletters import keep
from gateway.ledger import Ledger
from gateway.ledger.service import Recorded
from gateway.loyalty import Entry, EntryKind, fold
from gateway.loyalty.wire import to_text
from gateway.members.provisional import Provisional, merge_provisional, pending_provisionals
from gateway.store import Reader, Writer

log = logging.getLogger(__name__)

CONFIRM_INTERVAL_S = 5.0
MERGE_SOURCE = "enrol.merge"
DEAD_LETTER_SOURCE = "enrolment"


class CentralEnrolments:
    """The core's `EnrolmentPort` through the gateway's central client."""

    def __init__(self, client: CentralClient, gateway_id: str) -> None:
        self.client = client
        self.gateway_id = gateway_id

    async def request_code(self, phone: str) -> dict[str, Any]:
        return await self._call(self.client.request_enrolment_code(self.gateway_id, phone))

    async def enrol(self, enrolment: dict[str, Any]) -> dict[str, Any]:
        return await self._call(self.client.enrol(self.gateway_id, enrolment))

    @staticmethod
    async def _call(call: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await call
        except CentralRejected as exc:
            raise EnrolmentRefused(exc.code, str(exc)) from None
        except CentralError as exc:
            raise EnrolmentUnavailable(str(exc)) from None
        return result


def confirmer_families(confirmer: ProvisionalConfirmer) -> Iterator[Metric]:
    yield GaugeMetricFamily("mallgate_enrolments_provisional", "Members enrolled at a kiosk "
                            "offline that central has not confirmed yet.",
                            value=confirmer.pending)
    yield CounterMetricFamily("mallgate_enrolments_merged", "Provisional members confirmed "
                              "by central and merged under its id.", value=confirmer.merged)
    yield CounterMetricFamily("mallgate_enrolments_refused", "Confirmations central "
                              "refused (each retried every round).", value=confirmer.refused)


class ProvisionalConfirmer:
    def __init__(self, port: CentralEnrolments, *, ledger: Ledger, reader: Reader,
                 writer: Writer, online: Callable[[], bool],
                 interval_s: float = CONFIRM_INTERVAL_S) -> None:
        self.port = port
        self.ledger = ledger
        self.reader = reader
        self.writer = writer
        self.online = online
        self.interval_s = interval_s
        self.merged = 0
        self.refused = 0
        self.pending = 0  # provisional members waiting for central, at the last round
        self._warned: set[str] = set()  # refused members already logged (once each)

    async def run(self) -> None:
        while True:
            if self.online():
                await self.confirm_pending()
            await asyncio.sleep(self.interval_s)

    async def confirm_pending(self) -> int:
        """Confirm and merge the provisional members waiting; how many were merged."""
        merged = 0
        waiting = await self.reader.run(pending_provisionals)
        self.pending = len(waiting)
        for provisional in waiting:
            try:
                enrolled = await self.port.enrol(self._enrolment(provisional))
            except EnrolmentUnavailable:
                return merged  # again on the next round
            except EnrolmentRefused as refused:
                # Asked again every round (central's configuration may be fixed, e.g. its
                # phone key), logged once: the member stays provisional and keeps earning.
                self.refused += 1
                if provisional.member_id not in self._warned:
                    self._warned.add(provisional.member_id)
                    log.warning("central refused provisional member %s (%s): %s",
                                provisional.member_id, refused.code, refused.msg)
                continue
            view = enrolled["member"]
            done, recorded = await self.writer.submit(
                functools.partial(self._merge, p=provisional, view=view))
            self.ledger.count(recorded)
            self.pending -= 1
            if done:
                merged += 1
                self.merged += 1
                log.info("provisional member %s is member %s", provisional.member_id,
                         view["member_id"])
        return merged

    @staticmethod
    def _enrolment(p: Provisional) -> dict[str, Any]:
        body: dict[str, Any] = {
            "enrolment_id": p.enrolment_id, "phone_hash": p.phone_hash,
            "phone_masked": p.phone_masked, "consent": p.consent,
            "provisional_member_id": p.member_id, "account_id": p.account_id}
        if p.referrer is not None:
            body["referrer"] = p.referrer
        return body

    def _merge(self, conn: sqlite3.Connection, p: Provisional,
               view: dict[str, Any]) -> tuple[bool, list[Recorded]]:
        now = self.ledger.now()
        if not merge_provisional(conn, p.member_id, view, to_text(now) or ""):
            return False, []
        into = str(view["account_id"])
        if into == p.account_id:
            return True, []
        return True, self._move_points(conn, p, str(view["member_id"]), into, now)

    def _move_points(self, conn: sqlite3.Connection, p: Provisional, member_id: str,
                     into: str, now: datetime) -> list[Recorded]:
        """The provisional account's available points to the member's own account."""
        entries = [entry for entry, _ in self.ledger.entries_in_write(conn, p.account_id)]
        state = fold(entries, now, journal=False)
        if state.locked or state.debt:
            keep(conn, source=DEAD_LETTER_SOURCE, raw=p.member_id, code="merge_review",
                 error=f"provisional account {p.account_id} merged into {into} keeps "
                 f"{state.locked} pending points and {state.debt} debt: adjust by hand",
                 context={"account_id": p.account_id, "into": into},
                 at=to_text(now) or "")
        if state.available <= 0:
            return []
        expires = max((lot.expires_at for lot in state.open_lots()
                       if lot.expires_at is not None), default=None)
        version = self.ledger.rules.version

        def adjustment(account: str, points: int, side: str) -> Entry:
            return Entry(kind=EntryKind.ADJUST, points=points, account_id=account,
                         member_id=member_id, source_type=MERGE_SOURCE,
                         source_key=f"{p.member_id}:{side}",
                         reason="enrolled twice: points merged", effective_at=now,
                         expires_at=expires if points > 0 else None, rule_version=version,
                         actor="gateway")

        return self.ledger.insert_in(conn, [adjustment(p.account_id, -state.available, "out"),
                                            adjustment(into, state.available, "in")], now)
