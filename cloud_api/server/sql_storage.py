"""`Storage` over SQL, for every backend: each method runs one operation of `operations`.

A backend supplies only its I/O: how an operation runs as one write transaction, as one
consistent read, or as a single statement, and its `Dialect`.
"""

from __future__ import annotations

import functools
import logging
import secrets
from abc import abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from cloud_api.server import coupons, enrolment, notice_ops, rewards, rule_versions, tiers
from cloud_api.server import operations as ops
from cloud_api.server.codes import Code
from cloud_api.server.grants import GrantThrottle
from cloud_api.server.ids import hash_token, new_token
from cloud_api.server.notice_ops import Claimed
from cloud_api.server.phones import PhoneKeys
from cloud_api.server.queries import Dialect, Op, T
from cloud_api.server.storage import (
    CENTRAL_ORIGIN,
    ChangePage,
    CodeDelivery,
    NotFound,
    Parsed,
    Principal,
    PublishedRules,
    Scope,
    Storage,
    StorageError,
    Verdict,
    utc_now,
)
from gateway.loyalty import (
    Basket,
    CouponCodeUnknown,
    CouponError,
    Entry,
    LoyaltyRules,
    RuleBook,
    new_code,
    verify_code,
)
from gateway.loyalty.hlc import HybridClock
from gateway.loyalty.wire import to_text

log = logging.getLogger(__name__)

# Accounts looked at per transaction by the expiry reminder job.
REMINDER_PAGE = 200
_CODE_REFUSALS = {
    "wrong": (Code.INVALID_CODE, "the code does not match; check it, or ask for a new one"),
    "expired": (Code.CODE_EXPIRED, "no valid code for this number: ask for a new one"),
    "exhausted": (Code.TOO_MANY_ATTEMPTS, "too many wrong codes: ask for a new one"),
}

# Members converted per transaction when central starts with a mall's phone key: a
# large mall's conversion does not hold the mall's writes up in one long transaction.
CONVERT_PAGE = 500
# Members looked at per transaction by the birthday job, for the same reason.
BIRTHDAY_PAGE = 1000


class SqlStorage(Storage):
    dialect: Dialect

    def __init__(self, *, rules: LoyaltyRules | None = None,
                 now: Callable[[], datetime] = utc_now,
                 phones: PhoneKeys | None = None,
                 coupon_keys: dict[str, bytes] | None = None) -> None:
        self.rules = rules or LoyaltyRules()
        self.now = now
        self.grants = GrantThrottle()
        self.phones = phones or PhoneKeys()
        # Stamps the entries central grants itself (gifts, tasks, check-ins), on the
        # storage's clock so that a test's clock drives them too.
        self.clock = HybridClock(CENTRAL_ORIGIN, lambda: int(self.now().timestamp() * 1000))
        # Each mall's coupon key (shared with its gateways); without one, codes central
        # issues are as random, tagged under a key that lasts this run.
        self.coupon_keys = coupon_keys or {}
        self._run_key = secrets.token_bytes(32)

    async def open(self) -> None:
        await self._connect()
        for mall_id in sorted(self.phones.hash_keys):
            await self._convert_clear_phones(mall_id)

    @abstractmethod
    async def _connect(self) -> None:
        """Open the database and bring its schema up to date."""

    async def _convert_clear_phones(self, mall_id: str) -> None:
        """Numbers an older central kept in clear in the mall's profiles become their
        keyed hash and masked form, now that central has the mall's key."""
        after: str | None = ""
        converted, left = 0, list[str]()
        while after is not None:
            after, done, kept = await self._write(ops.convert_clear_phones(
                self.dialect, mall_id, self.phones, after=after, limit=CONVERT_PAGE,
                at=self._stamp()))
            converted, left = converted + done, left + kept
        if converted:
            log.info("mall %s: %d phone numbers kept in clear converted to their keyed "
                     "hash", mall_id, converted)
        if left:
            log.warning("mall %s: %d members keep a phone field in clear that is no phone "
                        "number; correct them (PATCH phone): %s", mall_id, len(left),
                        ", ".join(left[:20]))

    @abstractmethod
    async def _write(self, op: Op[T]) -> T:
        """Run `op` as one write transaction; an exception rolls it back."""

    @abstractmethod
    async def _read(self, op: Op[T], *, consistent: bool = False) -> T:
        """Run a read-only `op`; `consistent`: all its queries see one snapshot."""

    def _stamp(self) -> str:
        return to_text(self.now()) or ""

    def _stamp_entry(self, entry: Entry) -> Entry:
        return entry.stamped(origin_site=CENTRAL_ORIGIN, origin_seq=0,
                             hlc=str(self.clock.stamp()), recorded_at=self.now())

    def _ruled(self, mall_id: str, make: Callable[[LoyaltyRules], Op[T]]) -> Op[T]:
        """`make`'s operation with the mall's rules in force now, read in its transaction."""
        book = yield from rule_versions.rule_book(mall_id, self.rules)
        return (yield from make(book.at(self.now())))

    # -- credentials ------------------------------------------------------------------
    async def add_token(self, mall_id: str, scope: Scope, gateway_id: str | None) -> str:
        token = new_token()
        await self._write(ops.add_token(hash_token(token), mall_id, scope, gateway_id,
                                        self._stamp()))
        return token

    async def authenticate(self, token: str) -> Principal | None:
        return await self._read(ops.authenticate(hash_token(token)))

    # -- the gateways' events ---------------------------------------------------------
    async def accept_events(self, mall_id: str, origin: str,
                            items: Sequence[Parsed]) -> list[Verdict]:
        return await self._write(tiers.accept_batch(self.dialect, mall_id, origin, items,
                                                    self.now(), rules=self.rules))

    async def redeem_online(self, mall_id: str, burn: Entry) -> Verdict:
        return await self._write(ops.redeem_online(self.dialect, mall_id, burn, self.now()))

    async def changes(self, mall_id: str, after: int, limit: int,
                      exclude_origin: str | None) -> ChangePage:
        now = self.now()
        return await self._read(self._ruled(mall_id, lambda rules: ops.changes(
            mall_id, after, limit, exclude_origin, grants=self.grants, rules=rules,
            now=now)), consistent=True)

    async def head(self, mall_id: str) -> int:
        return await self._read(ops.head(mall_id))

    async def heartbeat(self, mall_id: str, gateway_id: str, status: dict[str, Any]) -> None:
        await self._write(ops.heartbeat(mall_id, gateway_id, status, self._stamp()))

    async def snapshot_lines(self, mall_id: str, kind: str, after_key: str,
                             limit: int) -> list[tuple[str, str]]:
        return await self._read(ops.snapshot_lines(self.dialect, mall_id, kind, after_key,
                                                   limit))

    # -- the back office --------------------------------------------------------------
    async def create_member(self, mall_id: str, body: dict[str, Any]) -> dict[str, Any]:
        now = self.now()
        return await self._write(self._ruled(mall_id, lambda rules: rewards.create_member(
            self.dialect, mall_id, body, phones=self.phones, now=now, rules=rules,
            stamp=self._stamp_entry)))

    async def update_member(self, mall_id: str, member_id: str,
                            body: dict[str, Any]) -> dict[str, Any]:
        now = self.now()
        return await self._write(self._ruled(mall_id, lambda rules: rewards.update_member(
            self.dialect, mall_id, member_id, body, phones=self.phones, now=now,
            rules=rules, stamp=self._stamp_entry)))

    async def checkin(self, mall_id: str, member_id: str) -> tuple[Entry, Verdict]:
        now = self.now()
        return await self._write(self._ruled(mall_id, lambda rules: rewards.checkin(
            self.dialect, mall_id, member_id, now=now, rules=rules,
            stamp=self._stamp_entry)))

    async def grant_birthdays(self, mall_id: str) -> list[Entry]:
        """Page by page: the members are read a page at a time, and each page's gifts
        are one write transaction."""
        granted: list[Entry] = []
        after: str | None = ""
        while after is not None:
            now = self.now()
            after, gifts = await self._read(self._ruled(mall_id, functools.partial(
                rewards.birthday_candidates, mall_id, after, BIRTHDAY_PAGE, now)))
            if gifts:
                granted += await self._write(self._ruled(mall_id, functools.partial(
                    rewards.grant_new, self.dialect, mall_id, gifts, now,
                    stamp=self._stamp_entry)))
        return granted

    async def get_member(self, mall_id: str, member_id: str) -> dict[str, Any]:
        now = self.now()
        return await self._read(self._ruled(mall_id, lambda rules: ops.get_member(
            mall_id, member_id, rules, self.phones, now)), consistent=True)

    async def find_members_by_phone(self, mall_id: str, number: str) -> list[dict[str, Any]]:
        phone_hash = self.phones.hash_for(mall_id, number)
        if phone_hash is None:
            raise StorageError(Code.PHONE_KEY_MISSING, f"central has no phone hash key for "
                               f"mall {mall_id}: members cannot be found by phone", 409)
        return await self._read(ops.find_members_by_phone(mall_id, phone_hash, self.phones))

    async def new_enrolment_code(self, mall_id: str, number: str,
                                 send: CodeDelivery) -> datetime:
        key = enrolment.hash_key(self.phones, mall_id)
        phone_hash = self.phones.hash_for(mall_id, number) or ""
        now = self.now()
        standing = await self._read(enrolment.standing_code(mall_id, phone_hash, now))
        if standing is not None:
            return datetime.fromisoformat(standing)
        code, expires = enrolment.new_code(), enrolment.code_expiry(now)
        # Sent before it is kept: a code that could not be sent is not kept either, so it
        # does not stand in the way of the gateway asking again at once.
        await send(code, expires)
        await self._write(enrolment.store_code(
            mall_id, phone_hash, enrolment.code_hash(key, phone_hash, code),
            to_text(expires) or "", to_text(now) or ""))
        return expires

    async def enrol(self, mall_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        key = enrolment.hash_key(self.phones, mall_id)
        number = body.get("phone")
        if number is not None:
            phone_hash = self.phones.hash_for(mall_id, number) or ""
        elif body.get("provisional_member_id") and body.get("phone_hash"):
            phone_hash = str(body["phone_hash"])
        else:
            raise StorageError(Code.INVALID_REQUEST, "an enrolment needs the phone number, or "
                               "for a provisional member its phone_hash")
        request = enrolment.Enrolment(
            enrolment_id=str(body["enrolment_id"]), number=number, phone_hash=phone_hash,
            phone_masked=body.get("phone_masked"),
            consent=dict(body["consent"]), code=body.get("code"),
            provisional_member_id=body.get("provisional_member_id"),
            account_id=body.get("account_id"), referrer=body.get("referrer"))
        done = await self._read(enrolment.enrolled(mall_id, request.enrolment_id))
        if done is not None:  # a retry: its code is used up, its member is the answer
            return done, False
        if request.code is not None:
            # Its own transaction: a wrong guess spends an attempt even though it is refused.
            check = await self._write(enrolment.check_code(
                self.dialect, mall_id, request.enrolment_id, phone_hash,
                hashed=enrolment.code_hash(key, phone_hash, request.code),
                now=self._stamp()))
            if check != "ok":
                code, message = _CODE_REFUSALS[check]
                raise StorageError(code, message, 422)
        elif request.provisional_member_id is None:
            raise StorageError(Code.INVALID_REQUEST, "an enrolment needs the code sent to the "
                               "phone, or the provisional member the gateway made offline")
        now = self.now()
        at = to_text(now) or ""
        return await self._write(self._ruled(mall_id, lambda rules: enrolment.enrol(
            self.dialect, mall_id, request, at,
            create=lambda body: rewards.create_member(
                self.dialect, mall_id, body, phones=self.phones, now=now, rules=rules,
                stamp=self._stamp_entry),
            confirmed=lambda member_id, provisional_id: tiers.upgrade_confirmed(
                self.dialect, mall_id, member_id, provisional_id=provisional_id,
                rules=self.rules, at=at))))

    async def verify_phone_code(self, mall_id: str, verification_id: str,
                                number: str, code: str) -> None:
        key = enrolment.hash_key(self.phones, mall_id)
        phone_hash = self.phones.hash_for(mall_id, number) or ""
        # Its own transaction, like an enrolment's: a wrong guess spends an attempt.
        check = await self._write(enrolment.check_code(
            self.dialect, mall_id, enrolment.verification_use(verification_id), phone_hash,
            hashed=enrolment.code_hash(key, phone_hash, code), now=self._stamp()))
        if check != "ok":
            refusal, message = _CODE_REFUSALS[check]
            raise StorageError(refusal, message, 422)

    async def erase_member(self, mall_id: str, member_id: str) -> None:
        await self._write(ops.erase_member(self.dialect, mall_id, member_id, self._stamp()))

    async def put_document(self, mall_id: str, kind: str, key: str,
                           payload: dict[str, Any]) -> int:
        return await self._write(ops.put_document(mall_id, kind, key, payload,
                                                  self._stamp()))

    async def publish_rules(self, mall_id: str, version: object, payload: object,
                            effective_at: object) -> PublishedRules:
        checked = rule_versions.check_version(
            version, payload, rule_versions.default_effective_at(effective_at, self.now()))
        assert isinstance(payload, dict)  # noqa: S101 - checked by `check_version`
        return await self._write(rule_versions.publish(
            self.dialect, mall_id, checked, payload, self._stamp(),
            timed=effective_at is not None))

    async def list_rules(self, mall_id: str) -> list[dict[str, Any]]:
        return await self._read(rule_versions.listing(mall_id, self.now()))

    async def rule_documents(self, mall_id: str) -> list[dict[str, Any]]:
        return await self._read(rule_versions.documents(mall_id))

    async def rule_book(self, mall_id: str) -> RuleBook:
        return await self._read(rule_versions.rule_book(mall_id, self.rules))
    # -- coupons ----------------------------------------------------------------------
    async def put_campaign(self, mall_id: str, campaign_id: str,
                           definition: dict[str, Any]) -> dict[str, Any]:
        return await self._write(coupons.put_campaign(mall_id, campaign_id, definition,
                                                      self._stamp()))

    async def issue_coupons(self, mall_id: str, campaign_id: str,
                            body: dict[str, Any]) -> dict[str, Any]:
        return await self._write(coupons.issue(
            self.dialect, mall_id, campaign_id, body, new_code=self._new_code,
            now=self.now(), at=self._stamp()))

    def _new_code(self, mall: str) -> str:
        return new_code(self.coupon_keys.get(mall) or self._run_key, mall)

    async def member_coupons(self, mall_id: str, member_id: str) -> list[dict[str, Any]]:
        return await self._read(coupons.member_coupons(mall_id, member_id, self.now()),
                                consistent=True)

    async def redeem_coupon(self, mall_id: str, code: str, *, redemption_id: str,
                            member_id: str | None, basket: Basket) -> dict[str, Any]:
        key = self.coupon_keys.get(mall_id)
        if key is not None:
            # A code this mall's key did not make (forged, another mall's) is refused
            # before any row is read or locked.
            try:
                verify_code(key, mall_id, code)
            except CouponCodeUnknown:
                raise NotFound("coupon") from None
            except CouponError as exc:
                raise StorageError(Code.COUPON_REFUSED, str(exc), 422,
                                   reason=exc.code) from None
        return await self._write(coupons.redeem(
            self.dialect, mall_id, code, redemption_id=redemption_id, member_id=member_id,
            basket=basket, now=self.now(), at=self._stamp()))

    async def void_coupon(self, mall_id: str, coupon_id: str, reason: str) -> dict[str, Any]:
        return await self._write(coupons.void(self.dialect, mall_id, coupon_id, reason=reason,
                                              now=self.now(), at=self._stamp()))

    async def mall_ids(self) -> list[str]:
        return await self._read(ops.mall_ids())

    async def review_tiers(self, mall_id: str) -> int:
        return await self._write(tiers.review_anniversaries(self.dialect, mall_id, self.rules,
                                                            self.now(), self._stamp()))

    async def purge_changes(self, mall_id: str, older_than_s: float) -> int:
        cutoff = to_text(self.now() - timedelta(seconds=older_than_s)) or ""
        return await self._write(ops.purge_changes(mall_id, cutoff))

    # -- member notices and their webhook deliveries ----------------------------------
    async def notices(self, mall_id: str, member_id: str | None, after: int,
                      limit: int) -> tuple[list[dict[str, Any]], int]:
        return await self._read(notice_ops.notices_page(mall_id, member_id, after, limit))

    async def find_expiry_reminders(self, mall_id: str) -> int:
        after: str | None = ""
        created = 0
        now = self.now()
        # The reminder days of the rules in force now, as the mall's rule book has them.
        rules = (await self._read(rule_versions.rule_book(mall_id, self.rules))).at(now)
        while after is not None:
            after, new = await self._write(notice_ops.expiry_reminders(
                self.dialect, mall_id, after_account=after, limit=REMINDER_PAGE,
                rules=rules, now=now, at=self._stamp()))
            created += new
        after = ""
        while after is not None:
            after, new = await self._write(notice_ops.coupon_reminders(
                self.dialect, mall_id, after_coupon=after, limit=REMINDER_PAGE,
                rules=rules, now=now, at=self._stamp()))
            created += new
        return created

    async def queue_deliveries(self, mall_id: str, webhook: str, limit: int) -> int:
        return await self._write(notice_ops.queue_deliveries(
            self.dialect, mall_id, webhook, at=self._stamp(), limit=limit))

    async def claim_deliveries(self, mall_id: str, webhook: str, *, owner: str,
                               lease_s: float, limit: int) -> list[Claimed]:
        now = self.now()
        return await self._write(notice_ops.claim_deliveries(
            self.dialect, mall_id, webhook, owner=owner, now=to_text(now) or "",
            lease_until=to_text(now + timedelta(seconds=lease_s)) or "", limit=limit))

    async def delivered(self, mall_id: str, webhook: str, notice_id: str) -> None:
        await self._write(notice_ops.mark_delivered(mall_id, webhook, notice_id,
                                                    self._stamp()))

    async def delivery_failed(self, mall_id: str, webhook: str, notice_id: str, *,
                              owner: str, error: str, retry_in_s: float | None) -> bool:
        retry_at = (to_text(self.now() + timedelta(seconds=retry_in_s))
                    if retry_in_s is not None else None)
        return await self._write(notice_ops.mark_failed(
            mall_id, webhook, notice_id, owner=owner, error=error, retry_at=retry_at))

    async def dead_deliveries(self, mall_id: str, limit: int) -> list[dict[str, Any]]:
        return await self._read(notice_ops.dead_deliveries(mall_id, limit))

    async def retry_dead(self, mall_id: str, notice_ids: Sequence[str] | None) -> int:
        return await self._write(notice_ops.retry_dead(mall_id, notice_ids, self._stamp()))

    async def delivery_counts(self, mall_id: str) -> dict[str, dict[str, int]]:
        return await self._read(notice_ops.delivery_counts(mall_id))

    async def purge_notices(self, mall_id: str, older_than_s: float) -> int:
        cutoff = to_text(self.now() - timedelta(seconds=older_than_s)) or ""
        return await self._write(notice_ops.purge_notices(mall_id, cutoff))
