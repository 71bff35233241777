"""Generated references of the settings: the JSON Schema and the Markdown configuration
reference, both from the models.

Regenerate the committed files after changing a settings model:

    python -m gateway.settings.reference --write

`--check` exits 1 when `config/mallgate.schema.json` or `docs/configuration.md` differ from
what the models produce; the test suite runs the same comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gateway.settings.model import (
    FieldRef,
    Settings,
    describe,
    is_model,
    model_array_item,
    toml_literal,
)

REGENERATE = "python -m gateway.settings.reference --write"
ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "config" / "mallgate.schema.json"
REFERENCE_PATH = ROOT / "docs" / "configuration.md"


@dataclass(frozen=True)
class KeyDoc:
    """One documented key; `path` is dotted, with `[]` after an array of tables."""

    path: str
    type: str
    default: str
    description: str


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if model_array_item(info.annotation) is not None:
        return f"{len(value)} entries (below)" if value else "none"
    return toml_literal(value)


def _key_doc(path: str, info: FieldInfo) -> KeyDoc:
    return KeyDoc(path, describe(FieldRef(info.annotation, info)), _default(info),
                  info.description or "")


def iter_keys(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[KeyDoc]:
    """Every leaf key of the settings tree, depth first, in declaration order."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        item = model_array_item(info.annotation)
        if is_model(info.annotation):
            yield from iter_keys(info.annotation, f"{path}.")
            continue
        yield _key_doc(path, info)
        if item is not None:
            yield from iter_keys(item, f"{path}[].")


def settings_schema() -> dict[str, Any]:
    """The JSON Schema of the configuration file."""
    schema = Settings.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            **schema, "title": "mallgate configuration"}


def schema_text() -> str:
    return json.dumps(settings_schema(), indent=2, ensure_ascii=False) + "\n"


_INTRO = f"""\
# Configuration reference

<!-- Generated from the settings models (gateway/settings/model.py and
gateway/loyalty/rules.py); do not edit by hand. Regenerate with:
    {REGENERATE}
A test fails when this file differs from the models. -->

The gateway reads one TOML file once at start and validates it into frozen settings; a
bad file stops the gateway with every error named by its key path. Check a file without
starting anything with `mallgate config check FILE`: exit status 0 when valid, 2 when not
(`--no-env` ignores the environment overrides). The JSON Schema of the file is
`config/mallgate.schema.json` (`mallgate config schema` prints it); editors that read TOML
schemas can use it.

Shipped files: `config/demo.toml` (runs on a laptop as is) and `config/example-mall.toml`
(every key, commented, with its default).

**Environment overrides.** `MALLGATE__SECTION__KEY=value` overrides a key of the file, one
`__` per level: `MALLGATE__HTTP__PORT=9000`, `MALLGATE__LOYALTY__EARN__POINTS_PER_YUAN=2`.
The value is read as a TOML value when it is one (`9000` is an integer, `true` a boolean,
`[30, 7]` an array, `{{ S01 = 150 }}` a table) and as a string otherwise; for string keys a
value that is not a TOML string is taken as written. Names are lower-cased, so set a table
with upper-case keys as a whole. Values inside arrays of tables cannot be overridden one by
one: override the whole array.

**Secrets** (`secret string` below) are never logged or shown: not in errors, not in
`repr`, not in dumps. Give them in a file (`central.token_file`) or the environment
(`MALLGATE__CENTRAL__TOKEN`, taken exactly as written) rather than in the config file.

**Paths** that are relative are relative to the working directory of the gateway.

Values are strict: `port = "8080"` is an error (a string, not an integer), and so is an
unknown key. TOML dates and times are not used by any key.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _section(
    model: type[BaseModel], header: str, prefix: str, out: list[str], description: str = ""
) -> None:
    """Append the table of `model`'s own keys, then the sections of its sub-tables."""
    leaves = [(n, i) for n, i in model.model_fields.items() if not is_model(i.annotation)]
    doc = (model.__dict__.get("__doc__") or description) if prefix else None
    if prefix and (doc or leaves):
        out += ["", f"## `{header}`"]
    if doc:
        out += ["", " ".join(doc.split())]
    if leaves:
        out += ["", "| key | type | default | description |", "|---|---|---|---|"]
        for name, info in leaves:
            key = _key_doc(f"{prefix}{name}", info)
            out.append(f"| `{key.path}` | {_cell(key.type)} | `{_cell(key.default)}` "
                       f"| {_cell(key.description)} |")
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if is_model(info.annotation):
            _section(info.annotation, f"[{path}]", f"{path}.", out,
                     info.description or "")
        elif (item := model_array_item(info.annotation)) is not None:
            _section(item, f"[[{path}]]", f"{path}[].", out)
            entries = info.get_default(call_default_factory=True)
            if entries:
                out += ["", "Default:", "", "```toml"]
                for n, entry in enumerate(entries):
                    out += [""] * (n > 0) + [f"[[{path}]]"]
                    out += [f"{k} = {toml_literal(v)}" for k, v in entry.model_dump().items()]
                out.append("```")


def reference_markdown() -> str:
    """`docs/configuration.md`: every key with its type, default and description."""
    out = [_INTRO.rstrip("\n")]
    _section(Settings, "", "", out)
    return "\n".join(out) + "\n"


def generated_files() -> dict[Path, str]:
    return {SCHEMA_PATH: schema_text(), REFERENCE_PATH: reference_markdown()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.settings.reference",
        description="Write or check the config JSON Schema and the configuration reference.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the generated files")
    mode.add_argument("--check", action="store_true", help="exit 1 if they are out of date")
    args = parser.parse_args(argv)
    stale = [p for p, text in generated_files().items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    if args.write:
        for path, text in generated_files().items():
            path.write_text(text, encoding="utf-8")
        return 0
    for path in stale:
        print(f"{path.relative_to(ROOT)} is out of date; run: {REGENERATE}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
