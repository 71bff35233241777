"""Broker roles, sans-io: the mosquitto ACL block of each kiosk and BLE receiver login.

A kiosk and a receiver are different kinds of client, and the broker must keep them apart:
with `%u` patterns every login matched every pattern, so a receiver's login could publish
requests as a kiosk of its own name (and redeem points). Each login therefore gets its own
`user` block naming exactly the topics of its role, written by `mallgate kiosk add` and
`mallgate kiosk add-receiver`; the shipped ACL has no `%u` write patterns at all.

A block starts with a marker comment naming role and id, so adding a login again replaces
its block instead of adding a second one.
"""

from __future__ import annotations

import re
from typing import Literal

from devices.mqtt.topics import site_base, slug

Role = Literal["kiosk", "receiver"]
ROLES: tuple[Role, ...] = ("kiosk", "receiver")

_MARKER = re.compile(r"^# mallgate (?P<role>[a-z]+) (?P<id>\S+)$")
# A `%u` or `%c` write pattern gives every login the same rights, whatever its role.
_SHARED_WRITE = re.compile(r"^\s*pattern\s+(write|readwrite)\s+\S*%[uc]", re.MULTILINE)


class AclError(ValueError):
    """The ACL file cannot take this login as it stands; the message says what to do."""


def role_topics(role: Role, site: str, login: str) -> list[tuple[str, str]]:
    """(access, topic) of one login of `role`: it writes only its own kind of topic."""
    if role == "kiosk":
        own = f"{site_base(site)}/kiosk/{slug(login, 'kiosk id')}"
        return [("write", f"{own}/req/+"), ("write", f"{own}/evt/+"),
                ("write", f"{own}/status"), ("read", f"{own}/rsp"),
                ("read", f"{own}/cmd/+")]
    own = f"{site_base(site)}/receiver/{slug(login, 'receiver id')}"
    return [("write", f"{own}/adv"), ("write", f"{own}/status")]


def role_block(role: Role, site: str, login: str) -> str:
    lines = [f"# mallgate {role} {login}", f"user {login}"]
    lines += [f"topic {access} {topic}" for access, topic in role_topics(role, site, login)]
    return "\n".join(lines) + "\n"


def with_login(acl: str, role: Role, site: str, login: str) -> str:
    """`acl` with `login`'s block for `role` in place of any block it had before."""
    if _SHARED_WRITE.search(acl):
        raise AclError(
            "the ACL still has `pattern write ... %u` lines, which let any login (a BLE "
            "receiver too) act as a kiosk: delete them and add each login again with "
            "`mallgate kiosk add` or `add-receiver` (docs/kiosk.md)")
    kept: list[str] = []
    skipping = False
    for line in acl.splitlines():
        marker = _MARKER.match(line)
        if marker and marker["id"] == login:
            if marker["role"] != role:
                raise AclError(f"{login} is already a {marker['role']} login; give the "
                               f"{role} another id (e.g. {'k' if role == 'kiosk' else 'rx'}-...)"
                               " or delete that block first")
            skipping = True
            continue
        if skipping:
            if line.strip():
                continue
            skipping = False
        elif line.split() == ["user", login]:
            raise AclError(f"{login} already has a hand-written `user` block in the ACL; "
                           "pick another id")
        kept.append(line)
    text = "\n".join(kept).rstrip("\n")
    return (text + "\n\n" if text else "") + role_block(role, site, login)
