"""The sans-io kiosk protocol: topics, validation against the AsyncAPI contract, replies."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.kiosk.protocol import (
    EVENT_SCHEMAS,
    REPLIES,
    ErrorCode,
    KioskError,
    KioskTopic,
    ProtocolError,
    Topics,
    decode_event,
    decode_request,
    decode_status,
    default_contract,
    error_reply,
    ok_reply,
)
from devices.mqtt.contract import encode
from gateway.operations.model import RefusalCode, Refused
from tests.scale import examples

CONTRACT = default_contract()
TOPICS = Topics("demo-mall")
ID = "01JD3Q2M7ZK8W5X9Y4T6V0N1PA"


def envelope(data: dict[str, Any], **over: Any) -> bytes:
    message = {"v": 1, "id": ID, "ts": "2026-11-22T10:00:00+08:00", "boot": 3, "seq": 7,
               "data": data}
    message.update(over)
    return json.dumps(message).encode()


def test_topics_of_a_mall() -> None:
    assert TOPICS.request("k1", "checkin") == "lty/v1/demo-mall/kiosk/k1/req/checkin"
    assert TOPICS.reply("k1") == "lty/v1/demo-mall/kiosk/k1/rsp"
    assert TOPICS.command("k1", "offer.show") == "lty/v1/demo-mall/kiosk/k1/cmd/offer.show"
    assert TOPICS.gateway_status == "lty/v1/demo-mall/gateway/status"
    assert TOPICS.subscriptions == (
        "lty/v1/demo-mall/kiosk/+/req/+", "lty/v1/demo-mall/kiosk/+/evt/+",
        "lty/v1/demo-mall/kiosk/+/status")


def test_topic_parsing_takes_the_kiosk_from_the_topic() -> None:
    assert TOPICS.parse("lty/v1/demo-mall/kiosk/k1/req/redeem") == KioskTopic("k1", "req",
                                                                              "redeem")
    assert TOPICS.parse("lty/v1/demo-mall/kiosk/k1/evt/heartbeat") == KioskTopic(
        "k1", "evt", "heartbeat")
    assert TOPICS.parse("lty/v1/demo-mall/kiosk/k1/status") == KioskTopic("k1", "status", "")
    for foreign in ("lty/v1/other/kiosk/k1/req/redeem", "lty/v1/demo-mall/kiosk/K!/req/x",
                    "lty/v1/demo-mall/kiosk/k1/rsp", "lty/v1/demo-mall/gateway/status",
                    "lty/v1/demo-mall/kiosk/k1/req/", "lty/v1/demo-mall/kiosk/k1/req/a/b"):
        assert TOPICS.parse(foreign) is None, foreign


@pytest.mark.parametrize("bad", ["Demo", "a/b", "+", "#", "", "x" * 40])
def test_topics_refuse_ids_that_would_break_the_tree(bad: str) -> None:
    with pytest.raises(ValueError, match="slug"):
        Topics(bad)
    with pytest.raises(ValueError, match="slug"):
        TOPICS.kiosk(bad)


def test_a_valid_request_decodes() -> None:
    request = decode_request(CONTRACT, "k1", "redeem", envelope(
        {"member_id": "M1", "kind": "gift", "item": "mug", "points": 100}))
    assert (request.kid, request.op, request.id, request.boot, request.seq) == (
        "k1", "redeem", ID, 3, 7)
    assert request.data["points"] == 100
    assert request.key == f"k1/{ID}"


@pytest.mark.parametrize(("op", "payload", "code", "reason"), [
    ("checkin", b"{not json", "invalid_payload", "not UTF-8 JSON"),
    ("checkin", b"\xff\xfe", "invalid_payload", "not UTF-8 JSON"),
    ("checkin", b"[" * 5000, "invalid_payload", "not UTF-8 JSON"),  # nested past the stack
    ("checkin", b"[]", "invalid_payload", "is not of type 'object'"),
    ("checkin", envelope({"member_id": "M1", "extra": 1}), "invalid_payload",
     "Additional properties"),
    ("redeem", envelope({"session": "s1.a.b.1.c"}), "invalid_payload",
     "'kind' is a required property"),
    ("checkin", envelope({"session": "not a token"}), "invalid_payload", "data/session"),
    ("checkin", envelope({"member_id": "M1"}, v=2), "invalid_payload", "v: 1 was expected"),
    ("checkin", envelope({"member_id": "M1"}, id="not-a-ulid"), "invalid_payload", "id:"),
    ("checkin", envelope({"member_id": "M1"}, ts="yesterday"), "invalid_payload", "ts:"),
    ("checkin", envelope({"member_id": "x" * 65}), "invalid_payload", "data/member_id"),
    ("redeem", envelope({"member_id": "M1", "kind": "gift", "item": "mug", "points": 0}),
     "invalid_payload", "data/points"),
    ("redeem", envelope({"member_id": "M1", "kind": "cash", "item": "mug", "points": 5}),
     "invalid_payload", "data/kind"),
    ("member.identify", envelope({"by": "qr", "value": "a b"}), "invalid_payload",
     "data/value"),
    ("member.identify", envelope({"by": "email", "value": "a"}), "invalid_payload", "data/by"),
    ("shutdown", envelope({}), "unknown_op", "unknown operation"),
    ("checkin", b" " * 20_000, "payload_too_large", "over the limit"),
])
def test_bad_requests_get_a_clear_code(op: str, payload: bytes, code: str,
                                       reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(CONTRACT, "k1", op, payload)
    assert caught.value.code == code
    assert reason in caught.value.msg


def test_a_broken_request_with_a_good_id_is_answered_under_that_id() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(CONTRACT, "k1", "balance.query", envelope({}))
    assert caught.value.request_id == ID
    with pytest.raises(ProtocolError) as caught:
        decode_request(CONTRACT, "k1", "balance.query", envelope({}, id=7))
    assert caught.value.request_id is None


_ENVELOPE_LIKE = st.builds(
    lambda d: json.dumps(d).encode(),
    st.dictionaries(
        st.sampled_from(["v", "id", "ts", "boot", "seq", "data", "x"]),
        st.none() | st.integers() | st.text(max_size=30)
        | st.dictionaries(st.text(max_size=10), st.integers(), max_size=3)))


@settings(max_examples=examples(200), deadline=None)
@given(payload=st.binary(max_size=300) | _ENVELOPE_LIKE,
       op=st.sampled_from([*sorted(CONTRACT.ops), "nope"]))
def test_no_input_crashes_the_decoder(payload: bytes, op: str) -> None:
    try:
        decode_request(CONTRACT, "k1", op, payload)
    except ProtocolError as exc:
        assert exc.code in get_args(ErrorCode)


_VALID_DATA: dict[str, dict[str, Any]] = {
    "member.identify": {"by": "card", "value": "DEMO0001"},
    "balance.query": {"member_id": "m-1"},
    "checkin": {"session": "s1.azE.bS0x.1795000000.sig", "member_id": "m-1"},
    "redeem": {"session": "s1.azE.bS0x.1795000000.sig", "kind": "gift", "item": "mug",
               "points": 300},
    "receipt.claim": {"session": "s1.azE.bS0x.1795000000.sig", "store_id": "S01", "pos_id": "P1",
                      "receipt_no": "R-1", "business_date": "2026-11-22"},
    "offer.claim": {"session": "s1.azE.bS0x.1795000000.sig", "offer_id": "welcome"},
}
# Values that break one rule or another: wrong types, bounds, patterns, enums, extras.
_ODD = (st.none() | st.booleans() | st.integers(-2, 2**54) | st.floats(allow_nan=False)
        | st.text(max_size=300) | st.sampled_from(["", "01JD3Q2M7ZK8W5X9Y4T6V0N1PI", "2026-02-30",
                                                   "gift", "qr", "m 1", "\u00e9"])
        | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=5),
                                                                 st.integers(), max_size=2))


@settings(max_examples=examples(300), deadline=None)
@given(op=st.sampled_from(sorted(_VALID_DATA)), where=st.sampled_from(["envelope", "data"]),
       key=st.sampled_from(["v", "id", "ts", "boot", "seq", "data", "member_id", "session",
                            "points",
                            "kind", "by", "value", "business_date", "offer_id", "extra"]),
       value=_ODD, drop=st.booleans())
def test_the_fast_validator_accepts_only_what_jsonschema_accepts(
        op: str, where: str, key: str, value: object, drop: bool) -> None:
    message: dict[str, Any] = json.loads(envelope(dict(_VALID_DATA[op])))
    target = message if where == "envelope" else message["data"]
    if drop:
        target.pop(key, None)
    else:
        target[key] = value
    schema = CONTRACT.request_schemas[op]
    reason = CONTRACT.schema_error(schema, message)
    strict = next(iter(CONTRACT.validator(schema).iter_errors(message)), None)
    assert (reason is None) == (strict is None), (reason, strict)


def test_status_birth_will_and_cleared() -> None:
    assert decode_status("k1", b'{"online":true,"boot":4}', CONTRACT).online
    will = decode_status("k1", b'{"online":false,"boot":4}', CONTRACT)
    assert (will.online, will.boot) == (False, 4)
    assert not decode_status("k1", b"", CONTRACT).online
    with pytest.raises(ProtocolError):
        decode_status("k1", b'{"online":"yes"}', CONTRACT)
    with pytest.raises(ProtocolError):
        decode_status("k1", b"{", CONTRACT)


def test_error_codes_in_code_and_contract_agree() -> None:
    enum = CONTRACT.document["components"]["schemas"]["ErrorCode"]["enum"]
    assert sorted(enum) == sorted(get_args(ErrorCode))


def test_every_refusal_of_the_operations_is_a_kiosk_error_code() -> None:
    assert set(get_args(RefusalCode)) <= set(get_args(ErrorCode))
    reply = REPLIES.refused(ID, Refused("insufficient_points", "why", data={"available": 3}))
    assert reply == error_reply(ID, KioskError("insufficient_points", "why",
                                               data={"available": 3}))


def test_error_replies_conform_to_the_contract() -> None:
    for code in get_args(ErrorCode):
        for request_id in (ID, None):
            reply = error_reply(request_id, KioskError(code, "why", data={"available": 3}))
            assert CONTRACT.schema_error("#/components/schemas/ErrorReply", reply) is None
    assert json.loads(encode(ok_reply(ID, {"a": "点"}))) == {
        "v": 1, "re": ID, "status": "ok", "data": {"a": "点"}}


def test_every_request_channel_has_qos1_expiry_and_a_reply() -> None:
    operations = CONTRACT.document["operations"]
    for channel, body in CONTRACT.document["channels"].items():
        if "/req/" not in body["address"]:
            continue
        mqtt = operations[channel]["bindings"]["mqtt"]
        assert mqtt["qos"] == 1 and mqtt["retain"] is False
        assert mqtt["messageExpiryInterval"] > 0
        assert operations[channel]["reply"]["channel"] == {"$ref": "#/channels/reply"}


def test_every_schema_is_closed_and_bounded() -> None:
    """additionalProperties false on every object, a maxLength or pattern on every string."""
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object":
                assert node.get("additionalProperties") is False, where
            if node.get("type") == "string":
                assert {"maxLength", "pattern", "enum"} & node.keys(), where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")
    walk(CONTRACT.document["components"]["schemas"], "schemas")


def test_heartbeat_events() -> None:
    beat = envelope({})
    assert decode_event(CONTRACT, "heartbeat", beat)["seq"] == 7
    for name, payload, code in [("heartbeat", b"{", "invalid_payload"),
                                ("heartbeat", envelope({"cpu": 3}), "invalid_payload"),
                                ("party", beat, "unknown_op")]:
        with pytest.raises(ProtocolError) as caught:
            decode_event(CONTRACT, name, payload)
        assert caught.value.code == code


def test_the_heartbeat_channel_uses_the_schema_the_code_checks() -> None:
    channel = CONTRACT.document["channels"]["heartbeat"]
    message = CONTRACT.document["components"]["messages"]["heartbeat"]
    assert channel["address"].endswith("/evt/heartbeat")
    assert message["payload"]["schema"]["$ref"] == EVENT_SCHEMAS["heartbeat"]


def test_every_schema_of_the_contract_is_valid_json_schema_2020_12() -> None:
    for name in CONTRACT.document["components"]["schemas"]:
        CONTRACT.validator(f"#/components/schemas/{name}")  # check_schema raises if not
    for message in CONTRACT.document["components"]["messages"].values():
        assert message["payload"]["schemaFormat"].endswith("draft-2020-12")
