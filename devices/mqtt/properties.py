"""MQTT v5 PUBLISH properties of our own messages, packed directly.

paho's generic `Properties` checks each assignment against its whole property table and
packs by walking that table once per known name: well over a thousand string operations
for the three properties a reply carries, on every reply. The gateway publishes only
these three (MQTT v5 section 3.3.2.3), so it packs them itself. paho stores the object
with the message and packs it again for a retransmission; `pack` is all it calls.
"""

from __future__ import annotations

from typing import Final

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

CONTENT_TYPE: Final = "application/json"

# Property identifiers (MQTT v5 table 2-4), in the order paho packs them.
_MESSAGE_EXPIRY_INTERVAL: Final = b"\x02"  # four-byte integer
_CONTENT_TYPE: Final = b"\x03"  # UTF-8 string
_CORRELATION_DATA: Final = b"\x09"  # binary data


class PackedProperties(Properties):
    """Already packed PUBLISH properties, accepted wherever paho takes `Properties`."""

    _packed: bytes
    _description: str

    def __init__(self, packed: bytes, description: str) -> None:
        # Not paho's __init__: it builds its tables afresh for every object.
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        object.__setattr__(self, "_packed", packed)
        object.__setattr__(self, "_description", description)

    def pack(self) -> bytes:
        return self._packed

    def __str__(self) -> str:
        return self._description

    __repr__ = __str__


def publish_properties(*, expiry_s: int | None, correlation: bytes | None) -> PackedProperties:
    """Content type JSON, and the message expiry and correlation data when given."""
    body = bytearray()
    if expiry_s is not None:
        body += _MESSAGE_EXPIRY_INTERVAL + expiry_s.to_bytes(4, "big")
    content = CONTENT_TYPE.encode()
    body += _CONTENT_TYPE + len(content).to_bytes(2, "big") + content
    if correlation is not None:
        body += _CORRELATION_DATA + len(correlation).to_bytes(2, "big") + correlation
    description = (f"[ContentType: {CONTENT_TYPE}, MessageExpiryInterval: {expiry_s}, "
                   f"CorrelationData: {correlation!r}]")
    return PackedProperties(_variable_byte_integer(len(body)) + bytes(body), description)


def _variable_byte_integer(value: int) -> bytes:
    """MQTT v5 section 1.5.5: seven bits a byte, the high bit set on all but the last."""
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | 0x80 if value else digit)
        if not value:
            return bytes(out)
