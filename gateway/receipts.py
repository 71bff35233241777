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
   - a refund: its receipt row and the reversal of the original sale's points;
   - a copy or non-sale document (kitchen ticket, X/Z report): only the status;
   - unreadable: a dead letter with the raw bytes and the reason; `replay_dead_letters`
     runs them again after a template fix.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from gateway.ledger import Ledger, Recorded
from gateway.ledger.codec import COLUMNS, row_to_entry, to_text
from gateway.loyalty import (
    Entry,
    EntryKind,
    LoyaltyError,
    Refund,
    Sale,
    SaleLine,
    entry_id_for,
    refund_entries,
    sale_entries,
)
from gateway.loyalty.calendar import local_date
from gateway.loyalty.earn import SALE_SOURCE
from gateway.loyalty.rules import Tier
from gateway.store import Reader

DEAD_LETTER_SOURCE = "pos"
T = TypeVar("T")


class ReceiptKind(enum.Enum):
    SALE = "sale"
    REFUND = "refund"
    COPY = "copy"  # merchant/customer copy or reprint of a sale already printed
    NON_SALE = "non_sale"  # kitchen ticket, X/Z report, anything that is not a sale


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    amount_fen: int


@dataclass(frozen=True, slots=True)
class ParsedReceipt:
    """A receipt as read from the POS, whatever the protocol."""

    kind: ReceiptKind
    receipt_no: str
    occurred_at: datetime  # aware, in the store's time zone
    total_fen: int
    points_paid_fen: int = 0
    points_used: int = 0
    payment: str | None = None
    member_code: str | None = None
    original_no: str | None = None  # a refund's original receipt
    lines: tuple[Line, ...] = ()

    @property
    def business_date(self) -> date:
        return self.occurred_at.date()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "receipt_no": self.receipt_no,
            "occurred_at": self.occurred_at.isoformat(),
            "business_date": self.business_date.isoformat(), "total_fen": self.total_fen,
            "points_paid_fen": self.points_paid_fen, "points_used": self.points_used,
            "payment": self.payment, "member_code": self.member_code,
            "original_no": self.original_no,
            "lines": [{"name": x.name, "amount_fen": x.amount_fen} for x in self.lines],
        }


class UnreadableReceipt(ValueError):
    """A capture its parser cannot read; `code` is stable, for counters and dead letters."""

    def __init__(self, reason: str, *, code: str = "unreadable") -> None:
        super().__init__(reason)
        self.code = code


# -- claiming at a kiosk ----------------------------------------------------------------


class ReceiptClaimError(Exception):
    code = "receipt_claim_error"


class ReceiptNotFound(ReceiptClaimError):
    code = "receipt_not_found"


class ReceiptAlreadyClaimed(ReceiptClaimError):
    code = "receipt_already_claimed"


class ReceiptClaimExpired(ReceiptClaimError):
    code = "receipt_claim_expired"


@dataclass(frozen=True, slots=True)
class ClaimResult:
    points: int  # points the sale earned the member
    duplicate: bool  # the same member had already claimed it: this is the first result


def _text(at: datetime) -> str:
    text = to_text(at)
    assert text is not None  # noqa: S101 - to_text maps only None to None
    return text


def sale_key(store_id: str, pos_id: str, receipt_no: str, business_date: date) -> str:
    return f"{store_id}:{pos_id}:{receipt_no}:{business_date.isoformat()}"


def _sale_of(row: dict[str, Any], parsed: dict[str, Any]) -> Sale:
    return Sale(
        store_id=row["store_id"], pos_id=row["pos_id"], receipt_no=row["receipt_no"],
        business_date=date.fromisoformat(row["business_date"]),
        occurred_at=datetime.fromisoformat(parsed["occurred_at"]),
        total_fen=int(parsed["total_fen"]), points_paid_fen=int(parsed["points_paid_fen"]),
        points_used=int(parsed["points_used"]),
        lines=tuple(SaleLine(int(x["amount_fen"])) for x in parsed.get("lines", [])),
    )


def _receipt_row(conn: sqlite3.Connection, where: str, args: Sequence[object],
                 ) -> dict[str, Any] | None:
    cursor = conn.execute(
        "SELECT id, store_id, pos_id, receipt_no, business_date, parsed, parse_status, "
        f"member_id, kind FROM receipts WHERE {where}", tuple(args))
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def _ledger_entry(conn: sqlite3.Connection, source_type: str, key: str,
                  kind: EntryKind) -> Entry | None:
    row = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM ledger WHERE entry_id = ?",
                       (entry_id_for(source_type, key, kind),)).fetchone()
    return row_to_entry(dict(zip(COLUMNS, row, strict=True))) if row else None


async def claim_receipt(
    ledger: Ledger, *, store_id: str, pos_id: str, receipt_no: str, business_date: date,
    member_id: str, account_id: str, tier: Tier, now: datetime, claim_days: int,
) -> ClaimResult:
    """Credit an unclaimed sale to a member who scanned its receipt at a kiosk.

    Idempotent: the same member claiming again gets the first result (`duplicate=True`);
    another member gets `ReceiptAlreadyClaimed`. Refunds already recorded against the sale
    are applied with it, so a claim never credits what was returned.
    """
    key = sale_key(store_id, pos_id, receipt_no, business_date)

    def load(conn: sqlite3.Connection) -> tuple[dict[str, Any] | None, Entry | None,
                                                list[dict[str, Any]]]:
        row = _receipt_row(conn, "store_id = ? AND pos_id = ? AND receipt_no = ? AND "
                           "business_date = ?", (store_id, pos_id, receipt_no,
                                                 business_date.isoformat()))
        earn = _ledger_entry(conn, SALE_SOURCE, key, EntryKind.EARN)
        return row, earn, _refunds_of(conn, key)

    _, (row, earn, refunds) = await ledger.record_with([], lambda conn, _: load(conn))
    if row is None or row["kind"] != ReceiptKind.SALE.value or row["parse_status"] != "parsed":
        raise ReceiptNotFound(f"no sale {key}")
    if row["member_id"] is not None:
        if row["member_id"] == member_id:
            return ClaimResult(earn.points if earn else 0, duplicate=True)
        raise ReceiptAlreadyClaimed(f"sale {key} is claimed by another member")
    if (local_date(now, ledger.rules.tz) - business_date).days > claim_days:
        raise ReceiptClaimExpired(f"sale {key} is older than {claim_days} days")
    sale = _sale_of(row, json.loads(row["parsed"]))
    entries = sale_entries(sale, account_id=account_id, member_id=member_id, tier=tier,
                           rules=ledger.rules, actor="kiosk")
    entries += _reversals(entries, sale.total_fen, refunds, ledger)
    claimed_at = _text(now)

    def mark(conn: sqlite3.Connection, recorded: list[Recorded]) -> None:
        done = conn.execute("UPDATE receipts SET member_id = ?, claimed_at = ? "
                            "WHERE id = ? AND member_id IS NULL",
                            (member_id, claimed_at, row["id"])).rowcount
        if not done:
            owner = conn.execute("SELECT member_id FROM receipts WHERE id = ?",
                                 (row["id"],)).fetchone()
            if owner is None or owner[0] != member_id:
                raise ReceiptAlreadyClaimed(f"sale {key} is claimed by another member")

    recorded, _ = await ledger.record_with(entries, mark)
    points = next((r.entry.points for r in recorded if r.entry.kind is EntryKind.EARN), 0)
    return ClaimResult(points, duplicate=all(r.duplicate for r in recorded))


def _refunds_of(conn: sqlite3.Connection, key: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT store_id, pos_id, receipt_no, business_date, parsed FROM receipts "
        "WHERE kind = 'refund' AND json_extract(parsed, '$.original_key') = ? ORDER BY id",
        (key,)).fetchall()
    return [{"store_id": r[0], "pos_id": r[1], "receipt_no": r[2], "business_date": r[3],
             "parsed": json.loads(r[4])} for r in rows]


def _reversals(sale_side: list[Entry], total_fen: int, refunds: list[dict[str, Any]],
               ledger: Ledger) -> list[Entry]:
    earn = next((e for e in sale_side if e.kind is EntryKind.EARN), None)
    burn = next((e for e in sale_side if e.kind is EntryKind.BURN), None)
    out: list[Entry] = []
    prior = 0
    for refund in refunds:
        parsed = refund["parsed"]
        out += refund_entries(
            Refund(store_id=refund["store_id"], pos_id=refund["pos_id"],
                   refund_no=refund["receipt_no"],
                   business_date=date.fromisoformat(refund["business_date"]),
                   occurred_at=datetime.fromisoformat(parsed["occurred_at"]),
                   refund_fen=int(parsed["total_fen"])),
            sale_total_fen=total_fen, earn=earn, burn=burn, prior_refunded_fen=prior,
            rules=ledger.rules, actor="kiosk")
        prior += int(parsed["total_fen"])
    return out


# -- the pipeline -----------------------------------------------------------------------


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
    status: str  # sale | refund | copy | non_sale | duplicate | dead
    points: int = 0
    member_id: str | None = None
    receipt_no: str = ""
    reason: str = ""


@dataclass(slots=True)
class PipelineStats:
    captured: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    dead_by_code: dict[str, int] = field(default_factory=dict)


Parser = Callable[[Capture], ParsedReceipt]


@dataclass(frozen=True, slots=True)
class _Member:
    member_id: str
    account_id: str
    tier_code: str


class ReceiptPipeline:
    """Durable, idempotent intake of POS receipts. `parser` reads a capture's raw bytes."""

    def __init__(self, ledger: Ledger, parser: Parser, *, reader: Reader | None = None,
                 ) -> None:
        """`reader`: look-ups run on the store's read connections instead of waiting in
        the writer's queue behind other ports' commits (the writes stay idempotent)."""
        self.ledger = ledger
        self.parser = parser
        self.reader = reader
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
        pending = Capture(0, store_id, pos_id, mode, raw, _text(self.ledger.now()))
        return await self.process(pending)

    async def capture(self, *, store_id: str, pos_id: str, mode: str, raw: bytes) -> Capture:
        received_at = _text(self.ledger.now())

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
            if receipt.kind is ReceiptKind.SALE:
                outcome = await self._sale(capture, receipt)
            elif receipt.kind is ReceiptKind.REFUND:
                outcome = await self._refund(capture, receipt)
            else:
                outcome = await self._other(capture, receipt)
        except (UnreadableReceipt, LoyaltyError) as exc:
            outcome = await self._dead(capture, getattr(exc, "code", "invalid"), str(exc))
        except Exception as exc:  # a parser bug must not stop the line: dead-letter it
            outcome = await self._dead(capture, "internal", f"{type(exc).__name__}: {exc}")
        self.stats.by_status[outcome.status] = self.stats.by_status.get(outcome.status, 0) + 1
        return outcome

    # -- outcomes -------------------------------------------------------------------------

    def _tier(self, code: str) -> Tier:
        tiers = self.ledger.rules.tiers.tiers
        return next((t for t in tiers if t.code == code), tiers[0])

    async def _sale(self, capture: Capture, receipt: ParsedReceipt) -> Outcome:
        key = sale_key(capture.store_id, capture.pos_id, receipt.receipt_no,
                       receipt.business_date)

        # Reads first (a read-only op costs no fsync), then one write transaction.
        def look(conn: sqlite3.Connection) -> tuple[bool, _Member | None]:
            exists = conn.execute("SELECT 1 FROM receipts WHERE store_id = ? AND pos_id = ? "
                                  "AND receipt_no = ? AND business_date = ?",
                                  _key_args(capture, receipt)).fetchone() is not None
            return exists, _member(conn, receipt.member_code)

        exists, member = await self._look(look)
        if exists:
            return await self._duplicate(capture, receipt)
        entries: list[Entry] = []
        if member is not None:
            sale = Sale(store_id=capture.store_id, pos_id=capture.pos_id,
                        receipt_no=receipt.receipt_no, business_date=receipt.business_date,
                        occurred_at=receipt.occurred_at, total_fen=receipt.total_fen,
                        points_paid_fen=receipt.points_paid_fen,
                        points_used=receipt.points_used,
                        lines=tuple(SaleLine(x.amount_fen) for x in receipt.lines))
            entries = sale_entries(sale, account_id=member.account_id,
                                   member_id=member.member_id,
                                   tier=self._tier(member.tier_code), rules=self.ledger.rules)
        parsed = receipt.to_json() | {"key": key}
        member_id = member.member_id if member else None

        def store(conn: sqlite3.Connection, recorded: list[Recorded]) -> Capture:
            stored = replace(capture, id=_ensure_capture(conn, capture))
            if not _insert_receipt(conn, stored, receipt, parsed=parsed, member_id=member_id,
                                   kind="sale"):
                # Stored meanwhile by another writer: nothing of this one may stay.
                raise _AlreadyStored(stored)
            return stored

        try:
            recorded, capture = await self.ledger.record_with(entries, store)
        except _AlreadyStored:
            return await self._duplicate(capture, receipt)
        points = next((r.entry.points for r in recorded if r.entry.kind is EntryKind.EARN), 0)
        return Outcome(capture.id, "sale", points, member_id, receipt.receipt_no)

    async def _refund(self, capture: Capture, receipt: ParsedReceipt) -> Outcome:
        def look(conn: sqlite3.Connection) -> tuple[
                bool, dict[str, Any] | None, Entry | None, Entry | None, int]:
            exists = conn.execute("SELECT 1 FROM receipts WHERE store_id = ? AND pos_id = ? "
                                  "AND receipt_no = ? AND business_date = ?",
                                  _key_args(capture, receipt)).fetchone() is not None
            original = None
            if receipt.original_no:
                original = _receipt_row(
                    conn, "store_id = ? AND pos_id = ? AND receipt_no = ? AND kind = 'sale' "
                    "AND business_date <= ? ORDER BY business_date DESC LIMIT 1",
                    (capture.store_id, capture.pos_id, receipt.original_no,
                     receipt.business_date.isoformat()))
            if original is None:
                return exists, None, None, None, 0
            okey = json.loads(original["parsed"]).get("key", "")
            prior = sum(int(r["parsed"]["total_fen"]) for r in _refunds_of(conn, okey))
            return (exists, original, _ledger_entry(conn, SALE_SOURCE, okey, EntryKind.EARN),
                    _ledger_entry(conn, SALE_SOURCE, okey, EntryKind.BURN), prior)

        exists, original, earn, burn, prior = await self._look(look)
        if exists:
            return await self._duplicate(capture, receipt)
        entries: list[Entry] = []
        original_key = None
        member_id = None
        if original is not None:
            original_parsed = json.loads(original["parsed"])
            original_key = original_parsed.get("key")
            member_id = original["member_id"]
            if member_id is not None:
                entries = refund_entries(
                    Refund(store_id=capture.store_id, pos_id=capture.pos_id,
                           refund_no=receipt.receipt_no, business_date=receipt.business_date,
                           occurred_at=receipt.occurred_at, refund_fen=receipt.total_fen),
                    sale_total_fen=int(original_parsed["total_fen"]), earn=earn, burn=burn,
                    prior_refunded_fen=prior, rules=self.ledger.rules)
        parsed = receipt.to_json() | {
            "key": sale_key(capture.store_id, capture.pos_id, receipt.receipt_no,
                            receipt.business_date),
            "original_key": original_key}

        def store(conn: sqlite3.Connection, recorded: list[Recorded]) -> Capture:
            stored = replace(capture, id=_ensure_capture(conn, capture))
            if not _insert_receipt(conn, stored, receipt, parsed=parsed, member_id=member_id,
                                   kind="refund"):
                raise _AlreadyStored(stored)
            return stored

        try:
            recorded, capture = await self.ledger.record_with(entries, store)
        except _AlreadyStored:
            return await self._duplicate(capture, receipt)
        points = sum(r.entry.points for r in recorded if not r.duplicate)
        return Outcome(capture.id, "refund", points, member_id, receipt.receipt_no)

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

    async def _dead(self, capture: Capture, code: str, reason: str) -> Outcome:
        now = _text(self.ledger.now())

        def store(conn: sqlite3.Connection, _: list[Recorded]) -> int:
            capture_id = _ensure_capture(conn, capture)
            context = json.dumps({"capture_id": capture_id, "store_id": capture.store_id,
                                  "pos_id": capture.pos_id, "mode": capture.mode})
            pending = conn.execute(
                "SELECT id FROM dead_letters WHERE source = ? AND replayed_at IS NULL AND "
                "json_extract(context, '$.capture_id') = ?",
                (DEAD_LETTER_SOURCE, capture_id)).fetchone()
            if pending is not None:  # a replay that failed again: update its reason
                conn.execute("UPDATE dead_letters SET error_code = ?, error = ? WHERE id = ?",
                             (code, reason, pending[0]))
                return capture_id
            cursor = conn.execute(
                "INSERT INTO dead_letters (source, raw, error_code, error, context, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?)",
                (DEAD_LETTER_SOURCE, capture.raw, code, reason, context, capture.received_at
                 or now))
            conn.execute("UPDATE pos_captures SET status = 'dead', dead_letter_id = ? "
                         "WHERE id = ?", (cursor.lastrowid, capture_id))
            return capture_id

        _, capture_id = await self.ledger.record_with([], store)
        self.stats.dead_by_code[code] = self.stats.dead_by_code.get(code, 0) + 1
        return Outcome(capture_id, "dead", reason=f"{code}: {reason}")

    # -- dead letters -----------------------------------------------------------------------

    async def replay_dead_letters(self, ids: Sequence[int] = ()) -> list[Outcome]:
        """Run pending POS dead letters (all, or those in `ids`) through the parser again."""
        def pending(conn: sqlite3.Connection, _: list[Recorded]) -> list[tuple[int, Capture]]:
            rows = conn.execute(
                "SELECT d.id, c.id, c.store_id, c.pos_id, c.mode, c.raw, c.received_at "
                "FROM dead_letters d JOIN pos_captures c ON c.id = "
                "json_extract(d.context, '$.capture_id') "
                "WHERE d.source = ? AND d.replayed_at IS NULL ORDER BY d.id",
                (DEAD_LETTER_SOURCE,)).fetchall()
            wanted = set(ids)
            return [(row[0], Capture(*row[1:])) for row in rows
                    if not wanted or row[0] in wanted]

        _, letters = await self.ledger.record_with([], pending)
        outcomes = []
        for letter_id, capture in letters:
            outcome = await self.process(capture)
            if outcome.status != "dead":
                replayed_at = _text(self.ledger.now())
                result = outcome.status

                def done(conn: sqlite3.Connection, _: list[Recorded], letter: int = letter_id,
                         result: str = result, at: str = replayed_at) -> None:
                    conn.execute("UPDATE dead_letters SET replayed_at = ?, replay_result = ? "
                                 "WHERE id = ?", (at, result, letter))

                await self.ledger.record_with([], done)
            outcomes.append(outcome)
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


def _member(conn: sqlite3.Connection, code: str | None) -> _Member | None:
    if not code:
        return None
    row = conn.execute(
        "SELECT m.id, m.account_id, m.tier FROM members m WHERE m.id = ? UNION ALL "
        "SELECT m.id, m.account_id, m.tier FROM member_identifiers i JOIN members m "
        "ON m.id = i.member_id WHERE i.kind IN ('card', 'qr_token') AND i.value = ? LIMIT 1",
        (code, code)).fetchone()
    return _Member(*row) if row else None


def claim_deadline(business_date: date, claim_days: int) -> date:
    """The last local day on which a receipt of `business_date` can be claimed."""
    return business_date + timedelta(days=claim_days)
