"""The generated references match the models, and every key is documented everywhere."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.settings import load_settings
from gateway.settings.reference import (
    REFERENCE_PATH,
    REGENERATE,
    ROOT,
    SCHEMA_PATH,
    iter_keys,
    main,
    reference_markdown,
    schema_text,
)

EXAMPLE = ROOT / "config" / "example-mall.toml"
_HEADER = re.compile(r"^\[\[?([a-z0-9_.]+)\]\]?$")
_KEY = re.compile(r"^([a-z_][a-z0-9_]*)\s*=")


def model_keys() -> dict[str, str]:
    """Dotted path of every key (arrays of tables without `[]`) -> its documented default."""
    return {key.path.replace("[]", ""): key.default for key in iter_keys()}


def example_keys(path: Path) -> dict[str, str]:
    """Keys set or shown commented-out in a TOML file -> the comment lines just above."""
    found: dict[str, str] = {}
    section = ""
    comment: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        body = line.strip().lstrip("#").strip()
        if header := _HEADER.match(body):
            section = header[1]
            found.setdefault(section, " ".join(comment))
            comment = []
        elif key := _KEY.match(body):
            found.setdefault(f"{section}.{key[1]}".lstrip("."), " ".join(comment))
            comment = []
        elif line.lstrip().startswith("#"):
            comment.append(body.lstrip("#").strip())
    return found


def test_committed_schema_matches_the_models() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        f"config/mallgate.schema.json is out of date; run: {REGENERATE}")


def test_committed_reference_matches_the_models() -> None:
    assert REFERENCE_PATH.read_text(encoding="utf-8") == reference_markdown(), (
        f"docs/configuration.md is out of date; run: {REGENERATE}")


def test_check_mode_agrees() -> None:
    assert main(["--check"]) == 0


def test_reference_says_how_to_regenerate_it() -> None:
    assert REGENERATE in reference_markdown().split("\n\n")[1]


def test_every_key_is_in_the_reference() -> None:
    text = REFERENCE_PATH.read_text(encoding="utf-8")
    missing = [key.path for key in iter_keys() if f"`{key.path}`" not in text]
    assert not missing


def test_every_key_is_in_the_example_with_its_default() -> None:
    found = example_keys(EXAMPLE)
    undocumented = []
    for path, default in model_keys().items():
        comment = found.get(path)
        if comment is None:
            undocumented.append(f"{path}: absent")
        elif default == "required":
            if "required" not in comment.lower():
                undocumented.append(f"{path}: comment does not say it is required")
        elif default.endswith("(below)"):
            if "Default:" not in comment:
                undocumented.append(f"{path}: comment does not give the default")
        elif f"Default: {default}" not in comment:
            undocumented.append(f"{path}: comment does not say 'Default: {default}'")
    assert not undocumented


def test_example_names_no_key_the_models_lack() -> None:
    keys = set(model_keys())
    sections = {".".join(k.split(".")[:n]) for k in keys for n in range(1, k.count(".") + 1)}
    assert set(example_keys(EXAMPLE)) - keys - sections == set()


def test_shipped_files_load_without_environment() -> None:
    demo = load_settings(ROOT / "config" / "demo.toml", environ={})
    example = load_settings(EXAMPLE, environ={})

    assert (demo.site.mall_id, demo.site.gateway_id) == ("demo-mall", "gw-1")
    assert (demo.http.host, demo.http.port) == ("127.0.0.1", 8080)
    assert not demo.store.path.is_absolute()
    assert demo.store.path.parts[0] == "var"
    assert example.loyalty == type(example.loyalty)()  # the example spells out the defaults
