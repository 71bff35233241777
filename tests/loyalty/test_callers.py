"""Done means the running system does it: every public function of the loyalty domain has
a caller in the product (the gateway, its devices, sync or central), not only in tests."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "gateway" / "loyalty"
PRODUCT = ("gateway", "devices", "sync", "cloud_api")
PACKAGE = "gateway.loyalty"


def functions_of(module: Path) -> dict[str, ast.AST]:
    """A module's public functions by name, with their definitions."""
    tree = ast.parse(module.read_text())
    return {node.name: node for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and not node.name.startswith("_")}


def names_in(tree: ast.AST) -> set[str]:
    """Every name code reads or calls (`f`, `module.f`)."""
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
    return used


def domain_names_used(tree: ast.Module, modules: set[str], exported: set[str]) -> set[str]:
    """The domain's names a module outside it uses: imported from the domain and then
    read (an import alone calls nothing), or read as an attribute of a domain module.
    `from gateway.loyalty import fold` is the function the package exports, not the
    module of that name."""
    imported: dict[str, str] = {}  # local name -> the domain's name
    aliases: set[str] = set()  # local names of domain modules
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
            for alias in node.names:
                local = alias.asname or alias.name
                if node.module == PACKAGE and alias.name in modules - exported:
                    aliases.add(local)
                else:
                    imported[local] = alias.name
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in imported:
            used.add(imported[node.id])
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id in aliases):
            used.add(node.attr)
    return used


def test_every_public_loyalty_function_has_a_production_caller() -> None:
    """Called by the product: named by code outside the domain, or by code of the domain
    that runs — a called function, or a class or constant of a module (a helper of a
    called rule, a default argument)."""
    paths = sorted(DOMAIN.glob("*.py"))
    domain = {path: functions_of(path) for path in paths}
    init = ast.parse((DOMAIN / "__init__.py").read_text())
    exported = {alias.asname or alias.name for node in init.body
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    called: set[str] = set()
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            if path.parent != DOMAIN:
                called |= domain_names_used(ast.parse(path.read_text()),
                                            {p.stem for p in paths}, exported)
    for path in paths:  # module-level code other than functions runs on import
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Import
                              | ast.ImportFrom):
                called |= names_in(node)
    grew = True
    while grew:
        reached = {name for functions in domain.values()
                   for caller, node in functions.items() if caller in called
                   for name in names_in(node)}
        grew = bool(reached - called)
        called |= reached
    every = {(path, name) for path, functions in domain.items() for name in functions}
    assert len(every) > 40  # the domain is all there
    missing = sorted(f"{path.relative_to(ROOT)}: {name}" for path, name in every
                     if name not in called)
    assert not missing, "public loyalty functions no production code calls:\n" + "\n".join(
        missing)


def test_the_loyalty_guide_names_every_rule_the_domain_exports() -> None:
    """docs/loyalty.md names each public rule next to what it does and where it runs."""
    guide = (ROOT / "docs" / "loyalty.md").read_text()
    init = ast.parse((DOMAIN / "__init__.py").read_text())
    exported = {alias.asname or alias.name for node in init.body
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    functions = {name for path in DOMAIN.glob("*.py") for name in functions_of(path)}
    unnamed = sorted(name for name in exported & functions if f"`{name}`" not in guide)
    assert not unnamed, f"docs/loyalty.md does not name {unnamed}"
