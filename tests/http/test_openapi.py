"""`gateway/http/openapi.yaml` is the API: every route documented with its roles, every
documented path routed, and every `/api/v1` route refuses a missing or wrong-role token."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest
import yaml
from pytest_aiohttp import AiohttpClient

from gateway.app import create_app
from gateway.http.routes import api_routes
from gateway.settings import Settings
from tests.http.conftest import TOKENS, bearer

DOCUMENT: dict[str, Any] = yaml.safe_load(
    files("gateway.http").joinpath("openapi.yaml").read_text(encoding="utf-8"))
ROLES = set(TOKENS)


def documented() -> list[tuple[str, str, frozenset[str]]]:
    """(method, path, roles) of every documented `/api/v1` operation."""
    return [(method.upper(), path, frozenset(operation["x-roles"]))
            for path, item in DOCUMENT["paths"].items() if path.startswith("/api/v1")
            for method, operation in item.items()]


def concrete(path: str) -> str:
    """A documented path with each `{parameter}` filled in."""
    return path.replace("{member_id}", "m-1").replace("{receipt_id}", "1").replace(
        "{letter_id}", "1").replace("{store}", "S01").replace("{pos}", "P1")


def test_every_route_is_documented_and_every_documented_path_is_routed(
        api_settings: Settings) -> None:
    app = create_app(api_settings)
    routed = {(route.method, route.resource.canonical) for route in app.router.routes()
              if route.resource is not None and route.method != "HEAD"}
    in_document = {(method.upper(), path) for path, item in DOCUMENT["paths"].items()
                   for method in item}
    assert routed == in_document


def test_the_documented_roles_are_the_enforced_ones() -> None:
    enforced = {(r.method, r.full_path, r.roles) for r in api_routes()}
    assert enforced == set(documented())


@pytest.mark.parametrize(("method", "path", "roles"), documented(),
                         ids=[f"{m} {p}" for m, p, _ in documented()])
async def test_each_route_refuses_a_missing_and_a_wrong_role_token(
        aiohttp_client: AiohttpClient, api_settings: Settings, method: str, path: str,
        roles: frozenset[str]) -> None:
    client = await aiohttp_client(create_app(api_settings))
    url = concrete(path)
    assert (await client.request(method, url)).status == 401
    unknown = await client.request(method, url, headers={"Authorization": "Bearer nope"})
    assert unknown.status == 401
    wrong = sorted(ROLES - roles)
    assert wrong, f"{path}: every role may call it"
    reply = await client.request(method, url, headers=bearer(wrong[0]))
    assert reply.status == 403
    assert wrong[0] in await reply.text()
