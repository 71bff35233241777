"""The kiosk protocol, sans-io: topics, envelopes, validation against the contract, replies.

Nothing here touches a socket or the event loop. The transport hands in `(topic, payload)`
pairs and gets back typed requests or a `ProtocolError` carrying the stable error code the
kiosk receives; replies come out as bytes ready to publish. The JSON Schemas are read from
the AsyncAPI document (`asyncapi.yaml`) shipped next to this module, so the contract the
kiosk vendor reads is the one the gateway enforces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal, cast

from devices.kiosk.const import MAX_PAYLOAD_BYTES
from devices.mqtt.contract import Contract
from devices.mqtt.topics import SLUG, gateway_status_topic, site_base, slug
from gateway.operations.model import OperationRequest, Refused, Replies

_REQUEST_ADDRESS = re.compile(r"^lty/v1/\{site\}/kiosk/\{kid\}/req/([a-z.]+)$")

ErrorCode = Literal[
    "invalid_payload", "payload_too_large", "unknown_op", "unknown_member", "invalid_token",
    "token_expired", "insufficient_points", "offline_limit", "already_checked_in",
    "receipt_not_found", "receipt_already_claimed", "receipt_claim_expired",
    "offer_not_available", "offer_already_claimed", "id_conflict", "rate_limited", "internal",
    "session_required", "session_invalid", "session_expired", "session_wrong_kiosk",
    "invalid_code", "code_expired", "too_many_attempts", "already_member",
    "enrolment_unavailable",
    "coupon_code_mistyped", "coupon_unknown", "not_this_mall", "needs_online",
    "not_this_member", "voided", "already_redeemed", "already_held", "expired", "not_yet_valid",
    "not_eligible", "below_minimum_spend", "item_not_in_basket", "unknown_campaign",
    "member_limit", "campaign_limit", "campaign_closed", "redeem_at_central",
]


class KioskError(Exception):
    """A request the gateway refuses, with the stable code the kiosk gets in its reply."""

    def __init__(self, code: ErrorCode, msg: str, *, data: dict[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.code: ErrorCode = code
        self.msg = msg
        self.data = data


class ProtocolError(KioskError):
    """The message itself is wrong: not JSON, not the schema, too big, unknown topic."""

    def __init__(self, code: ErrorCode, msg: str, *, request_id: str | None = None) -> None:
        super().__init__(code, msg)
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class KioskTopic:
    """A topic under `lty/v1/{site}/kiosk/{kid}/...`: which kiosk, which kind, which name."""

    kid: str
    kind: Literal["req", "evt", "status"]
    name: str  # the op or event; "" for status


@dataclass(frozen=True, slots=True)
class Request:
    kid: str
    op: str
    id: str
    ts: str
    boot: int
    seq: int
    data: dict[str, Any]

    @property
    def key(self) -> str:
        """The idempotency key: ids are unique per kiosk, so the kiosk is part of the key."""
        return f"{self.kid}/{self.id}"

    def operation(self) -> OperationRequest:
        """The request as the gateway's operations take it."""
        return OperationRequest(op=self.op, key=self.key, id=self.id, data=self.data,
                                kiosk=self.kid)


@dataclass(frozen=True, slots=True)
class KioskStatus:
    kid: str
    online: bool
    boot: int | None


class Topics:
    """The topic tree of one mall."""

    def __init__(self, site: str) -> None:
        self.base = site_base(site)
        self.site = site

    @property
    def gateway_status(self) -> str:
        return gateway_status_topic(self.site)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """What the gateway subscribes to: every kiosk's requests, events and status."""
        kiosks = f"{self.base}/kiosk/+"
        return (f"{kiosks}/req/+", f"{kiosks}/evt/+", f"{kiosks}/status")

    def kiosk(self, kid: str) -> str:
        return f"{self.base}/kiosk/{slug(kid, 'kiosk id')}"

    def request(self, kid: str, op: str) -> str:
        return f"{self.kiosk(kid)}/req/{op}"

    def reply(self, kid: str) -> str:
        return f"{self.kiosk(kid)}/rsp"

    def command(self, kid: str, command: str) -> str:
        return f"{self.kiosk(kid)}/cmd/{command}"

    def status(self, kid: str) -> str:
        return f"{self.kiosk(kid)}/status"

    def parse(self, topic: str) -> KioskTopic | None:
        """The kiosk topic `topic` names, or None if it is not one the gateway reads."""
        parts = topic.split("/")
        if len(parts) < 5 or "/".join(parts[:3]) != self.base or parts[3] != "kiosk":
            return None
        kid = parts[4]
        if not SLUG.match(kid):
            return None
        rest = parts[5:]
        if rest == ["status"]:
            return KioskTopic(kid, "status", "")
        if len(rest) == 2 and rest[0] in ("req", "evt") and rest[1]:
            return KioskTopic(kid, "req" if rest[0] == "req" else "evt", rest[1])
        return None


class KioskContract(Contract):
    """The kiosk contract: which schema each request and its reply must follow, by op."""

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__(document)
        self.request_schemas: dict[str, str] = {}
        self.reply_schemas: dict[str, str] = {}
        for channel_name, channel in document["channels"].items():
            match = _REQUEST_ADDRESS.match(channel["address"])
            if match is None:
                continue
            op = match.group(1)
            (message_ref,) = (m["$ref"] for m in channel["messages"].values())
            self.request_schemas[op] = self.payload_schema(message_ref)
            operation = document["operations"][channel_name]
            for reply_ref in operation["reply"]["messages"]:
                message = self.resolve(reply_ref["$ref"])
                schema = self.payload_schema(message["$ref"])
                if not schema.endswith("/ErrorReply"):
                    self.reply_schemas[op] = schema

    @property
    def ops(self) -> frozenset[str]:
        return frozenset(self.request_schemas)


@cache
def default_contract() -> KioskContract:
    text = resources.files("devices.kiosk").joinpath("asyncapi.yaml").read_text("utf-8")
    return KioskContract.from_yaml(text)


def decode_request(contract: KioskContract, kid: str, op: str, payload: bytes,
                   *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Request:
    """A validated request, or `ProtocolError` with the code and reason for the kiosk."""
    if len(payload) > max_bytes:
        raise ProtocolError("payload_too_large", f"payload of {len(payload)} bytes is over "
                            f"the limit of {max_bytes}")
    try:
        message = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError("invalid_payload", f"not UTF-8 JSON: {exc}"[:200]) from None
    schema = contract.request_schemas.get(op)
    if schema is None:
        raise ProtocolError("unknown_op", f"unknown operation {op!r}",
                            request_id=_salvage_id(contract, message))
    reason = contract.schema_error(schema, message)
    if reason is not None:
        raise ProtocolError("invalid_payload", reason, request_id=_salvage_id(contract, message))
    return Request(kid=kid, op=op, id=message["id"], ts=message["ts"], boot=message["boot"],
                   seq=message["seq"], data=message["data"])


def _salvage_id(contract: Contract, message: object) -> str | None:
    """The request id of a broken request, when it has a well-formed one, for the reply."""
    if isinstance(message, dict):
        value = message.get("id")
        if contract.schema_error("#/components/schemas/RequestId", value) is None:
            return str(value)
    return None


EVENT_SCHEMAS = {"heartbeat": "#/components/schemas/Heartbeat"}


def decode_event(contract: Contract, name: str, payload: bytes) -> dict[str, Any]:
    """A validated kiosk event (`evt/{name}`); events change nothing and get no reply."""
    schema = EVENT_SCHEMAS.get(name)
    if schema is None:
        raise ProtocolError("unknown_op", f"unknown event {name!r}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError("payload_too_large", "event over the size limit")
    try:
        message = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("invalid_payload", "event is not UTF-8 JSON") from None
    reason = contract.schema_error(schema, message)
    if reason is not None:
        raise ProtocolError("invalid_payload", reason)
    return cast(dict[str, Any], message)


def decode_status(kid: str, payload: bytes, contract: Contract) -> KioskStatus:
    """A kiosk's retained birth or Will; an empty payload is a cleared retained status."""
    if not payload:
        return KioskStatus(kid, online=False, boot=None)
    try:
        message = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("invalid_payload", "status is not UTF-8 JSON") from None
    reason = contract.schema_error("#/components/schemas/Status", message)
    if reason is not None:
        raise ProtocolError("invalid_payload", reason)
    return KioskStatus(kid, online=message["online"], boot=message.get("boot"))


def ok_reply(request_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"v": 1, "re": request_id, "status": "ok", "data": data}


def error_reply(request_id: str | None, error: KioskError | Refused) -> dict[str, Any]:
    reply: dict[str, Any] = {"v": 1, "re": request_id, "status": "error",
                             "error": {"code": error.code, "msg": error.msg[:512]}}
    if error.data:
        reply["data"] = error.data
    return reply


# How the gateway's operations word their answers to a kiosk.
REPLIES = Replies(ok=ok_reply, refused=error_reply)
