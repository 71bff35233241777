"""Dependencies point inward (DESIGN.md section 3), checked on every import statement.

- The core (`gateway/`) imports no device, sync or central package; only the composition
  root `gateway/app/` does. (The CLI names its sub-command modules as strings and imports
  them only when one is invoked.)
- No device package imports another; `devices/mqtt` is the shared layer they may use.
- Devices and sync know neither the application nor its keys, nor each other.

Imports inside functions and under TYPE_CHECKING count as much as top-level ones.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTWARD = ("devices", "sync", "cloud_api")


def imports(path: Path) -> Iterator[str]:
    """Every module the file at `path` imports."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: str) -> Iterator[str]:
    """Every module `source` (a module of `package`) imports, absolute, at any depth."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield ".".join([*base, node.module] if node.module else base)
            elif node.module:
                yield node.module


def modules(*top: str) -> list[Path]:
    return sorted(path for name in top for path in (ROOT / name).rglob("*.py"))


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_checker_sees_nested_relative_and_type_checking_imports() -> None:
    sample = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
              "    from devices.ble import service\n"
              "def f():\n    import sync.engine\n    from . import parts\n"
              "    from ..store import db\n")
    assert set(imports_in(sample, "gateway.ledger")) == {
        "typing", "devices.ble", "sync.engine", "gateway.ledger", "gateway.store"}


def violations_of_the_core() -> list[str]:
    found = []
    for path in modules("gateway"):
        if within(".".join(path.relative_to(ROOT).parts), "gateway.app"):
            continue
        for module in imports(path):
            if any(within(module, outward) for outward in OUTWARD):
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


def test_the_core_imports_devices_sync_and_central_only_in_the_composition_root() -> None:
    assert violations_of_the_core() == []


def device_of(path_or_module: str) -> str | None:
    parts = path_or_module.split(".")
    return parts[1] if parts[0] == "devices" and len(parts) > 1 else None


def test_no_device_package_imports_another_but_the_shared_mqtt_layer() -> None:
    found = []
    for path in modules("devices"):
        own = device_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for module in imports(path):
            other = device_of(module)
            if other is not None and other not in (own, "mqtt"):
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    assert found == []


@pytest.mark.parametrize(("package", "forbidden"), [
    ("devices", ("sync", "cloud_api", "gateway.app", "gateway.cli")),
    ("sync", ("devices", "gateway.app", "gateway.cli", "cloud_api.server")),
    ("cloud_api", ("devices", "sync", "gateway.app", "gateway.cli")),
])
def test_devices_sync_and_central_know_neither_the_app_nor_each_other(
        package: str, forbidden: tuple[str, ...]) -> None:
    found = [f"{path.relative_to(ROOT)} imports {module}" for path in modules(package)
             for module in imports(path) if any(within(module, f) for f in forbidden)]
    assert found == []
