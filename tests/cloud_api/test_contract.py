"""The published contract and the server agree: every route documented, the document valid."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import yaml
from aiohttp import web

from cloud_api.server.app import create_central_app
from cloud_api.server.codes import Code, VerdictCode
from cloud_api.server.contract import with_limits
from cloud_api.server.limits import CentralLimits
from cloud_api.server.sqlite_store import SqliteStorage


def contract() -> dict[str, object]:
    document = yaml.safe_load(files("cloud_api").joinpath("openapi.yaml").read_text())
    assert isinstance(document, dict)
    return document


def test_every_route_of_the_server_is_in_the_contract_and_back() -> None:
    app = create_central_app(SqliteStorage(":memory:"))
    served = {(route.method.lower(), route.resource.canonical)
              for route in app.router.routes()
              if isinstance(route.resource, web.Resource) and route.method != "HEAD"}
    paths = contract()["paths"]
    assert isinstance(paths, dict)
    documented = {(method, path) for path, ops in paths.items() for method in ops}
    assert served == documented


def test_the_contract_is_openapi_3_1_with_one_error_shape() -> None:
    document = contract()
    assert document["openapi"] == "3.1.0"
    text = files("cloud_api").joinpath("openapi.yaml").read_text()
    assert text.count("$ref: \"#/components/schemas/Error\"") >= 2


def _enum(schema: str, *path: str) -> set[str]:
    node: Any = contract()["components"]
    node = node["schemas"][schema]
    for part in path:
        node = node["properties"][part]
    return set(node["enum"])


def test_the_documented_error_codes_are_the_ones_the_server_answers() -> None:
    assert _enum("Error", "error", "code") == {str(code) for code in Code}
    assert _enum("Verdict", "code") == {str(code) for code in VerdictCode}


def test_the_documented_limits_are_the_defaults() -> None:
    """The bounds the document shows beside each `x-limit` are what a default central
    enforces; a central started with other limits enforces those instead."""
    document = contract()
    assert with_limits(document, CentralLimits()) == document
    tight = with_limits(document, CentralLimits(max_points=5, max_id_chars=40))
    points = tight["components"]["schemas"]["LedgerEntry"]["properties"]["points"]
    assert (points["minimum"], points["maximum"]) == (-5, 5)
    assert tight["components"]["schemas"]["Id"]["maxLength"] == 40
