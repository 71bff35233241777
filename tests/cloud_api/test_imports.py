"""Central shares only the loyalty domain (and the backoff formula, standard library only)
with the gateway: no module under `cloud_api/` imports the edge's store, ledger codec,
clock or anything else of `gateway` but `gateway.loyalty` and `gateway.backoff`. The
source is parsed, so aliases, nested and conditional imports and
`importlib.import_module("...")` calls are all seen."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import cloud_api

ALLOWED = ("gateway.loyalty", "gateway.backoff")
DYNAMIC_IMPORTS = {"import_module", "__import__"}


def imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """`(line, dotted name)` of every absolute import in the tree."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from gateway import ledger` imports `gateway.ledger`
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Call) and node.args \
                and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in DYNAMIC_IMPORTS:
                yield node.lineno, node.args[0].value


def outside_loyalty(name: str) -> bool:
    if name != "gateway" and not name.startswith("gateway."):
        return False
    return not any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED)


def test_central_imports_nothing_of_the_gateway_but_the_loyalty_domain() -> None:
    root = Path(cloud_api.__file__).parent
    sources = sorted(root.rglob("*.py"))
    assert len(sources) > 5
    found = [f"{path.relative_to(root.parent)}:{line}: {name}"
             for path in sources
             for line, name in imported(ast.parse(path.read_text(), str(path)))
             if outside_loyalty(name)]
    assert found == []


def test_the_check_sees_every_form_of_import() -> None:
    source = """
import gateway.hlc
import gateway.ledger.codec as codec
from gateway.ledger.codec import entry_to_json
from gateway import store
from gateway.loyalty import Entry
from gateway.loyalty.wire import to_text
import importlib
def late():
    importlib.import_module("gateway.keys")
if False:
    from gateway.hlc import HybridClock
"""
    names = sorted(name for _, name in imported(ast.parse(source)) if outside_loyalty(name))
    assert names == ["gateway.hlc", "gateway.hlc.HybridClock", "gateway.keys",
                     "gateway.ledger.codec", "gateway.ledger.codec.entry_to_json",
                     "gateway.store"]
