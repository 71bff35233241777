"""A POS simulator that speaks the real protocols over a real serial port (or pty).

`scenario` plans a deterministic mix of receipts as a Chinese mall's POS prints them —
sales with member codes (as text or QR), sales without (unclaimed), partial refunds,
merchant copies and reprints, kitchen tickets and shift reports, and malformed receipts
that no template can read — and `run` sends them at a given rate in one of the three
modes, with line noise between receipts and, in framed/jsonl mode, the resends a real
POS makes when an ACK is lost.

With `authorize`, framed/jsonl tills ask before paying with points: `authorize` for the
points on the receipt, then the sale with the hold it got (or paid in cash when refused);
now and then the cashier cancels (`void`) or walks away from a hold (left to expire).
Given members' coupon codes, their tills also take a coupon off a sale of that member
(authorized with the points, or alone), and send the sale with it and the lower total.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import serial_asyncio_fast

from devices.pos.framing import ACK, STX, FrameDecoder, Message, encode_frame, encode_line
from devices.pos.printouts import Printout, kitchen_ticket, shift_report
from gateway.progress import PROGRESS_EVERY_S, reporting

Mode = Literal["escpos", "framed", "jsonl"]
Kind = Literal["sale", "unclaimed", "refund", "copy", "non_sale", "malformed"]
STORES = ("万达广场 星巴克", "银泰百货 优衣库", "大悦城 海底捞", "万象城 名创优品")
ITEMS = (("拿铁(大杯)", 3200), ("美式咖啡", 2800), ("𠮷野家套餐", 3250), ("牛仔裤", 29900),
         ("羽绒服", 89900), ("火锅套餐", 45800), ("香薰蜡烛", 3990), ("充电宝", 9900),
         ("蓝牙耳机", 19900), ("抹茶蛋糕", 2600))
# Bytes a noisy line or an idle POS sends between jobs: status polls, NUL fill, CAN.
NOISE = (b"\x10\x04\x01", b"\x10\x04\x04", b"\x00\x00", b"\x18", b"\x1d\x72\x01")
ACK_TIMEOUT_S = 2.0
MAX_TRIES = 5
# How long a NAK waits for the reason frame the gateway sends right behind it.
REASON_WAIT_S = 0.2
# With `authorize`: how often the cashier cancels a sale after its points were granted
# (the till voids the hold), and how often a hold is left to expire (the till crashed).
VOID_CHANCE = 0.08
ABANDON_CHANCE = 0.04
# Tills that accept fewer points than they asked for (the rest paid in cash).
PARTIAL_CHANCE = 0.5
WHOLE_BILL_CHANCE = 0.3


@dataclass(frozen=True, slots=True)
class SimReceipt:
    index: int
    kind: Kind
    escpos: bytes
    payload: dict[str, Any]
    printout: Printout | None = None
    member: str | None = None
    original: int | None = None  # a refund's or copy's original receipt (its index)


def _malformed(p: Printout) -> bytes:
    # The total line is missing: no template can read the receipt.
    return p.escpos().replace("合计".encode("gb18030"), "小计金额".encode("gb18030"))


def scenario(count: int, *, seed: int = 1, start: datetime, members: Sequence[str],
             store_id: str = "S01", pos_id: str = "P1") -> list[SimReceipt]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    store = STORES[seed % len(STORES)]
    prefix = f"{store_id}{pos_id}-{start:%Y%m%d%H%M%S}"
    out: list[SimReceipt] = []
    sales: list[SimReceipt] = []
    refunded: set[int] = set()
    for i in range(count):
        at = start + timedelta(seconds=i)
        roll = rng.random()
        no = f"{prefix}-{i:05d}"
        member_sales = [s for s in sales if s.member and s.index not in refunded]
        if roll < 0.08 and member_sales:
            original = rng.choice(member_sales)
            assert original.printout is not None  # noqa: S101 - sales have printouts
            refunded.add(original.index)
            item = original.printout.items[0]
            p = Printout(store, no, at, (item,), refund_of=original.printout.receipt_no)
            out.append(SimReceipt(i, "refund", p.escpos(), p.payload(store_id, pos_id), p,
                                  original.member, original.index))
        elif roll < 0.15 and sales:
            original = rng.choice(sales)
            assert original.printout is not None  # noqa: S101
            label = rng.choice(("商户联", "重打印", "补打"))
            p = Printout(**{**_fields(original.printout), "copy_label": label})
            out.append(SimReceipt(i, "copy", p.escpos(), p.payload(store_id, pos_id), p,
                                  original.member, original.index))
        elif roll < 0.20:
            raw = (kitchen_ticket(f"A{i % 40}", ("宫保鸡丁", "麻婆豆腐"), at) if rng.random() < 0.7
                   else shift_report(at, len(sales), 100_000))
            out.append(SimReceipt(i, "non_sale", raw, {
                "receipt_no": f"{no}-K", "occurred_at": at.isoformat(), "total_fen": 0,
                "kind": "non_sale"}))
        elif roll < 0.25:
            p = _printout(rng, store, no, at, None)
            payload = p.payload(store_id, pos_id)
            del payload["total_fen"]
            out.append(SimReceipt(i, "malformed", _malformed(p), payload, p))
        else:
            member = rng.choice(members) if members and roll < 0.85 else None
            p = _printout(rng, store, no, at, member)
            receipt = SimReceipt(i, "sale" if member else "unclaimed", p.escpos(),
                                 p.payload(store_id, pos_id), p, member)
            sales.append(receipt)
            out.append(receipt)
    return out


def _fields(p: Printout) -> dict[str, Any]:
    return {name: getattr(p, name) for name in Printout.__slots__}


def _printout(rng: random.Random, store: str, no: str, at: datetime,
              member: str | None) -> Printout:
    items = tuple(rng.sample(ITEMS, rng.randint(1, 3)))
    total = sum(amount for _, amount in items)
    points = 0
    if member and rng.random() < 0.1 and total > 2000:
        points = rng.randint(1, 10) * 100  # 100 points = ¥1
    return Printout(store, no, at, items, payment=rng.choice(("微信支付", "支付宝", "现金",
                                                                "银联")),
                    member_code=member, member_as_qr=rng.random() < 0.4,
                    points_used=points, points_paid_fen=points,
                    chinese_mode_command=rng.random() < 0.3)


@dataclass(slots=True)
class HoldReport:
    """What the till's points payments came to (`authorize` mode)."""

    granted: int = 0
    refused: int = 0  # authorize refused (no points, offline limit...): paid in cash
    captured: int = 0  # sales that spent their hold and were ACKed
    voided: int = 0
    expired: int = 0  # holds the till walked away from: released when they expire
    sales_refused: int = 0  # sales the gateway refused (NAK with a reason)

    def as_dict(self) -> dict[str, int]:
        return {"granted": self.granted, "refused": self.refused, "captured": self.captured,
                "voided": self.voided, "expired": self.expired,
                "sales_refused": self.sales_refused}


@dataclass(slots=True)
class CouponReport:
    """What the coupons offered at the till came to (`authorize` mode with coupons)."""

    offered: int = 0
    granted: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # by the gateway's code
    redeemed: int = 0  # sales that carried their coupon and were ACKed

    def as_dict(self) -> dict[str, Any]:
        return {"offered": self.offered, "granted": self.granted,
                "refused": dict(sorted(self.refused.items())), "redeemed": self.redeemed}


@dataclass(slots=True)
class SimReport:
    sent: int = 0
    acked: int = 0
    naks: int = 0
    resends: int = 0
    noise_bytes: int = 0
    latencies: list[float] = field(default_factory=list)  # receipt written -> ACK, seconds
    holds: HoldReport = field(default_factory=HoldReport)
    coupons: CouponReport = field(default_factory=CouponReport)
    # Points each member sale paid with, by receipt index, as the gateway accepted them.
    spent: dict[int, int] = field(default_factory=dict)
    authorize_latencies: list[float] = field(default_factory=list)  # authorize -> reply


@dataclass(frozen=True, slots=True)
class _Answer:
    ok: bool  # ACK
    body: dict[str, Any] | None  # reply frame / line, or a refusal's reason


class PosSimulator:
    """Sends receipts over an open port. `noise`: chance of line noise before a receipt;
    `lose_ack`: chance that the POS resends a receipt as if its ACK had been lost."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mode: Mode,
                 *, seed: int = 1, noise: float = 0.05, lose_ack: float = 0.03,
                 store_id: str = "S01", pos_id: str = "P1", authorize: bool = False,
                 coupons: Mapping[str, Sequence[str]] | None = None) -> None:
        self.reader, self.writer, self.mode = reader, writer, mode
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible simulation
        self.noise, self.lose_ack = noise, lose_ack
        self.store_id, self.pos_id = store_id, pos_id
        self.authorize = authorize and mode != "escpos"
        # Each member's coupon codes not yet used; a coupon goes with their next sale.
        self.coupons = {member: list(codes) for member, codes in (coupons or {}).items()}
        self.report = SimReport()
        self._seq = 0

    async def send(self, receipt: SimReceipt) -> None:
        if self.rng.random() < self.noise:
            junk = self._noise()
            self.writer.write(junk)
            self.report.noise_bytes += len(junk)
        if self.mode == "escpos":
            self.writer.write(receipt.escpos)
            await self.writer.drain()
            self.report.sent += 1
            return
        payload = {**receipt.payload, "store_id": self.store_id, "pos_id": self.pos_id}
        paying = receipt.kind == "sale" and payload.get("points_used", 0) > 0
        codes = self.coupons.get(payload.get("member_code") or "") if self.authorize else None
        coupon = codes.pop() if codes and receipt.kind == "sale" else None
        if (paying or coupon) and self.authorize:
            payload = await self._authorized(receipt, payload, coupon)
        answer = await self._message(payload, resend=True)
        if payload.get("points_used") or "hold_id" in payload:
            if answer.ok:
                if payload.get("points_used"):
                    self.report.spent[receipt.index] = payload["points_used"]
                self.report.holds.captured += "hold_id" in payload
                self.report.coupons.redeemed += bool(payload.get("coupon_codes"))
            else:
                self.report.holds.sales_refused += 1

    async def _message(self, payload: dict[str, Any], *, resend: bool = False) -> _Answer:
        self._seq = (self._seq + 1) % (256 if self.mode == "framed" else 2**31)
        data = (encode_frame(self._seq, payload) if self.mode == "framed"
                else encode_line(self._seq, payload))
        request = payload.get("type") in ("authorize", "void")
        answer = await self._exchange(data, request=request)
        if resend and self.rng.random() < self.lose_ack:
            self.report.resends += 1
            again = await self._exchange(data, request=request)
            assert again == answer, (answer, again)  # noqa: S101 - the gateway's promise
        return answer

    async def authorize_points(self, *, request_id: str, member_code: str, points: int,
                               total_fen: int, partial: bool = True,
                               coupon_codes: Sequence[str] = ()) -> dict[str, Any]:
        """One `authorize` and its reply (the time to it kept in `authorize_latencies`)."""
        started = asyncio.get_running_loop().time()
        answer = await self._message({
            "type": "authorize", "request_id": request_id, "member_code": member_code,
            "total_fen": total_fen, "points": points, "partial": partial,
            "coupon_codes": list(coupon_codes)})
        self.report.authorize_latencies.append(asyncio.get_running_loop().time() - started)
        return answer.body or {}

    async def _authorized(self, receipt: SimReceipt, payload: dict[str, Any],
                          coupon: str | None = None) -> dict[str, Any]:
        """Ask for the receipt's points (and take `coupon` off it); the sale to send: with
        its hold, or in cash."""
        cash = {k: v for k, v in payload.items() if k not in ("points_used", "points_paid_fen")}
        started = asyncio.get_running_loop().time()
        # Now and then a member tries to pay the whole bill with points.
        asked = (0 if not payload.get("points_used")
                 else payload["total_fen"] if self.rng.random() < WHOLE_BILL_CHANCE
                 else payload["points_used"])
        self.report.coupons.offered += coupon is not None
        reply = (await self._message({
            "type": "authorize", "request_id": f"{payload['receipt_no']}-pay",
            "member_code": payload["member_code"], "total_fen": payload["total_fen"],
            "points": asked, "coupon_codes": [coupon] if coupon else [],
            # Some tills take all the points asked or none: those meet refusals.
            "partial": self.rng.random() < PARTIAL_CHANCE,
            "lines": [{**line, "category": "retail"} for line in payload["lines"]],
        })).body or {}
        self.report.authorize_latencies.append(asyncio.get_running_loop().time() - started)
        if reply.get("status") != "granted":
            self.report.holds.refused += 1
            if coupon is not None:
                refused = self.report.coupons.refused
                refused[str(reply.get("error"))] = refused.get(str(reply.get("error")), 0) + 1
            return cash
        self.report.holds.granted += 1
        self.report.coupons.granted += coupon is not None
        roll = self.rng.random()
        if roll < VOID_CHANCE:
            answer = await self._message({"type": "void", "hold_id": reply["hold_id"]})
            self.report.holds.voided += (answer.body or {}).get("status") == "voided"
            if coupon is not None:  # released: the member keeps it for another sale
                self.coupons.setdefault(payload["member_code"], []).append(coupon)
            return cash
        if roll < VOID_CHANCE + ABANDON_CHANCE:
            self.report.holds.expired += 1
            return cash
        # The bill after the coupons' discounts, paid in points (as granted) and money.
        total = payload["total_fen"] - reply.get("discount_fen", 0)
        sale = {**cash, "hold_id": reply["hold_id"], "total_fen": total}
        if coupon is not None:
            sale["coupon_codes"] = [coupon]
        if reply["points"]:
            sale |= {"points_used": reply["points"],
                     "points_paid_fen": min(reply["value_fen"], total)}
        return sale

    def _noise(self) -> bytes:
        if self.mode == "escpos":
            return self.rng.choice(NOISE)
        if self.mode == "jsonl":
            return b"\x00~" + bytes(self.rng.randrange(0x20, 0x7F) for _ in range(8)) + b"\n"
        return bytes(self.rng.choice((0x00, 0x55, 0xFF, 0x03)) for _ in range(4))

    async def _exchange(self, data: bytes, *, request: bool = False) -> _Answer:
        loop = asyncio.get_running_loop()
        for _ in range(MAX_TRIES):
            started = loop.time()
            self.writer.write(data)
            await self.writer.drain()
            self.report.sent += 1
            try:
                answer = await asyncio.wait_for(self._reply(request), ACK_TIMEOUT_S)
            except TimeoutError:
                continue
            if answer.ok:
                self.report.acked += 1
                self.report.latencies.append(loop.time() - started)
                return answer
            self.report.naks += 1
            if answer.body is not None:  # refused with a reason: resending will not help
                return answer
        raise TimeoutError(f"no ACK for seq {self._seq} after {MAX_TRIES} tries")

    async def _reply(self, request: bool) -> _Answer:
        """Read replies until the one for the current seq, with the reply frame or line
        that comes with it: a request's decision, or a refused sale's reason."""
        while True:
            if self.mode == "framed":
                code, seq = await self.reader.readexactly(2)
                if seq != self._seq:
                    continue
                if code == ACK and not request:
                    return _Answer(True, None)
                return _Answer(code == ACK, await self._reply_frame())
            try:
                line = json.loads(await self.reader.readline())
            except ValueError:
                continue
            if line.get("ack") == self._seq:
                return _Answer(True, line.get("reply"))
            # A NAK without seq answers line noise, not this receipt.
            if "nak" in line and line["nak"] == self._seq:
                return _Answer(False, line if "msg" in line else None)

    async def _reply_frame(self) -> dict[str, Any] | None:
        """The frame right behind an ACK or NAK, if the gateway sent one."""
        with contextlib.suppress(TimeoutError):
            head = await asyncio.wait_for(self.reader.readexactly(4), REASON_WAIT_S)
            if head[0] != STX:
                return None
            rest = await self.reader.readexactly(int.from_bytes(head[1:3], "big") + 3)
            events = FrameDecoder().receive(head + rest, 0.0)
            if events and isinstance(events[0], Message):
                return events[0].payload
        return None


async def run(path: str, mode: Mode, receipts: Sequence[SimReceipt], *, rate: float,
              baudrate: int = 115200, seed: int = 1, noise: float = 0.05,
              lose_ack: float = 0.03, store_id: str = "S01", pos_id: str = "P1",
              authorize: bool = False, progress: Callable[[SimReport], None] | None = None,
              progress_every: float = PROGRESS_EVERY_S,
              coupons: Mapping[str, Sequence[str]] | None = None) -> SimReport:
    """Open `path` and send `receipts` at `rate` per second (0: as fast as acknowledged).
    `authorize`: framed/jsonl tills authorize points before paying with them. `progress`
    is called with the report so far every `progress_every` seconds while sending."""
    reader, writer = await serial_asyncio_fast.open_serial_connection(
        url=path, baudrate=baudrate, xonxoff=False)
    sim = PosSimulator(reader, writer, mode, seed=seed, noise=noise, lose_ack=lose_ack,
                       store_id=store_id, pos_id=pos_id, authorize=authorize,
                       coupons=coupons)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if progress is not None:
                await stack.enter_async_context(
                    reporting(progress_every, lambda: progress(sim.report)))
            report = await send_all(sim, receipts, rate=rate)
            await drained(writer)
    finally:
        writer.close()
    return report


async def send_all(sim: PosSimulator, receipts: Sequence[SimReceipt], *,
                   rate: float, offset: float = 0.0) -> SimReport:
    """Send `receipts` at `rate` per second (0: each as soon as the last one is done),
    the first after `offset` seconds (several POS do not ring up in lockstep)."""
    loop = asyncio.get_running_loop()
    started = loop.time() + offset
    for n, receipt in enumerate(receipts):
        if rate > 0:
            delay = started + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await sim.send(receipt)
    return sim.report


async def drained(writer: asyncio.StreamWriter) -> None:
    """Wait until every byte written has left the port (closing a pty sooner loses them)."""
    await writer.drain()
    while writer.transport.get_write_buffer_size():  # noqa: ASYNC110 - no event for this
        await asyncio.sleep(0.01)
    port = writer.get_extra_info("serial")
    if port is not None:  # tcdrain: blocks until the driver sent its output queue
        await asyncio.get_running_loop().run_in_executor(None, port.flush)
