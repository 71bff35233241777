"""Coupons at central: campaigns, issuing to members, the gateways' coupon facts, online
redemption and voids, all as operations of one transaction (`queries.Op`).

Central keeps each coupon once per mall and each fact once per id, and folds them with
the gateways' own fold (`gateway.loyalty.fold_coupon`). Every change to a coupon goes down
the change feed as `coupon.upsert` with the coupon and all its facts, so a gateway that
missed one fact gets it with the next; a gateway's own facts are not sent back to it.
A coupon is redeemed once because its redemption is checked and written in a transaction
that holds the coupon's row (`dialect.row_lock`); a mall's own coupons are redeemed by its
gateway, which pushes the fact, and group-wide ones only here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from cloud_api.server.activity import COUPON_EVENTS, Activity
from cloud_api.server.codes import Code
from cloud_api.server.operations import log_change
from cloud_api.server.queries import Dialect, Execute, Fetch, FetchIn, InsertNew, Op
from cloud_api.server.storage import CENTRAL_ORIGIN, NotFound, StorageError, Verdict
from gateway.loyalty import (
    Basket,
    Coupon,
    CouponError,
    CouponFact,
    CouponState,
    CouponStatus,
    FactKind,
    IssueRefused,
    Where,
    campaign_from_wire,
    check_coupon,
    check_issue,
    coupon_from_wire,
    coupon_to_wire,
    fold_coupon,
    issue_coupon,
    issued_fact,
    normalise_code,
    terms_to_wire,
)
from gateway.loyalty.wire import to_text

_COUPON_COLUMNS = "mall_id, coupon_id, code, member_id, campaign_id, document, issued_at"
_FACT_COLUMNS = "mall_id, fact_id, coupon_id, payload, recorded_at"


# -- what the gateways push -----------------------------------------------------------

def project_events(mall_id: str, origin: str, activities: Sequence[Activity],
                   verdicts: Sequence[Verdict], at: str) -> Op[None]:
    """The coupons and facts of the batch's accepted coupon events, kept once each, and a
    `coupon.upsert` down the feed for every coupon they changed."""
    accepted = {v.event_id for v in verdicts if v.status == "accepted"}
    coupon_events = [a for a in activities
                     if a.type in COUPON_EVENTS and a.event_id in accepted]
    if not coupon_events:
        return
    rows = yield FetchIn("SELECT member_id FROM members WHERE mall_id = ? AND "
                         "erased_at IS NOT NULL AND member_id {in}",
                         list({a.member_id for a in coupon_events}), (mall_id,))
    erased = {r[0] for r in rows}  # acknowledged, not kept (as their activity)
    touched: list[str] = []
    for activity in coupon_events:
        if activity.member_id in erased:
            continue
        payload = json.loads(activity.payload)
        if activity.type == "coupon.issued":
            coupon = coupon_from_wire(payload["coupon"])
            yield from _insert_coupon(mall_id, coupon, at)
            touched.append(coupon.coupon_id)
        else:
            fact = CouponFact.from_wire(payload["fact"])
            if (yield from _insert_facts(mall_id, [fact], at)):
                touched.append(fact.coupon_id)
    for coupon_id in dict.fromkeys(touched):
        yield from _log(mall_id, coupon_id, at, origin=origin)


def _insert_coupon(mall_id: str, coupon: Coupon, at: str) -> Op[bool]:
    rows = yield InsertNew("coupons", _COUPON_COLUMNS, [(
        mall_id, coupon.coupon_id, coupon.code, coupon.member_id or "", coupon.campaign_id,
        json.dumps(coupon_to_wire(coupon)), to_text(coupon.issued_at) or "")],
        conflict="mall_id, coupon_id", key="coupon_id")
    yield from _insert_facts(mall_id, [issued_fact(coupon)], at)
    return bool(rows)


def _insert_facts(mall_id: str, facts: Sequence[CouponFact], at: str) -> Op[bool]:
    rows = yield InsertNew("coupon_facts", _FACT_COLUMNS, [
        (mall_id, fact.fact_id, fact.coupon_id, json.dumps(fact.to_wire()), at)
        for fact in facts], conflict="mall_id, fact_id", key="fact_id")
    return bool(rows)


def _coupon(mall_id: str, coupon_id: str, lock: str = "") -> Op[Coupon | None]:
    rows = yield Fetch("SELECT document FROM coupons WHERE mall_id = ? AND coupon_id = ?"
                       + lock, (mall_id, coupon_id))
    return coupon_from_wire(json.loads(rows[0][0])) if rows else None


def _facts(mall_id: str, coupon_id: str) -> Op[list[CouponFact]]:
    rows = yield Fetch("SELECT payload FROM coupon_facts WHERE mall_id = ? AND coupon_id = ?",
                       (mall_id, coupon_id))
    return [CouponFact.from_wire(json.loads(row[0])) for row in rows]


def _log(mall_id: str, coupon_id: str, at: str, *, origin: str = CENTRAL_ORIGIN) -> Op[None]:
    """The coupon with every fact central has, down the feed (none before its issue)."""
    coupon = yield from _coupon(mall_id, coupon_id)
    if coupon is None:
        return
    facts = yield from _facts(mall_id, coupon_id)
    yield from log_change(mall_id, "coupon.upsert", coupon_id, at=at, origin=origin,
                          payload={"coupon": coupon_to_wire(coupon),
                                   "facts": [fact.to_wire() for fact in facts]})


def coupon_json(coupon: Coupon, state: CouponState) -> dict[str, Any]:
    return {**coupon_to_wire(coupon), "status": state.status.value,
            "redeemed_by": state.redeemed_by}


# -- campaigns and issuing ------------------------------------------------------------

def put_campaign(mall_id: str, campaign_id: str, definition: dict[str, Any],
                 at: str) -> Op[dict[str, Any]]:
    """Define a campaign and send it down the feed: a gateway's kiosks may then sell its
    coupons for points (`redeem`, kind `coupon`, item the campaign id)."""
    try:
        campaign = campaign_from_wire(campaign_id, mall_id, definition)
    except (KeyError, TypeError, ValueError) as exc:
        raise StorageError(Code.INVALID_REQUEST, f"not a coupon campaign: {exc}",
                           422) from None
    yield Execute("INSERT INTO coupon_campaigns VALUES (?, ?, ?, ?) ON CONFLICT "
                  "(mall_id, campaign_id) DO UPDATE SET definition = excluded.definition, "
                  "updated_at = excluded.updated_at",
                  (mall_id, campaign_id, json.dumps(definition), at))
    yield from log_change(mall_id, "coupon_campaign.upsert", campaign_id, at=at,
                          payload=definition)
    return {"campaign_id": campaign_id, "mall": campaign.mall,
            "terms": terms_to_wire(campaign.terms), "valid_days": campaign.valid_days,
            "per_member_limit": campaign.per_member_limit,
            "total_limit": campaign.total_limit}


def _targets(mall_id: str, body: dict[str, Any]) -> Op[list[str]]:
    """The members a campaign issues to: a list, or those of a tier or with a tag."""
    rows = yield Fetch("SELECT member_id, profile FROM members WHERE mall_id = ? AND "
                       "erased_at IS NULL ORDER BY member_id", (mall_id,))
    listed = set(body.get("member_ids") or ())
    tiers = set(body.get("tiers") or ())
    tags = set(body.get("tags") or ())
    out = []
    for member_id, profile_text in rows:
        profile = json.loads(profile_text)
        if ((listed and member_id in listed)
                or (tiers and (profile.get("tier") or "normal") in tiers)
                or (tags and tags & set(profile.get("tags") or ()))):
            out.append(str(member_id))
    return out


def issue(dialect: Dialect, mall_id: str, campaign_id: str, body: dict[str, Any], *,
          new_code: Callable[[str], str], now: datetime, at: str) -> Op[dict[str, Any]]:
    """Issue the campaign's coupons to the chosen members within its limits: the coupons
    issued, and each member refused with why (`member_limit`, `campaign_limit`)."""
    rows = yield Fetch("SELECT definition FROM coupon_campaigns WHERE mall_id = ? AND "
                       "campaign_id = ?" + dialect.row_lock, (mall_id, campaign_id))
    if not rows:
        raise NotFound(f"campaign {campaign_id}")
    campaign = campaign_from_wire(campaign_id, mall_id, json.loads(rows[0][0]))
    counts = yield Fetch("SELECT member_id, count(*) FROM coupons WHERE mall_id = ? AND "
                         "campaign_id = ? GROUP BY member_id", (mall_id, campaign_id))
    held = {str(member): int(n) for member, n in counts}
    total = sum(held.values())
    issued, refused = [], []
    for member_id in (yield from _targets(mall_id, body)):
        mine = held.get(member_id, 0)
        try:
            check_issue(campaign, member_issued=mine, campaign_issued=total, at=now)
        except IssueRefused as exc:
            refused.append({"member_id": member_id, "code": exc.code})
            continue
        coupon = issue_coupon(campaign, member_id=member_id,
                              source_key=f"{member_id}:{mine + 1}",
                              code=new_code(campaign.mall), at=now)
        yield from _insert_coupon(mall_id, coupon, at)
        yield from _log(mall_id, coupon.coupon_id, at)
        held[member_id], total = mine + 1, total + 1
        issued.append(coupon_json(coupon, CouponState(coupon.coupon_id,
                                                      CouponStatus.ISSUED)))
    return {"campaign_id": campaign_id, "issued": issued, "refused": refused}


def member_coupons(mall_id: str, member_id: str, now: datetime) -> Op[list[dict[str, Any]]]:
    rows = yield Fetch("SELECT coupon_id FROM coupons WHERE mall_id = ? AND member_id = ? "
                       "ORDER BY issued_at, coupon_id", (mall_id, member_id))
    out = []
    for (coupon_id,) in rows:
        coupon = yield from _coupon(mall_id, str(coupon_id))
        if coupon is None:
            continue
        state = fold_coupon([issued_fact(coupon), *(yield from _facts(mall_id, coupon.coupon_id))],
                            as_of=now)
        assert state is not None  # noqa: S101 - an issued fact is among them
        out.append(coupon_json(coupon, state))
    return out


# -- redeeming and voiding online ---------------------------------------------------

def _by_code(dialect: Dialect, mall_id: str, code: str) -> Op[Coupon]:
    try:
        normal = normalise_code(code)
    except CouponError as exc:
        raise StorageError(Code.COUPON_REFUSED, str(exc), 422, reason=exc.code) from None
    rows = yield Fetch("SELECT coupon_id FROM coupons WHERE mall_id = ? AND code = ?",
                       (mall_id, normal))
    if not rows:
        raise NotFound("coupon")
    coupon = yield from _coupon(mall_id, str(rows[0][0]), dialect.row_lock)
    assert coupon is not None  # noqa: S101 - just found
    return coupon


def redeem(dialect: Dialect, mall_id: str, code: str, *, redemption_id: str,
           member_id: str | None, basket: Basket, now: datetime,
           at: str) -> Op[dict[str, Any]]:
    """Redeem a coupon online: checked and recorded holding its row, so of two racing
    redemptions one wins; the same `redemption_id` again answers the first result."""
    coupon = yield from _by_code(dialect, mall_id, code)
    facts = yield from _facts(mall_id, coupon.coupon_id)
    state = fold_coupon([issued_fact(coupon), *facts], as_of=now)
    assert state is not None  # noqa: S101 - an issued fact is among them
    if state.redeemed_by == redemption_id:
        return {"coupon": coupon_json(coupon, state), "duplicate": True}
    where = Where(mall=mall_id, online=True, member_id=member_id, at_central=True)
    try:
        grant = check_coupon(coupon, state, basket, at=now, where=where)
    except CouponError as exc:
        raise StorageError(Code.COUPON_REFUSED, str(exc), 422, reason=exc.code) from None
    fact = CouponFact(coupon_id=coupon.coupon_id, kind=FactKind.REDEEMED, ref=redemption_id,
                      at=now, site=CENTRAL_ORIGIN)
    yield from _insert_facts(mall_id, [fact], at)
    yield from _log(mall_id, coupon.coupon_id, at)
    after = fold_coupon([issued_fact(coupon), *facts, fact], as_of=now)
    assert after is not None  # noqa: S101 - as above
    return {"coupon": coupon_json(coupon, after), "discount_fen": grant.discount_fen,
            "duplicate": False} | ({"sku": grant.sku} if grant.sku else {})


def void(dialect: Dialect, mall_id: str, coupon_id: str, *, reason: str, now: datetime,
         at: str) -> Op[dict[str, Any]]:
    """Withdraw a coupon not yet redeemed; voiding twice is one void."""
    coupon = yield from _coupon(mall_id, coupon_id, dialect.row_lock)
    if coupon is None:
        raise NotFound("coupon")
    facts = yield from _facts(mall_id, coupon_id)
    state = fold_coupon([issued_fact(coupon), *facts], as_of=now)
    assert state is not None  # noqa: S101 - an issued fact is among them
    if state.redeemed_by is not None:
        raise StorageError(Code.COUPON_REFUSED, "a redeemed coupon cannot be voided",
                           409, reason="already_redeemed")
    fact = CouponFact(coupon_id=coupon_id, kind=FactKind.VOIDED, at=now, ref="",
                      site=CENTRAL_ORIGIN)
    if (yield from _insert_facts(mall_id, [fact], at)):
        yield from _log(mall_id, coupon_id, at)
    after = fold_coupon([issued_fact(coupon), *facts, fact], as_of=now)
    assert after is not None  # noqa: S101 - as above
    return coupon_json(coupon, after) | {"reason": reason}
