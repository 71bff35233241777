"""The docs are part of the product: every command documented, README and CI in step."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from gateway.cli import main

ROOT = Path(__file__).resolve().parents[1]


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
