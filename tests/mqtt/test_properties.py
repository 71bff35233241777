"""MQTT v5 PUBLISH properties packed by hand are byte for byte what paho packs."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.mqtt.properties import publish_properties


@pytest.mark.parametrize(("expiry_s", "correlation"), [
    (30, b"01J0000000000000000000000A"), (None, b"x"), (86_400, None),
    (1, b"\x00" * 300),  # a property length past one byte
])
def test_packed_publish_properties_are_the_bytes_paho_packs(
        expiry_s: int | None, correlation: bytes | None) -> None:
    reference = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if expiry_s is not None:
        reference.MessageExpiryInterval = expiry_s
    reference.ContentType = "application/json"
    if correlation is not None:
        reference.CorrelationData = correlation
    packed = publish_properties(expiry_s=expiry_s, correlation=correlation)
    assert packed.pack() == reference.pack()  # type: ignore[no-untyped-call]
