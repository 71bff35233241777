"""The docs are part of the product: every command documented, README and CI in step."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from aiohttp import web

from cloud_api.server.app import create_central_app
from cloud_api.server.sqlite_store import SqliteStorage
from gateway.app import create_app
from gateway.cli import main
from gateway.settings import Settings
from gateway.settings.reference import iter_keys

ROOT = Path(__file__).resolve().parents[1]
# Where each kind of thing must be explained, not only named: the guides.
GUIDES = ROOT / "docs"
LOCAL_API_GUIDE = GUIDES / "local-api.md"
CENTRAL_API_GUIDE = GUIDES / "central-api.md"
CONFIGURATION = GUIDES / "configuration.md"
# A key's description in the settings model (and so in docs/configuration.md) says what
# it does, not only what it is: "Line speed." is a name, not an explanation.
MIN_DESCRIPTION_WORDS = 3


def command_paths(group: click.Group, prefix: str = "mallgate") -> list[str]:
    """Every command under `group`, the lazily imported ones included."""
    paths: list[str] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            paths += command_paths(command, path)
        else:
            paths.append(path)
    return paths


@pytest.mark.parametrize("command", command_paths(main))
def test_every_command_is_in_the_readme(command: str) -> None:
    assert f"`{command}" in (ROOT / "README.md").read_text(), f"{command} is not documented"


def test_readme_quick_start_is_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_every_doc_the_readme_names_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in re.findall(r"`(docs/[\w./-]+\.md)`", readme):
        assert (ROOT / name).is_file(), name


def test_every_test_a_guide_names_exists() -> None:
    """The guides prove claims by naming tests (docs/reliability.md): each must exist."""
    named = 0
    for guide in sorted((ROOT / "docs").glob("*.md")):
        for reference in re.findall(r"`(tests/[\w/.-]+\.py(?:::\w+)?)`", guide.read_text()):
            path, _, test = reference.partition("::")
            assert (ROOT / path).is_file(), f"{guide.name} names {path}, which does not exist"
            if test:
                source = (ROOT / path).read_text()
                assert re.search(rf"def {test}\b", source), f"{guide.name} names {reference}"
            named += 1
    assert named >= 30  # docs/reliability.md alone names more


def guides() -> str:
    return "\n".join(path.read_text() for path in sorted(GUIDES.glob("*.md")))


@pytest.mark.parametrize("command", command_paths(main))
def test_every_command_is_explained_in_a_guide(command: str) -> None:
    """The README lists the commands; a guide in docs/ says when and why to use each."""
    assert re.search(re.escape(command) + r"(?![\w-])", guides()), \
        f"{command} is in no guide under docs/"


def _any_parameter(path: str) -> str:
    """`path` as a pattern in which a `{parameter}` matches a parameter of any name (a
    guide may write `{id}` where the router says `{member}`)."""
    return re.sub(r"\\\{\w+\\\}", r"\\{[\\w.]+\\}", re.escape(path))


def routes_of(app: web.Application) -> list[str]:
    """`METHOD /path` of every route `app` serves (HEAD comes with GET)."""
    return sorted({f"{route.method} {route.resource.canonical}"
                   for route in app.router.routes()
                   if isinstance(route.resource, web.AbstractResource)
                   and route.method != "HEAD"})


def local_routes() -> list[str]:
    settings = Settings.model_validate({"site": {"mall_id": "docs", "gateway_id": "gw-docs"},
                                        "store": {"path": Path("unused.db")}})
    return routes_of(create_app(settings))


def central_routes() -> list[str]:
    return routes_of(create_central_app(SqliteStorage(":memory:")))


@pytest.mark.parametrize("route", local_routes())
def test_every_route_of_the_local_api_is_explained(route: str) -> None:
    assert re.search(_any_parameter(route), LOCAL_API_GUIDE.read_text()), \
        f"{route} is not in {LOCAL_API_GUIDE.name}"


@pytest.mark.parametrize("route", central_routes())
def test_every_route_of_central_is_explained(route: str) -> None:
    assert re.search(_any_parameter(route), CENTRAL_API_GUIDE.read_text()), \
        f"{route} is not in {CENTRAL_API_GUIDE.name}"


def test_the_route_lists_see_every_kind_of_route() -> None:
    """The lists the two tests above check are whole: probes, the dashboard and both
    APIs (a wrong filter would check nothing and pass)."""
    local = local_routes()
    assert {"GET /healthz", "GET /readyz", "GET /metrics", "GET /"} <= set(local)
    assert any(route.startswith("POST /api/v1/pos/") for route in local)
    assert any(route.startswith("GET /v1/gateways/") for route in central_routes())
    assert _any_parameter("GET /v1/m/{member}") == r"GET\ /v1/m/\{[\w.]+\}"


@pytest.mark.parametrize("key", [key.path for key in iter_keys()])
def test_every_config_key_is_explained(key: str) -> None:
    (doc,) = [k for k in iter_keys() if k.path == key]
    row = next((line for line in CONFIGURATION.read_text().splitlines()
                if line.startswith(f"| `{key}` |")), None)
    assert row is not None, f"{key} is not in {CONFIGURATION.name}"
    assert len(doc.description.split()) >= MIN_DESCRIPTION_WORDS, \
        f"{key}: {doc.description!r} names the key rather than explaining it"
