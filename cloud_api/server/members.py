"""Members as central keeps them: profile checks and merges, the view gateways receive,
and the back office's view of a member with balance and ledger."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cloud_api.server.activity import activity_json
from cloud_api.server.codes import Code
from cloud_api.server.phones import StoredPhone
from cloud_api.server.storage import StorageError
from gateway.loyalty import Entry, InvalidPhone, LoyaltyRules, fold, offline_allowance
from gateway.loyalty.phones import normalise_phone
from gateway.loyalty.wire import entry_to_wire

# The kinds of identifier a member can be recognised by at the edge (as in the edge schema).
IDENTIFIER_KINDS = frozenset({"card", "phone_hash", "qr_token", "ble_key"})
# The days of each month a birthday can fall on (29 February included).
DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
PROFILE_FIELDS = ("name", "phone", "tier", "tier_anniversary", "birth_month", "birth_day",
                  "tags", "opt_outs", "identifiers",
                  # kept from an enrolment at a kiosk (`enrolment.py`)
                  "consent", "referrer", "phone_verified")


def mask_name(name: str | None) -> str | None:
    """What the edge may show: the first character, the rest hidden."""
    if not name:
        return None
    return name[0] + "*" * min(len(name) - 1, 3) if len(name) > 1 else name


def edge_view(member_id: str, account_id: str, profile: dict[str, Any],
              version: int, *, phone: StoredPhone | None = None) -> dict[str, Any]:
    """What a gateway receives about a member: no name, no phone number; the phone's
    keyed hash as a `phone_hash` identifier (kiosks look members up by it) and its
    masked form."""
    phone = phone or StoredPhone.none()
    identifiers = list(profile.get("identifiers") or [])
    derived = {"kind": "phone_hash", "value": phone.hash}
    if phone.hash is not None and derived not in identifiers:
        identifiers.append(derived)
    return {
        "member_id": member_id, "account_id": account_id,
        "display_name_masked": mask_name(profile.get("name")),
        "tier": profile.get("tier") or "normal",
        "tier_anniversary": profile.get("tier_anniversary"),
        "tier_since": profile.get("tier_since"), "tier_change": profile.get("tier_change"),
        "birth_month": profile.get("birth_month"), "birth_day": profile.get("birth_day"),
        "tags": profile.get("tags") or [], "opt_outs": profile.get("opt_outs") or [],
        "identifiers": identifiers, "phone_masked": phone.masked, "version": version,
    }


def check_profile(body: dict[str, Any]) -> dict[str, Any]:
    """The profile fields of a create or update body, or `invalid_member`."""
    unknown = set(body) - set(PROFILE_FIELDS) - {"member_id", "account_id"}
    if unknown:
        raise StorageError(Code.INVALID_MEMBER, f"unknown fields: {', '.join(sorted(unknown))}")
    for ident in body.get("identifiers") or []:
        if not isinstance(ident, dict) or ident.get("kind") not in IDENTIFIER_KINDS \
                or not isinstance(ident.get("value"), str) or not ident["value"]:
            raise StorageError(Code.INVALID_MEMBER,
                               f"identifiers need a kind in {sorted(IDENTIFIER_KINDS)} "
                               "and a value")
    month, day = body.get("birth_month"), body.get("birth_day")
    if (month is None) != (day is None):
        raise StorageError(Code.INVALID_MEMBER, "birth_month and birth_day go together")
    if month is not None and day is not None and day > DAYS_IN_MONTH[month - 1]:
        raise StorageError(Code.INVALID_MEMBER, f"month {month} has no day {day}")
    if body.get("phone"):  # "" removes the number
        try:
            normalise_phone(body["phone"])
        except InvalidPhone as exc:
            raise StorageError(Code.INVALID_MEMBER, str(exc), field="phone",
                               rule="format") from None
    return {k: body[k] for k in PROFILE_FIELDS if k in body}


def member_json(member_id: str, account_id: str, profile: dict[str, Any], version: int, *,
                phone: StoredPhone, number: str | None) -> dict[str, Any]:
    """The member as the back office reads it back: the phone masked, and the number
    itself only where central keeps it encrypted (`number`, decrypted)."""
    member = {"member_id": member_id, "account_id": account_id, **profile, "version": version}
    if phone.masked is not None:
        member["phone_masked"] = phone.masked
    if number is not None:
        member["phone"] = number
    return member


def member_state(member: dict[str, Any], entries: list[Entry], *,
                 flagged: list[tuple[Any, ...]], activity: list[tuple[Any, ...]],
                 now: datetime, rules: LoyaltyRules) -> dict[str, Any]:
    """A member with balance, flagged debts (`entry_id, debt, flagged_at` rows), every
    ledger entry of the account and the latest activity (rows of `ACTIVITY_VIEW`)."""
    state = fold(entries, now, journal=False)
    return {
        "member": member,
        "balance": {"available": state.available, "locked": state.locked,
                    "debt": state.debt,
                    "offline_allowance": offline_allowance(state.available, rules)},
        "flagged_debts": [{"entry_id": e, "debt": int(d), "flagged_at": at}
                          for e, d, at in flagged],
        "ledger": [entry_to_wire(e) for e in
                   sorted(entries, key=lambda e: (e.effective_at, e.entry_id))],
        "activity": [activity_json(*row) for row in activity],
    }


def stored_profile(text: str) -> dict[str, Any]:
    profile: dict[str, Any] = json.loads(text)
    return profile
