"""The house as DESIGN.md draws it: each sub-package is a layer, a module imports only from its own layer
or the ones below it (views from store, problem and base only), and no two modules import each other,
however indirectly. Read from the source, every import counted (those inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lrsearch

PACKAGE = Path(lrsearch.__file__).parent
ENTRY = {"lrsearch", "lrsearch.__main__", "lrsearch.cli", "lrsearch.api"}
# layer -> the layers it may import from (its own included). Views read records: they never train or
# open a search, and nothing but the entry imports them; nothing imports the adapters (the user does).
ALLOWED = {
    "adapters": {"adapters", "problem", "base"},
    "searching": {"searching", "certification", "trials", "engines", "store", "problem", "base"},
    "certification": {"certification", "engines", "store", "problem", "base"},
    "trials": {"trials", "engines", "store", "problem", "base"},
    "engines": {"engines", "store", "problem", "base"},
    "views": {"views", "store", "problem", "base"},
    "store": {"store", "problem", "base"},
    "problem": {"problem", "base"},
    "base": {"base"},
}


def module_imports(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    imports = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lrsearch"):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        imports[name] = {other for other in found if other in modules and other != name}
    return imports


def layer_of(module: str) -> str | None:
    """The layer of a module; None for the entry (the package root's modules)."""
    parts = module.split(".")
    return None if module in ENTRY else parts[1]


def wrong_way(imports: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(imports.items()):
        layer = layer_of(module)
        if layer is None:  # the entry may import anything
            continue
        for target in sorted(targets):
            target_layer = layer_of(target)
            if target_layer is None and target != "lrsearch":
                found.append(f"{module} -> {target} (the entry)")
            elif target_layer is not None and target_layer not in ALLOWED[layer]:
                found.append(f"{module} -> {target}")
    return found


def cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The import circles among the package's modules (a package's __init__ importing its own modules
    is not one: it is how a package re-exports)."""
    found, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(imports[module]):
            if module.startswith(target + ".") or target == "lrsearch":
                continue
            if state.get(target) == "open":
                found.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(imports):
        if module not in state:
            visit(module, [module])
    return found


def test_every_module_is_in_a_layer():
    assert {layer_of(m) for m in module_imports()} - {None} == set(ALLOWED)


def test_no_layer_imports_against_the_layers():
    assert wrong_way(module_imports()) == []


def test_no_import_circles():
    assert cycles(module_imports()) == []


# The optional extras' frameworks (`lrsearch[lightning]`, `lrsearch[hf]`): only their adapters import them.
FRAMEWORKS = {"lightning", "pytorch_lightning", "transformers", "accelerate"}


def framework_imports(package: Path = PACKAGE) -> list[str]:
    """`module -> framework` for each import of an optional framework outside the adapters."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.parent.name == "adapters":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found += [f"{path.relative_to(package)} -> {name}" for name in names if name.split(".")[0] in FRAMEWORKS]
    return found


def test_only_the_adapters_import_the_optional_frameworks(tmp_path):
    assert framework_imports() == []
    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "fine.py").write_text("import lightning\n")
    (tmp_path / "core.py").write_text("def f():\n    import transformers\n    from lightning.pytorch import Trainer\n")
    assert framework_imports(tmp_path) == ["core.py -> transformers", "core.py -> lightning.pytorch"]


def test_the_checks_see_a_wrong_way_import_and_a_circle():
    imports = {
        "lrsearch.base.errors": {"lrsearch.problem.spec"},
        "lrsearch.problem.spec": {"lrsearch.base.errors"},
        "lrsearch.searching.run": {"lrsearch.views.dashboard"},
        "lrsearch.views.dashboard": set(),
    }
    assert wrong_way(imports) == [
        "lrsearch.base.errors -> lrsearch.problem.spec",
        "lrsearch.searching.run -> lrsearch.views.dashboard",
    ]
    assert cycles(imports) == [["lrsearch.base.errors", "lrsearch.problem.spec", "lrsearch.base.errors"]]


@pytest.mark.parametrize("name", lrsearch.__all__)
def test_no_sub_package_or_module_shares_a_public_name(name):
    assert not (PACKAGE / name).exists() and not (PACKAGE / f"{name}.py").exists()
