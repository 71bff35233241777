"""Enrolment: a new member joins at a kiosk, proved by a one-time code sent to their phone.

Three calls of the mall's gateway:

1. `POST .../enrolment-codes {phone}`: central makes a six-digit code, keeps only its
   keyed hash (under the mall's phone hash key, with the number's hash) with an expiry
   (`CODE_TTL_S`) and a number of attempts (`CODE_ATTEMPTS`), and hands the code to the
   mall's `CodeSender` (an SMS gateway's webhook, or a log line with the number masked).
   A new request for the same number replaces the old code, except within `RESEND_S` of
   it while it is still usable: then nothing is sent again (now that every identification
   by phone at a kiosk asks for a code, a number must not be flooded with texts).
2. `POST .../enrolments {enrolment_id, phone, code | provisional_member_id, consent}`:
   with a code (the gateway is online), the code is checked first, each wrong guess
   spending an attempt (committed on its own, so a refusal cannot roll it back); with a
   provisional member instead (the gateway enrolled the member while central was
   unreachable), the gateway vouches for the number and the member is marked
   `phone_verified: false`. Then, under the mall's lock: the mall's member with this
   number if there is one (the same phone enrolled twice is one member), else a new member
   with the number, the consent and the referrer. The answer is idempotent by
   `enrolment_id`: a retry gets the same member.
3. `POST .../phone-verifications {verification_id, phone, code}`: a member who gave their
   number at a kiosk proves it is theirs before spending points. The code of step 1 is
   checked the same way (one implementation, `check_code`) and used up for this
   verification; nobody is enrolled. A retry with the same `verification_id` passes again.

A provisional member keeps its account: the member central creates for it owns the
account the gateway opened offline (`account_id`), so the points earned before central
confirmed it are that member's without any entry being moved.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import aiohttp

from cloud_api.server.codes import Code
from cloud_api.server.ids import new_member_id
from cloud_api.server.operations import PHONE_COLUMNS, lock_mall, write_member
from cloud_api.server.phones import PhoneKeys, StoredPhone
from cloud_api.server.queries import Dialect, Execute, Fetch, Op
from cloud_api.server.storage import StorageError
from gateway.loyalty.phones import mask_phone
from gateway.loyalty.wire import to_text

log = logging.getLogger(__name__)

CODE_DIGITS = 6
# Long enough to read a text message and type it, short enough that a guessed code is
# worth little.
CODE_TTL_S = 300
# Wrong codes a number may be tried with before a new code must be requested: five
# guesses at a six-digit code succeed once in 200,000 tries.
CODE_ATTEMPTS = 5
# A usable code younger than this is not replaced nor sent again: a text takes seconds to
# arrive, and the kiosk's next try should not bury it under a new one.
RESEND_S = 60
WEBHOOK_TIMEOUT_S = 10.0

CodeCheck = Literal["ok", "wrong", "expired", "exhausted"]


class CodeSender(ABC):
    """Delivers a one-time code to the member's phone."""

    @abstractmethod
    async def send(self, mall_id: str, number: str, code: str, expires_at: datetime) -> None:
        """Hand the code over; an exception means it was not sent (the gateway is told
        central is unavailable and may ask again)."""


class LogSender(CodeSender):
    """The reference server's default: the code in central's log, the number masked (for
    a demo, or a mall whose SMS gateway reads the log)."""

    async def send(self, mall_id: str, number: str, code: str, expires_at: datetime) -> None:
        log.info("enrolment code %s for %s (mall %s), valid until %s", code,
                 mask_phone(number), mall_id, expires_at.isoformat(timespec="seconds"))


class WebhookSender(CodeSender):
    """POSTs `{"mall_id", "phone", "code", "expires_at"}` to the mall group's SMS gateway;
    any answer but 2xx is a failure. The number is sent in clear: texting needs it."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def send(self, mall_id: str, number: str, code: str, expires_at: datetime) -> None:
        body = {"mall_id": mall_id, "phone": number, "code": code,
                "expires_at": expires_at.isoformat(timespec="seconds")}
        timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.post(self.url, json=body, allow_redirects=False) as response:
            if response.status // 100 != 2:
                raise OSError(f"code webhook answered {response.status}")


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A checked enrolment request."""

    enrolment_id: str
    number: str | None  # None: a provisional enrolment that carries the hash only
    phone_hash: str
    consent: dict[str, Any]
    phone_masked: str | None = None
    code: str | None = None
    provisional_member_id: str | None = None
    account_id: str | None = None
    referrer: str | None = None


def new_code() -> str:
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(key: bytes, phone_hash: str, code: str) -> str:
    """What is kept of a code: keyed, so a leaked table without the key file gives no
    code (six digits hashed without a key are found by trying them all)."""
    return hmac.new(key, f"{phone_hash}:{code}".encode(), hashlib.sha256).hexdigest()


def hash_key(phones: PhoneKeys, mall_id: str) -> bytes:
    key = phones.hash_keys.get(mall_id)
    if key is None:
        raise StorageError(Code.PHONE_KEY_MISSING, f"central has no phone hash key for mall "
                           f"{mall_id}: members cannot enrol by phone", 409)
    return key


def standing_code(mall_id: str, phone_hash: str, now: datetime) -> Op[str | None]:
    """The expiry of the number's code if it is still usable and younger than `RESEND_S`
    (it was sent moments ago: nothing new is sent); None otherwise."""
    rows = yield Fetch("SELECT expires_at, attempts_left, verified_for, created_at FROM "
                       "enrolment_codes WHERE mall_id = ? AND phone_hash = ?",
                       (mall_id, phone_hash))
    if not rows:
        return None
    expires_at, attempts_left, verified_for, created_at = rows[0]
    at, recent = to_text(now) or "", to_text(now - timedelta(seconds=RESEND_S)) or ""
    if (verified_for is None and int(attempts_left) > 0 and str(expires_at) > at
            and str(created_at) > recent):
        return str(expires_at)
    return None


def store_code(mall_id: str, phone_hash: str, hashed: str, expires_at: str,
               at: str) -> Op[None]:
    yield Execute(
        "INSERT INTO enrolment_codes (mall_id, phone_hash, code_hash, expires_at, "
        "attempts_left, verified_for, created_at) VALUES (?, ?, ?, ?, ?, NULL, ?) "
        "ON CONFLICT (mall_id, phone_hash) DO UPDATE SET code_hash = excluded.code_hash, "
        "expires_at = excluded.expires_at, attempts_left = excluded.attempts_left, "
        "verified_for = NULL, created_at = excluded.created_at",
        (mall_id, phone_hash, hashed, expires_at, CODE_ATTEMPTS, at))


def verification_use(verification_id: str) -> str:
    """What a code verified for a kiosk's phone identification is kept as used for: apart
    from every enrolment id, so a code spent on one cannot enrol or verify the other."""
    return f"verification:{verification_id}"


def check_code(dialect: Dialect, mall_id: str, enrolment_id: str, phone_hash: str, *,
               hashed: str, now: str) -> Op[CodeCheck]:
    """Spend one attempt on the code (committed whatever the outcome); a code that
    matched is kept for this enrolment (or verification, `verification_use`), so its
    retry passes again."""
    rows = yield Fetch("SELECT code_hash, expires_at, attempts_left, verified_for FROM "
                       "enrolment_codes WHERE mall_id = ? AND phone_hash = ?"
                       + dialect.row_lock, (mall_id, phone_hash))
    if not rows:
        return "expired"
    kept, expires_at, attempts_left, verified_for = rows[0]
    if verified_for == enrolment_id:
        return "ok"
    if str(expires_at) < now or verified_for is not None:
        return "expired"
    if int(attempts_left) <= 0:
        return "exhausted"
    if hmac.compare_digest(str(kept), hashed):
        yield Execute("UPDATE enrolment_codes SET verified_for = ? WHERE mall_id = ? AND "
                      "phone_hash = ?", (enrolment_id, mall_id, phone_hash))
        return "ok"
    yield Execute("UPDATE enrolment_codes SET attempts_left = attempts_left - 1 WHERE "
                  "mall_id = ? AND phone_hash = ?", (mall_id, phone_hash))
    return "wrong"


def _view(mall_id: str, member_id: str) -> Op[dict[str, Any]]:
    rows = yield Fetch("SELECT edge_view FROM members WHERE mall_id = ? AND member_id = ?",
                       (mall_id, member_id))
    view: dict[str, Any] = json.loads(rows[0][0])
    return view


def enrolled(mall_id: str, enrolment_id: str) -> Op[dict[str, Any] | None]:
    """The member an enrolment already named (its edge view), if it was made."""
    done = yield Fetch("SELECT member_id FROM enrolments WHERE mall_id = ? AND "
                       "enrolment_id = ?", (mall_id, enrolment_id))
    if not done:
        return None
    return (yield from _view(mall_id, str(done[0][0])))


def enrol(dialect: Dialect, mall_id: str, request: Enrolment, at: str, *,
          create: Callable[[dict[str, Any]], Op[dict[str, Any]]],
          confirmed: Callable[[str, str], Op[int]] | None = None,
          ) -> Op[tuple[dict[str, Any], bool]]:
    """The member the enrolment names (its edge view) and whether it was created now.

    `create` makes a new member as the back office's creation does, with its rewards
    (the new-member gift, both sides of a referral) in the same transaction; `confirmed`
    (member id, provisional id) checks the tier of a provisional member once it is
    confirmed, over what it spent meanwhile, in the same transaction. A referrer
    who is not a member of the mall is left out rather than refusing the enrolment: a
    provisional member must always be confirmable, and a shopper is not turned away for
    a mistyped friend's id."""
    yield from lock_mall(dialect, mall_id)
    done = yield from enrolled(mall_id, request.enrolment_id)
    if done is not None:
        return done, False
    same_phone = yield Fetch(
        f"SELECT member_id, {PHONE_COLUMNS} FROM members WHERE mall_id = ? AND "
        "phone_hash = ? AND erased_at IS NULL ORDER BY member_id LIMIT 1",
        (mall_id, request.phone_hash))
    created = not same_phone
    if same_phone:
        member_id = str(same_phone[0][0])
    else:
        body: dict[str, Any] = {
            "member_id": new_member_id(), "consent": request.consent,
            "phone_verified": request.code is not None}
        if request.number is not None:
            body["phone"] = request.number
        if request.account_id is not None:
            body["account_id"] = request.account_id
        if request.referrer is not None:
            body["referrer"] = request.referrer
        try:
            member = yield from create(body)
        except StorageError as exc:
            if exc.code is not Code.INVALID_MEMBER or "referrer" not in body:
                raise
            log.warning("mall %s: enrolment %s names referrer %s, who is not a member: "
                        "enrolled without a referral", mall_id, request.enrolment_id,
                        body.pop("referrer"))
            member = yield from create(body)
        member_id = str(member["member_id"])
        if request.number is None:
            # The gateway keeps no number, only its keyed hash and masked form: stored so.
            profile = {k: v for k, v in member.items()
                       if k not in ("member_id", "account_id", "version", "phone_masked",
                                    "phone")}
            profile.pop("rewards", None)
            yield from write_member(
                mall_id, member_id, str(member["account_id"]), profile, version=2,
                phone=StoredPhone(request.phone_hash, request.phone_masked, None), at=at)
    yield Execute("INSERT INTO enrolments (mall_id, enrolment_id, member_id, "
                  "provisional_member_id, created_at) VALUES (?, ?, ?, ?, ?)",
                  (mall_id, request.enrolment_id, member_id, request.provisional_member_id,
                   at))
    yield Execute("DELETE FROM enrolment_codes WHERE mall_id = ? AND phone_hash = ?",
                  (mall_id, request.phone_hash))
    if confirmed is not None and request.provisional_member_id is not None:
        yield from confirmed(member_id, request.provisional_member_id)
    return (yield from _view(mall_id, member_id)), created


def code_expiry(now: datetime) -> datetime:
    return now + timedelta(seconds=CODE_TTL_S)
