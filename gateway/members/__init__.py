"""Members in the core: who a member is and where the edge keeps them.

Every read and write of `members`, `member_identifiers` and `accounts` is here, so what a
member row means (central's version wins, identifiers follow their profile, an erasure
purges personal data everywhere) is decided in one place:

- `identity`: how a member names themself, without I/O: QR tokens, phone hashes, cards
  (the phone hash itself is `gateway.loyalty.phones`, shared with central);
- `lookup`: finding a member by id or identifier, the profile offers read, beacon keys;
- `store`: central's member upserts (one change or a whole snapshot) and demo members;
- `erase`: purging an erased member from the edge.

Every function takes the caller's connection and runs in its transaction: reads on a
reader (or the writer's own op), writes inside one writer op.
"""

from gateway.loyalty.phones import normalise_phone, phone_hash
from gateway.members.erase import erase_member
from gateway.members.identity import (
    IdentityError,
    IdentityKeys,
    Lookup,
    lookup_for,
    make_qr_token,
    verify_qr_token,
)
from gateway.members.lookup import (
    Member,
    Profile,
    ble_key_count,
    ble_keys_changed_since,
    find_by_code,
    find_member,
    has_members,
    profile,
)
from gateway.members.store import (
    NewMember,
    add_members,
    give_identifiers,
    ids_after,
    members_without,
    upsert_member,
    upsert_members,
    versions_between,
)

__all__ = [
    "IdentityError", "IdentityKeys", "Lookup", "Member", "NewMember", "Profile",
    "add_members", "ble_key_count", "ble_keys_changed_since", "erase_member", "find_by_code",
    "find_member", "give_identifiers", "has_members", "ids_after", "lookup_for",
    "make_qr_token", "members_without", "normalise_phone", "phone_hash", "profile",
    "upsert_member", "upsert_members", "verify_qr_token", "versions_between",
]
