"""The receipt pipeline of the core: POS captures in, credited sales and refunds out.

Order of work for every capture (one print job, frame or JSON line):

1. `capture` commits its raw bytes (table `pos_captures`, status `new`) before anything
   reads them; a crash after this point loses nothing (`recover` processes what is `new`).
2. `process` parses it with the parser of its device (injected: the core does not know
   ESC/POS) and commits, in ONE transaction, the outcome with the capture's new status:
   - a sale: the receipt row and, when the member is known, its ledger entries. The
     receipt's identity is `(store, pos, receipt_no, business date)`; a copy, reprint or
     retransmission of a receipt already stored is counted (`receipts.duplicates`), never
     credited again — the ledger entries are idempotent on the same key as well;
   - a sale without a (known) member code: the receipt row, unclaimed, claimable at a
     kiosk for `claim_days` (`claim_receipt`);
   - a refund: its receipt row and the reversal of the original sale's points, found on
     any till of the store (`refunds`); a refund whose original is unknown is kept for
     review and applied by the sale's own transaction if the sale arrives later;
   - a copy or non-sale document (kitchen ticket, X/Z report): only the status;
   - unreadable: a dead letter with the raw bytes and the reason; `replay_dead_letters`
     runs them again after a template fix.

A sale that pays with points goes through `spend`: on framed and jsonl its hold is
captured in the sale's transaction, and a sale without a valid hold is refused (outcome
`refused`, kept as a dead letter, nothing credited); a printed receipt's points are
applied within balance and allowance and the rest flagged for review.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from gateway.deadletters import keep, reword
from gateway.holds import HoldRefused
from gateway.holds import rows as holds
from gateway.holds.coupons import redeem_in, restore_in
from gateway.ledger import Ledger, Recorded
from gateway.ledger.gifts import give_birthday_gift_in
from gateway.ledger.tiers import upgrade_tiers_in
from gateway.loyalty import (
    Entry,
    EntryKind,
    ImplausibleSale,
    LoyaltyError,
    Refund,
    Sale,
    sale_entries,
)
from gateway.loyalty.rules import LoyaltyRules, Tier
from gateway.members import find_by_code
from gateway.receipts import refunds
from gateway.receipts.lines import sale_lines, unknown_categories
from gateway.receipts.model import ParsedReceipt, ReceiptKind, UnreadableReceipt, sale_key
from gateway.receipts.rows import utc_text
from gateway.receipts.spend import ASKING_MODES, flag_for_review, printed_spend
from gateway.store import Reader

DEAD_LETTER_SOURCE = "pos"
T = TypeVar("T")
log = logging.getLogger(__name__)
# What a sale's transaction does with its entries before they are recorded: capture a
# hold, or cut a printed burn to what the account can pay (`spend`).
Settle = Callable[[sqlite3.Connection, "Capture"], list[Entry]]


@dataclass(frozen=True, slots=True)
class Capture:
    id: int
    store_id: str
    pos_id: str
    mode: str
    raw: bytes
    received_at: str


@dataclass(frozen=True, slots=True)
class Outcome:
    capture_id: int
    status: str  # sale | refund | copy | non_sale | duplicate | dead | refused
    points: int = 0
    member_id: str | None = None
    receipt_no: str = ""
    reason: str = ""  # "code: text" for dead and refused
    flagged: int = 0  # points printed as used and not applied: kept for review


@dataclass(slots=True)
class PipelineStats:
    captured: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    dead_by_code: dict[str, int] = field(default_factory=dict)
    flagged_receipts: int = 0  # printed receipts whose points were partly kept for review
    flagged_points: int = 0
    unknown_category_lines: int = 0  # sale lines whose category the rules do not list
    # Refunds by how their original was found: linked, held (unknown: kept for review),
    # applied_late (a held refund applied when its sale arrived).
    refunds: dict[str, int] = field(default_factory=dict)

    def count_refunds(self, result: str, n: int = 1) -> None:
        self.refunds[result] = self.refunds.get(result, 0) + n


Parser = Callable[[Capture], ParsedReceipt]


@dataclass(frozen=True, slots=True)
class _Member:
    member_id: str
    account_id: str
    tier_code: str


class ReceiptPipeline:
    """Durable, idempotent intake of POS receipts. `parser` reads a capture's raw bytes."""

    def __init__(self, ledger: Ledger, parser: Parser, *, reader: Reader | None = None,
                 central_online: Callable[[], bool] | None = None,
                 refund_window_days: int = 30, refund_restores_coupons: bool = False) -> None:
        """`reader`: look-ups run on the store's read connections instead of waiting in
        the writer's queue behind other ports' commits (the writes stay idempotent).
        `central_online`: whether the offline allowance bounds printed points payments
        (None: a standalone gateway, its own ledger the authority).
        `refund_window_days`: how far back a refund looks for its original sale."""
        self.ledger = ledger
        self.refund_window_days = refund_window_days
        self.refund_restores_coupons = refund_restores_coupons
        self.parser = parser
        self.reader = reader
        self.central_online = central_online or (lambda: True)
        self.stats = PipelineStats()

    async def _look(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self.reader is not None:
            return await self.reader.run(fn)
        _, result = await self.ledger.record_with([], lambda conn, _: fn(conn))
        return result

    async def ingest(self, *, store_id: str, pos_id: str, mode: str, raw: bytes) -> Outcome:
        """Read a message and commit its raw bytes with its outcome, together.

        For acknowledged protocols (framed, jsonl): the raw bytes and what they produced
        (receipt, entries, or dead letter) commit atomically before the ACK, so nothing
        acknowledged is lost and what was not acknowledged is resent. Print jobs, which
        nobody resends, go through `capture` (raw committed first) and `process`.
        """
        self.stats.captured += 1
        pending = Capture(0, store_id, pos_id, mode, raw, utc_text(self.ledger.now()))
        return await self.process(pending)

    async def capture(self, *, store_id: str, pos_id: str, mode: str, raw: bytes) -> Capture:
        received_at = utc_text(self.ledger.now())

        def insert(conn: sqlite3.Connection, _: list[Recorded]) -> int:
            cursor = conn.execute(
                "INSERT INTO pos_captures (store_id, pos_id, mode, raw, received_at) "
                "VALUES (?, ?, ?, ?, ?)", (store_id, pos_id, mode, raw, received_at))
            return int(cursor.lastrowid or 0)

        _, capture_id = await self.ledger.record_with([], insert)
        self.stats.captured += 1
        return Capture(capture_id, store_id, pos_id, mode, raw, received_at)

    async def recover(self) -> list[Outcome]:
        """Process captures committed but not processed (the gateway stopped in between)."""
        def pending(conn: sqlite3.Connection, _: list[Recorded]) -> list[Capture]:
            rows = conn.execute("SELECT id, store_id, pos_id, mode, raw, received_at FROM "
                                "pos_captures WHERE status = 'new' ORDER BY id").fetchall()
            return [Capture(*row) for row in rows]

        _, captures = await self.ledger.record_with([], pending)
        return [await self.process(capture) for capture in captures]

    async def process(self, capture: Capture) -> Outcome:
        try:
            receipt = self.parser(capture)
            self._check_plausible(receipt)
            if receipt.kind is ReceiptKind.SALE:
                outcome = await self._sale(capture, receipt)
            elif receipt.kind is ReceiptKind.REFUND:
                outcome = await self._refund(capture, receipt)
            else:
                outcome = await self._other(capture, receipt)
        except HoldRefused as exc:  # a points payment without a valid hold: refused
            outcome = await self._dead(capture, exc.code, exc.msg, status="refused")
        except (UnreadableReceipt, LoyaltyError) as exc:
            outcome = await self._dead(capture, getattr(exc, "code", "invalid"), str(exc))
        except Exception as exc:  # a parser bug must not stop the line: dead-letter it
            outcome = await self._dead(capture, "internal", f"{type(exc).__name__}: {exc}")
        self.stats.by_status[outcome.status] = self.stats.by_status.get(outcome.status, 0) + 1
        return outcome

    def _check_plausible(self, receipt: ParsedReceipt) -> None:
        """A sale or refund beyond `[limits] max_sale_fen` is kept to look at (a dead
        letter), never credited: a misread amount must not earn millions of points."""
        if receipt.kind in {ReceiptKind.SALE, ReceiptKind.REFUND}:
            problem = self.ledger.limits.sale_problem(receipt.total_fen)
            if problem is not None:
                raise ImplausibleSale(f"receipt {receipt.receipt_no}: {problem}")

    # -- outcomes -------------------------------------------------------------------------

    def _tier(self, code: str, rules: LoyaltyRules | None = None) -> Tier:
        tiers = (rules or self.ledger.rules).tiers.tiers
        return next((t for t in tiers if t.code == code), tiers[0])

    async def _sale(self, capture: Capture, receipt: ParsedReceipt) -> Outcome:
        key = sale_key(capture.store_id, capture.pos_id, receipt.receipt_no,
                       receipt.business_date)
        asks_first = capture.mode in ASKING_MODES and bool(
            receipt.points_used or receipt.hold_id or receipt.coupon_codes)

        # Reads first (a read-only op costs no fsync), then one write transaction.
        def look(conn: sqlite3.Connection) -> tuple[bool, _Member | None]:
            exists = conn.execute("SELECT 1 FROM receipts WHERE store_id = ? AND pos_id = ? "
                                  "AND receipt_no = ? AND business_date = ?",
                                  _key_args(capture, receipt)).fetchone() is not None
            member = _member(conn, receipt.member_code)
            if member is None and asks_first and receipt.hold_id and not receipt.member_code:
                member = _hold_member(conn, receipt.hold_id)  # the hold names the member
            return exists, member

        exists, member = await self._look(look)
        if exists:
            return await self._duplicate(capture, receipt)
        if asks_first and not receipt.hold_id:
            spends = " and ".join(
                ([f"{receipt.points_used} points"] if receipt.points_used else [])
                + ([f"{len(receipt.coupon_codes)} coupon(s)"] if receipt.coupon_codes else []))
            raise HoldRefused("hold_required", f"receipt {receipt.receipt_no} spends "
                              f"{spends} without a hold: authorize first")
        if asks_first and member is None:
            raise HoldRefused("hold_member" if receipt.member_code else "unknown_hold",
                              f"hold {receipt.hold_id} is not for this sale's member")
        entries: list[Entry] = []
        if member is not None:
            sale = Sale(store_id=capture.store_id, pos_id=capture.pos_id,
                        receipt_no=receipt.receipt_no, business_date=receipt.business_date,
                        occurred_at=receipt.occurred_at, total_fen=receipt.total_fen,
                        points_paid_fen=receipt.points_paid_fen,
                        points_used=receipt.points_used,
                        lines=sale_lines(receipt.lines))
            # The rules in force when the sale was rung up: a version central published
            # for later, or after a sale the till sends late, leaves it as it was.
            rules = self.ledger.rules_at(receipt.occurred_at)
            entries = sale_entries(sale, account_id=member.account_id,
                                   member_id=member.member_id,
                                   tier=self._tier(member.tier_code, rules), rules=rules)
        parsed = receipt.to_json() | {"key": key}
        member_id = member.member_id if member else None
        settle: Settle | None = None
        flagged = [0]
        if asks_first:
            assert member is not None and receipt.hold_id  # noqa: S101 - checked above
            settle = self._capture_hold(receipt.hold_id, member.account_id, key,
                                        receipt.points_used, entries,
                                        coupon_codes=receipt.coupon_codes)
        elif receipt.points_used:
            settle = self._printed(capture, receipt, member, entries, flagged)
        late: list[str] = []
        settle = self._held_refunds(receipt, key, member_id, settle or (lambda *_: entries),
                                    late)

        committed = await self._commit(capture, receipt, entries, parsed=parsed,
                                       member_id=member_id, kind="sale", settle=settle,
                                       gift_to=member)
        if committed is None:
            return await self._duplicate(capture, receipt)
        recorded, capture = committed
        self.stats.unknown_category_lines += unknown_categories(receipt.lines,
                                                                self.ledger.rules)
        if late:
            self.stats.count_refunds("applied_late", len(late))
            log.info("sale %s of %s/%s applied refund(s) %s kept for it", receipt.receipt_no,
                     capture.store_id, capture.pos_id, ", ".join(late))
        if flagged[0]:
            self.stats.flagged_receipts += 1
            self.stats.flagged_points += flagged[0]
            log.warning("receipt %s of %s/%s printed %s points used; %s kept for review "
                        "(beyond the member's points or offline allowance)",
                        receipt.receipt_no, capture.store_id, capture.pos_id,
                        receipt.points_used, flagged[0])
        points = next((r.entry.points for r in recorded if r.entry.kind is EntryKind.EARN), 0)
        return Outcome(capture.id, "sale", points, member_id, receipt.receipt_no,
                       flagged=flagged[0])

    def _held_refunds(self, receipt: ParsedReceipt, key: str, member_id: str | None,
                      settle: Settle, late: list[str]) -> Settle:
        """After the sale's own entries: the refunds kept waiting for it, applied once."""
        at = utc_text(self.ledger.now())

        def then(conn: sqlite3.Connection, stored: Capture) -> list[Entry]:
            entries = settle(conn, stored)
            applied, reversals = refunds.apply_held(
                conn, store_id=stored.store_id, receipt_no=receipt.receipt_no,
                business_date=receipt.business_date, sale_key=key,
                total_fen=receipt.total_fen, member_id=member_id, entries=entries,
                window_days=self.refund_window_days, rules=self.ledger.rules, at=at)
            late[:] = applied
            return entries + reversals

        return then

    def _capture_hold(self, hold_id: str, account_id: str, key: str, points: int,
                      entries: list[Entry], *, coupon_codes: tuple[str, ...]) -> Settle:
        now = self.ledger.now()
        now_text = utc_text(now)

        def settle(conn: sqlite3.Connection, stored: Capture) -> list[Entry]:
            holds.capture(conn, hold_id=hold_id, store_id=stored.store_id,
                          pos_id=stored.pos_id, account_id=account_id, sale_key=key,
                          points=points, now=now_text)
            # In the same transaction as the capture: the coupons are redeemed exactly
            # when the sale is recorded, and a capture refused above redeems none.
            redeem_in(conn, hold_id, coupon_codes, now=now, site=self.ledger.site)
            return entries

        return settle

    def _printed(self, capture: Capture, receipt: ParsedReceipt, member: _Member | None,
                 entries: list[Entry], flagged: list[int]) -> Settle:
        """A printed receipt's points: applied within what the account can pay, the rest
        kept as a dead letter for review in the same transaction."""
        online = self.central_online()
        now = self.ledger.now()
        now_text = utc_text(now)

        def settle(conn: sqlite3.Connection, stored: Capture) -> list[Entry]:
            printed = printed_spend(self.ledger, conn,
                                    account_id=member.account_id if member else None,
                                    entries=entries, points_used=receipt.points_used,
                                    online=online, now=now)
            flagged[0] = printed.flagged
            if printed.flagged:
                flag_for_review(conn, raw=capture.raw, at=stored.received_at or now_text,
                                capture_id=stored.id, store_id=capture.store_id,
                                pos_id=capture.pos_id, receipt_no=receipt.receipt_no,
                                member_id=member.member_id if member else None,
                                points_used=receipt.points_used, flagged=printed.flagged)
            return printed.entries

        return settle

    async def _commit(
        self, capture: Capture, receipt: ParsedReceipt, entries: list[Entry], *,
        parsed: dict[str, Any], member_id: str | None, kind: str,
        settle: Settle | None = None, gift_to: _Member | None = None,
    ) -> tuple[list[Recorded], Capture] | None:
        """The receipt row with its ledger entries, in one transaction; None if the same
        receipt was stored meanwhile (then nothing of this one stays). `settle` decides
        the entries inside the transaction, or raises to refuse the receipt. `gift_to`:
        the member of a sale, who gets the birthday gift with it if it is due."""
        recorded_at = self.ledger.now()

        def store(conn: sqlite3.Connection, _: list[Recorded]) -> tuple[
                list[Recorded], Capture, list[Recorded]]:
            stored = replace(capture, id=_ensure_capture(conn, capture))
            if not _insert_receipt(conn, stored, receipt, parsed=parsed, member_id=member_id,
                                   kind=kind):
                raise _AlreadyStored(stored)  # rolls back the capture as well
            final = settle(conn, stored) if settle is not None else entries
            recorded = self.ledger.insert_in(conn, final, recorded_at)
            upgrade_tiers_in(self.ledger, conn, recorded)  # a sale or refund: tier re-checked
            gifts = [] if gift_to is None else give_birthday_gift_in(
                self.ledger, conn, member_id=gift_to.member_id,
                account_id=gift_to.account_id, at=recorded_at, actor="pos")
            return recorded, stored, gifts

        try:
            _, (recorded, stored, gifts) = await self.ledger.record_with([], store)
        except _AlreadyStored:
            return None
        self.ledger.count(recorded + gifts)
        return recorded, stored

    async def _refund(self, capture: Capture, receipt: ParsedReceipt) -> Outcome:
        window = self.refund_window_days

        def look(conn: sqlite3.Connection) -> tuple[bool, refunds.Original | None]:
            exists = conn.execute("SELECT 1 FROM receipts WHERE store_id = ? AND pos_id = ? "
                                  "AND receipt_no = ? AND business_date = ?",
                                  _key_args(capture, receipt)).fetchone() is not None
            original = None
            if receipt.original_no:
                original = refunds.find_original(
                    conn, store_id=capture.store_id, pos_id=capture.pos_id,
                    original_no=receipt.original_no, business_date=receipt.business_date,
                    window_days=window)
            return exists, original

        exists, original = await self._look(look)
        if exists:
            return await self._duplicate(capture, receipt)
        entries: list[Entry] = []
        settle: Settle | None = None
        if original is not None:
            entries = refunds.reversal(
                Refund(store_id=capture.store_id, pos_id=capture.pos_id,
                       refund_no=receipt.receipt_no, business_date=receipt.business_date,
                       occurred_at=receipt.occurred_at, refund_fen=receipt.total_fen),
                original, self.ledger.rules)
            if (self.refund_restores_coupons
                    and original.prior_refunded_fen + receipt.total_fen >= original.total_fen):
                settle = self._restore_coupons(original.key, receipt, capture, entries)
        else:
            settle = self._hold_refund(capture, receipt)
        member_id = original.member_id if original else None
        parsed = receipt.to_json() | {
            "key": sale_key(capture.store_id, capture.pos_id, receipt.receipt_no,
                            receipt.business_date),
            "original_key": original.key if original else None}

        committed = await self._commit(capture, receipt, entries, parsed=parsed,
                                       member_id=member_id, kind="refund", settle=settle)
        if committed is None:
            return await self._duplicate(capture, receipt)
        recorded, capture = committed
        self.stats.count_refunds("linked" if original else "held")
        if original is None:
            log.warning("refund %s of %s/%s: original receipt %s not found on any till of "
                        "the store within %s days; kept for review (applied if that sale "
                        "arrives)", receipt.receipt_no, capture.store_id, capture.pos_id,
                        receipt.original_no or "(none printed)", window)
        points = sum(r.entry.points for r in recorded if not r.duplicate)
        return Outcome(capture.id, "refund", points, member_id, receipt.receipt_no)

    def _restore_coupons(self, original_key: str, receipt: ParsedReceipt, capture: Capture,
                         entries: list[Entry]) -> Settle:
        """A refund that completes its sale's refund gives back the coupons the sale
        redeemed, in the refund's transaction; a refund recorded twice restores once."""
        now = self.ledger.now()
        refund_key = sale_key(capture.store_id, capture.pos_id, receipt.receipt_no,
                              receipt.business_date)

        def settle(conn: sqlite3.Connection, stored: Capture) -> list[Entry]:
            restore_in(conn, original_key, refund_key=refund_key, now=now,
                       site=self.ledger.site)
            return entries

        return settle

    def _hold_refund(self, capture: Capture, receipt: ParsedReceipt) -> Settle:
        now_text = utc_text(self.ledger.now())

        def settle(conn: sqlite3.Connection, stored: Capture) -> list[Entry]:
            refunds.hold_for_review(
                conn, capture_id=stored.id, raw=capture.raw, store_id=capture.store_id,
                pos_id=capture.pos_id, receipt_no=receipt.receipt_no,
                original_no=receipt.original_no, business_date=receipt.business_date,
                window_days=self.refund_window_days, at=stored.received_at or now_text)
            return []

        return settle

    async def _other(self, capture: Capture, receipt: ParsedReceipt) -> Outcome:
        status = receipt.kind.value

        def mark(conn: sqlite3.Connection, _: list[Recorded]) -> int:
            capture_id = _ensure_capture(conn, capture)
            if receipt.kind is ReceiptKind.COPY and receipt.receipt_no:
                conn.execute("UPDATE receipts SET duplicates = duplicates + 1 WHERE "
                             "store_id = ? AND pos_id = ? AND receipt_no = ? AND "
                             "business_date = ?", _key_args(capture, receipt))
            _set_status(conn, capture_id, status)
            return capture_id

        _, capture_id = await self.ledger.record_with([], mark)
        return Outcome(capture_id, status, receipt_no=receipt.receipt_no)

    async def _duplicate(self, capture: Capture, receipt: ParsedReceipt) -> Outcome:
        def mark(conn: sqlite3.Connection, _: list[Recorded]) -> int:
            capture_id = _ensure_capture(conn, capture)
            conn.execute("UPDATE receipts SET duplicates = duplicates + 1 WHERE store_id = ? "
                         "AND pos_id = ? AND receipt_no = ? AND business_date = ?",
                         _key_args(capture, receipt))
            _set_status(conn, capture_id, "duplicate")
            return capture_id

        _, capture_id = await self.ledger.record_with([], mark)
        return Outcome(capture_id, "duplicate", receipt_no=receipt.receipt_no)

    async def _dead(self, capture: Capture, code: str, reason: str, *,
                    status: str = "dead") -> Outcome:
        now = utc_text(self.ledger.now())

        def store(conn: sqlite3.Connection, _: list[Recorded]) -> int:
            capture_id = _ensure_capture(conn, capture)
            pending = conn.execute(
                "SELECT id FROM dead_letters WHERE source = ? AND replayed_at IS NULL AND "
                "json_extract(context, '$.capture_id') = ?",
                (DEAD_LETTER_SOURCE, capture_id)).fetchone()
            if pending is not None:  # a replay that failed again: update its reason
                reword(conn, pending[0], code=code, error=reason)
                return capture_id
            letter_id = keep(conn, source=DEAD_LETTER_SOURCE, raw=capture.raw, code=code,
                             error=reason, at=capture.received_at or now,
                             context={"capture_id": capture_id, "store_id": capture.store_id,
                                      "pos_id": capture.pos_id, "mode": capture.mode})
            conn.execute("UPDATE pos_captures SET status = 'dead', dead_letter_id = ? "
                         "WHERE id = ?", (letter_id, capture_id))
            return capture_id

        _, capture_id = await self.ledger.record_with([], store)
        self.stats.dead_by_code[code] = self.stats.dead_by_code.get(code, 0) + 1
        return Outcome(capture_id, status, reason=f"{code}: {reason}")

    # -- dead letters -----------------------------------------------------------------------

    async def replay_dead_letters(self, ids: Sequence[int] = (), *,
                                  done: Callable[[Outcome], None] | None = None,
                                  ) -> list[Outcome]:
        """Run pending POS dead letters (all, or those in `ids`) through the parser again;
        `done` is told each outcome as soon as it is kept (a long replay's progress)."""
        def pending(conn: sqlite3.Connection, _: list[Recorded]) -> list[tuple[int, Capture]]:
            rows = conn.execute(
                "SELECT d.id, c.id, c.store_id, c.pos_id, c.mode, c.raw, c.received_at "
                "FROM dead_letters d JOIN pos_captures c ON c.id = "
                "json_extract(d.context, '$.capture_id') "
                "WHERE d.source = ? AND d.replayed_at IS NULL AND length(c.raw) > 0 "
                "ORDER BY d.id",  # bytes deleted after their retention: nothing to read
                (DEAD_LETTER_SOURCE,)).fetchall()
            wanted = set(ids)
            return [(row[0], Capture(*row[1:])) for row in rows
                    if not wanted or row[0] in wanted]

        _, letters = await self.ledger.record_with([], pending)
        outcomes = []
        for letter_id, capture in letters:
            outcome = await self.process(capture)
            if outcome.status != "dead":
                replayed_at = utc_text(self.ledger.now())
                result = outcome.status

                def replayed(conn: sqlite3.Connection, _: list[Recorded],
                             letter: int = letter_id, result: str = result,
                             at: str = replayed_at) -> None:
                    conn.execute("UPDATE dead_letters SET replayed_at = ?, replay_result = ? "
                                 "WHERE id = ?", (at, result, letter))

                await self.ledger.record_with([], replayed)
            outcomes.append(outcome)
            if done is not None:
                done(outcome)
        return outcomes


class _AlreadyStored(Exception):
    """The receipt was stored by another transaction: roll this one back."""

    def __init__(self, capture: Capture) -> None:
        super().__init__(capture.id)


def _ensure_capture(conn: sqlite3.Connection, capture: Capture) -> int:
    """The capture's id, inserting it first when it is not stored yet (`ingest`)."""
    if capture.id:
        return capture.id
    cursor = conn.execute(
        "INSERT INTO pos_captures (store_id, pos_id, mode, raw, received_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (capture.store_id, capture.pos_id, capture.mode, capture.raw, capture.received_at))
    return int(cursor.lastrowid or 0)


def _key_args(capture: Capture, receipt: ParsedReceipt) -> tuple[str, str, str, str]:
    return (capture.store_id, capture.pos_id, receipt.receipt_no,
            receipt.business_date.isoformat())


def _set_status(conn: sqlite3.Connection, capture_id: int, status: str,
                receipt_id: int | None = None) -> None:
    conn.execute("UPDATE pos_captures SET status = ?, receipt_id = COALESCE(?, receipt_id) "
                 "WHERE id = ?", (status, receipt_id, capture_id))


def _insert_receipt(conn: sqlite3.Connection, capture: Capture, receipt: ParsedReceipt, *,
                    parsed: dict[str, Any], member_id: str | None, kind: str) -> bool:
    cursor = conn.execute(
        "INSERT INTO receipts (store_id, pos_id, receipt_no, business_date, raw, parsed, "
        "parse_status, member_id, received_at, kind) VALUES (?, ?, ?, ?, ?, ?, 'parsed', ?, "
        "?, ?) ON CONFLICT (store_id, pos_id, receipt_no, business_date) DO NOTHING",
        (*_key_args(capture, receipt), capture.raw, json.dumps(parsed, ensure_ascii=False),
         member_id, capture.received_at, kind))
    if not cursor.rowcount:
        return False
    _set_status(conn, capture.id, kind, cursor.lastrowid)
    return True


def _hold_member(conn: sqlite3.Connection, hold_id: str) -> _Member | None:
    hold = holds.hold_row(conn, hold_id)
    return _member(conn, hold.member_id) if hold is not None else None


def _member(conn: sqlite3.Connection, code: str | None) -> _Member | None:
    if not code:
        return None
    found = find_by_code(conn, code)
    return _Member(found.id, found.account_id, found.tier) if found else None
