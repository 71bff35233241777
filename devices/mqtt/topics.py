"""The topic tree's shared part, sans-io: the `lty/v1/{site}` prefix, ids as topic levels,
and MQTT filter matching.

Every device's topics live under `lty/v1/{site}/`: the app and version first so other
systems can share the broker and a breaking change can run beside the old one. Ids that
become topic levels (site, kiosk, receiver) are lower-case slugs: they are MQTT usernames
in the ACL's `%u` patterns too, and can hold no `/`, `+` or `#`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

PREFIX = "lty/v1"
# Site, kiosk and receiver ids: lower-case slugs, as MQTT usernames and topic levels.
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")


def slug(value: str, what: str) -> str:
    """`value` if it is a lower-case slug, else `ValueError` naming `what` it is."""
    if not SLUG.match(value):
        raise ValueError(f"{what} {value!r} is not a lower-case slug")
    return value


def site_base(site: str) -> str:
    """`lty/v1/{site}`: where every topic of one mall starts."""
    return f"{PREFIX}/{slug(site, 'site')}"


def gateway_status_topic(site: str) -> str:
    """The gateway's retained availability (its birth, and its Last Will), which kiosks and
    receivers alike can watch."""
    return f"{site_base(site)}/gateway/status"


def matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` matches `topic_filter` with MQTT's wildcards (MQTT v5 section 4.7):
    `+` is exactly one level, a final `#` is the parent level and any levels below it.
    Topics starting with `$` are the broker's own and match no filter starting with a
    wildcard."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels = topic.split("/")
    wanted = topic_filter.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return index == len(wanted) - 1 and len(levels) >= index
        if index >= len(levels) or (level != "+" and level != levels[index]):
            return False
    return len(levels) == len(wanted)


def valid_filter(topic_filter: str) -> bool:
    """Whether `topic_filter` is a well-formed MQTT topic filter (wildcards whole levels,
    `#` last)."""
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if ("#" in level and (level != "#" or index != len(levels) - 1)) or (
                "+" in level and level != "+"):
            return False
    return True


def level(index: int) -> Callable[[str], str]:
    """A function giving level `index` of a topic ("" if it has fewer): for example the
    kiosk or receiver id, as the key of the router's lanes."""
    def key(topic: str) -> str:
        parts = topic.split("/", index + 1)
        return parts[index] if len(parts) > index else ""
    return key
