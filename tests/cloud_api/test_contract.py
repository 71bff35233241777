"""The published contract and the server agree: every route documented, the document valid."""

from __future__ import annotations

from importlib.resources import files

import yaml
from aiohttp import web

from cloud_api.server.app import create_central_app
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
