"""Demo beacon keys, so the demo gateway and `mallgate sim ble` agree without a database.

Only for the demo (config/demo.toml): a real member's identity key is provisioned by
central. Demo member n (`m-demo-NNNN`, as `gateway.demo` numbers them) gets the first 16
bytes of HMAC-SHA256(DEMO_SECRET, member id) as identity key, rotation exponent 10. The
secret is public, so anyone can follow a demo member: never seed demo keys in a real mall.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from devices.ble.const import DEFAULT_ROTATION_EXPONENT
from devices.ble.eid import KEY_LENGTH, MemberKey
from gateway.demo import demo_ids

# Public by design: printed here so every demo install derives the same keys.
DEMO_SECRET = b"mallgate demo beacon keys - public, never for a real mall"
# The mall UUID demo iPhones advertise their iBeacon token under ("mallgate" in ASCII).
DEMO_MALL_UUID = uuid.UUID("6d616c6c-6761-7465-0000-000000000001")
# The demo mall's remote receivers and the zone each one covers (config/demo.toml).
DEMO_RECEIVERS: dict[str, str] = {
    "rx-entrance-north": "entrance-north",
    "rx-entrance-south": "entrance-south",
    "rx-atrium": "atrium",
}


def demo_member_id(n: int) -> str:
    """Demo member n's id (from 1), as `gateway.demo` numbers them."""
    return demo_ids(n)[0]


def demo_key(member_id: str) -> MemberKey:
    """The demo identity key of `member_id`, the same on every machine."""
    digest = hmac.new(DEMO_SECRET, member_id.encode("utf-8"), hashlib.sha256).digest()
    return MemberKey(member_id, identity_key=digest[:KEY_LENGTH],
                     rotation_exponent=DEFAULT_ROTATION_EXPONENT)


def demo_keys(count: int) -> list[MemberKey]:
    """The keys of demo members 1..count."""
    return [demo_key(demo_member_id(n)) for n in range(1, count + 1)]
