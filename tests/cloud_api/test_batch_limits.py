"""One bad event of a pushed batch gets its own `rejected` verdict with a permanent code;
the others are accepted and sequenced. Points, money and sizes are bounded by central's
limits, not only by what fits in 64 bits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloud_api.client import CentralClient
from cloud_api.server.codes import VerdictCode
from tests.cloud_api.central import GATEWAY, MALL, entry, event
from tests.cloud_api.processes import central_processes, issue_token


def tampered(earned: int, key: str, **fields: Any) -> str:
    """A well-formed event whose payload fields are then changed as a faulty gateway would."""
    body = json.loads(event(entry(earned, key)))
    body["payload"].update(fields)
    return json.dumps(body)


def missing(field: str) -> str:
    body = json.loads(event(entry(5, "missing-" + field)))
    del body["payload"][field]
    return json.dumps(body)


BAD = {
    "points of 2^63": (tampered(5, "big", points=2**63), VerdictCode.OUT_OF_BOUNDS),
    "points of -2^63": (tampered(5, "small", points=-(2**63)), VerdictCode.OUT_OF_BOUNDS),
    "10^15 points": (tampered(5, "mint", points=10**15), VerdictCode.OUT_OF_BOUNDS),
    "a negative EARN": (tampered(5, "neg", points=-5), VerdictCode.INVALID_ENTRY),
    "points as text": (tampered(5, "text", points="5"), VerdictCode.INVALID_ENTRY),
    "points of 1.5": (tampered(5, "half", points=1.5), VerdictCode.INVALID_ENTRY),
    "a reason of 1 MB": (tampered(5, "long", reason="x" * 1_000_000),
                         VerdictCode.OUT_OF_BOUNDS),
    "a spend of ¥10^8": (tampered(5, "rich", qual_fen=10**10), VerdictCode.OUT_OF_BOUNDS),
    "no reason": (missing("reason"), VerdictCode.INVALID_ENTRY),
    "no effective_at": (missing("effective_at"), VerdictCode.INVALID_ENTRY),
    "a bad time": (tampered(5, "when", effective_at="yesterday"), VerdictCode.INVALID_ENTRY),
    "not an object": ('"just text"', VerdictCode.INVALID_EVENT),
    "no payload": (json.dumps({"event_id": "e1", "type": "ledger.entry"}),
                   VerdictCode.INVALID_EVENT),
    "an event id of 1 MB": (json.dumps({"event_id": "e" * 1_000_000, "type": "visit",
                                        "payload": {}}), VerdictCode.OUT_OF_BOUNDS),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_one_bad_event_is_rejected_alone(gw_client: CentralClient,
                                               admin: CentralClient, case: str) -> None:
    bad, code = BAD[case]
    before, after = entry(100, "before", seq=1), entry(50, "after", seq=3)
    verdicts = await gw_client.push_batch(GATEWAY, [event(before), bad, event(after)])
    assert [v.status for v in verdicts] == ["accepted", "rejected", "accepted"]
    assert verdicts[1].code == code, verdicts[1].message
    assert len(verdicts[1].event_id) <= 200
    assert verdicts[0].server_seq == 1 and verdicts[2].server_seq == 2
    await admin.create_member(MALL, {"member_id": "M1", "account_id": "A1"})
    state = await admin.get_member(MALL, "M1")
    assert state["balance"]["available"] == 150


async def test_the_limits_are_central_settings(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    token = await issue_token(db, None, MALL, "gateway", GATEWAY)
    async with central_processes(db, extra=["--max-points", "1000", "--max-id-chars",
                                            "64"]) as (url,), CentralClient(url, token) as gw:
        verdicts = await gw.push_batch(GATEWAY, [event(entry(1000, "ok")),
                                                 event(entry(1001, "too many")),
                                                 event(entry(1, "k" * 65))])
    assert [(v.status, v.code) for v in verdicts] == [
        ("accepted", None), ("rejected", "out_of_bounds"), ("rejected", "out_of_bounds")]
