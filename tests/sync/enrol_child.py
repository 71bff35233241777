"""A gateway that enrols a member offline, earns, syncs and has central confirm the member,
killed with SIGKILL at a chosen step.

    python -m tests.sync.enrol_child DB URL TOKEN [KILL_POINT]

Kill points: after_enrol (the provisional member and its check-in committed), after_push
(its entries pushed), before_confirm (about to ask central), after_confirm (central
confirmed, the edge has not merged), after_merge (merged, not yet synced again).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from devices.kiosk.protocol import REPLIES
from gateway.members import IdentityKeys
from gateway.operations.model import OperationRequest
from gateway.operations.service import Operations
from gateway.operations.sessions import Sessions, session_key
from sync.enrolments import CentralEnrolments, ProvisionalConfirmer
from tests.sync.edge import open_edge

PHONE_KEY = b"phone-key-of-the-test-mall"
NUMBER = "13900139000"
CONSENT = {"policy_version": "privacy-2026-01", "accepted": True}


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def dying(fn: Callable[..., Awaitable[Any]], *, before: bool) -> Callable[..., Awaitable[Any]]:
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            die()
        result = await fn(*args, **kwargs)
        die()
        return result
    return wrapped


async def main(db: Path, url: str, token: str, point: str) -> None:
    async with open_edge(db, url, token) as edge:
        key = await edge.writer.submit(lambda conn: session_key(conn, edge.ledger.now()))
        ops = Operations(ledger=edge.ledger, reader=edge.reader, writer=edge.writer,
                         keys=IdentityKeys(None, PHONE_KEY, 60), replies=REPLIES,
                         central_online=lambda: False, claim_days=7,
                         sessions=Sessions(key, 300))
        # The kiosk's requests, with the same ids on every run: a rerun is a retry.
        enrolled, _ = await ops.handle(OperationRequest(
            op="member.enroll", key="k1/E1", id="E1", kiosk="k1",
            data={"phone": NUMBER, "consent": CONSENT}))
        assert enrolled["data"]["step"] == "provisional", enrolled
        checkin, _ = await ops.handle(OperationRequest(
            op="checkin", key="k1/C1", id="C1", kiosk="k1",
            data={"session": enrolled["data"]["session"]}))
        assert checkin["status"] == "ok", checkin
        if point == "after_enrol":
            die()
        await edge.engine.sync_now()
        if point == "after_push":
            die()
        port = CentralEnrolments(edge.client, "gw-test")
        if point in ("before_confirm", "after_confirm"):
            port.enrol = dying(port.enrol, before=point == "before_confirm")  # type: ignore[method-assign,assignment]
        confirmer = ProvisionalConfirmer(port, ledger=edge.ledger, reader=edge.reader,
                                         writer=edge.writer, online=lambda: True)
        await confirmer.confirm_pending()
        if point == "after_merge":
            die()
        await edge.engine.sync_now()
    if point:
        sys.exit(f"still alive past {point}: nothing was tested")
    print("done", flush=True)


if __name__ == "__main__":
    database, central_url, central_token, *kill = sys.argv[1:]
    asyncio.run(main(Path(database), central_url, central_token, kill[0] if kill else ""))
