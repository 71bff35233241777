"""Request bodies checked against the contract: the schemas of `openapi.yaml`, compiled
once when the app is made, with central's configured limits in place of the document's
defaults (`x-limit`).

The schemas are compiled as JSON Schema draft 4, whose `integer` is strictly an integer
(`1.0` and `true` are refused, as the gateways' stores refuse them); the document uses no
keyword that draft 4 reads differently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import fastjsonschema
import orjson
import yaml

from cloud_api.server.limits import CentralLimits

DRAFT4 = "http://json-schema.org/draft-04/schema#"
Validator = Callable[[Any], Any]


@cache
def contract_document() -> dict[str, Any]:
    """`openapi.yaml` as published."""
    document: dict[str, Any] = yaml.safe_load(
        files("cloud_api").joinpath("openapi.yaml").read_text(encoding="utf-8"))
    return document


def with_limits(node: Any, limits: CentralLimits) -> Any:
    """A copy of a schema with every `x-limit` bound set to `limits`: `maxLength` for ids
    and text; `maximum`, and `minimum` unless the field is positive only, for numbers."""
    if isinstance(node, list):
        return [with_limits(item, limits) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: with_limits(value, limits) for key, value in node.items()}
    kind = copy.get("x-limit")
    if kind is not None:
        bound = limits.bound(kind)
        if kind in {"points", "amount"}:
            copy["maximum"] = bound
            if copy.get("minimum", -1) < 0:
                copy["minimum"] = -bound
        else:
            copy["maxLength"] = bound
    return copy


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a value is outside its schema: where (`field`), which `rule`, and whether the
    rule is one of central's limits."""

    message: str
    field: str
    rule: str
    over_limit: bool

    def details(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule}


class JsonBodyError(ValueError):
    """A body that is not a JSON object (the message says why)."""


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body. orjson refuses what must not pass: invalid
    UTF-8, NaN and Infinity, nesting deeper than 1,024 levels; a number too big for 64
    bits parses as a float, which no integer field accepts."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JsonBodyError(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise JsonBodyError("body must be a JSON object")
    return body


class Contract:
    """The compiled request schemas of every operation, plus the parts of a pushed event."""

    def __init__(self, limits: CentralLimits | None = None) -> None:
        self.limits = limits or CentralLimits()
        document = with_limits(contract_document(), self.limits)
        self._components = document["components"]
        self._bodies: dict[str, Validator] = {}
        for path_item in document["paths"].values():
            for operation in path_item.values():
                content = operation.get("requestBody", {}).get("content", {})
                if "application/json" in content:
                    self._bodies[operation["operationId"]] = self._compile(
                        content["application/json"]["schema"])
        self.envelope = self._compile({"$ref": "#/components/schemas/EventEnvelope"})
        self.entry = self._compile({"$ref": "#/components/schemas/LedgerEntry"})

    def _compile(self, schema: dict[str, Any]) -> Validator:
        root = {"$schema": DRAFT4, "components": self._components, **schema}
        validator: Validator = fastjsonschema.compile(root, formats={"date": _is_date})
        return validator

    def operations(self) -> list[str]:
        return sorted(self._bodies)

    def check_body(self, operation_id: str, body: Any) -> Problem | None:
        return self.check(self._bodies[operation_id], body)

    @staticmethod
    def check(validator: Validator, value: Any) -> Problem | None:
        try:
            validator(value)
        except fastjsonschema.JsonSchemaValueException as exc:
            definition = exc.definition if isinstance(exc.definition, dict) else {}
            field = ".".join(str(part) for part in (exc.path or [])[1:]) or "body"
            message = str(exc.message).replace("data.", "", 1).replace("data ", "body ", 1)
            return Problem(message, field, str(exc.rule or ""),
                           "x-limit" in definition and exc.rule in {"maximum", "minimum",
                                                                   "maxLength"})
        return None
