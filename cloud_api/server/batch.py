"""A batch of gateway events planned in memory: each event's verdict and the rows to write.

The plan is the same on every backend; the backend only looks up what it needs first
(which entries it has, the mall's last `server_seq`, the activity verdicts) and writes the
rows after. Rows are written set-wise, which is what makes thousands of events per second.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloud_api.server.activity import ACTIVITY_TYPES, Activity, InvalidActivity, parse_activity
from cloud_api.server.codec import entry_text
from cloud_api.server.codes import VerdictCode
from cloud_api.server.contract import Contract, Problem
from cloud_api.server.queries import Row
from cloud_api.server.storage import Parsed, Verdict
from gateway.loyalty import Entry, EntryKind, LoyaltyError
from gateway.loyalty.wire import entry_from_wire


def _activity(event_id: str, event_type: str, event: dict[str, Any]) -> Activity | Verdict:
    try:
        return parse_activity(event.get("event_id"), event_type, event.get("payload"))
    except InvalidActivity as exc:
        return Verdict(event_id, "rejected", code=VerdictCode.INVALID_EVENT, message=str(exc))


def _rejected(event_id: str, problem: Problem, otherwise: VerdictCode) -> Verdict:
    code = VerdictCode.OUT_OF_BOUNDS if problem.over_limit else otherwise
    return Verdict(event_id, "rejected", code=code, message=problem.message)


def parse_event(event: Any, contract: Contract) -> Parsed:
    """The entry or activity an event carries, or the rejection it earns: each event is
    checked alone against the contract and central's limits, so one bad event never
    fails the others."""
    raw_id = event.get("event_id") if isinstance(event, dict) else None
    # Echoed in the verdict: bounded, whatever was sent.
    event_id = (raw_id if isinstance(raw_id, str) else "")[:contract.limits.max_id_chars]
    problem = contract.check(contract.envelope, event)
    if problem is not None:
        return _rejected(event_id, problem, VerdictCode.INVALID_EVENT)
    event_type = event["type"]
    if event_type in ACTIVITY_TYPES:
        return _activity(event_id, event_type, event)
    if event_type != "ledger.entry":
        return Verdict(event_id, "rejected", code=VerdictCode.UNKNOWN_TYPE,
                       message=f"unknown event type {event_type!r}")
    return _entry(event_id, event["payload"], contract)


def _entry(event_id: str, payload: dict[str, Any], contract: Contract) -> Entry | Verdict:
    problem = contract.check(contract.entry, payload)
    if problem is not None:
        return _rejected(event_id, problem, VerdictCode.INVALID_ENTRY)
    try:
        entry = entry_from_wire(payload)
    except (LoyaltyError, ValueError, TypeError, KeyError) as exc:
        return Verdict(event_id, "rejected", code=VerdictCode.INVALID_ENTRY, message=str(exc))
    if entry.entry_id != event_id:
        return Verdict(event_id, "rejected", code=VerdictCode.INVALID_ENTRY,
                       message="event_id is not the entry's id")
    return entry


@dataclass(slots=True)
class BatchPlan:
    verdicts: list[Verdict] = field(default_factory=list)
    ledger_rows: list[Row] = field(default_factory=list)
    change_rows: list[Row] = field(default_factory=list)
    account_rows: list[Row] = field(default_factory=list)
    burns: list[Entry] = field(default_factory=list)  # to check for offline overdrafts
    seq: int = 0  # the mall's last server_seq once the batch is written


def plan_batch(parsed: Sequence[Parsed], known: dict[str, int], seq: int,
               *, mall_id: str, origin: str, at: str,
               activity_verdicts: Iterator[Verdict]) -> BatchPlan:
    """Verdicts and rows for `parsed` events, given the `server_seq` of the entries central
    already has (`known`, extended in place) and the mall's last `seq`. Activities take
    their verdicts, in order, from `activity_verdicts`."""
    plan = BatchPlan()
    projection: dict[str, list[int]] = {}
    for item in parsed:
        if isinstance(item, Verdict):
            plan.verdicts.append(item)
            continue
        if isinstance(item, Activity):
            plan.verdicts.append(next(activity_verdicts))
            continue
        if item.entry_id in known:  # also the second copy of an event in one batch
            plan.verdicts.append(Verdict(item.entry_id, "duplicate",
                                         server_seq=known[item.entry_id]))
            continue
        seq += 1
        known[item.entry_id] = seq
        payload = entry_text(item)
        plan.ledger_rows.append((item.entry_id, mall_id, item.account_id, item.source_type,
                                 item.source_key, item.kind.value, origin, seq, payload, at))
        plan.change_rows.append((mall_id, seq, "ledger.entry", item.entry_id, origin,
                                 item.account_id, payload, at))
        account = projection.setdefault(item.account_id, [0, 0, 0])
        account[0] += 1
        account[1] += item.points
        account[2] = seq
        if item.kind is EntryKind.BURN:
            plan.burns.append(item)
        plan.verdicts.append(Verdict(item.entry_id, "accepted", server_seq=seq))
    plan.account_rows = [(mall_id, account, n, points, last)
                         for account, (n, points, last) in projection.items()]
    plan.seq = seq
    return plan
