"""Remote receivers' sans-io protocol: topics, batches against the AsyncAPI contract, status."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.ble.const import EDDYSTONE_SERVICE_UUID
from devices.ble.protocol import EddystoneEID, advertisement_from_ad, parse
from devices.ble.remote import (
    AD_MAX_BYTES,
    AD_MIN_BYTES,
    MAX_ADVERTS,
    MAX_AGE_MS,
    MAX_BATCH_BYTES,
    MAX_SEQ,
    RSSI_MAX_DBM,
    RSSI_MIN_DBM,
    ReceiverBatch,
    ReceiverPayloadError,
    ReceiverStatus,
    ReceiverTopics,
    RemoteAdvert,
    decode_batch,
    decode_receiver_status,
    default_receiver_contract,
    encode_batch,
    encode_receiver_status,
)
from devices.ble.remote import _plainly_valid as plainly_valid
from devices.kiosk.const import MAX_PAYLOAD_BYTES
from devices.kiosk.protocol import default_contract
from devices.mqtt.contract import PayloadError
from tests.scale import examples

CONTRACT = default_receiver_contract()
TOPICS = ReceiverTopics("demo-mall")
TS = "2026-11-22T10:00:00.250+08:00"
# Flags, the Eddystone service UUID, an Eddystone-EID frame (power -18 dBm at 0 m).
EID_AD = bytes.fromhex("0201060303aafe0d16aafe30ee0102030405060708")


def batch(*adverts: dict[str, Any], **over: Any) -> bytes:
    message: dict[str, Any] = {"v": 1, "ts": TS, "seq": 7, "adverts": list(adverts)}
    message.update(over)
    return json.dumps(message).encode()


def advert(**over: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"ad": EID_AD.hex(), "rssi": -61, "age_ms": 250}
    item.update(over)
    return item


# --- topics -----------------------------------------------------------------------------

def test_topics_of_a_mall() -> None:
    assert TOPICS.adv("rx-atrium") == "lty/v1/demo-mall/receiver/rx-atrium/adv"
    assert TOPICS.status("rx-atrium") == "lty/v1/demo-mall/receiver/rx-atrium/status"
    assert TOPICS.subscriptions == ("lty/v1/demo-mall/receiver/+/adv",
                                    "lty/v1/demo-mall/receiver/+/status")


def test_topic_parsing_takes_the_receiver_from_the_topic() -> None:
    assert TOPICS.parse("lty/v1/demo-mall/receiver/rx-1/adv") == ("rx-1", "adv")
    assert TOPICS.parse("lty/v1/demo-mall/receiver/rx-1/status") == ("rx-1", "status")
    for foreign in ("lty/v1/other/receiver/rx-1/adv", "lty/v1/demo-mall/receiver/RX/adv",
                    "lty/v1/demo-mall/receiver/rx-1/adv/x", "lty/v1/demo-mall/receiver/rx-1",
                    "lty/v1/demo-mall/receiver//adv", "lty/v1/demo-mall/kiosk/k1/status",
                    "x/lty/v1/demo-mall/receiver/rx-1/adv", "lty/v1/demo-mall/receiver/"):
        assert TOPICS.parse(foreign) is None, foreign


@pytest.mark.parametrize("bad", ["Rx", "a/b", "+", "#", "", "x" * 40, "-rx"])
def test_topics_refuse_ids_that_would_break_the_tree(bad: str) -> None:
    with pytest.raises(ValueError, match="slug"):
        ReceiverTopics(bad)
    with pytest.raises(ValueError, match="slug"):
        TOPICS.adv(bad)


# --- batches ----------------------------------------------------------------------------

def test_a_batch_decodes_to_advertisements_stamped_by_the_gateways_clock() -> None:
    got = decode_batch(CONTRACT, "rx-1", batch(advert(), advert(rssi=-80, age_ms=1500,
                                                              mac="AA:BB:CC:DD:EE:FF")),
                       received_at=1000.0)
    assert (got.rid, got.seq, got.ts) == ("rx-1", 7, TS)
    (first, first_at), (second, second_at) = got.sightings
    assert (first_at, second_at) == (999.75, 998.5)
    assert (first.rssi, second.rssi) == (-61, -80)
    assert first.service_data == {EDDYSTONE_SERVICE_UUID: bytes.fromhex("30ee0102030405060708")}
    sighting = parse(first)
    assert sighting is not None and isinstance(sighting.frame, EddystoneEID)
    assert sighting.frame.eid == bytes(range(1, 9))


def test_upper_case_hex_and_integral_floats_are_accepted() -> None:
    got = decode_batch(CONTRACT, "rx-1", batch(advert(ad=EID_AD.hex().upper(), rssi=-61.0,
                                                      age_ms=100.0)), received_at=10.0)
    ((advertisement, at),) = got.sightings
    assert advertisement == advertisement_from_ad(EID_AD, rssi=-61)
    assert type(advertisement.rssi) is int
    assert at == pytest.approx(9.9)


@pytest.mark.parametrize(("payload", "code", "reason"), [
    (b"x" * (MAX_BATCH_BYTES + 1), "payload_too_large", "over the limit"),
    (b"\xff\xfe", "invalid_payload", "not UTF-8 JSON"),
    (b"{", "invalid_payload", "not UTF-8 JSON"),
    (b"[" * 5000, "invalid_payload", "not UTF-8 JSON"),  # nesting past the parser's depth
    (b"null", "invalid_payload", "(message): None is not of type 'object'"),
    (batch(advert(), v=2), "invalid_payload", "v: 1 was expected"),
    (batch(advert(), extra=1), "invalid_payload", "'extra' was unexpected"),
    (batch(advert(), seq=-1), "invalid_payload", "seq: -1 is less than the minimum"),
    (batch(advert(), ts="yesterday"), "invalid_payload", "ts: 'yesterday' does not match"),
    (batch(), "invalid_payload", "adverts: [] should be non-empty"),
    (batch(*[advert()] * (MAX_ADVERTS + 1)), "invalid_payload", "adverts: "),
    (batch(advert(ad="0201060")), "invalid_payload", "adverts/0/ad: an odd number (7) of hex"),
    (batch(advert(ad="02010g")), "invalid_payload", "adverts/0/ad: not hex digits"),
    (batch(advert(ad="02 01 06")), "invalid_payload", "adverts/0/ad: not hex digits"),
    (batch(advert(ad="02")), "invalid_payload", "adverts/0/ad: '02' is too short"),
    (batch(advert(ad="00" * (AD_MAX_BYTES + 1))), "invalid_payload", "adverts/0/ad: "),
    (batch(advert(ad=1234)), "invalid_payload", "adverts/0/ad: 1234 is not of type 'string'"),
    (batch(advert(rssi=RSSI_MIN_DBM - 1)), "invalid_payload", "adverts/0/rssi: -128 is less"),
    (batch(advert(rssi=RSSI_MAX_DBM + 1)), "invalid_payload", "adverts/0/rssi: 21 is greater"),
    (batch(advert(rssi=-60.5)), "invalid_payload", "adverts/0/rssi: -60.5 is not of type"),
    (batch(advert(rssi=True)), "invalid_payload", "adverts/0/rssi: True is not of type"),
    (batch(advert(age_ms=-1)), "invalid_payload", "adverts/0/age_ms: -1 is less"),
    (batch(advert(age_ms=MAX_AGE_MS + 1)), "invalid_payload", "adverts/0/age_ms: 60001 is"),
    (batch(advert(mac="aa-bb-cc-dd-ee-ff")), "invalid_payload", "adverts/0/mac: "),
    (batch(advert(name="phone")), "invalid_payload", "'name' was unexpected"),
    (batch({"ad": EID_AD.hex(), "rssi": -60}), "invalid_payload", "'age_ms' is a required"),
])
def test_broken_batches_are_refused_whole_with_a_reason(payload: bytes, code: str,
                                                        reason: str) -> None:
    with pytest.raises(ReceiverPayloadError) as caught:
        decode_batch(CONTRACT, "rx-1", payload, received_at=0.0)
    assert caught.value.code == code
    assert reason in caught.value.msg
    assert caught.value.rid == "rx-1"
    assert isinstance(caught.value, PayloadError)


def test_the_shortest_and_longest_ad_are_accepted() -> None:
    for ad in ("0201", "00" * AD_MAX_BYTES):
        ((advertisement, _),) = decode_batch(CONTRACT, "rx-1", batch(advert(ad=ad)),
                                             received_at=0.0).sightings
        assert advertisement == advertisement_from_ad(bytes.fromhex(ad), rssi=-61)


def test_a_smaller_limit_is_honoured() -> None:
    with pytest.raises(ReceiverPayloadError, match="over the limit of 100"):
        decode_batch(CONTRACT, "rx-1", batch(advert(), advert()), received_at=0, max_bytes=100)


def test_the_largest_batch_the_contract_allows_fits_the_size_limit() -> None:
    widest = [RemoteAdvert(ad=b"\xff" * AD_MAX_BYTES, rssi=RSSI_MIN_DBM, age_ms=MAX_AGE_MS,
                           mac="AA:BB:CC:DD:EE:FF")] * MAX_ADVERTS
    payload = encode_batch(2**53 - 1, widest, ts="2026-11-22T10:00:00.123456789+08:00")
    assert len(payload) <= MAX_BATCH_BYTES
    assert len(decode_batch(CONTRACT, "rx-1", payload, received_at=0.0).sightings) == MAX_ADVERTS


_ADVERTS = st.builds(
    RemoteAdvert,
    ad=st.binary(min_size=AD_MIN_BYTES, max_size=AD_MAX_BYTES),
    rssi=st.integers(RSSI_MIN_DBM, RSSI_MAX_DBM),
    age_ms=st.integers(0, MAX_AGE_MS),
    mac=st.none() | st.binary(min_size=6, max_size=6).map(
        lambda raw: ":".join(f"{b:02X}" for b in raw)))


@settings(max_examples=examples(200), deadline=None)
@given(adverts=st.lists(_ADVERTS, min_size=1, max_size=MAX_ADVERTS),
       seq=st.integers(0, 2**53 - 1), received_at=st.floats(0, 4e9))
def test_encode_then_decode_round_trips(adverts: list[RemoteAdvert], seq: int,
                                        received_at: float) -> None:
    got = decode_batch(CONTRACT, "rx-1", encode_batch(seq, adverts, ts=TS),
                       received_at=received_at)
    assert got.seq == seq
    assert [a for a, _ in got.sightings] == [advertisement_from_ad(a.ad, rssi=a.rssi)
                                            for a in adverts]
    assert [at for _, at in got.sightings] == [received_at - a.age_ms / 1000 for a in adverts]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
_ADVERT_LIKE = st.fixed_dictionaries(
    {"ad": st.text("0123456789abcdefABCDEFxyz ", max_size=130) | _JSON,
     "rssi": st.integers(-200, 200) | _JSON, "age_ms": st.integers(-5, 70_000) | _JSON},
    optional={"mac": st.text(max_size=20) | _JSON, "x": _JSON})
_BATCH_LIKE = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 2, "1", 1.0]), "ts": st.sampled_from([TS, "", "now", 5]),
     "seq": st.integers(-2, 2**60) | _JSON,
     "adverts": st.lists(_ADVERT_LIKE | _JSON, max_size=70) | _JSON},
    optional={"extra": _JSON}).map(lambda message: json.dumps(message).encode())


@settings(max_examples=examples(300), deadline=None)
@given(payload=_BATCH_LIKE | st.builds(
    lambda adverts, seq: encode_batch(seq, adverts, ts=TS),
    st.lists(_ADVERTS, min_size=1, max_size=4), st.integers(-1, 2**53)))
def test_the_fast_check_never_accepts_what_the_schema_refuses(payload: bytes) -> None:
    message = json.loads(payload)
    if plainly_valid(message):
        assert CONTRACT.schema_error("#/components/schemas/AdvertBatch", message) is None


def test_ordinary_batches_take_the_fast_check() -> None:
    message = json.loads(encode_batch(1, [RemoteAdvert(EID_AD, -60, 10), RemoteAdvert(
        EID_AD, -70, 20, mac="aa:bb:cc:dd:ee:ff")], ts=TS))
    assert plainly_valid(message)
    assert plainly_valid(json.loads(batch(advert(), advert(ad=EID_AD.hex().upper()))))
    # what the schema allows but the fast check leaves to it: 3.0 for 3
    assert not plainly_valid(json.loads(batch(advert(rssi=-60.0))))


@settings(max_examples=examples(300), deadline=None)
@given(payload=st.binary(max_size=300) | _BATCH_LIKE)
def test_fuzzed_batches_decode_or_raise_payload_error_only(payload: bytes) -> None:
    try:
        got = decode_batch(CONTRACT, "rx-1", payload, received_at=100.0)
    except PayloadError as error:
        assert error.code in ("invalid_payload", "payload_too_large")
    else:
        assert isinstance(got, ReceiverBatch)
        assert 1 <= len(got.sightings) <= MAX_ADVERTS
        assert all(100.0 - MAX_AGE_MS / 1000 <= at <= 100.0 for _, at in got.sightings)


# --- status -----------------------------------------------------------------------------

def test_status_birth_will_and_cleared_retained() -> None:
    birth = encode_receiver_status(True, boot=3, ts=TS, version="esp32-1.2")
    assert decode_receiver_status(CONTRACT, "rx-1", birth) == ReceiverStatus(
        "rx-1", online=True, boot=3, version="esp32-1.2")
    will = encode_receiver_status(False, boot=3)
    assert decode_receiver_status(CONTRACT, "rx-1", will) == ReceiverStatus(
        "rx-1", online=False, boot=3, version=None)
    assert decode_receiver_status(CONTRACT, "rx-1", b"") == ReceiverStatus(
        "rx-1", online=False, boot=None, version=None)


@pytest.mark.parametrize(("payload", "reason"), [
    (b"on", "not UTF-8 JSON"),
    (b'{"online":"yes"}', "online: 'yes' is not of type 'boolean'"),
    (b'{"boot":1}', "'online' is a required property"),
    (b'{"online":true,"rid":"rx-2"}', "'rid' was unexpected"),
])
def test_broken_status_is_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(ReceiverPayloadError) as caught:
        decode_receiver_status(CONTRACT, "rx-1", payload)
    assert caught.value.code == "invalid_payload"
    assert reason in caught.value.msg


# --- the contract and the code agree ----------------------------------------------------

def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = CONTRACT.document["components"]["schemas"][name]
    return schema


def test_channels_and_operations_match_the_topics_and_qos() -> None:
    document = CONTRACT.document
    assert document["asyncapi"] == "3.0.0"
    channels = {name: channel["address"] for name, channel in document["channels"].items()}
    assert channels == {"receiverAdverts": "lty/v1/{site}/receiver/{rid}/adv",
                        "receiverStatus": "lty/v1/{site}/receiver/{rid}/status"}
    topics = ReceiverTopics("site-x")
    assert topics.adv("rid-y") == channels["receiverAdverts"].format(site="site-x", rid="rid-y")
    assert topics.status("rid-y") == channels["receiverStatus"].format(site="site-x",
                                                                       rid="rid-y")
    bindings = {op["channel"]["$ref"]: op["bindings"]["mqtt"]
                for op in document["operations"].values()}
    assert bindings["#/channels/receiverAdverts"]["qos"] == 0
    assert bindings["#/channels/receiverAdverts"]["retain"] is False
    assert bindings["#/channels/receiverStatus"]["retain"] is True


def test_limits_in_the_contract_are_the_limits_in_the_code() -> None:
    adverts = _schema("AdvertBatch")["properties"]["adverts"]
    assert (adverts["minItems"], adverts["maxItems"]) == (1, MAX_ADVERTS)
    fields = _schema("Advert")["properties"]
    assert (fields["ad"]["minLength"], fields["ad"]["maxLength"]) == (2 * AD_MIN_BYTES,
                                                                      2 * AD_MAX_BYTES)
    assert (fields["rssi"]["minimum"], fields["rssi"]["maximum"]) == (RSSI_MIN_DBM,
                                                                      RSSI_MAX_DBM)
    assert (fields["age_ms"]["minimum"], fields["age_ms"]["maximum"]) == (0, MAX_AGE_MS)
    assert _schema("Counter")["maximum"] == MAX_SEQ
    assert _schema("Advert")["required"] == ["ad", "rssi", "age_ms"]
    assert "at most 16 KiB" in CONTRACT.document["info"]["description"]
    # the broker's max_packet_size bounds kiosk and receiver messages alike
    assert MAX_BATCH_BYTES == MAX_PAYLOAD_BYTES


def test_receiver_status_is_the_kiosk_status_schema() -> None:
    kiosk = default_contract().document["components"]["schemas"]
    assert _schema("Status") == kiosk["Status"]
    assert _schema("Timestamp") == kiosk["Timestamp"]
    assert _schema("Counter") == kiosk["Counter"]


def test_every_schema_in_the_contract_compiles() -> None:
    for name in CONTRACT.document["components"]["schemas"]:
        CONTRACT.validator(f"#/components/schemas/{name}")


def test_the_description_promises_what_the_gateway_relies_on() -> None:
    text = CONTRACT.document["info"]["description"]
    for promise in ("minus the advert's `age_ms`", "[[ble.receivers]]",
                    "`receiver/{rid}/adv` and `receiver/{rid}/status`", "never from the payload"):
        assert promise in text, promise
