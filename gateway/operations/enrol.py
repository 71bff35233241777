"""`member.enroll`: a shopper joins at a kiosk with their phone number.

Online (central reachable): a first request without `code` has central text a one-time
code to the number (`step: code_sent`); the request with the code has central check it
and enrol the member, whom the edge stores at once (`step: enrolled`). The same phone is
one member: central answers with the member it already has.

Offline (central unreachable, or failing while asked): the gateway makes a provisional
member at once (`step: provisional`), whose id and account come from the request (a
redelivered request makes the same one); it earns and checks in at once, and sync has
central confirm it later (`sync/enrolments.py`), which merges it under central's id. A
phone that is already a member here is refused (`already_member`): without central's
code nobody can prove the number, so it must not open someone else's account.

Every enrolled reply opens a session at the kiosk, like `member.identify`. The consent
is recorded with its policy version and the time the gateway took it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from gateway.central import EnrolmentPort, EnrolmentRefused, EnrolmentUnavailable
from gateway.ledger import Ledger
from gateway.loyalty import InvalidPhone
from gateway.loyalty.phones import mask_phone, normalise_phone, phone_hash
from gateway.loyalty.tier_review import benefits, tier_of
from gateway.loyalty.wire import to_text
from gateway.members import Lookup, Member, find_member, upsert_member
from gateway.members.provisional import Provisional, add_provisional, provisional_ids
from gateway.operations.model import (
    STORED_ERRORS,
    OperationRequest,
    RefusalCode,
    Refused,
    Replies,
    Reply,
)
from gateway.operations.sessions import Sessions
from gateway.operations.stored import store_reply, stored_reply
from gateway.store import Reader, Writer

# Central's refusals of a code, passed on to the kiosk as they are.
_CENTRAL_REFUSALS = frozenset({"invalid_code", "code_expired", "too_many_attempts"})


@dataclass(frozen=True, slots=True)
class Enrolments:
    ledger: Ledger
    reader: Reader
    writer: Writer
    replies: Replies
    phone_key: bytes | None
    sessions: Sessions | None
    central: Callable[[], EnrolmentPort | None]

    async def handle(self, request: OperationRequest) -> tuple[Reply, bool]:
        stored = self.reader.run_here(lambda conn: stored_reply(conn, request))
        if stored is not None:
            return stored, True
        now = self.ledger.now()
        try:
            return await self._enrol(request, now), False
        except Refused as refused:
            reply = self.replies.refused(request.id, refused)
            if refused.code in STORED_ERRORS:
                reply = await self.writer.submit(
                    lambda conn: store_reply(conn, request, reply, now))
            return reply, False

    async def _enrol(self, request: OperationRequest, now: datetime) -> Reply:
        data = request.data
        if self.phone_key is None:
            raise Refused("enrolment_unavailable", "enrolment by phone is not configured "
                          "here ([kiosk] phone_hash_key)")
        try:
            number = normalise_phone(data["phone"])
        except InvalidPhone as exc:
            raise Refused("invalid_payload", f"data/phone: {exc}") from None
        consent = {"policy_version": data["consent"]["policy_version"],
                   "accepted_at": to_text(now)}
        referrer = data.get("referrer")
        port = self.central()
        if port is not None:
            try:
                return await self._online(port, request, number, consent=consent,
                                          referrer=referrer, now=now)
            except EnrolmentUnavailable:
                pass  # central went away while asked: enrol offline
        provisional_id, account_id, enrolment_id = provisional_ids(request.key)
        provisional = Provisional(
            member_id=provisional_id, account_id=account_id, enrolment_id=enrolment_id,
            phone_hash=phone_hash(self.phone_key, number), phone_masked=mask_phone(number),
            consent=consent, referrer=referrer, created_at=to_text(now) or "")
        return await self._store(request, now, "provisional", provisional=provisional)

    async def _online(self, port: EnrolmentPort, request: OperationRequest, number: str, *,
                      consent: dict[str, Any], referrer: str | None, now: datetime) -> Reply:
        code = request.data.get("code")
        try:
            if code is None:
                sent = await port.request_code(number)
                reply = self.replies.ok(request.id, {
                    "step": "code_sent", "phone_masked": sent["phone_masked"],
                    "expires_at": sent["expires_at"]})
                return await self.writer.submit(
                    lambda conn: store_reply(conn, request, reply, now))
            body: dict[str, Any] = {"enrolment_id": provisional_ids(request.key)[2],
                                    "phone": number, "code": code, "consent": consent}
            if referrer is not None:
                body["referrer"] = referrer
            enrolled = await port.enrol(body)
        except EnrolmentRefused as refused:
            passed: RefusalCode = (cast(RefusalCode, refused.code)
                                   if refused.code in _CENTRAL_REFUSALS else "internal")
            raise Refused(passed, refused.msg) from None
        return await self._store(request, now, "enrolled", view=enrolled["member"])

    async def _store(self, request: OperationRequest, now: datetime, step: str, *,
                     view: dict[str, Any] | None = None,
                     provisional: Provisional | None = None) -> Reply:
        """Keep the member (central's, or a provisional one) and the reply in one op."""
        at = to_text(now) or ""

        def op(conn: sqlite3.Connection) -> Reply:
            kept = stored_reply(conn, request)
            if kept is not None:
                return kept
            if view is not None:
                upsert_member(conn, view, at)
                member = find_member(conn, Lookup("member", str(view["member_id"])))
            else:
                assert provisional is not None  # noqa: S101 - one of the two is given
                if find_member(conn, Lookup("phone_hash", provisional.phone_hash)):
                    refusal = Refused("already_member", "this phone number is a member "
                                      "here: identify by phone instead")
                    return store_reply(conn, request,
                                       self.replies.refused(request.id, refusal), now)
                add_provisional(conn, provisional)
                member = find_member(conn, Lookup("member", provisional.member_id))
            assert member is not None  # noqa: S101 - just stored
            return store_reply(conn, request, self._answer(conn, request, member, step, now),
                               now)

        return await self.writer.submit(op)

    def _answer(self, conn: sqlite3.Connection, request: OperationRequest, member: Member,
                step: str, now: datetime) -> Reply:
        entries = self.ledger.entries_in_write(conn, member.account_id)
        balance = self.ledger.balance_of(member.account_id, entries, now)
        answer: dict[str, Any] = {
            "step": step, "member_id": member.id, "display_name": member.display_name,
            **benefits(tier_of(self.ledger.rules, member.tier)),
            "available": balance.available}
        if self.sessions is not None:
            session, expires = self.sessions.issue(request.kiosk, member.id, now)
            answer |= {"session": session, "session_expires_at": to_text(expires)}
        return self.replies.ok(request.id, answer)
