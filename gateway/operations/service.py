"""The member operations: identify, balance, check-in, redeem, answered from the local store.

The reply of every operation that changes something (check-in, redeem, offer claim) is
stored under the request's key in the same transaction as the points it moves. That
transaction is one writer op, which also looks for a stored reply, finds the member and
checks the balance. So a retried request gets the stored reply and is never applied twice,
and a crash before the commit leaves nothing to undo: the channel redelivers the
unacknowledged request and it runs afresh. Reads (identify, balance) change nothing and are
answered afresh on a retry, which costs no write (no fsync) per scan; their refusals (an
unknown member, a bad token) are stored like any other refusal.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import cast, get_args

from gateway.central import EnrolmentPort
from gateway.coupons import CouponIssuer, campaign_in
from gateway.coupons.lookup import check_code, coupon_data, just_issued, list_coupons
from gateway.holds import rows as holds
from gateway.holds.service import available_after_holds
from gateway.ledger import Ledger
from gateway.ledger.gifts import birthday_gift_due, give_birthday_gift_in
from gateway.ledger.service import Balance, Recorded
from gateway.loyalty import (
    Campaign,
    CouponError,
    Entry,
    IssueRefused,
    RedemptionRefused,
    Where,
    basket_from_wire,
    check_issue,
    check_redemption,
    checkin_entry,
    redemption_entry,
)
from gateway.loyalty.calendar import local_date
from gateway.loyalty.rules import Tier
from gateway.loyalty.tier_review import benefits, tier_of
from gateway.loyalty.wire import to_text
from gateway.members import IdentityError, IdentityKeys, Lookup, Member, find_member, lookup_for
from gateway.offers.store import OfferClaimError, claim_offer
from gateway.operations.enrol import Enrolments
from gateway.operations.expiring import expiring_fields
from gateway.operations.model import (
    STORED_ERRORS,
    OperationRequest,
    RefusalCode,
    Refused,
    Replies,
    Reply,
)
from gateway.operations.sessions import SESSION_OPS, Sessions
from gateway.operations.stored import store_reply, stored_reply
from gateway.receipts import ReceiptClaimError, claim_receipt
from gateway.receipts.rows import utc_text
from gateway.store import Reader, Writer

Entries = list[tuple[Entry, bool]]


@dataclass(frozen=True, slots=True)
class AccountRead:
    """The account's entries and the points its open till holds reserve, read with the
    member (one snapshot) for the reads that answer with a balance."""

    entries: Entries
    held: int
    gift: Entry | None = None  # the member's birthday gift, due and not yet given


# A read operation: the member and, for those in _READS_WITH_BALANCE, their account.
ReadOp = Callable[[OperationRequest, Member, AccountRead | None, datetime],
                  Awaitable[Reply]]
# A write operation: runs inside one writer op, returns its answer (or refusal) and the
# entries it recorded.
WriteOp = Callable[[sqlite3.Connection, OperationRequest, Member, datetime, bool],
                   tuple[Reply | Refused, list[Recorded]]]

_READS_WITH_BALANCE = frozenset({"member.identify", "balance.query"})
_CODES: frozenset[str] = frozenset(get_args(RefusalCode))


def gifts_json(gifts: Sequence[Entry]) -> dict[str, list[dict[str, object]]]:
    """The `gifts` of a kiosk reply: what this request gave the member, for the screen
    to show (absent when it gave nothing)."""
    if not gifts:
        return {}
    return {"gifts": [{"kind": g.source_type, "points": g.points, "reason": g.reason}
                      for g in gifts]}


def _refusal_code(code: str) -> RefusalCode:
    """A refusal's code as the operations give it: one they know, else `internal`."""
    return cast(RefusalCode, code) if code in _CODES else "internal"


class Operations:
    def __init__(self, *, ledger: Ledger, reader: Reader, writer: Writer, keys: IdentityKeys,
                 replies: Replies, central_online: Callable[[], bool], claim_days: int,
                 sessions: Sessions | None, site: str = "",
                 offer_claim_s: int = 3600,
                 enrolment: Callable[[], EnrolmentPort | None] = lambda: None,
                 coupons: CouponIssuer | None = None) -> None:
        """`sessions`: the channel's sessions, which identify answers with and the writes
        on a member (`SESSION_OPS`) require; None for a caller that authenticates its
        writes itself (the core's own tests). `enrolment`: central's enrolment calls
        while it is reachable (`CentralStatus.enrolment`); None enrols provisionally."""
        self.ledger = ledger
        self.reader = reader
        self.writer = writer
        self.keys = keys
        self.replies = replies
        self.central_online = central_online
        self.claim_days = claim_days
        self.site = site
        self.offer_claim_s = offer_claim_s
        self.sessions = sessions
        self._enrolments = Enrolments(
            ledger=ledger, reader=reader, writer=writer, replies=replies,
            phone_key=keys.phone_key, sessions=sessions, central=enrolment)
        self.coupons = coupons or CouponIssuer.for_run(site, site, None)
        self._reads: dict[str, ReadOp] = {
            "member.identify": self._identify,
            "balance.query": self._balance,
            "receipt.claim": self._receipt_claim,
            "coupon.list": self._coupon_list,
            "coupon.check": self._coupon_check,
        }
        # Each of these is one writer op: its stored reply, the member, the balance check
        # and what it allows are read and written in one transaction. The single writer
        # orders them, so two redemptions of one account cannot both pass the check, and a
        # request costs one hop to the writer thread rather than reads and then a write.
        self._writes: dict[str, WriteOp] = {
            "checkin": self._checkin,
            "redeem": self._redeem,
            "offer.claim": self._offer_claim,
        }

    @property
    def ops(self) -> frozenset[str]:
        return frozenset(self._reads) | frozenset(self._writes) | {"member.enroll"}

    async def handle(self, request: OperationRequest) -> tuple[Reply, bool]:
        """The reply to `request` (durable when it returns) and whether it was a retry."""
        try:
            return await self._handle(request)
        except Refused as conflict:
            # Its key holds the reply of another request: refused, nothing applied or kept.
            if conflict.code != "id_conflict":
                raise
            return self.replies.refused(request.id, conflict), False

    async def _handle(self, request: OperationRequest) -> tuple[Reply, bool]:
        if request.op == "member.enroll":
            return await self._enrolments.handle(request)
        now = self.ledger.now()
        refusal: Refused | None = None
        lookup: Lookup | None = None
        try:
            lookup = self._lookup(request, now)
        except IdentityError as refused:
            refusal = Refused(refused.code, refused.msg)
        except Refused as refused:  # no valid session: refused, unless a stored reply
            refusal = refused
        if lookup is not None and request.op in self._writes:
            return await self._write(request, lookup, now)
        # One read for all: a retry must get its stored reply even if, say, its QR token
        # has expired since; and the reads that answer with a balance get the account's
        # entries in the same read. A few point lookups: read right here, on the loop.
        with_entries = request.op in _READS_WITH_BALANCE
        stored, member, entries = self.reader.run_here(lambda conn: self._first_read(
            conn, request, lookup, with_entries=with_entries, now=now))
        if stored is not None:
            return stored, True
        outcome = refusal if refusal is not None else await self._run(
            request, member, entries, now)
        if isinstance(outcome, Refused):
            return await self._refuse(request, outcome, now), False
        return outcome, False

    async def _run(self, request: OperationRequest, member: Member | None,
                   entries: AccountRead | None, now: datetime) -> Reply | Refused:
        if member is None:
            return Refused("unknown_member", "no member with this identity here")
        try:
            return await self._reads[request.op](request, member, entries, now)
        except Refused as refused:
            return refused

    async def _write(self, request: OperationRequest, lookup: Lookup,
                     now: datetime) -> tuple[Reply, bool]:
        write = self._writes[request.op]
        online = self.central_online()
        refused_reply = self.replies.refused

        def op(conn: sqlite3.Connection) -> tuple[Reply, bool, list[Recorded]]:
            stored = stored_reply(conn, request)
            if stored is not None:
                return stored, True, []
            member = find_member(conn, lookup)
            outcome: Reply | Refused
            recorded: list[Recorded] = []
            if member is None:
                outcome = Refused("unknown_member", "no member with this identity here")
            else:
                outcome, recorded = write(conn, request, member, now, online)
            if isinstance(outcome, Refused):
                reply = refused_reply(request.id, outcome)
                if outcome.code not in STORED_ERRORS:
                    return reply, False, recorded
                outcome = reply
            return store_reply(conn, request, outcome, now), False, recorded

        reply, retry, recorded = await self.writer.submit(op)
        self.ledger.count(recorded)
        return reply, retry

    def _balance_in_write(self, conn: sqlite3.Connection, member: Member, now: datetime,
                          recorded: Sequence[Recorded] = ()) -> Balance:
        entries = self.ledger.entries_in_write(conn, member.account_id, recorded)
        return self.ledger.balance_of(member.account_id, entries, now)

    async def _refuse(self, request: OperationRequest, refusal: Refused,
                      now: datetime) -> Reply:
        reply = self.replies.refused(request.id, refusal)
        if refusal.code in STORED_ERRORS:
            return await self.writer.submit(lambda conn: store_reply(conn, request, reply, now))
        return reply

    def _lookup(self, request: OperationRequest, now: datetime) -> Lookup:
        if request.op == "member.identify":
            return lookup_for(request.data["by"], request.data["value"], self.keys, now)
        if self.sessions is not None and request.op in SESSION_OPS:
            member_id = self.sessions.member_of(request.data.get("session"), request.kiosk,
                                                now)
            named = request.data.get("member_id")
            if named is not None and named != member_id:
                raise Refused("session_invalid", "the session is for another member")
            return Lookup("member", member_id)
        return Lookup("member", request.data["member_id"])

    def _first_read(self, conn: sqlite3.Connection, request: OperationRequest,
                    lookup: Lookup | None, *, with_entries: bool, now: datetime,
                    ) -> tuple[Reply | None, Member | None, AccountRead | None]:
        """The stored reply, else the member, with its account's entries when asked."""
        stored = stored_reply(conn, request)
        if stored is not None or lookup is None:
            return stored, None, None
        member = find_member(conn, lookup)
        if member is not None and with_entries:
            return None, member, self._account_read(conn, member, now)
        return None, member, None

    def _account_read(self, conn: sqlite3.Connection, member: Member,
                      now: datetime) -> AccountRead:
        return AccountRead(
            self.ledger.entries_in(conn, member.account_id),
            holds.reserved(conn, member.account_id, utc_text(now)),
            birthday_gift_due(conn, self.ledger.rules, member_id=member.id,
                              account_id=member.account_id, at=now, actor="kiosk"))

    # -- operations ----------------------------------------------------------------------

    async def _read_balance(self, member: Member, account: AccountRead | None,
                            now: datetime) -> tuple[Balance, int, list[Entry], AccountRead]:
        """The balance, the points open till holds reserve (counted as spent), the
        gifts this interaction gave (a member's first identify or balance query in their
        birthday window gives the birthday gift, and the balance counts it) and the
        account as read."""
        if account is None:
            account = await self.reader.run(
                lambda conn: self._account_read(conn, member, now))
        gifts: list[Entry] = []
        if account.gift is not None:
            # Checked again in the writer: another request may have given it meanwhile.
            recorded = await self.writer.submit(lambda conn: give_birthday_gift_in(
                self.ledger, conn, member_id=member.id, account_id=member.account_id,
                at=now, actor="kiosk"))
            self.ledger.count(recorded)
            gifts = [r.entry for r in recorded if not r.duplicate]
            account = await self.reader.run(
                lambda conn: self._account_read(conn, member, now))
        balance = self.ledger.balance_of(member.account_id, account.entries, now)
        return balance, account.held, gifts, account

    async def _identify(self, request: OperationRequest, member: Member,
                        entries: AccountRead | None, now: datetime) -> Reply:
        balance, held, gifts, _ = await self._read_balance(member, entries, now)
        answer = {"member_id": member.id, "display_name": member.display_name,
                  **benefits(self._tier(member)), "available": balance.available - held,
                  "held": held, **gifts_json(gifts)}
        if self.sessions is not None:
            # Each identification opens a session of its own; a retry opens another.
            session, expires = self.sessions.issue(request.kiosk, member.id, now)
            answer |= {"session": session, "session_expires_at": to_text(expires)}
        return self.replies.ok(request.id, answer)

    async def _balance(self, request: OperationRequest, member: Member,
                       entries: AccountRead | None, now: datetime) -> Reply:
        b, held, gifts, account = await self._read_balance(member, entries, now)
        return self.replies.ok(request.id, {
            "member_id": member.id, **benefits(self._tier(member)),
            "available": b.available - held, "held": held, "confirmed": b.confirmed,
            "pending": b.pending, "locked": b.locked, "debt": b.debt, **gifts_json(gifts),
            **expiring_fields((entry for entry, _ in account.entries), now,
                              self.ledger.rules.tz)})

    def _checkin(self, conn: sqlite3.Connection, request: OperationRequest, member: Member,
                 now: datetime, online: bool) -> tuple[Reply | Refused, list[Recorded]]:
        rules = self.ledger.rules
        day = local_date(now, rules.tz).isoformat()
        entry = checkin_entry(account_id=member.account_id, member_id=member.id, at=now,
                              rules=rules)
        recorded = self.ledger.insert_in(conn, [entry], now)
        if recorded[0].duplicate:
            return Refused("already_checked_in", f"already checked in on {day}"), recorded
        available = self._balance_in_write(conn, member, now, recorded).available
        return self.replies.ok(request.id, {
            "member_id": member.id, "date": day, "points": entry.points,
            "available": available}), recorded

    def _redeem(self, conn: sqlite3.Connection, request: OperationRequest, member: Member,
                now: datetime, online: bool) -> tuple[Reply | Refused, list[Recorded]]:
        data = request.data
        cost: int = data["points"]
        # Points tills have reserved (open holds) count as spent here, and offline the
        # allowance is central's grant at the last sync, minus what it has not seen spent
        # since and what the holds reserve.
        available, allowance_left = available_after_holds(
            self.ledger, conn, member.account_id, now, online=online)
        try:
            check_redemption(cost=cost, available=available, online=online,
                             allowance_left=allowance_left)
            campaign = (self._coupon_campaign(conn, member, data["item"], now)
                        if data["kind"] == "coupon" else None)
        except RedemptionRefused as refused:
            return Refused(_refusal_code(refused.code), str(refused),
                           data={"available": available}), []
        except Refused as refused:
            return refused, []
        entry = redemption_entry(
            account_id=member.account_id, member_id=member.id, request_id=request.key,
            cost=cost, item=f"{data['kind']} {data['item']}", at=now, rules=self.ledger.rules)
        recorded = self.ledger.insert_in(conn, [entry], now)
        reply = {"member_id": member.id, "redemption_id": recorded[0].entry.entry_id,
                 "kind": data["kind"], "item": data["item"], "points": cost,
                 "available": available - cost}
        if campaign is not None:
            # The coupon the points bought, in the burn's transaction: keyed by the
            # request, so a retry (or a crash before the reply) is this one coupon.
            coupon = self.coupons.issue_in(conn, campaign, member_id=member.id,
                                           source_key=f"redeem:{request.key}", now=now)
            reply["coupon"] = coupon_data(coupon, just_issued(coupon))
        return self.replies.ok(request.id, reply), recorded

    def _coupon_campaign(self, conn: sqlite3.Connection, member: Member, campaign_id: str,
                         now: datetime) -> Campaign:
        """The campaign whose coupon a redemption buys, if it may issue one more to the
        member (its limits as far as this gateway knows them: central counts all)."""
        campaign = campaign_in(conn, campaign_id, self.coupons.mall)
        if campaign is None:
            raise Refused("unknown_campaign", f"no coupon campaign {campaign_id} here")
        mine, total = conn.execute(
            "SELECT count(*) FILTER (WHERE member_id = ?), count(*) FROM coupons "
            "WHERE campaign_id = ?", (member.id, campaign_id)).fetchone()
        try:
            check_issue(campaign, member_issued=mine, campaign_issued=total, at=now)
        except IssueRefused as refused:
            raise Refused(_refusal_code(refused.code), str(refused)) from None
        return campaign

    async def _receipt_claim(self, request: OperationRequest, member: Member,
                             entries: AccountRead | None, now: datetime) -> Reply:
        """Credit an unclaimed sale; the receipt pipeline makes the claim itself idempotent,
        so a crash between its commit and the stored reply only makes the retry a duplicate
        claim with the same points."""
        data = request.data
        try:
            business_date = date.fromisoformat(data["business_date"])
        except ValueError:
            raise Refused("invalid_payload", "data/business_date: not a date") from None
        try:
            result = await claim_receipt(
                self.ledger, store_id=data["store_id"], pos_id=data["pos_id"],
                receipt_no=data["receipt_no"], business_date=business_date,
                member_id=member.id, account_id=member.account_id, tier=self._tier(member),
                now=now, claim_days=self.claim_days, online=self.central_online())
        except ReceiptClaimError as refused:
            raise Refused(_refusal_code(refused.code), str(refused)) from None
        balance = await self.ledger.balance(member.account_id, now)
        reply = self.replies.ok(request.id, {"member_id": member.id, "points": result.points,
                                             "available": balance.available})
        return await self.writer.submit(lambda conn: store_reply(conn, request, reply, now))

    def _offer_claim(self, conn: sqlite3.Connection, request: OperationRequest,
                     member: Member, now: datetime,
                     online: bool) -> tuple[Reply | Refused, list[Recorded]]:
        """The coupon of a welcome offer shown to this member; the coupon, its event for sync
        and this reply commit together, so a retry gets the same coupon."""
        offer_id = request.data["offer_id"]
        try:
            claimed = claim_offer(conn, site=self.site, member_id=member.id,
                                  account_id=member.account_id, offer_id=offer_id,
                                  kiosk_id=request.kiosk, claim_s=self.offer_claim_s, now=now,
                                  issuer=self.coupons)
        except OfferClaimError as refused:
            return Refused(refused.code, str(refused)), []
        return self.replies.ok(request.id, {
            "member_id": member.id, "offer_id": offer_id, "title": claimed.title,
            "description": claimed.description, "coupon_code": claimed.coupon_code,
            "expires_at": to_text(claimed.expires_at),
            "coupon": coupon_data(claimed.coupon, just_issued(claimed.coupon))}), []

    async def _coupon_list(self, request: OperationRequest, member: Member,
                           entries: AccountRead | None, now: datetime) -> Reply:
        coupons = await self.reader.run(lambda conn: list_coupons(conn, member.id, now))
        return self.replies.ok(request.id, {"member_id": member.id, "coupons": coupons})

    async def _coupon_check(self, request: OperationRequest, member: Member,
                            entries: AccountRead | None, now: datetime) -> Reply:
        """What a code takes off a basket now; holds and spends nothing (a till's authorize
        does that), so its refusals are answered afresh on a retry."""
        data = request.data
        try:
            basket = basket_from_wire(data)
        except ValueError as bad:
            raise Refused("invalid_payload", f"data: {bad}") from None
        where = Where(mall=self.coupons.mall, online=self.central_online(),
                      member_id=member.id)
        try:
            coupon, grant = await self.reader.run(lambda conn: check_code(
                conn, data["code"], basket, at=now, where=where))
        except CouponError as refused:
            raise Refused(_refusal_code(refused.code), str(refused)) from None
        reply = {"member_id": member.id, "coupon": coupon_data(coupon, just_issued(coupon)),
                 "discount_fen": grant.discount_fen}
        return self.replies.ok(request.id, reply | ({"sku": grant.sku} if grant.sku else {}))

    def _tier(self, member: Member) -> Tier:
        return tier_of(self.ledger.rules, member.tier)
