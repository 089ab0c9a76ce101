"""symgrad: symbol-to-symbol differentiation that compiles to plain NumPy.

>>> import symgrad as sg
>>> x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
>>> f = (x + y) * sg.maximum(y, z)
>>> fn = sg.compile([f, *sg.grad(f, [x, y, z])])
>>> [float(v) for v in fn(-2.0, 5.0, -4.0)]
[15.0, 5.0, 8.0, 0.0]
"""

from .api import (CompiledFunction, __version__, check_grad, compile, defop, draw, graph_stats,
                  show_graph, to_dot, var)
from .api import draw_sparsity, hessian, jacobian, sparsity
from .differentiate import DisconnectedWarning, grad, hvp, jvp, vjp
from .errors import ArgumentError, ParseError, ShapeError, SymgradError, UndefinedGradientError
from .graph import Graph, default_graph, use_graph
from .ops import OPS, PUBLIC, Expr, const, custom_gradient, fori_loop, scan
from .parse import from_sympy, parse, to_sympy
from . import numpy  # NumPy's functions on expressions: symgrad.numpy and symgrad.numpy.linalg

# the public functions of the ops (sin, sum, abs, ...): ops.PUBLIC is their one list
globals().update({name: entry.function for name, entry in PUBLIC.items()})


def __getattr__(name):
    # a public function defined after import (an op registered later) is sg.<name> too
    entry = PUBLIC.get(name)
    if entry is None:
        raise AttributeError(f"module 'symgrad' has no attribute {name!r}")
    return entry.function


__all__ = sorted([
    "ArgumentError", "CompiledFunction", "DisconnectedWarning", "Expr", "Graph", "OPS",
    "ParseError", "ShapeError", "SymgradError", "UndefinedGradientError", "check_grad",
    "compile", "custom_gradient", "defop", "const", "default_graph", "draw", "graph_stats",
    "show_graph", "to_dot", "from_sympy", "grad", "hessian", "hvp", "jacobian", "jvp", "parse",
    "to_sympy", "use_graph", "var", "vjp", "__version__", "sparsity", "draw_sparsity", "scan",
    "fori_loop", *PUBLIC,
])
