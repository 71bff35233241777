"""Message contracts, sans-io: an AsyncAPI document's JSON Schemas compiled for validation,
the errors of a message that breaks one, and the compact JSON every message is written in.

Each device ships its AsyncAPI 3 document next to its protocol (`devices/kiosk/asyncapi.yaml`,
`devices/ble/asyncapi.yaml`), so the contract a vendor reads is the one the gateway
enforces; what the channels mean stays with the device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Self

import fastjsonschema
import orjson
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

# The codes of a message that cannot be used whatever the device: a device adds its own.
PayloadErrorCode = Literal["invalid_payload", "payload_too_large"]


class PayloadError(Exception):
    """A message that cannot be used: not JSON, not the schema, too big."""

    def __init__(self, code: PayloadErrorCode, msg: str) -> None:
        super().__init__(msg)
        self.code: PayloadErrorCode = code
        self.msg = msg


class Contract:
    """An AsyncAPI document's schemas, compiled on first use: one validator per schema."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._validators: dict[str, Draft202012Validator] = {}
        self._fast: dict[str, Callable[[object], object]] = {}

    @classmethod
    def from_yaml(cls, text: str) -> Self:
        return cls(yaml.safe_load(text))

    def resolve(self, ref: str) -> Any:
        """The node a local `$ref` (`#/components/...`) points at."""
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def payload_schema(self, message_ref: str) -> str:
        """The `$ref` of the payload schema of the message at `message_ref`."""
        payload = self.resolve(message_ref)["payload"]
        return str(payload["schema"]["$ref"])

    def validator(self, schema_ref: str) -> Draft202012Validator:
        validator = self._validators.get(schema_ref)
        if validator is None:
            # References resolved once here rather than on every message: validation is on
            # every request's path, and a registry lookup per `$ref` doubled its cost.
            schema = self._inline(self.resolve(schema_ref))
            Draft202012Validator.check_schema(schema)
            validator = Draft202012Validator(
                schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
            self._validators[schema_ref] = validator
        return validator

    def _inline(self, node: Any) -> Any:
        """`node` with every local `$ref` replaced by its target (the contract has no cycles)."""
        if isinstance(node, dict):
            if set(node) == {"$ref"} and str(node["$ref"]).startswith("#/"):
                return self._inline(self.resolve(node["$ref"]))
            return {key: self._inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self._inline(value) for value in node]
        return node

    def schema_error(self, schema_ref: str, value: object) -> str | None:
        """The first reason `value` breaks the schema, or None if it conforms.

        Every inbound message is checked, so a schema compiled to plain Python by
        fastjsonschema answers first (about 15x faster); whatever it does not accept goes to
        jsonschema, which decides and names the reason. fastjsonschema only ever speeds up
        an acceptance (tests/kiosk/test_protocol.py holds it to that).
        """
        fast = self._fast.get(schema_ref)
        if fast is None:
            fast = self._fast[schema_ref] = fastjsonschema.compile(
                self._inline(self.resolve(schema_ref)))
        try:
            fast(value)
        except fastjsonschema.JsonSchemaException:
            pass
        else:
            return None
        error: ValidationError | None = next(
            iter(self.validator(schema_ref).iter_errors(value)), None)
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(message)"
        return f"{where}: {error.message}"[:400]


def encode(message: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (what `json.dumps` with no spaces and no escaping gives)."""
    return orjson.dumps(message)


def gateway_status(online: bool, ts: str) -> bytes:
    """The payload of the gateway's retained status (`gateway_status_topic`)."""
    return encode({"online": online, "ts": ts})
