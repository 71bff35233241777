"""Coupons and their facts in SQLite. Every function runs in the caller's connection: the
writes inside the single writer's transaction, so a coupon, its facts and whatever they
answer (a kiosk's stored reply, a till's hold) commit together.

`coupons.status` is the fold of the coupon's facts at the last write, kept for listing;
anything that decides (a check, a hold) folds the facts afresh at its own instant.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.loyalty import (
    Campaign,
    Coupon,
    CouponFact,
    CouponState,
    FactKind,
    campaign_from_wire,
    coupon_to_wire,
    fold_coupon,
    issued_fact,
    terms_from_wire,
    terms_to_wire,
)
from gateway.loyalty.wire import from_text, to_text

# The outbox events that carry coupons to central: the coupon with its issue, then each
# later fact. Their event id is the fact's, so central keeps each once.
ISSUED_EVENT = "coupon.issued"
FACT_EVENT = "coupon.fact"
_COLUMNS = ("id, code, mall, campaign_id, member_id, terms, issued_at, valid_from, "
            "expires_at")
_FACT_COLUMNS = "fact_id, coupon_id, kind, ref, at, until, of_ref, site, recorded_at"


@dataclass(frozen=True, slots=True)
class CouponRow:
    coupon: Coupon
    state: CouponState


def issue_in(conn: sqlite3.Connection, coupon: Coupon, *, site: str, now: datetime,
             offer_id: str | None = None, delivery_id: int | None = None,
             outbox: bool = True) -> bool:
    """Keep `coupon` and its issued fact, and (`outbox`) send it to central; False if a
    coupon of this id was issued before (the first one stands)."""
    inserted = conn.execute(
        f"INSERT INTO coupons ({_COLUMNS}, offer_id, delivery_id, status, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'issued', ?) ON CONFLICT (id) DO NOTHING",
        (coupon.coupon_id, coupon.code, coupon.mall, coupon.campaign_id, coupon.member_id,
         json.dumps(terms_to_wire(coupon.terms)), to_text(coupon.issued_at),
         to_text(coupon.valid_from), to_text(coupon.valid_until), offer_id, delivery_id,
         to_text(now))).rowcount == 1
    fact = issued_fact(coupon, site=site)
    record_facts_in(conn, [fact], now=now, outbox=False)
    if inserted and outbox:
        _outbox(conn, fact.fact_id, ISSUED_EVENT, coupon.coupon_id,
                body={"coupon": coupon_to_wire(coupon)}, now=now)
    return inserted


def _outbox(conn: sqlite3.Connection, event_id: str, event_type: str, coupon_id: str, *,
            body: dict[str, object], now: datetime) -> None:
    """An event for central about a member's coupon (a bearer coupon has no member and
    central learns of it from the campaign that issued it)."""
    owner = conn.execute("SELECT m.id, m.account_id FROM coupons c JOIN members m "
                         "ON m.id = c.member_id WHERE c.id = ?", (coupon_id,)).fetchone()
    if owner is None:
        return
    payload = {"member_id": owner[0], "account_id": owner[1], **body}
    conn.execute(
        "INSERT INTO outbox (event_id, event_type, account_id, payload, created_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
        (event_id, event_type, owner[1], json.dumps(payload, ensure_ascii=False),
         to_text(now)))


def record_facts_in(conn: sqlite3.Connection, facts: Iterable[CouponFact], *,
                    now: datetime, outbox: bool = True) -> list[bool]:
    """Keep each fact once (by its id), send each new one to central (`outbox`; not for
    facts central sent), and refresh the listed status of the coupons they are about;
    whether each fact was new."""
    new: list[bool] = []
    touched: set[str] = set()
    for fact in facts:
        new.append(conn.execute(
            f"INSERT INTO coupon_facts ({_FACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (fact_id) DO NOTHING",
            (fact.fact_id, fact.coupon_id, fact.kind.value, fact.ref, to_text(fact.at),
             to_text(fact.until), fact.of_ref, fact.site, to_text(now))).rowcount == 1)
        touched.add(fact.coupon_id)
        if new[-1] and outbox and fact.kind is not FactKind.ISSUED:
            _outbox(conn, fact.fact_id, FACT_EVENT, fact.coupon_id,
                    body={"fact": fact.to_wire()}, now=now)
    for coupon_id in touched:
        state = fold_coupon(facts_of(conn, coupon_id), as_of=now)
        if state is not None:
            conn.execute("UPDATE coupons SET status = ?, updated_at = ? WHERE id = ?",
                         (state.status.value, to_text(now), coupon_id))
    return new


def receive_in(conn: sqlite3.Connection, coupon: Coupon, facts: Iterable[CouponFact], *,
               now: datetime) -> bool:
    """A coupon central sent with its facts: kept, but not sent back. A coupon of a member
    this gateway does not have (yet) is not kept: the member's upsert comes first in the
    feed, and a snapshot brings both. Whether it was kept."""
    if coupon.member_id is not None and conn.execute(
            "SELECT 1 FROM members WHERE id = ?", (coupon.member_id,)).fetchone() is None:
        return False
    issue_in(conn, coupon, site=next((f.site for f in facts if f.kind is FactKind.ISSUED), ""),
             now=now, outbox=False)
    record_facts_in(conn, facts, now=now, outbox=False)
    return True


def put_campaign(conn: sqlite3.Connection, campaign_id: str,
                 definition: Mapping[str, Any], at: str) -> None:
    """A campaign central published, kept as sent (read by `campaign_in`)."""
    conn.execute("INSERT INTO coupon_campaigns (id, definition, updated_at) VALUES (?, ?, ?) "
                 "ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, "
                 "updated_at = excluded.updated_at",
                 (campaign_id, json.dumps(definition, ensure_ascii=False), at))


def campaign_in(conn: sqlite3.Connection, campaign_id: str, mall: str) -> Campaign | None:
    """The campaign as this mall's, or None when central has not published it here."""
    row = conn.execute("SELECT definition FROM coupon_campaigns WHERE id = ?",
                       (campaign_id,)).fetchone()
    return campaign_from_wire(campaign_id, mall, json.loads(row[0])) if row else None


def facts_of(conn: sqlite3.Connection, coupon_id: str) -> list[CouponFact]:
    rows = conn.execute(f"SELECT {_FACT_COLUMNS} FROM coupon_facts WHERE coupon_id = ?",
                        (coupon_id,))
    return [CouponFact(coupon_id=row[1], kind=FactKind(row[2]), ref=row[3],
                       at=_time(row[4]), until=from_text(row[5]), of_ref=row[6], site=row[7])
            for row in rows]


def state_in(conn: sqlite3.Connection, coupon: Coupon, now: datetime) -> CouponState:
    """The coupon's state at `now`, folded from its facts (its own issue among them)."""
    state = fold_coupon([issued_fact(coupon), *facts_of(conn, coupon.coupon_id)], as_of=now)
    assert state is not None  # noqa: S101 - an issued fact is among them
    return state


def _time(text: str) -> datetime:
    at = from_text(text)
    assert at is not None  # noqa: S101 - the column is NOT NULL
    return at


def _coupon(row: tuple[str, ...]) -> Coupon | None:
    """The coupon of a row; None for a row without terms (a code issued before coupons had
    terms, which nothing can redeem)."""
    if row[5] is None or row[8] is None:
        return None
    return Coupon(coupon_id=row[0], code=row[1], mall=row[2], campaign_id=row[3],
                  member_id=row[4], terms=terms_from_wire(json.loads(row[5])),
                  issued_at=_time(row[6]), valid_from=_time(row[7] or row[6]),
                  valid_until=_time(row[8]))


def coupon_by_id(conn: sqlite3.Connection, coupon_id: str) -> Coupon | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM coupons WHERE id = ?", (coupon_id,)).fetchone()
    return _coupon(row) if row else None


def coupon_by_code(conn: sqlite3.Connection, code: str) -> Coupon | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM coupons WHERE code = ?", (code,)).fetchone()
    return _coupon(row) if row else None


def member_coupons(conn: sqlite3.Connection, member_id: str, now: datetime
                   ) -> list[CouponRow]:
    """The member's coupons with their state at `now`, soonest to expire first."""
    out: list[CouponRow] = []
    for row in conn.execute(f"SELECT {_COLUMNS} FROM coupons WHERE member_id = ? "
                            "ORDER BY expires_at, id", (member_id,)):
        coupon = _coupon(row)
        if coupon is not None:
            out.append(CouponRow(coupon, state_in(conn, coupon, now)))
    return out
