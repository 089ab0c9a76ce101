"""The import order of STYLE.md section 1, read from the source with ast (nothing is imported).

graph <- ops <- parse <- differentiate <- (optimize) <- codegen <- (fuse) <- (array_api) <- render
<- api <- cli: a module imports only from modules to its left. errors is a leaf anyone may import;
every ops/* submodule counts as "ops"; cli imports only api and errors; the package __init__ is
the facade on top.
"""

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "symgrad"

ORDER = ["graph", "ops", "parse", "differentiate", "optimize", "codegen", "fuse", "array_api",
         "render", "api", "cli"]
RANK = {layer: rank for rank, layer in enumerate(ORDER)}
FACADE = "__init__"          # symgrad/__init__.py re-exports the public names
LEAF = "errors"


def module_name(path):
    """'symgrad.ops.core' for symgrad/ops/core.py, 'symgrad' for symgrad/__init__.py."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path):
    return path.name == "__init__.py"


MODULES = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def resolve(base, name):
    """The symgrad module ``name`` refers to, given the package ``base`` it is relative to."""
    return f"{base}.{name}" if name else base


def exists(module):
    return module in MODULES


def imported_modules(module):
    """Every symgrad module ``module`` imports, at any depth of its source (lazy imports count)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if is_package(path) else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names
                         if alias.name == "symgrad" or alias.name.startswith("symgrad."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = resolve(base, node.module)
            elif node.module and (node.module == "symgrad" or node.module.startswith("symgrad.")):
                target = node.module
            else:
                continue
            # "from . import api" imports the submodule api; "from . import __version__" the package
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if exists(sub) else target)
    return found


def layer(module):
    """The layer name of a symgrad module: 'ops' for symgrad.ops.*, the facade for symgrad."""
    if module == "symgrad":
        return FACADE
    first = module.split(".")[1]
    return first


def allowed(importer, imported):
    """Whether the importer's layer may import the imported module's layer."""
    src, dst = layer(importer), layer(imported)
    if dst == LEAF:
        return True
    if src == LEAF:
        return False
    if dst == FACADE:
        return False                       # the facade imports everything: importing it is a cycle
    if src == FACADE:
        return dst != "cli"
    if src == "cli":
        return dst in ("api", LEAF)
    return RANK[dst] < RANK[src] or (src == dst == "ops") or (src == dst == "optimize")


# -- the checker itself ----------------------------------------------------------------------------


def test_every_module_has_a_known_layer():
    unknown = sorted(m for m in MODULES if layer(m) not in RANK and layer(m) not in (FACADE, LEAF))
    assert not unknown, f"add these modules to the layer table of STYLE.md section 1: {unknown}"


def test_the_scan_sees_the_imports_we_know_about():
    # a checker that finds nothing passes everything: pin a few imports that must be seen
    assert "symgrad.errors" in imported_modules("symgrad.graph")
    assert "symgrad.graph" in imported_modules("symgrad.ops.core")      # from ..graph import ...
    assert "symgrad.ops" in imported_modules("symgrad.parse")           # from . import ops
    assert "symgrad.api" in imported_modules("symgrad.cli")             # from . import api
    assert "symgrad.ops.printing" in imported_modules("symgrad.differentiate")
    assert "symgrad.ops.printing" in imported_modules("symgrad.ops.core")   # a lazy import
    assert "symgrad.api" in imported_modules("symgrad")


def test_the_checker_refuses_rightward_imports():
    assert not allowed("symgrad.graph", "symgrad.ops")
    assert not allowed("symgrad.ops.core", "symgrad.parse")
    assert not allowed("symgrad.parse", "symgrad.differentiate")
    assert not allowed("symgrad.codegen", "symgrad.api")
    assert not allowed("symgrad.cli", "symgrad.graph")
    assert not allowed("symgrad.cli", "symgrad.parse")
    assert not allowed("symgrad.errors", "symgrad.graph")
    assert not allowed("symgrad.api", "symgrad")
    assert allowed("symgrad.api", "symgrad.render")
    assert allowed("symgrad.ops.reduce", "symgrad.ops.elementwise")


# -- the package -----------------------------------------------------------------------------------

@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_to_its_left(module):
    wrong = sorted(i for i in imported_modules(module) if i != module and not allowed(module, i))
    assert not wrong, f"{module} (layer {layer(module)!r}) must not import {wrong}"


def test_errors_is_a_leaf():
    assert imported_modules("symgrad.errors") == set()


def test_graph_never_imports_ops():
    imports = imported_modules("symgrad.graph")
    assert not any(layer(i) == "ops" for i in imports)
    assert imports <= {"symgrad.errors"}


def test_no_module_imports_by_name_at_run_time():
    # importlib / __import__ would hide an import from the check above
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                assert node.id != "__import__", f"{module} calls __import__"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert "importlib" not in names, f"{module} uses importlib"
