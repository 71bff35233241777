"""The shared contract machinery, sans-io: compact JSON, schemas by reference, the
gateway's status, topic helpers and MQTT filter matching."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.mqtt.contract import Contract, PayloadError, encode, gateway_status
from devices.mqtt.topics import gateway_status_topic, matches, site_base, slug, valid_filter
from tests.scale import examples

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@given(st.dictionaries(st.text(), JSON_VALUES, max_size=6))
@settings(max_examples=examples(200))
def test_encode_gives_the_bytes_of_compact_json_dumps(message: dict[str, Any]) -> None:
    assert encode(message) == json.dumps(
        message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


DOCUMENT = {
    "components": {
        "messages": {"Ping": {"payload": {"schema": {"$ref": "#/components/schemas/Ping"}}}},
        "schemas": {
            "Ping": {"type": "object", "additionalProperties": False, "required": ["n"],
                     "properties": {"n": {"$ref": "#/components/schemas/Count"}}},
            "Count": {"type": "integer", "minimum": 0},
        },
    },
}


def test_a_contract_checks_a_schema_through_its_references() -> None:
    contract = Contract(DOCUMENT)
    assert contract.payload_schema("#/components/messages/Ping") == "#/components/schemas/Ping"
    assert contract.schema_error("#/components/schemas/Ping", {"n": 3}) is None
    assert contract.schema_error("#/components/schemas/Ping", {"n": -1}) == (
        "n: -1 is less than the minimum of 0")
    assert contract.schema_error("#/components/schemas/Ping", {}) == (
        "(message): 'n' is a required property")


def test_a_payload_error_carries_its_code_and_reason() -> None:
    error = PayloadError("payload_too_large", "too big")
    assert (error.code, error.msg, str(error)) == ("payload_too_large", "too big", "too big")


def test_the_gateway_status_of_a_mall() -> None:
    assert gateway_status_topic("demo-mall") == "lty/v1/demo-mall/gateway/status"
    assert json.loads(gateway_status(False, "2026-11-22T10:00:00Z")) == {
        "online": False, "ts": "2026-11-22T10:00:00Z"}


@pytest.mark.parametrize("bad", ["Demo", "a/b", "+", "#", "", "x" * 40, "-a", "a-"])
def test_ids_that_would_break_the_tree_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"site .* is not a lower-case slug"):
        site_base(bad)
    with pytest.raises(ValueError, match="kiosk id"):
        slug(bad, "kiosk id")


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), [
    ("a/b/c", "a/b/c", True),
    ("a/b/c", "a/b", False),
    ("a/b", "a/b/c", False),
    ("a/+/c", "a/x/c", True),
    ("a/+/c", "a//c", True),  # an empty level is a level
    ("a/+/c", "a/x/y/c", False),
    ("a/+", "a", False),
    ("a/#", "a", True),  # `#` includes the parent level
    ("a/#", "a/b/c", True),
    ("a/#", "b/a", False),
    ("#", "a/b", True),
    ("+/+", "/x", True),
    ("lty/v1/m/kiosk/+/req/+", "lty/v1/m/kiosk/k1/req/checkin", True),
    ("lty/v1/m/kiosk/+/req/+", "lty/v1/m/receiver/r1/adv", False),
    ("#", "$SYS/broker/uptime", False),
    ("+/broker", "$SYS/broker", False),
    ("$SYS/#", "$SYS/broker", True),
])
def test_filters_match_as_mqtt_says(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected


@pytest.mark.parametrize(("topic_filter", "valid"), [
    ("a/b", True), ("a/+/c", True), ("a/#", True), ("#", True), ("+", True),
    ("", False), ("a/#/b", False), ("a#", False), ("a/b+", False), ("a/+b/c", False),
])
def test_malformed_filters_are_told_apart(topic_filter: str, valid: bool) -> None:
    assert valid_filter(topic_filter) is valid
