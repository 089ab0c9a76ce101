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
from .differentiate import DisconnectedWarning, grad, hessian, hvp, jacobian, jvp, vjp
from .errors import ArgumentError, ParseError, ShapeError, SymgradError, UndefinedGradientError
from .graph import Graph, default_graph, use_graph
from .ops import (Expr, OPS, clip, custom_gradient, concatenate, const, cos, dot, exp, expm1,
                  leaky_relu, log, log1p, log_softmax, logsumexp, matmul, max, maximum, mean, min,
                  minimum, relu, reshape, sigmoid, sign, sin, softmax, softplus, sqrt,
                  stop_gradient, sum, tan, tanh, transpose, where)
from .ops import absolute as abs
from .parse import from_sympy, parse, to_sympy


__all__ = [
    "ArgumentError", "CompiledFunction", "DisconnectedWarning", "Expr", "Graph", "OPS",
    "ParseError", "ShapeError", "SymgradError", "UndefinedGradientError", "abs", "check_grad",
    "clip", "compile", "custom_gradient", "defop", "concatenate", "const", "cos", "default_graph",
    "dot", "draw", "graph_stats", "show_graph", "to_dot", "exp", "expm1", "from_sympy", "grad",
    "hessian", "hvp", "jacobian", "jvp", "leaky_relu", "log", "log1p", "log_softmax", "logsumexp", "matmul", "max",
    "maximum", "mean", "min", "minimum", "parse", "relu", "reshape", "sigmoid", "sign", "sin",
    "softmax", "softplus", "sqrt", "stop_gradient", "sum", "tan", "tanh", "to_sympy", "transpose",
    "use_graph", "var", "vjp", "where", "__version__",
]
