"""MkDocs hooks: the pages that list what symgrad offers take the lists from symgrad itself as the
site is built (the command line's help, the op table's public functions, symgrad.numpy's names),
so the site cannot drift from the package. A page asks for one with a line ``<!-- list: NAME -->``.
"""

import contextlib
import importlib
import inspect
import io
import os
import re
import sys

import symgrad as sg
import symgrad.scipy
import symgrad.numpy as snp
from symgrad.cli import build_parser
from symgrad.ops import PUBLIC

sys.path.insert(0, os.path.dirname(__file__))
from doctest_fences import fence_examples  # noqa: E402 (beside this file)

MARKER = re.compile(r"^<!-- list: ([\w-]+) -->$", re.MULTILINE)

# the names the page api/symgrad.md documents in its own sections
API_NAMES = {"var", "const", "parse", "from_sympy", "to_sympy", "grad", "jacobian", "hessian",
             "hvp", "jvp", "vjp", "stop_gradient", "custom_gradient", "compile", "check_grad",
             "use_graph", "default_graph", "show_graph", "to_dot", "draw", "graph_stats", "defop",
             "scan", "fori_loop", "sparsity", "draw_sparsity"}


def command_help(command):
    """What ``symgrad COMMAND --help`` prints, at a fixed width."""
    out = io.StringIO()
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            build_parser().parse_args([*command, "--help"])
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return f"```text\n{out.getvalue().rstrip()}\n```"


def _resolvable(obj):
    """Whether griffe can find ``obj`` where its ``__module__`` and ``__qualname__`` say: the op
    table's generated functions (sg.sin, sg.erf) live in no module's namespace."""
    target = importlib.import_module(getattr(obj, "__module__", None) or "builtins")
    for part in getattr(obj, "__qualname__", "<none>").split("."):
        target = getattr(target, part, None)
    return target is obj


def _signature(name, obj):
    try:
        return f"`{name}{inspect.signature(obj)}`"
    except (TypeError, ValueError):
        return f"`{name}(...)`"


def _written(path, name, obj, level):
    """A reference entry written here: the heading, the signature and the docstring (an
    instance's class docstring and its public methods, for scipy.stats' distributions)."""
    parts = [f"{'#' * level} `{name}` {{ #{path} }}"]
    if inspect.isroutine(obj):
        parts.append(_signature(name, obj))
    parts.append(fence_examples(inspect.getdoc(obj) or ""))
    if not inspect.isroutine(obj) and not inspect.isclass(obj):
        for method_name, method in inspect.getmembers(type(obj), inspect.isfunction):
            if not method_name.startswith("_"):
                parts.append(f"{'#' * (level + 1)} `{name}.{method_name}` "
                             f"{{ #{path}.{method_name} }}")
                parts.append(_signature(f"{name}.{method_name}", getattr(obj, method_name)))
                parts.append(fence_examples(inspect.getdoc(method) or ""))
    return "\n\n".join(parts)


def reference(module_name, names, level=3):
    """One entry per name of the module: mkdocstrings' where griffe can find the object, else
    written from the object itself."""
    module = importlib.import_module(module_name)
    entries = []
    for name in names:
        obj, path = getattr(module, name), f"{module_name}.{name}"
        if inspect.isroutine(obj) and _resolvable(obj):
            entries.append(f"::: {path}\n    options:\n      heading_level: {level}")
        else:
            entries.append(_written(path, name, obj, level))
    return "\n\n".join(entries)


def op_functions():
    """The public functions of the op table that api/symgrad.md leaves out (sg.sin, sg.sum,
    sg.einsum...)."""
    return reference("symgrad", sorted(name for name in PUBLIC if name not in API_NAMES))


def numpy_names(namespace):
    names = [name for name in dir(namespace)
             if isinstance(getattr(namespace, name, None), snp.NumpyFunction)]
    return ", ".join(f"`{name}`" for name in sorted(names))


LISTS = {
    "cli-help": lambda: command_help([]),
    "cli-grad": lambda: command_help(["grad"]),
    "cli-hessian": lambda: command_help(["hessian"]),
    "op-functions": op_functions,
    "scipy-special": lambda: reference("symgrad.scipy.special", sg.scipy.special.__all__),
    "scipy-linalg": lambda: reference("symgrad.scipy.linalg", sg.scipy.linalg.__all__),
    "scipy-stats": lambda: reference("symgrad.scipy.stats", sg.scipy.stats.__all__),
    "scipy-signal": lambda: reference("symgrad.scipy.signal", sg.scipy.signal.__all__),
    "numpy-names": lambda: numpy_names(snp),
    "numpy-linalg-names": lambda: numpy_names(snp.linalg),
}


def on_page_markdown(markdown, page, **kwargs):
    return MARKER.sub(lambda match: LISTS[match.group(1)](), markdown)
