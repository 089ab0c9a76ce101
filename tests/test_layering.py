"""The import order of STYLE.md section 1, read from the source with ast (nothing is imported).

naming <- graph <- ops <- numpy <- (scipy) <- parse <- differentiate <- (optimize) <- codegen
<- (fuse) <- (array_api) <- render <- viewer <- sparsity <- api <- cli: a module imports only from modules to its left.
errors is a leaf anyone may import; cli imports only api and errors; the package __init__ is the
facade on top. Inside ops/ the same rule holds for OPS_ORDER: core <- shape <- elementwise
<- special <- reduce <- linalg <- arrays <- order <- matrix <- convolution <- decompositions
<- sparse <- stability <- custom <- loops <- printing <- methods <- ops/__init__, and inside codegen/ for
CODEGEN_ORDER: emission <- entry <- plan <- memory <- loops <- numpy <- scalar <- numba_loop <- numba <- array_api <- codegen/__init__. The
modules of another package (optimize/) may import each other, but no module imports one that
imports it back, at any depth of its source: an import inside a function is an import.
"""

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "symgrad"

# numpy (symgrad.numpy) and scipy (symgrad.scipy.special) offer ops under NumPy's and SciPy's names
ORDER = ["naming", "graph", "ops", "numpy", "scipy", "parse", "differentiate", "optimize", "codegen",
         "fuse", "array_api", "render", "viewer", "sparsity", "api", "cli"]
RANK = {layer: rank for rank, layer in enumerate(ORDER)}
# Expr (core) gets the methods that build ops of later families from methods, which __init__ runs
OPS_ORDER = ["core", "shape", "elementwise", "special", "reduce", "linalg", "arrays", "order",
             "matrix", "convolution", "decompositions", "sparse", "stability", "custom", "loops",
             "printing", "methods", "__init__"]
# code generation: what emitters see and the entries, the plan, the memory passes on it, then the
# renderers (numba and array_api build on numpy's), then the package's exports
CODEGEN_ORDER = ["emission", "entry", "plan", "memory", "loops", "numpy", "scalar", "numba_loop", "numba",
                 "array_api", "__init__"]
# the packages whose modules keep an order among themselves
INNER_ORDERS = {"ops": OPS_ORDER, "codegen": CODEGEN_ORDER}
INNER_RANKS = {package: {name: rank for rank, name in enumerate(order)}
               for package, order in INNER_ORDERS.items()}
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
    """The module ``name`` refers to, given the package ``base`` it is relative to."""
    return f"{base}.{name}" if name else base


def exists(module):
    return module in MODULES


def imports_in(source, module, package, known):
    """Every module of ``module``'s own top-level package that ``source`` imports, at any depth
    (an import inside a function counts). ``package`` says whether ``module`` is a package's
    __init__; ``known`` holds the modules that exist, to tell a submodule from a name."""
    root = module.partition(".")[0]
    tree = ast.parse(source)
    base_package = module if package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names
                         if alias.name == root or alias.name.startswith(root + "."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = base_package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = resolve(base, node.module)
            elif node.module and (node.module == root or node.module.startswith(root + ".")):
                target = node.module
            else:
                continue
            # "from . import api" imports the submodule api; "from . import __version__" the package
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    found.discard(module)
    return found


def imported_modules(module):
    """Every symgrad module ``module`` imports, at any depth of its source (lazy imports count)."""
    path = MODULES[module]
    return imports_in(path.read_text(encoding="utf-8"), module, is_package(path), MODULES)


def import_circles(imports):
    """The import circles of {module: modules it imports}: one list of modules per circle, each
    module importing the next and the last the first; empty when there are none."""
    graph = nx.DiGraph()
    graph.add_edges_from((module, imported) for module, found in imports.items()
                         for imported in found)
    circles = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            circles.append([edge[0] for edge in nx.find_cycle(graph.subgraph(component))])
    return sorted(circles)


def layer(module):
    """The layer name of a symgrad module: 'ops' for symgrad.ops.*, the facade for symgrad."""
    if module == "symgrad":
        return FACADE
    first = module.split(".")[1]
    return first


def inner_module(module):
    """Its name in its package's order: 'core' for symgrad.ops.core, '__init__' for the package
    symgrad.ops."""
    parts = module.split(".")
    return "__init__" if len(parts) == 2 else parts[2]


def is_package_layer(name):
    return f"symgrad.{name}" in MODULES and is_package(MODULES[f"symgrad.{name}"])


def allowed(importer, imported):
    """Whether the importer's layer may import the imported module's layer; inside ops, whether
    the imported module comes before the importer in OPS_ORDER."""
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
    if src == dst and src in INNER_RANKS:
        ranks = INNER_RANKS[src]
        return ranks[inner_module(imported)] < ranks[inner_module(importer)]
    if src == dst:
        return is_package_layer(src)       # circles among them are refused on their own
    return RANK[dst] < RANK[src]


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
    assert "symgrad.ops.printing" in imported_modules("symgrad.ops.methods")
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


def test_the_checker_keeps_the_order_inside_ops():
    assert not allowed("symgrad.ops.core", "symgrad.ops.shape")
    assert not allowed("symgrad.ops.core", "symgrad.ops.printing")
    assert not allowed("symgrad.ops.shape", "symgrad.ops.reduce")
    assert not allowed("symgrad.ops.reduce", "symgrad.ops")          # the package imports reduce
    assert allowed("symgrad.ops.methods", "symgrad.ops.reduce")
    assert allowed("symgrad.ops", "symgrad.ops.methods")


# a package whose modules import each other in a circle, one side of it from inside a function
CIRCLE = {
    "pkg": ("pkg/__init__.py", "from .front import run\n"),
    "pkg.front": ("pkg/front.py", "from . import back\n\ndef run():\n    return back.step()\n"),
    "pkg.back": ("pkg/back.py", "def step():\n    from pkg.front import run\n    return run\n"),
    "pkg.leaf": ("pkg/leaf.py", "import math\n"),
}


def synthetic_imports(modules):
    return {module: imports_in(source, module, path.endswith("__init__.py"), modules)
            for module, (path, source) in modules.items()}


def test_the_checker_finds_a_circle_through_a_lazy_import():
    imports = synthetic_imports(CIRCLE)
    assert imports["pkg.back"] == {"pkg.front"}                      # seen inside the function
    assert imports["pkg.front"] == {"pkg.back"}                      # from . import <submodule>
    assert [sorted(circle) for circle in import_circles(imports)] == [["pkg.back", "pkg.front"]]


def test_the_checker_finds_no_circle_where_there_is_none():
    acyclic = dict(CIRCLE, **{"pkg.back": ("pkg/back.py", "from .leaf import math\n")})
    assert import_circles(synthetic_imports(acyclic)) == []
    through_package = dict(acyclic, **{"pkg.leaf": ("pkg/leaf.py", "from . import run\n")})
    assert import_circles(synthetic_imports(through_package)) != []  # leaf -> pkg -> front -> ...


# -- the package -----------------------------------------------------------------------------------

@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_to_its_left(module):
    wrong = sorted(i for i in imported_modules(module) if i != module and not allowed(module, i))
    assert not wrong, f"{module} (layer {layer(module)!r}) must not import {wrong}"


def test_no_import_circles():
    circles = import_circles({module: imported_modules(module) for module in MODULES})
    assert not circles, "import circles (each module imports the next): " + "; ".join(
        " -> ".join(circle + circle[:1]) for circle in circles)


@pytest.mark.parametrize("package", sorted(INNER_ORDERS))
def test_every_module_of_an_ordered_package_has_its_place(package):
    unplaced = sorted(m for m in MODULES
                      if layer(m) == package and inner_module(m) not in INNER_RANKS[package])
    assert not unplaced, f"add these modules to the order of {package}/: {unplaced}"


def test_the_checker_keeps_the_order_inside_codegen():
    assert not allowed("symgrad.codegen.plan", "symgrad.codegen.memory")
    assert not allowed("symgrad.codegen.numpy", "symgrad.codegen.numba")
    assert not allowed("symgrad.codegen.emission", "symgrad.codegen.plan")
    assert not allowed("symgrad.codegen.memory", "symgrad.codegen")
    assert allowed("symgrad.codegen.numba", "symgrad.codegen.numpy")
    assert allowed("symgrad.codegen", "symgrad.codegen.scalar")


def test_errors_is_a_leaf():
    assert imported_modules("symgrad.errors") == set()


def test_graph_never_imports_ops():
    imports = imported_modules("symgrad.graph")
    assert not any(layer(i) == "ops" for i in imports)
    assert imports <= {"symgrad.errors", "symgrad.naming"}


def test_naming_sits_below_graph():
    assert imported_modules("symgrad.naming") <= {"symgrad.errors"}
    assert "symgrad.naming" in imported_modules("symgrad.graph")
    assert not allowed("symgrad.naming", "symgrad.graph")
    assert allowed("symgrad.graph", "symgrad.naming")


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
