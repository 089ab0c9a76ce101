"""Reliability: a failed call changes nothing, threads can share one graph, 100,000-node graphs
differentiate and compile, and errors say what went wrong and where.

References are NumPy, finite differences and derivatives worked out by hand. No test here
asserts anything about time.
"""

import dataclasses
import functools
import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import sympy

import symgrad as sg
import symgrad.scipy.signal as sg_signal
from symgrad.ops import apply
from symgrad.ops.core import defop as register_primitive
from symgrad.ops.core import same_shape


# == 3. nothing lost on error ======================================================================


# Graph attributes that are not the graph's content: the lock; networkx's views (cached
# read-only windows onto _node and _adj) and its cache of algorithm results. The next key is
# checked on its own, because keys are never reused: a failed call may use some up.
NOT_CONTENT = {"lock", "__networkx_cache__", "_next_key"}


def freeze(value):
    """A comparable deep copy: dicts, lists, tuples and sets all the way down, arrays by bytes."""
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, dict):
        return ("dict", tuple((freeze(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(freeze(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(freeze(v) for v in value))
    return value


def snapshot(graph):
    """Everything a Graph holds, attribute by attribute: the nodes with all their data, the
    adjacency with the edge data, the graph's own attribute dict, the hash-cons table, the
    variable table, the name hints, the rewrite records and the derivative stamping state. Any
    attribute added to Graph later is included without a change here."""
    state = {}
    for name, value in vars(graph).items():
        if name in NOT_CONTENT or type(value).__module__.startswith("networkx.classes"):
            continue
        state[name] = freeze(value)
    return state


def assert_unchanged(graph, before, next_key):
    after = snapshot(graph)
    assert after.keys() == before.keys()
    for name in before:
        assert after[name] == before[name], f"graph attribute {name} changed"
    assert graph.next_key >= next_key
    assert all(node < next_key for node in graph)


def _other_graph_variable():
    with sg.use_graph():
        return sg.var("x")


def build_env(tmp_path):
    """Expressions of every kind in the current graph, and a function compiled from them."""
    e = SimpleNamespace(tmp=tmp_path)
    e.x, e.y, e.z = sg.var("x"), sg.var("y"), sg.var("z")
    e.q = sg.var("q")                                   # used by nothing below
    e.v, e.u4 = sg.var("v", shape=(3,)), sg.var("u4", shape=(4,))
    e.W, e.T3 = sg.var("W", shape=(2, 3)), sg.var("T3", shape=(2, 2, 2))
    e.X = sg.var("X", shape=("n", 3))
    e.f = sg.sin(e.x) * e.y
    e.fv = sg.sum(sg.tanh(e.W @ e.v)) * e.x
    e.vx = e.v * e.x
    e.x2 = e.x * 2.0
    e.W2 = e.W[:, :2]
    e.log_softmax = sg.log_softmax(e.v)                 # built directly: no rewrite record
    e.sympy_x = sympy.Symbol("x")
    e.other = _other_graph_variable()
    e.fn = sg.compile([e.f, e.fv, *sg.grad(e.fv, [e.W, e.v, e.x])], inputs=[e.x, e.y, e.W, e.v])
    e.point = {"x": 0.7, "y": -1.3, "W": np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]),
               "v": np.array([0.3, -0.2, 0.9])}
    return e


def expected_values(point):
    """f, fv and the gradient of fv by hand: d/dW sum(tanh(W v)) x = x (1 - t^2) v^T, etc."""
    x, y, W, v = point["x"], point["y"], point["W"], point["v"]
    t = np.tanh(W @ v)
    s = x * (1.0 - t ** 2)
    return [np.sin(x) * y, np.sum(t) * x, np.outer(s, v), W.T @ s, np.sum(t)]


def assert_compiled_still_works(e):
    for got, want in zip(e.fn(**e.point), expected_values(e.point)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


@pytest.fixture
def user_ops():
    """Ops with a missing or malformed derivative rule, registered for one test only."""
    def bad(name, rule):
        return sg.defop(name, 1, lambda shapes: shapes[0], "{0} * 1.0", vjp=rule)
    register_primitive("rel_norule", 1, same_shape, "np.cbrt({0})", None)
    ops = SimpleNamespace(
        norule=lambda x: apply("rel_norule", x),
        too_few=bad("rel_too_few", lambda g, out, x: []),
        wrong_shape=bad("rel_wrong_shape", lambda g, out, x: [sg.sum(g)]),
        not_expr=bad("rel_not_expr", lambda g, out, x: ["gradient"]),
        shaped=sg.defop("rel_shaped", 2, lambda shapes: _same_or_shape_error(*shapes),
                        "{0} + {1}", vjp=lambda g, out, a, b: [g, g]))
    yield ops
    for name in ("rel_norule", "rel_too_few", "rel_wrong_shape", "rel_not_expr", "rel_shaped"):
        sg.OPS.pop(name, None)


def _same_or_shape_error(a, b):
    if a != b:
        raise sg.ShapeError(f"shapes {a} and {b} differ")
    return a


@dataclasses.dataclass(frozen=True)
class Case:
    """A call that must fail: ``make(env, ops)`` prepares its arguments (nodes built there are
    not part of the failing call) and returns the call itself."""
    name: str
    covers: tuple
    make: object
    error: type


CASES = []
SE, SH, PE, UG = sg.SymgradError, sg.ShapeError, sg.ParseError, sg.UndefinedGradientError
AE = sg.ArgumentError


def _add(name, covers, error, make):
    CASES.append(Case(name, tuple(covers.split()), make, error))


def _gathered_sum_and_index(v):
    idx = sg.var("idx", shape=(2,), dtype="int64")
    return sg.sum(v[idx]), idx


# variables and constants
_add("var redeclared with another shape", "var", SH, lambda e, o: lambda: sg.var("v", shape=(4,)))
_add("var redeclared with another dtype", "var", SH,
     lambda e, o: lambda: sg.var("x", dtype="float32"))
_add("var named with a digit first", "var", SE, lambda e, o: lambda: sg.var("2x"))
_add("var named with a keyword", "var", SE, lambda e, o: lambda: sg.var("lambda"))
_add("var with a negative dimension", "var", SH, lambda e, o: lambda: sg.var("n1", shape=(-1,)))
_add("var of an integer dtype other than int64", "var", SE,
     lambda e, o: lambda: sg.var("n2", dtype="int32"))
_add("var of a dtype NumPy does not know", "var", SE,
     lambda e, o: lambda: sg.var("n3", dtype="nonsense"))
_add("var in something that is not a graph", "var", SE, lambda e, o: lambda: sg.var("n4", graph=5))
_add("const of a string", "const", SE, lambda e, o: lambda: sg.const("abc"))
_add("const of a ragged list", "const", SE, lambda e, o: lambda: sg.const([[1.0, 2.0], [3.0]]))
_add("const of a complex number", "const", SE, lambda e, o: lambda: sg.const(1 + 2j))
_add("const of an object", "const", SE, lambda e, o: lambda: sg.const(object()))

# operators on Expr
for _symbol, _call in [("+", lambda a, b: a + b), ("-", lambda a, b: a - b),
                       ("*", lambda a, b: a * b), ("/", lambda a, b: a / b),
                       ("**", lambda a, b: a ** b), ("<", lambda a, b: a < b),
                       ("==", lambda a, b: a == b)]:
    _add(f"v {_symbol} u4 with shapes that do not broadcast", "Expr", SH,
         lambda e, o, call=_call: functools.partial(call, e.v, e.u4))
_add("matrix @ vector of the wrong length", "Expr matmul", SH,
     lambda e, o: functools.partial(sg.matmul, e.W, e.u4))
_add("scalar @ vector", "Expr", SH, lambda e, o: lambda: e.x @ e.v)
_add("adding a string", "Expr", SE, lambda e, o: lambda: e.x + "a")
_add("adding a ragged list", "Expr", SE, lambda e, o: lambda: e.v + [[1.0, 2.0], [3.0]])
_add("combining two graphs", "Expr", SE, lambda e, o: lambda: e.x + e.other)
_add("index out of range", "Expr", SH, lambda e, o: lambda: e.v[3])
_add("too many indices", "Expr", SH, lambda e, o: lambda: e.v[0, 0])
_add("a string index", "Expr", SE, lambda e, o: lambda: e.v["a"])
_add("slicing a named dimension", "Expr", SH, lambda e, o: lambda: e.X[1:])
_add("a slice step of zero", "Expr", SH, lambda e, o: lambda: e.v[::0])
_add("method reshape to another size", "Expr", SH, lambda e, o: lambda: e.v.reshape(5))
_add("method reshape with two -1", "Expr", SH, lambda e, o: lambda: e.W.reshape(-1, -1))
_add("method transpose with a repeated axis", "Expr", SH,
     lambda e, o: lambda: e.W.transpose((0, 0)))
_add("method sum over a missing axis", "Expr", SH, lambda e, o: lambda: e.v.sum(axis=1))
_add("method mean over a repeated axis", "Expr", SH, lambda e, o: lambda: e.W.mean(axis=(0, 0)))
_add("method max over a missing axis", "Expr", SH, lambda e, o: lambda: e.v.max(axis=5))
_add("method min over a string axis", "Expr", SH, lambda e, o: lambda: e.v.min(axis="a"))
_add("truth value of an expression", "Expr", SE, lambda e, o: lambda: bool(e.x))
_add("len of a scalar", "Expr", SE, lambda e, o: lambda: len(e.x))
_add("iterating a scalar expression", "Expr", SE, lambda e, o: lambda: list(e.x))
_add("iterating along a named dimension", "Expr", SE, lambda e, o: lambda: list(e.X))

# functions: every one of them refuses what cannot be an operand
for _name in ["sin", "cos", "tan", "exp", "log", "log1p", "expm1", "sqrt", "tanh", "sigmoid",
              "relu", "leaky_relu", "softplus", "abs", "sign", "stop_gradient"]:
    _add(f"{_name} of a string", _name, SE,
         lambda e, o, name=_name: functools.partial(getattr(sg, name), "text"))
_add("maximum of shapes that do not broadcast", "maximum", SH,
     lambda e, o: functools.partial(sg.maximum, e.v, e.u4))
_add("minimum of shapes that do not broadcast", "minimum", SH,
     lambda e, o: functools.partial(sg.minimum, e.v, e.u4))
_add("where with a condition of another shape", "where", SH,
     lambda e, o: functools.partial(sg.where, e.u4 > 0.0, e.v, 0.0))
_add("where with branches of different shapes", "where", SH,
     lambda e, o: functools.partial(sg.where, e.v > 0.0, e.v, e.u4))
_add("clip with a bad lower bound", "clip", SH,
     lambda e, o: functools.partial(sg.clip, e.v, e.u4, 1.0))
# clip is minimum(maximum(x, lower), upper): here maximum succeeds before minimum fails
_add("clip with a bad upper bound", "clip", SH,
     lambda e, o: functools.partial(sg.clip, e.v, 0.0, e.u4))
_add("matmul of a scalar", "matmul", SH, lambda e, o: functools.partial(sg.matmul, e.x, e.v))
# issue 18's element-wise functions
for _name in ["sinh", "cosh", "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh",
              "log2", "log10", "cbrt", "floor", "ceil", "trunc", "round", "square", "reciprocal",
              "fabs", "exp2", "deg2rad", "rad2deg", "erf", "erfc", "logit", "expit", "gelu", "silu",
              "elu", "selu", "softsign", "nan_to_num"]:
    _add(f"{_name} of a string", _name, SE,
         lambda e, o, name=_name: functools.partial(getattr(sg, name), "text"))
for _name in ["arctan2", "hypot", "logaddexp", "logaddexp2", "fmax", "fmin", "remainder", "mod",
              "fmod", "xlogy"]:
    _add(f"{_name} of shapes that do not broadcast", _name, SH,
         lambda e, o, name=_name: functools.partial(getattr(sg, name), e.v, e.u4))
_add("round to a fractional number of decimals", "round", AE,
     lambda e, o: functools.partial(sg.round, e.v, 1.5))
_add("elu with a slope that is not a number", "elu", AE,
     lambda e, o: functools.partial(sg.elu, e.v, "abc"))
_add("gelu with an unknown approximation", "gelu", AE,
     lambda e, o: functools.partial(sg.gelu, e.v, approximate="erf"))
_add("nan_to_num with a replacement that is not a number", "nan_to_num", AE,
     lambda e, o: functools.partial(sg.nan_to_num, [1.0, 2.0], posinf="big"))
# issue 19's special functions
for _name in ["gammaln", "digamma", "psi", "gamma", "rgamma", "gammasgn", "erfinv", "erfcinv",
              "erfcx", "ndtr", "ndtri", "log_ndtr", "j0", "j1", "y0", "y1", "i0", "i1", "i0e",
              "i1e"]:
    _add(f"{_name} of a string", _name, SE,
         lambda e, o, name=_name: functools.partial(getattr(sg, name), "text"))
for _name in ["betaln", "beta", "xlog1py", "gammainc", "gammaincc", "stdtr"]:
    _add(f"{_name} of shapes that do not broadcast", _name, SH,
         lambda e, o, name=_name: functools.partial(getattr(sg, name), e.v, e.u4))
_add("betainc of shapes that do not broadcast", "betainc", SH,
     lambda e, o: functools.partial(sg.betainc, 2.0, e.v, e.u4))
_add("polygamma of a negative order", "polygamma", AE,
     lambda e, o: functools.partial(sg.polygamma, -1, e.v))
_add("polygamma of a fractional order among integers", "polygamma", AE,
     lambda e, o: functools.partial(sg.polygamma, np.array([1.0, 0.5, 2.0]), e.v))
_add("polygamma of a variable order", "polygamma", AE,
     lambda e, o: functools.partial(sg.polygamma, e.x, e.v))
_add("multigammaln of dimension zero", "multigammaln", AE,
     lambda e, o: functools.partial(sg.multigammaln, e.v, 0))
for _name in ["jv", "jn", "iv", "ive"]:
    _add(f"{_name} of a variable order", _name, AE,
         lambda e, o, name=_name: functools.partial(getattr(sg, name), e.x, e.v))
_add("yn of a fractional order", "yn", AE, lambda e, o: functools.partial(sg.yn, 1.5, e.v))
_add("gradient of gammainc through its shape parameter", "grad", UG,
     lambda e, o: functools.partial(sg.grad, sg.gammainc(e.x, e.y), e.x))
_add("gradient of betainc through a shape parameter", "grad", UG,
     lambda e, o: functools.partial(sg.grad, sg.sum(sg.betainc(e.x, 2.0, e.v)), e.x))
_add("dot of a stack and a vector of another length", "dot", SH,
     lambda e, o: functools.partial(sg.dot, e.T3, e.v))
_add("dot of mismatched lengths", "dot", SH, lambda e, o: functools.partial(sg.dot, e.W, e.u4))
_add("concatenate of different ranks", "concatenate", SH,
     lambda e, o: functools.partial(sg.concatenate, [e.v, e.W]))
_add("concatenate of nothing", "concatenate", SH,
     lambda e, o: functools.partial(sg.concatenate, []))
_add("concatenate of scalars", "concatenate", SH,
     lambda e, o: functools.partial(sg.concatenate, [e.x, e.y]))
_add("concatenate with shapes differing off the axis", "concatenate", SH,
     lambda e, o: functools.partial(sg.concatenate, [e.W, e.W2], axis=0))
_add("concatenate along a missing axis", "concatenate", SH,
     lambda e, o: functools.partial(sg.concatenate, [e.v, e.v], axis=1))
_add("take at an index out of bounds", "take", SH,
     lambda e, o: functools.partial(sg.take, e.W, np.array([0, 3]), axis=1))
_add("take at float indices", "take", SE,
     lambda e, o: functools.partial(sg.take, e.v, np.array([0.5])))
_add("take_along_axis with indices of another rank", "take_along_axis", SH,
     lambda e, o: functools.partial(sg.take_along_axis, e.W, np.array([0, 1]), axis=1))
_add("take_along_axis with indices off the array's shape", "take_along_axis", SH,
     lambda e, o: functools.partial(sg.take_along_axis, e.W, np.zeros((3, 1), int), axis=1))
_add("one_hot of a negative number of classes", "one_hot", AE,
     lambda e, o: functools.partial(sg.one_hot, e.v, -1))
_add("gradient with respect to an integer variable", "grad", UG,
     lambda e, o: functools.partial(sg.grad, *_gathered_sum_and_index(e.v)))
_add("concatenate of an array and a mismatched expression", "concatenate", SH,
     lambda e, o: functools.partial(sg.concatenate, [np.ones((2, 2)), e.W], axis=0))
# NumPy's building and reshaping functions (ops/arrays.py)
_add("stack of two shapes", "stack", SH, lambda e, o: functools.partial(sg.stack, [e.v, e.u4]))
_add("stack of nothing", "stack", SH, lambda e, o: functools.partial(sg.stack, []))
_add("vstack of two lengths", "vstack", SH, lambda e, o: functools.partial(sg.vstack, [e.v, e.u4]))
_add("hstack of two ranks", "hstack", SH, lambda e, o: functools.partial(sg.hstack, [e.W, e.v]))
_add("dstack of two shapes", "dstack", SH, lambda e, o: functools.partial(sg.dstack, [e.W, e.v]))
_add("column_stack of two lengths", "column_stack", SH,
     lambda e, o: functools.partial(sg.column_stack, [e.v, e.u4]))
_add("append of another row length", "append", SH,
     lambda e, o: functools.partial(sg.append, e.W, e.v, axis=0))
_add("split into unequal sections", "split", SH, lambda e, o: functools.partial(sg.split, e.v, 2))
_add("split along a named dimension", "split", SH, lambda e, o: functools.partial(sg.split, e.X, 2))
_add("array_split into no sections", "array_split", SH,
     lambda e, o: functools.partial(sg.array_split, e.v, 0))
_add("squeeze of an axis longer than one", "squeeze", SH,
     lambda e, o: functools.partial(sg.squeeze, e.v, 0))
_add("expand_dims at a missing position", "expand_dims", SH,
     lambda e, o: functools.partial(sg.expand_dims, e.v, 3))
_add("ravel of a named dimension and another", "ravel", SH,
     lambda e, o: functools.partial(sg.ravel, e.X))
_add("flip along a missing axis", "flip", SH, lambda e, o: functools.partial(sg.flip, e.v, 1))
_add("fliplr of a vector", "fliplr", SH, lambda e, o: functools.partial(sg.fliplr, e.v))
_add("flipud of a scalar", "flipud", SH, lambda e, o: functools.partial(sg.flipud, e.x))
_add("roll along a missing axis", "roll", SH,
     lambda e, o: functools.partial(sg.roll, e.v, 1, axis=2))
_add("roll by a fraction", "roll", AE, lambda e, o: functools.partial(sg.roll, e.v, 1.5, axis=0))
_add("tile along a named dimension", "tile", SH,
     lambda e, o: functools.partial(sg.tile, e.X, (2, 1)))
_add("repeat along a named dimension", "repeat", SH,
     lambda e, o: functools.partial(sg.repeat, e.X, 2, axis=0))
_add("pad along a named dimension", "pad", SH, lambda e, o: functools.partial(sg.pad, e.X, 1))
_add("pad in an unknown mode", "pad", AE,
     lambda e, o: functools.partial(sg.pad, e.v, 1, mode="mean"))
_add("atleast_1d of a string", "atleast_1d", SE,
     lambda e, o: functools.partial(sg.atleast_1d, "v"))
_add("atleast_2d of an object", "atleast_2d", SE,
     lambda e, o: functools.partial(sg.atleast_2d, object()))
_add("atleast_3d of a string", "atleast_3d", SE, lambda e, o: functools.partial(sg.atleast_3d, "W"))
_add("rollaxis to a start past the end", "rollaxis", SH,
     lambda e, o: functools.partial(sg.rollaxis, e.W, 0, 3))
_add("vsplit of a vector", "vsplit", SH, lambda e, o: functools.partial(sg.vsplit, e.v, 3))
_add("hsplit into unequal sections", "hsplit", SH, lambda e, o: functools.partial(sg.hsplit, e.W, 2))
_add("dsplit of a matrix", "dsplit", SH, lambda e, o: functools.partial(sg.dsplit, e.W, 1))
_add("rot90 in a plane of one axis", "rot90", SH,
     lambda e, o: functools.partial(sg.rot90, e.W, 1, (1, -1)))
_add("rot90 with three axes", "rot90", AE,
     lambda e, o: functools.partial(sg.rot90, e.T3, 1, (0, 1, 2)))
_add("linspace of a negative number of samples", "linspace", SH,
     lambda e, o: functools.partial(sg.linspace, e.x, e.y, -1))
_add("linspace to a string", "linspace", SE,
     lambda e, o: functools.partial(sg.linspace, e.x, "y", 3))
_add("gradient along a named dimension", "gradient", SH,
     lambda e, o: functools.partial(sg.gradient, e.X, axis=0))
_add("gradient with coordinate arrays", "gradient", AE,
     lambda e, o: functools.partial(sg.gradient, e.v, np.arange(3.0)))
_add("moveaxis to a missing axis", "moveaxis", SH,
     lambda e, o: functools.partial(sg.moveaxis, e.W, 0, 2))
_add("swapaxes with a missing axis", "swapaxes", SH,
     lambda e, o: functools.partial(sg.swapaxes, e.W, 0, 2))
_add("broadcast_to another length", "broadcast_to", SH,
     lambda e, o: functools.partial(sg.broadcast_to, e.v, (4,)))
_add("diag of a 3-D array", "diag", SH, lambda e, o: functools.partial(sg.diag, e.T3))
_add("diagonal of a vector", "diagonal", SH, lambda e, o: functools.partial(sg.diagonal, e.v))
_add("trace over a named dimension", "trace", SH, lambda e, o: functools.partial(sg.trace, e.X))
_add("triu of a vector", "triu", SH, lambda e, o: functools.partial(sg.triu, e.v))
_add("tril of a scalar", "tril", SH, lambda e, o: functools.partial(sg.tril, e.x))
_add("array of ragged rows", "array", SH,
     lambda e, o: functools.partial(sg.array, [[e.x, e.y], [e.x]]))
_add("asarray of a string", "asarray", SE, lambda e, o: functools.partial(sg.asarray, "text"))
_add("reshape to another size", "reshape", SH,
     lambda e, o: functools.partial(sg.reshape, e.W, (4,)))
_add("reshape dropping a named dimension", "reshape", SH,
     lambda e, o: functools.partial(sg.reshape, e.X, (2, 3)))
_add("transpose with a repeated axis", "transpose", SH,
     lambda e, o: functools.partial(sg.transpose, e.W, (0, 0)))
_add("transpose with too few axes", "transpose", SH,
     lambda e, o: functools.partial(sg.transpose, e.T3, (1, 0)))
_add("leaky_relu with a slope that is not a number", "leaky_relu", AE,
     lambda e, o: functools.partial(sg.leaky_relu, e.v, "abc"))
_add("reshape to None", "reshape", AE, lambda e, o: functools.partial(sg.reshape, e.W, None))
_add("transpose with an int for axes", "transpose", AE,
     lambda e, o: functools.partial(sg.transpose, e.W, 5))
_add("transpose with float axes", "transpose", AE,
     lambda e, o: functools.partial(sg.transpose, e.W, (1.0, 0.0)))
_add("concatenate along axis None", "concatenate", AE,
     lambda e, o: functools.partial(sg.concatenate, [e.W, e.W], axis=None))
_add("sum over a missing axis", "sum", SH, lambda e, o: functools.partial(sg.sum, e.v, axis=1))
_add("sum of an array over a missing axis", "sum", SH,
     lambda e, o: functools.partial(sg.sum, np.ones(3), axis=5))
_add("mean over a missing axis", "mean", SH, lambda e, o: functools.partial(sg.mean, e.W, axis=2))
_add("max over a missing axis", "max", SH, lambda e, o: functools.partial(sg.max, e.v, axis=-2))
_add("min over a repeated axis", "min", SH,
     lambda e, o: functools.partial(sg.min, e.W, axis=(0, 0)))
_add("logsumexp over a missing axis", "logsumexp", SH,
     lambda e, o: functools.partial(sg.logsumexp, e.v, axis=1))
_add("softmax of a scalar", "softmax", SH, lambda e, o: functools.partial(sg.softmax, e.x))
_add("softmax over a missing axis", "softmax", SH,
     lambda e, o: functools.partial(sg.softmax, e.W, axis=2))
_add("log_softmax of a scalar", "log_softmax", SH,
     lambda e, o: functools.partial(sg.log_softmax, e.x))
# contractions
_add("einsum over lengths that differ", "einsum", SH,
     lambda e, o: functools.partial(sg.einsum, "ij,j->i", e.W, e.u4))
_add("einsum with a letter the operands lack", "einsum", SH,
     lambda e, o: functools.partial(sg.einsum, "ij->iq", e.W))
_add("einsum of a string", "einsum", SE, lambda e, o: functools.partial(sg.einsum, "i", "text"))
_add("tensordot over lengths that differ", "tensordot", SH,
     lambda e, o: functools.partial(sg.tensordot, e.W, e.u4, 1))
_add("tensordot with axes that are not a pair", "tensordot", SH,
     lambda e, o: functools.partial(sg.tensordot, e.W, e.v, "ab"))
_add("outer of a string", "outer", SE, lambda e, o: functools.partial(sg.outer, e.v, "text"))
_add("outer flattening a named dimension", "outer", SH,
     lambda e, o: functools.partial(sg.outer, e.X, e.v))
_add("inner over lengths that differ", "inner", SH,
     lambda e, o: functools.partial(sg.inner, e.v, e.u4))
_add("kron of a named dimension and a length", "kron", SH,
     lambda e, o: functools.partial(sg.kron, e.X, e.W))
_add("cross of 4-vectors", "cross", SH, lambda e, o: functools.partial(sg.cross, e.u4, e.u4))
# the reductions, scans and norms of issue 18
_add("prod over a missing axis", "prod", SH, lambda e, o: functools.partial(sg.prod, e.v, axis=1))
_add("std over a repeated axis", "std", SH,
     lambda e, o: functools.partial(sg.std, e.W, axis=(1, 1)))
_add("std with a ddof that is no number", "std", AE,
     lambda e, o: functools.partial(sg.std, e.W, ddof="one"))
_add("cumsum over a missing axis", "cumsum", SH,
     lambda e, o: functools.partial(sg.cumsum, e.v, axis=1))
_add("cumprod over a missing axis", "cumprod", SH,
     lambda e, o: functools.partial(sg.cumprod, e.W, axis=-3))
_add("average with weights of another shape", "average", SH,
     lambda e, o: functools.partial(sg.average, e.W, axis=1, weights=e.v[:2]))
_add("ptp over a missing axis", "ptp", SH, lambda e, o: functools.partial(sg.ptp, e.v, axis=1))
_add("diff of a negative order", "diff", AE, lambda e, o: functools.partial(sg.diff, e.v, n=-1))
_add("diff along a named dimension", "diff", SH,
     lambda e, o: functools.partial(sg.diff, e.X, axis=0))
_add("norm of a matrix of an order NumPy lacks", "norm", AE,
     lambda e, o: functools.partial(sg.norm, e.W, ord=3))
_add("norm over three axes", "norm", SH, lambda e, o: functools.partial(sg.norm, e.T3, 1, (0, 1, 2)))
_add("select with more conditions than choices", "select", AE,
     lambda e, o: functools.partial(sg.select, [e.v > 0.0, e.v < 0.0], [e.v]))
_add("logsumexp with weights of another shape", "logsumexp", SH,
     lambda e, o: functools.partial(sg.logsumexp, e.W, axis=1, b=e.u4))
# the linear algebra of issue 19
_add("inv of a matrix that is not square", "inv", SH, lambda e, o: functools.partial(sg.inv, e.W))
_add("solve with b of another length", "solve", SH,
     lambda e, o: functools.partial(sg.solve, e.T3, e.v))
_add("det of a vector", "det", SH, lambda e, o: functools.partial(sg.det, e.v))
_add("slogdet of a matrix that is not square", "slogdet", SH,
     lambda e, o: functools.partial(sg.slogdet, e.W))
_add("cholesky of a matrix that is not square", "cholesky", SH,
     lambda e, o: functools.partial(sg.cholesky, e.W))
_add("solve_triangular with an unknown trans", "solve_triangular", AE,
     lambda e, o: functools.partial(sg.solve_triangular, e.T3, e.T3, trans=3))
_add("pinv of a vector", "pinv", SH, lambda e, o: functools.partial(sg.pinv, e.v))
_add("lstsq of a stack of matrices", "lstsq", SH,
     lambda e, o: functools.partial(sg.lstsq, e.T3, e.v))
_add("matrix_power to a fractional power", "matrix_power", AE,
     lambda e, o: functools.partial(sg.matrix_power, e.T3, 0.5))
_add("multi_dot of a stack", "multi_dot", SH,
     lambda e, o: functools.partial(sg.multi_dot, [e.W, e.T3]))

# order statistics
_add("sort of an unknown kind", "sort", AE, lambda e, o: functools.partial(sg.sort, e.v, kind="tim"))
_add("sort of a scalar along an axis", "sort", SH, lambda e, o: functools.partial(sg.sort, e.x))
_add("argsort along an axis out of range", "argsort", SH,
     lambda e, o: functools.partial(sg.argsort, e.W, axis=2))
_add("argmax over a tuple of axes", "argmax", AE,
     lambda e, o: functools.partial(sg.argmax, e.W, axis=(0, 1)))
_add("argmin of an empty axis", "argmin", SH, lambda e, o: functools.partial(sg.argmin, e.v[3:]))
_add("partition at a kth out of bounds", "partition", AE,
     lambda e, o: functools.partial(sg.partition, e.v, 3))
_add("argpartition at a kth that is no int", "argpartition", AE,
     lambda e, o: functools.partial(sg.argpartition, e.v, 1.5))
_add("median over a named dimension", "median", SH,
     lambda e, o: functools.partial(sg.median, sg.exp(e.X), axis=0))
_add("quantile at a level above one", "quantile", AE,
     lambda e, o: functools.partial(sg.quantile, sg.exp(e.v), [0.5, 1.5]))
_add("percentile by another method", "percentile", AE,
     lambda e, o: functools.partial(sg.percentile, e.v, 50, method="nearest"))

# loops
_add("scan whose step changes the carry's shape", "scan", SH,
     lambda e, o: functools.partial(sg.scan, lambda c, x: (sg.sin(c[:2]), x), e.v, e.W))
_add("scan with a length disagreeing with xs", "scan", SH,
     lambda e, o: functools.partial(sg.scan, lambda c, x: (c + x, None), e.v, e.W, length=5))
_add("scan whose step returns no (carry, y) pair", "scan", SE,
     lambda e, o: functools.partial(sg.scan, lambda c, x: sg.exp(c) + x, e.v, e.W))
_add("scan across two graphs", "scan", SE,
     lambda e, o: functools.partial(sg.scan, lambda c, x: (c, None), e.x, e.other, length=2))
_add("fori_loop with a bound that is not an int", "fori_loop", SH,
     lambda e, o: functools.partial(sg.fori_loop, 0, 2.5, lambda i, v: v, e.v))
_add("fori_loop whose body changes the value's shape", "fori_loop", SH,
     lambda e, o: functools.partial(sg.fori_loop, 0, 3, lambda i, v: sg.sum(v * i), e.v))

# user rules
_add("custom_gradient with a rule that is not callable", "custom_gradient", SE,
     lambda e, o: functools.partial(sg.custom_gradient, e.vx, [e.v], "rule"))
_add("custom_gradient of an input that is not an operand", "custom_gradient", SE,
     lambda e, o: functools.partial(sg.custom_gradient, e.vx, ["v"], lambda g, out, v: [g]))
_add("custom_gradient across two graphs", "custom_gradient", SE,
     lambda e, o: functools.partial(sg.custom_gradient, e.f, [e.other], lambda g, out, x: [g]))
_add("defop of a name that exists", "defop", SE,
     lambda e, o: functools.partial(sg.defop, "sin", 1, same_shape, "{0}", lambda g, out, x: [g]))
_add("defop of a name that is not an identifier", "defop", SE,
     lambda e, o: functools.partial(sg.defop, "my op", 1, same_shape, "{0}",
                                    lambda g, out, x: [g]))
_add("defop without a rule", "defop", SE,
     lambda e, o: functools.partial(sg.defop, "rel_missing", 1, same_shape, "{0}", None))
_add("a defop'd op given the wrong number of operands", "defop", SE,
     lambda e, o: functools.partial(o.shaped, e.v))
_add("a defop'd op whose shape rule refuses", "defop", SH,
     lambda e, o: functools.partial(o.shaped, e.v, e.u4))

# parsing
_add("parse error midway", "parse", PE,
     lambda e, o: functools.partial(sg.parse, "sin(x) + cos(y) * (z + exp(newvar) +"))
_add("unknown function midway", "parse", PE,
     lambda e, o: functools.partial(sg.parse, "sin(x) + exp(newvar) * foo(y)"))
_add("hostile formula", "parse", PE,
     lambda e, o: functools.partial(sg.parse, "__import__('os').system('true')"))
_add("a formula that is not a string", "parse", PE, lambda e, o: functools.partial(sg.parse, 5))
_add("shapes keyed by a non-name", "parse", SE,
     lambda e, o: functools.partial(sg.parse, "x", shapes={1: ()}))
_add("shape error after nodes were built", "parse", SH,
     lambda e, o: functools.partial(sg.parse, "sin(x) * exp(y) + tanh(newvar) + v @ u4"))
_add("shape error between new variables with given shapes", "parse", SH,
     lambda e, o: functools.partial(sg.parse, "tanh(Wnew @ unew) + 1",
                                    shapes={"Wnew": (2, 3), "unew": (4,)}))
_add("variable redeclared midway", "parse", SH,
     lambda e, o: functools.partial(sg.parse, "exp(newvar) + x", shapes={"x": (2,)}))
# log(softmax(v)) is rewritten to the existing log_softmax(v) node, which records the rewrite
_add("shape error after a stability rewrite of an existing node", "parse", SH,
     lambda e, o: functools.partial(sg.parse, "log(softmax(v)) + u4"))
_add("from_sympy of an unsupported function midway", "from_sympy", SE,
     lambda e, o: functools.partial(
         sg.from_sympy, sympy.sin(sympy.Symbol("newvar")) + sympy.zeta(sympy.Symbol("b"))))
_add("from_sympy of a complex number", "from_sympy", SE,
     lambda e, o: functools.partial(sg.from_sympy, sympy.exp(e.sympy_x) + sympy.I * e.sympy_x))
_add("from_sympy of something that is not SymPy", "from_sympy", SE,
     lambda e, o: functools.partial(sg.from_sympy, "sin(x)"))
_add("from_sympy with a clashing shape", "from_sympy", SH,
     lambda e, o: functools.partial(sg.from_sympy, sympy.sin(e.sympy_x), shapes={"x": (2,)}))
_add("to_sympy of a vector", "to_sympy", SE, lambda e, o: functools.partial(sg.to_sympy, e.vx))
_add("to_sympy of a string", "to_sympy", SE, lambda e, o: functools.partial(sg.to_sympy, "x"))
_add("to_sympy of an op SymPy does not know", "to_sympy", SE,
     lambda e, o: functools.partial(sg.to_sympy, o.norule(e.x)))

# differentiation
TRANSFORMS = {
    "grad": lambda f, w, policy: sg.grad(f, w, disconnected=policy),
    "jacobian": lambda f, w, policy: sg.jacobian(f, w, disconnected=policy),
    "hessian": lambda f, w, policy: sg.hessian(f, w, disconnected=policy),
    "hvp": lambda f, w, policy: sg.hvp(f, w, [np.ones(w_.shape) for w_ in w], disconnected=policy),
    "jvp": lambda f, w, policy: sg.jvp(f, w, [np.ones(w_.shape) for w_ in w], disconnected=policy),
    "vjp": lambda f, w, policy: sg.vjp(f, w, np.ones(f.shape), disconnected=policy),
}
for _name, _call in TRANSFORMS.items():
    # exp(fv) has not been differentiated yet: the derivative nodes for x and W are new, built
    # before q is found disconnected (or the op without a rule is reached)
    _add(f"{_name} with disconnected='raise'", _name, UG,
         lambda e, o, call=_call: functools.partial(call, sg.exp(e.fv), [e.x, e.W, e.q], "raise"))
    _add(f"{_name} through an op without a rule", _name, UG,
         lambda e, o, call=_call: functools.partial(call, sg.exp(e.fv * o.norule(e.x)),
                                                    [e.W, e.x], "zero"))
    _add(f"{_name} with respect to an expression that is not a variable", _name, SE,
         lambda e, o, call=_call: functools.partial(call, sg.sin(e.x2), [e.x2], "zero"))
    _add(f"{_name} with an unknown policy", _name, SE,
         lambda e, o, call=_call: functools.partial(call, e.f, [e.x], "ignore"))
_add("grad of a vector", "grad", SH, lambda e, o: functools.partial(sg.grad, e.vx, e.x))
_add("hessian of a vector", "hessian", SH, lambda e, o: functools.partial(sg.hessian, e.vx, e.x))
_add("hvp of a vector", "hvp", SH, lambda e, o: functools.partial(sg.hvp, e.vx, e.v, np.ones(3)))
_add("grad with respect to a string", "grad", SE, lambda e, o: functools.partial(sg.grad, e.f, "x"))
_add("grad with respect to nothing", "grad", SE, lambda e, o: functools.partial(sg.grad, e.f, []))
_add("grad of a number", "grad", SE, lambda e, o: functools.partial(sg.grad, 3.0, e.x))
_add("grad across two graphs", "grad", SE, lambda e, o: functools.partial(sg.grad, e.f, e.other))
_add("hvp with a direction of the wrong shape", "hvp", SH,
     lambda e, o: functools.partial(sg.hvp, e.fv, e.v, np.ones(4)))
_add("hvp with too few directions", "hvp", SE,
     lambda e, o: functools.partial(sg.hvp, e.fv, [e.v, e.x], [np.ones(3)]))
_add("jvp with a tangent of the wrong shape", "jvp", SH,
     lambda e, o: functools.partial(sg.jvp, e.vx, e.v, np.ones(4)))
_add("vjp with a cotangent of the wrong shape", "vjp", SH,
     lambda e, o: functools.partial(sg.vjp, e.vx, e.v, np.ones(4)))
_add("grad through a rule that returns too few gradients", "grad defop", SE,
     lambda e, o: functools.partial(sg.grad, sg.sum(o.too_few(e.vx)), [e.x, e.v]))
_add("grad through a rule that returns the wrong shape", "grad defop", SE,
     lambda e, o: functools.partial(sg.grad, sg.sum(o.wrong_shape(e.vx)), [e.x, e.v]))
_add("grad through a rule that returns a string", "grad defop", SE,
     lambda e, o: functools.partial(sg.grad, sg.sum(o.not_expr(e.vx)), [e.x, e.v]))
_add("hessian through a custom rule with too few gradients", "hessian custom_gradient", SE,
     lambda e, o: functools.partial(sg.hessian, sg.sum(sg.custom_gradient(
         e.vx * e.y, [e.v, e.y], lambda g, out, v, y: [g * y])), [e.v, e.y]))
_add("grad through a custom rule giving the wrong shape", "grad custom_gradient", SE,
     lambda e, o: functools.partial(sg.grad, sg.sum(sg.custom_gradient(
         e.vx, [e.v], lambda g, out, v: [sg.sum(g)])), e.v))
_add("grad through a custom rule giving a string", "grad custom_gradient", SE,
     lambda e, o: functools.partial(sg.grad, sg.sum(sg.custom_gradient(
         e.vx, [e.v], lambda g, out, v: ["g"])), e.v))
_add("grad through a custom rule returning one expression, not a list", "grad custom_gradient",
     SE, lambda e, o: functools.partial(sg.grad, sg.sum(sg.custom_gradient(
         e.vx, [e.v], lambda g, out, v: g)), e.v))

# compiling and calling
_add("compile with an input that is not a variable", "compile", SE,
     lambda e, o: functools.partial(sg.compile, e.f, inputs=[e.x2, e.y]))
_add("compile with a variable missing from the inputs", "compile", SE,
     lambda e, o: functools.partial(sg.compile, e.f, inputs=[e.x]))
_add("compile with an input listed twice", "compile", SE,
     lambda e, o: functools.partial(sg.compile, e.f, inputs=[e.x, e.y, e.x]))
_add("compile with inputs that are not a list", "compile", SE,
     lambda e, o: functools.partial(sg.compile, e.f, inputs=5))
_add("compile of nothing", "compile", SE, lambda e, o: functools.partial(sg.compile, []))
_add("compile of a string", "compile", SE, lambda e, o: functools.partial(sg.compile, "x * y"))
_add("compile for an unknown backend", "compile", SE,
     lambda e, o: functools.partial(sg.compile, e.f, backend="fortran"))
_add("compile under a keyword name", "compile", SE,
     lambda e, o: functools.partial(sg.compile, e.f, name="def"))
_add("compile under a reserved name", "compile", SE,
     lambda e, o: functools.partial(sg.compile, e.f, name="np"))
_add("compile under a name that is not a string", "compile", SE,
     lambda e, o: functools.partial(sg.compile, e.f, name=3))
_add("compiled function given too many arguments", "CompiledFunction", SE,
     lambda e, o: functools.partial(e.fn, 1.0, 2.0, e.point["W"], e.point["v"], 5.0))
_add("compiled function given an argument of the wrong shape", "CompiledFunction", SH,
     lambda e, o: functools.partial(e.fn, 1.0, 2.0, np.ones((3, 2)), e.point["v"]))
_add("compiled function given an unknown keyword", "CompiledFunction", SE,
     lambda e, o: functools.partial(e.fn, 1.0, 2.0, e.point["W"], e.point["v"], w=1.0))
_add("compiled function missing an argument", "CompiledFunction", SE,
     lambda e, o: functools.partial(e.fn, 1.0, 2.0, e.point["W"]))
_add("check_grad without a value for a variable", "check_grad", SE,
     lambda e, o: functools.partial(sg.check_grad, e.f, {"x": 1.0}))
# the values are only checked when the gradient has been built... unless checked first
_add("check_grad with a value of the wrong shape", "check_grad", SH,
     lambda e, o: functools.partial(sg.check_grad, e.fv, {"x": 1.0, "W": np.ones((3, 2)),
                                                         "v": np.ones(3)}))
_add("check_grad with respect to a variable f does not use", "check_grad", SE,
     lambda e, o: functools.partial(sg.check_grad, e.f, {"x": 1.0, "y": 2.0}, wrt=e.q))
_add("check_grad with respect to an expression", "check_grad", SE,
     lambda e, o: functools.partial(sg.check_grad, e.f, {"x": 1.0, "y": 2.0}, wrt=e.x2))
_add("check_grad of a vector", "check_grad", SH,
     lambda e, o: functools.partial(sg.check_grad, e.vx, {"x": 1.0, "v": np.ones(3)}))
_add("check_grad of a number", "check_grad", SE,
     lambda e, o: functools.partial(sg.check_grad, 1.0, {}))
_add("check_grad with a step of zero", "check_grad", SE,
     lambda e, o: functools.partial(sg.check_grad, e.f, {"x": 1.0, "y": 2.0}, step=0.0))
_add("check_grad with values that are not a mapping", "check_grad", SE,
     lambda e, o: functools.partial(sg.check_grad, e.f, [1.0, 2.0]))

# showing the graph
_add("draw to an unknown picture format", "draw", SE,
     lambda e, o: functools.partial(sg.draw, e.f, str(e.tmp / "graph.txt")))
_add("draw to a path that is not a path", "draw", SE, lambda e, o: functools.partial(sg.draw, e.f, 5))
_add("draw with a value of the wrong shape", "draw", SH,
     lambda e, o: functools.partial(sg.draw, e.vx, str(e.tmp / "graph.svg"),
                                    at={"x": 1.0, "v": np.ones(4)}))
_add("to_dot of a string", "to_dot", SE, lambda e, o: functools.partial(sg.to_dot, "x * y"))
_add("to_dot with a variable missing from the inputs", "to_dot", SE,
     lambda e, o: functools.partial(sg.to_dot, e.f, inputs=[e.x]))
_add("to_dot without a value for a variable", "to_dot", SE,
     lambda e, o: functools.partial(sg.to_dot, e.f, at={"x": 1.0}))
_add("to_dot with values that are not a mapping", "to_dot", SE,
     lambda e, o: functools.partial(sg.to_dot, e.f, at=[1.0, 2.0]))
_add("show_graph with an input that is not a variable", "show_graph", SE,
     lambda e, o: functools.partial(sg.show_graph, e.f, inputs=[e.x2, e.y]))
_add("show_graph with a value of the wrong shape", "show_graph", SH,
     lambda e, o: functools.partial(sg.show_graph, e.vx, at={"x": 1.0, "v": np.ones(4)}))
_add("graph_stats of a string", "graph_stats", SE,
     lambda e, o: functools.partial(sg.graph_stats, "x * y"))
_add("graph_stats of nothing", "graph_stats", SE, lambda e, o: functools.partial(sg.graph_stats, []))
_add("graph_stats with an input that is not a variable", "graph_stats", SE,
     lambda e, o: functools.partial(sg.graph_stats, e.f, inputs=[e.x2]))
_add("use_graph of something that is not a Graph", "use_graph", SE,
     lambda e, o: lambda: sg.use_graph(5).__enter__())

# issue 18: sinc, casts
_add("sinc of a string", "sinc", SE, lambda e, o: functools.partial(sg.sinc, "text"))
_add("astype to a dtype symgrad lacks", "astype", AE,
     lambda e, o: functools.partial(sg.astype, e.v, "complex128"))
_add("astype to something that is not a dtype", "astype", AE,
     lambda e, o: functools.partial(sg.astype, e.v, "float99"))
_add("astype with copy that is not a bool", "astype", AE,
     lambda e, o: functools.partial(sg.astype, e.v, "float32", copy="yes"))
_add("a boolean mask of another shape than its axes", "Expr", SH,
     lambda e, o: lambda: e.W[np.array([True, False, True])])
# convolution and pooling
_add("conv with filters of the wrong channels", "conv", SH,
     lambda e, o: functools.partial(sg.conv, e.T3, sg.const(np.ones((1, 3, 2)))))
_add("conv with a bias of the wrong length", "conv", SH,
     lambda e, o: functools.partial(sg.conv, e.T3, sg.const(np.ones((3, 2, 2))), e.u4))
_add("conv with padding 'same' and a stride", "conv", AE,
     lambda e, o: functools.partial(sg.conv, e.T3, sg.const(np.ones((3, 2, 2))), stride=2,
                                    padding="same"))
_add("conv with a stride of zero", "conv", AE,
     lambda e, o: functools.partial(sg.conv, e.T3, sg.const(np.ones((3, 2, 2))), stride=0))
_add("max_pool with padding over half the kernel", "max_pool", AE,
     lambda e, o: functools.partial(sg.max_pool, e.T3, 2, padding=2))
_add("max_pool of a window longer than the input", "max_pool", SH,
     lambda e, o: functools.partial(sg.max_pool, e.T3, 3))
_add("avg_pool with a kernel of no length", "avg_pool", AE,
     lambda e, o: functools.partial(sg.avg_pool, e.T3, 0))
_add("convolve of a matrix", "convolve", SH, lambda e, o: functools.partial(sg.convolve, e.W, e.v))
_add("convolve in an unknown mode", "convolve", AE,
     lambda e, o: functools.partial(sg.convolve, e.u4, e.v, mode="middle"))
_add("correlate of vectors of a named length", "correlate", SH,
     lambda e, o: functools.partial(sg.correlate, e.X[:, 0], e.v))

# the decompositions of issue 19 (ops/decompositions.py)
_add("eigh of a vector", "eigh", SH, lambda e, o: functools.partial(sg.eigh, e.v))
_add("eigh with UPLO neither L nor U", "eigh", AE,
     lambda e, o: functools.partial(sg.eigh, e.W[:, :2], UPLO="X"))
_add("eigvalsh of a wide matrix", "eigvalsh", SH, lambda e, o: functools.partial(sg.eigvalsh, e.W))
_add("svd of matrices with a named length", "svd", SH, lambda e, o: functools.partial(sg.svd, e.X))
_add("svd of a wide matrix with full_matrices", "svd", AE,
     lambda e, o: functools.partial(sg.svd, e.W))
_add("svdvals of a vector", "svdvals", SH, lambda e, o: functools.partial(sg.svdvals, e.v))
_add("qr of a mode NumPy lacks", "qr", AE, lambda e, o: functools.partial(sg.qr, e.W, mode="raw"))
_add("qr complete of a tall matrix", "qr", AE,
     lambda e, o: functools.partial(sg.qr, e.W.T, mode="complete"))
_add("expm of a wide matrix", "expm", SH, lambda e, o: functools.partial(sg.expm, e.W))
_add("norm 2 of a matrix over a named axis", "norm", SH,
     lambda e, o: functools.partial(sg.norm, e.X, ord=2))
_add("compress by a condition of another length than the axis", "compress", SH,
     lambda e, o: functools.partial(sg.compress, e.v > 0.0, e.W, axis=0, length="k"))
_add("compress by a symbolic condition without a length", "compress", SE,
     lambda e, o: functools.partial(sg.compress, e.v > 0.0, e.W, axis=1))
_add("sparsity of a matrix", "sparsity", SH,
     lambda e, o: functools.partial(sg.sparsity, e.W * 2.0, e.W))
_add("sparsity with respect to an expression", "sparsity", SE,
     lambda e, o: functools.partial(sg.sparsity, e.v, e.v * 2.0))
_add("sparse jacobian of a matrix", "jacobian", SH,
     lambda e, o: functools.partial(sg.jacobian, e.W * 2.0, e.W, sparse=True))
_add("sparse hessian of a vector", "hessian", SH,
     lambda e, o: functools.partial(sg.hessian, e.v * 2.0, e.v, sparse=True))
_add("draw_sparsity of an expression that is no sparse result", "draw_sparsity", SE,
     lambda e, o: functools.partial(sg.draw_sparsity, e.v * 2.0, "spy.png"))

# Public callables with no entry above, and why.
EXEMPT = {
    "default_graph": "takes no arguments and always returns a graph",
    "Graph": "makes a new, empty graph: there is no existing graph to spoil",
    "SymgradError": "an exception class, not a call",
    "ParseError": "an exception class, not a call",
    "ShapeError": "an exception class, not a call",
    "ArgumentError": "an exception class, not a call",
    "UndefinedGradientError": "an exception class, not a call",
    "DisconnectedWarning": "a warning class, not a call",
}


def test_every_public_call_that_can_fail_has_a_failure_case():
    public = {name for name in sg.__all__ if callable(getattr(sg, name))}
    covered = {name for c in CASES for name in c.covers}
    assert covered <= public, f"cases name calls that are not public: {covered - public}"
    assert set(EXEMPT) <= public
    assert not set(EXEMPT) & covered, "an exempt call has cases: drop its exemption"
    assert public - covered - set(EXEMPT) == set(), "public calls without a failure case"


def test_case_names_are_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("nested", [False, True], ids=["current graph", "second graph"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_failing_call_leaves_the_graph_exactly_as_it_was(case, nested, user_ops, tmp_path):
    outer = sg.default_graph()
    outer_env = build_env(tmp_path)
    outer_before, outer_key = snapshot(outer), outer.next_key
    with sg.use_graph() if nested else _same_graph() as graph:
        env = build_env(tmp_path) if nested else outer_env
        call = case.make(env, user_ops)
        before, next_key = snapshot(graph), graph.next_key
        with pytest.raises(case.error) as raised:
            call()
        assert isinstance(raised.value, sg.SymgradError)
        assert_unchanged(graph, before, next_key)
        assert_compiled_still_works(env)
        # the graph still works: hash-consing finds the old nodes, new ones get fresh keys
        assert (sg.sin(env.x) * env.y).node == env.f.node
        assert sg.grad(env.f, env.x).graph is graph
    if nested:
        assert_unchanged(outer, outer_before, outer_key)
        assert_compiled_still_works(outer_env)
    assert list(tmp_path.iterdir()) == []           # a failed draw writes no file


class _same_graph:
    def __enter__(self):
        return sg.default_graph()

    def __exit__(self, *exc):
        return False


def test_errors_that_are_not_symgrads_also_roll_back():
    """A user's rule or shape function that raises its own exception: it reaches the caller
    unchanged, and the graph is as it was."""
    x, v = sg.var("x"), sg.var("v", shape=(3,))

    def rule(g, out, v):
        raise ZeroDivisionError("the user's rule broke")
    f = sg.sum(sg.custom_gradient(v * x, [v], rule)) * sg.exp(x)
    graph = sg.default_graph()
    before, key = snapshot(graph), graph.next_key
    with pytest.raises(ZeroDivisionError):
        sg.grad(f, [x, v])
    assert_unchanged(graph, before, key)


def test_a_failed_custom_gradient_does_not_keep_its_rule():
    from symgrad.ops import custom
    rules = dict(custom._RULES)
    with pytest.raises(sg.SymgradError):
        sg.custom_gradient(sg.var("x"), [_other_graph_variable()], lambda g, out, x: [g])
    with pytest.raises(sg.SymgradError):
        sg.custom_gradient(sg.var("x"), ["not an operand"], lambda g, out, x: [g])
    assert custom._RULES == rules


# == 4. several threads on one graph ===============================================================

THREADS = 8
ROUNDS = 3


@pytest.fixture
def fast_switching():
    """Switch threads every 10 microseconds instead of every 5 ms, so that their steps interleave
    finely and a missing lock shows up (it does: with Graph.lock made a no-op, these tests fail)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(interval)


def check_invariants(graph):
    """What every Graph must satisfy, however its nodes were added (and some rolled back)."""
    nodes = set(graph)
    keys = set()
    for node, data in graph.nodes(data=True):
        inputs = data["inputs"]
        assert all(operand < node for operand in inputs), "keys are not in topological order"
        assert set(graph.predecessors(node)) == set(inputs)
        for operand in set(inputs):
            positions = tuple(p for p, i in enumerate(inputs) if i == operand)
            assert graph[operand][node]["positions"] == positions
        assert data["key"][:2] == (data["op"], inputs)
        assert graph._cons[data["key"]] == node, "hash-cons table out of step with the nodes"
        keys.add(data["key"])
        # a derivative node is of order 1 or more, and no node is of lower order than what
        # it reads (constants aside: they are shared by every order)
        assert not data["derivative"] or data["order"] > 0
        assert all(data["order"] >= graph.nodes[i]["order"] for i in inputs
                   if graph.nodes[i]["op"] != "const")
        assert data["grad_of"] is None or data["grad_of"] in nodes
    assert len(keys) == len(nodes), "two nodes with the same op, operands and attributes"
    assert all(u < v for u, v in graph.edges)
    assert len(graph._cons) == len(nodes) and set(graph._cons.values()) == nodes
    assert graph._variables == {data["attrs"]["name"]: node for node, data in
                                graph.nodes(data=True) if data["op"] == "var"}
    assert not nodes or graph.next_key > max(nodes)
    assert set(graph.name_hints) <= nodes and set(graph.rewrites) <= nodes
    # no block is left open, nothing is left stamped as a derivative
    assert (graph._atomic_depth, graph._undo, graph._order, graph._grad_of) == (0, [], 0, None)


def run_together(work, count=THREADS):
    """Run ``work(k)`` on ``count`` threads released at once; their results, or the first error."""
    import threading
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def run(k):
        try:
            barrier.wait()
            results[k] = work(k)
        except BaseException as error:      # noqa: BLE001 (re-raised in the main thread)
            errors.append(error)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def model(c):
    """f = c sum(tanh(W v)) + sin(c x) sum(v^2) and its derivatives, by hand in NumPy."""
    def at(x, v, W):
        t = np.tanh(W @ v)
        s = 1.0 - t ** 2
        f = c * np.sum(t) + np.sin(c * x) * np.sum(v * v)
        gW = c * np.outer(s, v)
        gv = c * W.T @ s + 2.0 * np.sin(c * x) * v
        gx = c * np.cos(c * x) * np.sum(v * v)
        hxx = -c * c * np.sin(c * x) * np.sum(v * v)

        def hvp_v(d):       # d/dv of gv . d: c W^T (-2 t s (W d)) + 2 sin(c x) d
            return c * W.T @ (-2.0 * t * s * (W @ d)) + 2.0 * np.sin(c * x) * d
        return f, gW, gv, gx, hxx, hvp_v
    return at


def build_model(graph, c):
    with sg.use_graph(graph):
        x, v, W = sg.var("x"), sg.var("v", shape=(3,)), sg.var("W", shape=(3, 3))
        # the same c in several threads builds the very same nodes: hash-consing under contention
        return x, v, W, c * sg.sum(sg.tanh(W @ v)) + sg.sin(c * x) * sg.sum(v * v)


def point_for(k, round_):
    rng = np.random.default_rng(1000 * round_ + k)
    return rng.uniform(-1, 1), rng.uniform(-1, 1, 3), rng.uniform(-1, 1, (3, 3)), \
        rng.uniform(-1, 1, 3)


def test_threads_building_differentiating_and_compiling_on_one_graph(fast_switching):
    graph = sg.Graph()
    kept = []           # every expression a thread returned, checked again at the end

    def work(k, round_):
        c = float(1 + k % 3)
        x, v, W, f = build_model(graph, c)
        gW, gv, gx = sg.grad(f, [W, v, x])
        # a failing call between two successful ones must roll back only its own nodes
        with pytest.raises(sg.UndefinedGradientError):
            sg.grad(sg.exp(f) * c, [x, graph_variable(graph, "unused")])
        with sg.use_graph(graph), pytest.raises(sg.ShapeError):
            sg.parse(f"exp(x * {k + round_}) + tanh(W @ v) + u4", shapes={"u4": (4,)})
        hxx = sg.hessian(f, x)
        x0, v0, W0, d = point_for(k, round_)
        hv = sg.hvp(f, v, d)
        outputs = [f, gW, gv, gx, hxx, hv]
        fn = sg.compile(outputs, inputs=[x, v, W], optimize=bool(k % 2))
        got = fn(x0, v0, W0)
        f_, gW_, gv_, gx_, hxx_, hvp_ = model(c)(x0, v0, W0)
        for value, want in zip(got, [f_, gW_, gv_, gx_, hxx_, hvp_(d)]):
            np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-14)
        return c, outputs, (x, v, W), (x0, v0, W0, d)

    for round_ in range(ROUNDS):
        kept.extend(run_together(lambda k: work(k, round_)))
        check_invariants(graph)
    # every thread's expressions survived the others' failures and still compute the same values
    for c, outputs, inputs, (x0, v0, W0, d) in kept:
        assert all(o.node in graph for o in outputs)
        got = sg.compile(outputs, inputs=list(inputs), optimize=False)(x0, v0, W0)
        f_, gW_, gv_, gx_, hxx_, hvp_ = model(c)(x0, v0, W0)
        for value, want in zip(got, [f_, gW_, gv_, gx_, hxx_, hvp_(d)]):
            np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-14)


def graph_variable(graph, name):
    return sg.var(name, graph=graph)


def test_hessian_vector_products_agree_with_finite_differences_of_the_gradient():
    """The hand-derived hvp reference of the threads test, checked once against the gradient."""
    x0, v0, W0, d = point_for(0, 0)
    at = model(2.0)
    step = 1e-6
    finite = (at(x0, v0 + step * d, W0)[2] - at(x0, v0 - step * d, W0)[2]) / (2 * step)
    np.testing.assert_allclose(at(x0, v0, W0)[5](d), finite, rtol=1e-7, atol=1e-9)
    finite_x = (at(x0 + step, v0, W0)[3] - at(x0 - step, v0, W0)[3]) / (2 * step)
    np.testing.assert_allclose(at(x0, v0, W0)[4], finite_x, rtol=1e-7, atol=1e-9)


def test_threads_building_the_same_chain_get_the_same_nodes(fast_switching):
    """Eight threads build one 300-step chain at once: every step is one node for all of them,
    and the graph holds exactly what one thread alone would have built."""
    graph = sg.Graph()

    def chain(k):
        with sg.use_graph(graph):
            e = sg.var("x")
            steps = []
            for i in range(300):
                e = sg.sin(e) * 0.5 + e * float(i % 7)
                steps.append(e.node)
            return steps, sg.grad(e, sg.var("x")).node

    results = run_together(chain)
    assert all(result == results[0] for result in results)
    check_invariants(graph)
    alone = sg.Graph()
    with sg.use_graph(alone):
        e = sg.var("x")
        for i in range(300):
            e = sg.sin(e) * 0.5 + e * float(i % 7)
        sg.grad(e, sg.var("x"))
    assert graph.number_of_nodes() == alone.number_of_nodes()
    assert graph.number_of_edges() == alone.number_of_edges()


def test_threads_compiling_the_same_outputs_at_once(fast_switching):
    graph = sg.Graph()
    x, v, W, f = build_model(graph, 1.5)
    outputs = [f, *sg.grad(f, [W, v, x]), sg.hessian(f, v)]
    nodes = graph.number_of_nodes()
    x0, v0, W0, _ = point_for(0, 7)
    compiled = run_together(lambda k: sg.compile(outputs, inputs=[x, v, W],
                                                 optimize=k % 2 == 0))
    assert graph.number_of_nodes() == nodes          # compiling adds nothing to the graph
    assert len({fn.source for fn in compiled[0::2]}) == 1
    assert len({fn.source for fn in compiled[1::2]}) == 1
    want = model(1.5)(x0, v0, W0)
    for fn in compiled:
        got = fn(x0, v0, W0)
        for value, expected in zip(got, want[:4]):
            np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-14)
    check_invariants(graph)


def test_failing_threads_never_roll_back_another_threads_nodes(fast_switching):
    """Half the threads fail over and over (after building nodes each time), half build; the
    graph ends up holding exactly the builders' nodes, as if the failures had never run."""
    def declare(graph):
        """The variables, and the functions the failing threads differentiate (built first:
        only what a failing call itself builds must vanish)."""
        with sg.use_graph(graph):
            x, v, W = sg.var("x"), sg.var("v", shape=(3,)), sg.var("W", shape=(3, 3))
            sg.var("u4", shape=(4,))
            return x, v, W, [sg.sum(sg.tanh(W @ v)) * float(i + 1) for i in range(40)]

    def build(graph, k, i):
        with sg.use_graph(graph):
            f = sg.parse(f"sum(tanh(W @ v) * {k}) + sin(x * {i})")
        return [f, *sg.grad(f, [v, x])]

    graph = sg.Graph()
    x, v, W, doomed = declare(graph)

    def work(k):
        if k % 2 == 0:
            return [build(graph, k, i) for i in range(40)]
        for i in range(40):
            with sg.use_graph(graph), pytest.raises(sg.ShapeError):
                sg.parse(f"sin(x * {i}) * exp(x) + tanh(W @ v) * {k} + u4")
            with pytest.raises(sg.UndefinedGradientError):
                sg.hessian(doomed[i], [v, x])
        return None

    results = run_together(work)
    check_invariants(graph)
    alone = sg.Graph()
    x, v, W, _ = declare(alone)
    for k in range(0, THREADS, 2):
        for i in range(40):
            build(alone, k, i)
    assert graph.number_of_nodes() == alone.number_of_nodes()
    kinds = lambda g: sorted((d["op"], d["shape"]) for _, d in g.nodes(data=True))  # noqa: E731
    assert kinds(graph) == kinds(alone)
    W0, v0 = np.eye(3) * 0.5, np.array([0.1, -0.4, 0.8])
    t = np.tanh(W0 @ v0)
    for k, built in enumerate(results):
        for i, (f, gv, gx) in enumerate(built or []):
            value, grad_v, grad_x = sg.compile([f, gv, gx], optimize=False)(W0, v0, 0.3)
            np.testing.assert_allclose(value, k * np.sum(t) + np.sin(0.3 * i), rtol=1e-13)
            np.testing.assert_allclose(grad_v, k * W0.T @ (1 - t ** 2), rtol=1e-13)
            np.testing.assert_allclose(grad_x, i * np.cos(0.3 * i), rtol=1e-13, atol=1e-15)


def test_each_thread_builds_into_its_own_use_graph(fast_switching):
    """use_graph is per thread (a context variable): threads in their own graphs never see each
    other's, and none of them builds into the process-wide default graph."""
    from symgrad.graph import _DEFAULT_GRAPH
    before = snapshot(_DEFAULT_GRAPH)

    def work(k):
        with sg.use_graph() as graph:
            x = sg.var("x", shape=(k + 1,))         # the same name, another shape in each graph
            f = sg.sum(sg.sin(x) * float(k))
            g = sg.grad(f, x)
            assert sg.default_graph() is graph and f.graph is graph and g.graph is graph
            check_invariants(graph)
            return sg.compile(g, inputs=[x])(np.arange(k + 1.0)), k

    for value, k in run_together(work):
        np.testing.assert_allclose(value, k * np.cos(np.arange(k + 1.0)), rtol=1e-15)
    assert snapshot(_DEFAULT_GRAPH) == before


# == 5. scale: 100,000 nodes, nothing recursive ==================================================

CHAIN_STEPS = 26_200        # three nodes a step: about 78,600 nodes, each depending on the last
PYRAMID_WIDTH = 120         # 120 * 121 / 2 positions, three nodes each: about 21,800 nodes
STEP = 1e-4


def chain_reference(x0, steps):
    """y <- y + STEP sin(y) with its first and second derivatives by y_0 (forward mode, by hand):
    y' <- y' (1 + STEP cos y), y'' <- y'' (1 + STEP cos y) - STEP sin(y) y'^2."""
    y, d1, d2 = x0, 1.0, 0.0
    for _ in range(steps):
        factor = 1.0 + STEP * math.cos(y)
        d2 = d2 * factor - STEP * math.sin(y) * d1 * d1
        d1 = d1 * factor
        y = y + STEP * math.sin(y)
    return y, d1, d2


def pyramid_reference(a):
    """Layers L_{k+1} = sin(L_k[:-1]) + 0.5 L_k[1:] down to one entry; that entry and its gradient
    by L_0 = a (reverse mode, by hand: each entry feeds two of the next layer)."""
    layers = [np.asarray(a, dtype=float)]
    while len(layers[-1]) > 1:
        last = layers[-1]
        layers.append(np.sin(last[:-1]) + 0.5 * last[1:])
    adjoint = np.ones(1)
    for last in reversed(layers[:-1]):
        below = np.zeros(len(last))
        below[:-1] += adjoint * np.cos(last[:-1])
        below[1:] += adjoint * 0.5
        adjoint = below
    return layers[-1][0], adjoint


def test_a_100000_node_graph_differentiates_compiles_and_evaluates():
    """An unrolled recurrence (depth ~78,000) plus a wide pyramid of scalar nodes that each feed
    two others: ~100,000 forward nodes, ~270,000 with the gradient, compiled without the
    optimiser and checked against NumPy loops. Anything recursive over the graph would exceed
    the recursion limit many times over; the limit is left as it is."""
    limit = sys.getrecursionlimit()
    x, a = sg.var("x"), sg.var("a", shape=(PYRAMID_WIDTH,))
    step = sg.const(STEP)
    y = x
    for _ in range(CHAIN_STEPS):
        y = y + sg.sin(y) * step
    layer = [a[i] for i in range(PYRAMID_WIDTH)]
    while len(layer) > 1:
        layer = [sg.sin(p) + q * 0.5 for p, q in zip(layer[:-1], layer[1:])]
    f = y + layer[0]
    graph = f.graph
    forward = graph.number_of_nodes()
    assert forward >= 100_000
    gx, ga = sg.grad(f, [x, a])
    assert graph.number_of_nodes() >= 2.5 * forward
    fn = sg.compile([f, gx, ga], inputs=[x, a], optimize=False)
    a0 = np.linspace(-1.0, 1.0, PYRAMID_WIDTH)
    value, slope, gradient = fn(0.3, a0)
    y_end, d1, _ = chain_reference(0.3, CHAIN_STEPS)
    top, adjoint = pyramid_reference(a0)
    assert value == pytest.approx(y_end + top, rel=1e-12)
    assert slope == pytest.approx(d1, rel=1e-10)
    np.testing.assert_allclose(gradient, adjoint, rtol=1e-10, atol=1e-12)
    # keys still in topological order (the full check_invariants would cost a second here)
    assert all(i < node for node, data in graph.nodes(data=True) for i in data["inputs"])
    assert sys.getrecursionlimit() == limit


def test_a_deep_hessian_vector_product_and_the_optimiser_at_depth():
    """Second order through a 1,500-step recurrence (4,500 forward nodes, 30,000 with both
    derivatives, depth 4,500): the hvp builds the gradient, then the gradient of its inner
    product, on the same graph. The optimiser, too slow for the 100,000-node test (about 30 s
    there), rewrites the value and gradient at this depth."""
    limit = sys.getrecursionlimit()
    steps = 1_500
    x = sg.var("x")
    y = x
    for _ in range(steps):
        y = y + sg.sin(y) * STEP
    h = sg.hvp(y, x, 1.5)
    g = sg.grad(y, x)
    value, slope, curvature = sg.compile([y, g, h], inputs=[x], optimize=False)(0.3)
    y_end, d1, d2 = chain_reference(0.3, steps)
    assert value == pytest.approx(y_end, rel=1e-13)
    assert slope == pytest.approx(d1, rel=1e-12)
    assert curvature == pytest.approx(1.5 * d2, rel=1e-10)
    value, slope = sg.compile([y, g], inputs=[x], optimize=True)(0.3)
    assert value == pytest.approx(y_end, rel=1e-13)
    assert slope == pytest.approx(d1, rel=1e-12)
    assert sys.getrecursionlimit() == limit


def test_the_chain_reference_agrees_with_finite_differences():
    """The hand-written forward-mode reference, checked once by central differences."""
    h = 1e-5
    steps = 2_000
    _, d1, d2 = chain_reference(0.3, steps)
    plus, minus = chain_reference(0.3 + h, steps), chain_reference(0.3 - h, steps)
    assert d1 == pytest.approx((plus[0] - minus[0]) / (2 * h), rel=1e-8)
    assert d2 == pytest.approx((plus[1] - minus[1]) / (2 * h), rel=1e-6)
    a0 = np.linspace(-1.0, 1.0, 12)
    _, adjoint = pyramid_reference(a0)
    for i in range(12):
        up, down = a0.copy(), a0.copy()
        up[i] += h
        down[i] -= h
        finite = (pyramid_reference(up)[0] - pyramid_reference(down)[0]) / (2 * h)
        assert adjoint[i] == pytest.approx(finite, rel=1e-7, abs=1e-10)


# == 6. errors that help ===========================================================================


@pytest.fixture
def shaped():
    e = SimpleNamespace()
    e.x, e.v, e.u4 = sg.var("x"), sg.var("v", shape=(3,)), sg.var("u4", shape=(4,))
    e.W, e.T3 = sg.var("W", shape=(2, 3)), sg.var("T3", shape=(2, 2, 2))
    e.X = sg.var("X", shape=("n", 3))
    return e


# (op the message must start with, operand shapes it must list, the call: one line each, so
# that the line the message points at is the lambda's own)
SHAPE_MESSAGES = [
    ("at.set", [(3,), (4,)], lambda e: e.v.at[0].set(e.u4)),
    ("at.add", [(2, 3), (2, 2, 2)], lambda e: e.W.at[:, 1:].add(np.ones((2, 2, 2)))),
    ("add", [(3,), (4,)], lambda e: e.v + e.u4),
    ("subtract", [(4,), (3,)], lambda e: e.u4 - e.v),
    ("multiply", [(3,), (4,)], lambda e: e.v * e.u4),
    ("divide", [(3,), (4,)], lambda e: e.v / e.u4),
    ("power", [(3,), (4,)], lambda e: e.v ** e.u4),
    ("less", [(3,), (4,)], lambda e: e.v < e.u4),
    ("add", [(3,), (4,)], lambda e: e.v + np.ones(4)),
    ("matmul", [(2, 3), (4,)], lambda e: e.W @ e.u4),
    ("matmul", [(), (3,)], lambda e: sg.matmul(e.x, e.v)),
    ("dot", [(2, 2, 2), (3,)], lambda e: sg.dot(e.T3, e.v)),
    ("einsum", [(2, 3), (4,)], lambda e: sg.einsum("ij,j->i", e.W, e.u4)),
    ("einsum", [(2, 3)], lambda e: sg.einsum("i.j", e.W)),
    ("einsum", [(2, 3)], lambda e: sg.einsum("i1", e.W)),
    ("einsum", [(2, 3)], lambda e: sg.einsum("ijk", e.W)),
    ("einsum", [(3,)], lambda e: sg.einsum(e.v, [99])),
    ("einsum", [(2, 3)], lambda e: sg.einsum("i-j", e.W)),
    ("einsum", [(2, 3)], lambda e: sg.einsum("ij,jk", e.W)),
    ("einsum", [(1,) * 53], lambda e: sg.einsum("...", np.ones((1,) * 53) * e.x)),
    ("einsum", [(2, 3), (2, 3)], lambda e: sg.einsum("...j,...j->j", e.W, e.W)),
    ("einsum", [(2, 3)], lambda e: sg.einsum("ij->ii", e.W)),
    ("einsum", [(2, 3)], lambda e: sg.einsum("ij->iq", e.W)),
    ("einsum", [(2, 3)], lambda e: sg.einsum("ii", e.W)),
    ("einsum", [], lambda e: sg.einsum("")),
    ("tensordot", [(2, 3), (4,)], lambda e: sg.tensordot(e.W, e.u4, 1)),
    ("tensordot", [(2, 3), (3,)], lambda e: sg.tensordot(e.W, e.v, ([5], [0]))),
    ("tensordot", [(3,), (3,)], lambda e: sg.tensordot(e.v, e.v, 2)),
    ("tensordot", [(2, 3), (3,)], lambda e: sg.tensordot(e.W, e.v, (1, 2, 3))),
    ("tensordot", [(2, 3), (2, 3)], lambda e: sg.tensordot(e.W, e.W, ([0, 0], [0, 1]))),
    ("kron", [("n", 3), (2, 3)], lambda e: sg.kron(e.X, e.W)),
    ("cross", [(4,), (4,)], lambda e: sg.cross(e.u4, e.u4)),
    ("inner", [(3,), (4,)], lambda e: apply("inner", e.v, e.u4)),
    ("index_add", [(4,), (4,)],
     lambda e: apply("index_add", e.u4, e.u4, index=(("slice", 1, 3, None),), keep=0)),
    ("maximum", [(3,), (4,)], lambda e: sg.maximum(e.v, e.u4)),
    ("minimum", [(3,), (4,)], lambda e: sg.minimum(e.v, e.u4)),
    ("where", [(4,), (3,), ()], lambda e: sg.where(e.u4 > 0.0, e.v, 0.0)),
    ("clip", [(3,), (), (4,)], lambda e: sg.clip(e.v, 0.0, e.u4)),
    ("concatenate", [(3,), (2, 3)], lambda e: sg.concatenate([e.v, e.W])),
    ("concatenate", [], lambda e: sg.concatenate([])),
    ("concatenate", [(), ()], lambda e: sg.concatenate([e.x, e.x])),
    ("concatenate", [(2, 3), (2, 2)], lambda e: sg.concatenate([e.W, e.T3[0]], axis=0)),
    ("concatenate", [("n", 3), ("n", 3)], lambda e: sg.concatenate([e.X, e.X], axis=0)),
    ("reshape", [(3,)], lambda e: e.v.reshape(5)),
    ("reshape", [(2, 3)], lambda e: sg.reshape(e.W, (-1, -1))),
    ("reshape", [(3,)], lambda e: sg.reshape(e.v, (2, -1))),
    ("reshape", [(3,)], lambda e: sg.reshape(e.v, (1.5,))),
    ("transpose", [(2, 3)], lambda e: sg.transpose(e.W, (0, 0))),
    ("getitem", [(3,)], lambda e: e.v[3]),
    ("getitem", [(3,)], lambda e: e.v[0, 0]),
    ("getitem", [(3,)], lambda e: e.v[..., ...]),
    ("getitem", [(3,)], lambda e: e.v[::0]),
    ("getitem", [("n", 3)], lambda e: e.X[1:]),
    ("sum", [(3,)], lambda e: e.v.sum(axis=1)),
    ("sum", [(3,)], lambda e: sg.sum(e.v, axis="a")),
    ("mean", [(2, 3)], lambda e: e.W.mean(axis=(0, 0))),
    ("max", [(3,)], lambda e: sg.max(e.v, axis=-2)),
    ("min", [(3,)], lambda e: e.v.min(axis=2)),
    ("logsumexp", [(3,)], lambda e: sg.logsumexp(e.v, axis=1)),
    ("softmax", [()], lambda e: sg.softmax(e.x)),
    ("softmax", [(3,)], lambda e: sg.softmax(e.v, axis=None)),
    ("log_softmax", [(2, 3)], lambda e: sg.log_softmax(e.W, axis=3)),
    ("logsumexp", [(2, 3)], lambda e: sg.logsumexp(e.W, axis=1, b=e.u4)),
    ("average", [(2, 3)], lambda e: sg.average(e.W, axis=1, weights=np.ones(2))),
    ("diff", [()], lambda e: sg.diff(e.x)),
    ("norm", [(2, 2, 2)], lambda e: sg.norm(e.T3, ord=1)),
    ("norm", [(2, 2, 2)], lambda e: sg.norm(e.T3, 1, (0, 1, 2))),
    ("max", [(0,)], lambda e: sg.max(e.v[3:])),
    ("log_softmax", [(2, 0)], lambda e: sg.log_softmax(e.W[:, 3:])),
    ("getitem", [(2, 3)], lambda e: e.W[5, np.array([0])]),
    ("getitem", [(3,)], lambda e: e.v[np.array([0]), ..., ...]),
    ("getitem", [(2, 3)], lambda e: e.W[np.array([0]), 0, 1]),
    ("getitem", [(2, 3)], lambda e: e.W[:, np.array([0, 3])]),
    ("take_along_axis", [(2, 3), (2,)], lambda e: sg.take_along_axis(e.W, np.arange(2), axis=1)),
    ("take_along_axis", [(2, 3), (3, 1)],
     lambda e: sg.take_along_axis(e.W, np.zeros((3, 1), int), axis=1)),
    ("rel_shaped", [(3,), (4,)], lambda e, shaped_op: shaped_op(e.v, e.u4)),
    # NumPy's building and reshaping functions (ops/arrays.py)
    ("split", [("n", 3)], lambda e: sg.split(e.X, 3)),
    ("split", [(3,)], lambda e: sg.split(e.v, 2)),
    ("array_split", [(3,)], lambda e: sg.array_split(e.v, 0)),
    ("stack", [], lambda e: sg.stack([])),
    ("stack", [(3,), (4,)], lambda e: sg.stack([e.v, e.u4])),
    ("moveaxis", [(2, 3)], lambda e: sg.moveaxis(e.W, (0, 1), 0)),
    ("moveaxis", [(2, 3)], lambda e: sg.moveaxis(e.W, (0, 1), (0, 0))),
    ("fliplr", [(3,)], lambda e: sg.fliplr(e.v)),
    ("flipud", [()], lambda e: sg.flipud(e.x)),
    ("roll", [(2, 3)], lambda e: sg.roll(e.W, (1, 2), (0, 1, 0))),
    ("broadcast_to", [(3,)], lambda e: sg.broadcast_to(e.v, (4,))),
    ("tile", [("n", 3)], lambda e: sg.tile(e.X, (2, 1))),
    ("tile", [(3,)], lambda e: sg.tile(e.v, -1)),
    ("repeat", [(3,)], lambda e: sg.repeat(e.v, -2)),
    ("pad", [(2, 3)], lambda e: sg.pad(e.W, ((1, 2, 3),))),
    ("pad", [(3,)], lambda e: sg.pad(e.v, -1)),
    ("pad", [(0,)], lambda e: sg.pad(e.v[3:], 1, mode="edge")),
    ("diagonal", [(3,)], lambda e: sg.diagonal(e.v)),
    ("diagonal", [(2, 3)], lambda e: sg.diagonal(e.W, 0, 1, -1)),
    ("diag", [(2, 2, 2)], lambda e: sg.diag(e.T3)),
    ("triu", [(3,)], lambda e: sg.triu(e.v)),
    # order statistics (ops/order.py)
    ("sort", [()], lambda e: sg.sort(e.x)),
    ("argmax", [(0,)], lambda e: sg.argmax(e.v[3:])),
    ("median", [("n", 3)], lambda e: sg.median(e.X, axis=0)),
    ("quantile", [(0,)], lambda e: sg.quantile(e.v[3:], 0.5)),
    ("getitem", [(2, 3)], lambda e: e.W[np.array([True, False, True])]),
    ("getitem", [("n", 3)], lambda e: e.X[np.array([True, False])]),
    ("compress", [(3,), (2, 3)], lambda e: sg.compress(e.v > 0.0, e.W, axis=0, length="k")),
    ("compress", [(2, 3), (2, 3)], lambda e: sg.compress(e.W > 0.0, e.W, axis=0, length="k")),
    ("rollaxis", [(2, 3)], lambda e: sg.rollaxis(e.W, 0, -3)),
    ("vsplit", [(3,)], lambda e: sg.vsplit(e.v, 3)),
    ("rot90", [(3,)], lambda e: sg.rot90(e.v)),
    ("rot90", [(2, 3)], lambda e: sg.rot90(e.W, 1, (0, -2))),
    ("linspace", [(), (3,)], lambda e: sg.linspace(e.x, e.v, -2)),
    ("gradient", [(2, 3)], lambda e: sg.gradient(e.W, axis=(1, -1))),
    ("gradient", [(2, 3)], lambda e: sg.gradient(e.W, axis=0, edge_order=2)),
    ("det", [(3,)], lambda e: sg.det(e.v)),
    ("inv", [(2, 3)], lambda e: sg.inv(e.W)),
    ("cholesky", [("n", "n")], lambda e: sg.cholesky(e.X @ e.X.T)),
    ("solve", [(2, 2, 2), (3,)], lambda e: sg.solve(e.T3, e.v)),
    ("solve", [(2, 2, 2), ()], lambda e: sg.solve(e.T3, e.x)),
    ("pinv", [(3,)], lambda e: sg.pinv(e.v)),
    ("lstsq", [(2, 2, 2), (3,)], lambda e: sg.lstsq(e.T3, e.v)),
    ("lstsq", [("n", 3), (3,)], lambda e: sg.lstsq(e.X, e.v)),
    ("lstsq", [(2, 3), (3,)], lambda e: sg.lstsq(e.W, e.v)),
    ("multi_dot", [(2, 3)], lambda e: sg.multi_dot([e.W])),
    ("multi_dot", [(2, 3), (2, 2, 2)], lambda e: sg.multi_dot([e.W, e.T3])),
    ("conv", [(2, 3), (1, 2, 4)], lambda e: sg.conv(e.W, np.ones((1, 2, 4)))),
    ("conv", [(3,), (1, 1, 2)], lambda e: sg.conv(e.v, np.ones((1, 1, 2)))),
    ("conv", [(3, "n"), (1, 3, 1)], lambda e: sg.conv(e.X.T, np.ones((1, 3, 1)))),
    ("conv", [("n", 3), (1, 1, 1)], lambda e: sg.conv(e.X, np.ones((1, 1, 1)))),
    ("conv", [(2, 3), (2, "n", 1)], lambda e: sg.conv(e.W, sg.var("Wn", shape=(2, "n", 1)))),
    ("conv", [(2, 2, 2), (3, 1, 1)], lambda e: sg.conv(e.T3, np.ones((3, 1, 1)), groups=2)),
    ("conv", [(2, 2, 2), (3, 1, 1)], lambda e: sg.conv(e.T3, np.ones((3, 1, 1)))),
    ("conv", [(2, 3), (3,)], lambda e: sg.conv(e.W, e.v)),
    ("conv", [(2, 2, 2), (3, 2, 1)], lambda e: sg.conv(e.T3, np.ones((3, 2, 1)), e.u4)),
    ("max_pool", [(3,)], lambda e: sg.max_pool(e.v, 2)),
    ("avg_pool", [(3,)], lambda e: sg.avg_pool(e.v, (2, 2))),
    ("max_pool", [(3, "n")], lambda e: sg.max_pool(e.X.T, (2,))),
    ("convolve", [(2, 3), (3,)], lambda e: sg.convolve(e.W, e.v)),
    ("convolve", [("n",), (3,)], lambda e: sg.convolve(e.X[:, 0], e.v)),
    ("convolve", [("n", 3), ("n", 3)], lambda e: sg_signal.convolve(e.X, e.X)),
    ("convolve", [(), ()], lambda e: sg_signal.convolve(e.x, e.x)),
    # the decompositions (ops/decompositions.py)
    ("eigh", [(3,)], lambda e: sg.eigh(e.v)),
    ("svd", [("n", 3)], lambda e: sg.svd(e.X, full_matrices=False)),
    ("expm", [(2, 3)], lambda e: sg.expm(e.W)),
    # loops (ops/loops.py): the operands are init's and xs' expressions
    ("scan", [(3,), (2, 3)], lambda e: sg.scan(lambda c, x: (c[:2], x), e.v, e.W)),
    ("scan", [(3,), (2, 3)], lambda e: sg.scan(lambda c, x: ((c, c), x), e.v, e.W)),
    ("scan", [(3,), (2, 3)], lambda e: sg.scan(lambda c, x: (c, x), e.v, e.W, length=5)),
    ("scan", [(3,), (2, 3)], lambda e: sg.scan(lambda c, x: (c, x), e.v, e.W, length=-1)),
    ("scan", [(3,), (2, 3), (4,)], lambda e: sg.scan(lambda c, x: (c, None), e.v, (e.W, e.u4))),
    ("scan", [(3,), ()], lambda e: sg.scan(lambda c, x: (c, None), e.v, e.x)),
    ("scan", [(3,)], lambda e: sg.scan(lambda c, x: (c, None), e.v)),
    ("fori_loop", [(3,)], lambda e: sg.fori_loop(0, 2.5, lambda i, v: v, e.v)),
]

# ShapeError raise sites in symgrad/ops that no public call can reach, and why
UNREACHABLE_RAISES = {
    ("loops.py", "the loop takes"): "a scan node's shape rule: sg.scan builds its operands from "
                                    "the body it traced, so they always fit",
    ("loops.py", "scanned, has shape"): "as above",
    ("loops.py", "the loop's body takes"): "as above",
    ("core.py", "dimension name"): "check_shape: variable declarations, not ops (the message "
                                   "names the variable; see test_a_bad_variable_shape_names_it)",
    ("core.py", "must be a non-negative int"): "check_shape, as above",
    ("core.py", "longer than any NumPy array"): "check_shape, as above",
    ("core.py", "the size of shape"): "Expr.size, an attribute, not an op (see "
                                      "tests/test_numpy_protocol.py)",
    ("reduce.py", "axis {axis} is out of range for {ndim}"): "reduced_shape: reductions normalise "
                                                            "(and check) their axes before apply",
    ("reduce.py", "out of range for shape"): "softmax normalises (and checks) its axes first",
    ("shape.py", "cannot insert axes"): "expand_dims is internal and normalises its axes first",
    ("shape.py", "cannot squeeze axes"): "squeeze is internal (derivative rules only)",
    ("shape.py", "cannot reshape {g} to {target}"): "reshape_like is internal (rules only)",
    ("shape.py", "axis {axis} is out of range for {ndim} dim"): "concatenate normalises its axis",
    ("linalg.py", "has {len(shape)} dimensions but"): "einsum's subscripts are normalised (and "
                                                    "checked) before apply",
    ("linalg.py", "subscripts name {len(labels)} operands"): "einsum's subscripts, as above",
    ("linalg.py", "einsum has only {len(_LETTERS)} letters"): "fresh letters of derivative "
                                                             "rules only",
    ("shape.py", "an index of {len(index)} items"): "gather's index is made by getitem and "
                                                    "take_along_axis, an item for every axis",
    ("shape.py", "for {len(x)} dimensions"): "getitem counts the index's items before gather",
    ("shape.py", "for {len(like)} dimensions"): "scatter_add is internal (gather's rule)",
    ("shape.py", "{tuple(g)} is not the shape of"): "scatter_add is internal, as above",
    ("reduce.py", "out of range for {len(shapes[0])}"): "cumsum and cumprod normalise (and "
                                                       "check) their axis first",
    ("arrays.py", "cannot roll axes"): "roll normalises (and checks) its axes before apply",
    ("order.py", "out of range for {len(shapes[0])}"): "sort and argsort normalise (and check) "
                                                      "their axis first",
    ("matrix.py", "b must have at least two dimensions"): "solve and solve_triangular give a "
                                                          "vector b its column axis before apply",
    ("convolution.py", "the cotangent's last axes {g[-nd - 1:]}"): "conv_transpose is "
                                                                  "internal (conv's rule)",
    ("convolution.py", "the cotangent has shape {g}"): "conv_weight is internal (conv's rule)",
    ("convolution.py", "input channels do not split"): "conv_weight is internal, as above",
    ("convolution.py", "the cotangent's last axes are not windows"): "unwindows is internal "
                                                                    "(the rule of windows)",
    ("decompositions.py", "the packed QR op takes"): "qr factors a wide matrix's square part",
    ("shape.py", "compressed along axis"): "compress_grad is internal (compress's rule)",
    ("sparse.py", "a CSR matrix of shape"): "csr_matrix is internal (symgrad.sparsity builds "
                                            "its structure with it)",
    ("sparse.py", "put_add takes a 1-D base"): "put_add is internal (symgrad.sparsity's direct "
                                               "emission builds it on 1-D values)",
    ("shape.py", "a named dimension needs identity_like"): "identity is internal (the seed of a "
                                                           "dense Jacobian of a static shape; "
                                                           "tests/test_dense_seed.py)",
}


def _raise_sites():
    """(file, line, source line) of every ``raise ShapeError`` in symgrad/ops."""
    import pathlib
    import symgrad.ops
    sites = []
    for path in sorted(pathlib.Path(symgrad.ops.__file__).parent.glob("*.py")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, start=1):
            if "raise ShapeError(" in line:
                # the message may continue on the next line
                sites.append((path.name, number, line + " " + lines[number].strip()))
    return sites


def _site_of(filename, line, sites):
    """The raise site a constructor call at ``filename:line`` belongs to (calls span lines)."""
    candidates = [s for s in sites if s[0] == filename and s[1] <= line <= s[1] + 2]
    return max(candidates, key=lambda s: s[1]) if candidates else None


@pytest.fixture
def shaped_op():
    yield sg.defop("rel_shaped", 2, lambda shapes: _same_or_shape_error(*shapes), "{0} + {1}",
                   vjp=lambda g, out, a, b: [g, g])
    sg.OPS.pop("rel_shaped", None)


def _raise_of(call, e, shaped_op):
    return call(e, shaped_op) if call.__code__.co_argcount == 2 else call(e)


@pytest.mark.parametrize("op, shapes, call", SHAPE_MESSAGES,
                         ids=[f"{op}-{i}" for i, (op, _, _) in enumerate(SHAPE_MESSAGES)])
def test_a_shape_error_names_the_op_the_shapes_and_the_line(op, shapes, call, shaped, shaped_op):
    with pytest.raises(sg.ShapeError) as raised:
        _raise_of(call, shaped, shaped_op)
    error = raised.value
    message = str(error)
    assert message.startswith(f"{op}: "), message
    assert (error.op, error.shapes) == (op, shapes)
    assert f"(operand shapes {', '.join(map(str, shapes))})" in message
    assert error.reason and error.reason in message and not error.reason.startswith(op)
    where = f"{__file__}:{call.__code__.co_firstlineno} in <lambda>"
    assert error.where == where and message.endswith(f"(called at {where})")


def test_every_shape_error_raise_site_in_the_ops_is_reached_or_explained(shaped, shaped_op,
                                                                         monkeypatch):
    sites = _raise_sites()
    reached = set()
    original = sg.ShapeError.__init__

    def recording(self, *args, **kwargs):
        caller = sys._getframe(1)
        site = _site_of(caller.f_code.co_filename.rsplit("/", 1)[-1], caller.f_lineno, sites)
        if site is not None and "symgrad/ops/" in caller.f_code.co_filename:
            reached.add(site)
        original(self, *args, **kwargs)
    monkeypatch.setattr(sg.ShapeError, "__init__", recording)
    for _, _, call in SHAPE_MESSAGES:
        with pytest.raises(sg.ShapeError):
            _raise_of(call, shaped, shaped_op)
    unexplained = [s for s in sites if s not in reached and not any(
        s[0] == f and fragment in s[2] for f, fragment in UNREACHABLE_RAISES)]
    assert unexplained == [], "ShapeError raise sites no table entry reaches"
    explained_but_reached = [key for key in UNREACHABLE_RAISES
                             if any(s[0] == key[0] and key[1] in s[2] for s in reached)]
    assert explained_but_reached == []


def test_a_bad_variable_shape_names_it():
    with pytest.raises(sg.ShapeError, match=r"^variable 'bad': dimension -1 must be"):
        sg.var("bad", shape=(-1,))
    with pytest.raises(sg.ShapeError, match=r"^variable 'bad': dimension name 'a b'"):
        sg.var("bad", shape=("a b",))
    with pytest.raises(sg.ShapeError, match=r"^variable 'bad': dimension 9+ is longer than"):
        sg.var("bad", shape=(10 ** 23 - 1,))


@pytest.mark.parametrize("text, op, column", [
    ("sin(x) + v + u4", "add", 12),
    ("sum(W @ u4)", "matmul", 7),
    ("reshape(v, 5)", "reshape", 1),
    ("exp(x) * softmax(x)", "softmax", 10),
    ("v[3] + x", "getitem", 2),
])
def test_a_parsed_formula_says_the_column_instead(text, op, column, shaped):
    with pytest.raises(sg.ShapeError) as raised:
        sg.parse(text)
    message = str(raised.value)
    assert message.startswith(f"{op}: ") and "(operand shapes " in message
    assert message.endswith(f"(at column {column} of {text!r})")
    assert "called at" not in message


def test_locating_the_caller_costs_nothing_on_success(monkeypatch, shaped):
    """The frame walk runs only when an error is raised."""
    import symgrad.ops.core as core

    def forbidden():
        raise AssertionError("call_site ran on the success path")
    monkeypatch.setattr(core, "call_site", forbidden)
    e = shaped
    f = sg.sum(sg.clip(e.v, 0.0, 1.0) * e.W) + sg.softmax(e.v).max() + e.v.reshape(3, 1).sum()
    f = f + sg.parse("sum(tanh(W @ v))") + sg.concatenate([e.v, e.u4]).mean()
    sg.compile([f, *sg.grad(f, [e.v, e.W]), sg.hessian(f, e.v)])
    monkeypatch.undo()
    with pytest.raises(sg.ShapeError, match="called at"):
        e.v + e.u4


# -- compiled functions name the argument ---------------------------------------------------------


@pytest.fixture
def compiled():
    alpha, beta = sg.var("alpha", shape=("n", 3)), sg.var("beta", shape=("n",))
    gamma = sg.var("gamma", dtype="float32")
    f = sg.sum(alpha * beta[:, None]) * gamma
    return sg.compile([f, sg.grad(f, alpha)], inputs=[alpha, beta, gamma])


ARGUMENT_ERRORS = {
    "too many": ((np.ones((2, 3)), np.ones(2), 1.0, 4.0), {}, sg.SymgradError,
                 "at most 3 arguments (alpha, beta, gamma), got 4"),
    "missing": ((np.ones((2, 3)),), {"gamma": 1.0}, sg.SymgradError, "missing argument(s): beta"),
    "unknown keyword": ((np.ones((2, 3)), np.ones(2), 1.0), {"delta": 1.0}, sg.SymgradError,
                        "unexpected argument 'delta'"),
    "given twice": ((np.ones((2, 3)), np.ones(2), 1.0), {"beta": np.ones(2)}, sg.SymgradError,
                    "argument 'beta' given twice"),
    "wrong number of axes": ((np.ones(3), np.ones(2), 1.0), {}, sg.ShapeError,
                             "argument 'alpha' must have shape ('n', 3), got (3,)"),
    "wrong fixed length": ((np.ones((2, 4)), np.ones(2), 1.0), {}, sg.ShapeError,
                           "argument 'alpha' must have shape ('n', 3), got (2, 4)"),
    "named dimension mismatch": ((np.ones((2, 3)), np.ones(5), 1.0), {}, sg.ShapeError,
                                 "argument 'beta': dimension 'n' is 5 on axis 0, but 2 in "
                                 "argument 'alpha'"),
    "a scalar for a named dimension": ((np.ones((2, 3)), 1.0, 1.0), {}, sg.ShapeError,
                                       "argument 'beta' must have shape ('n',), got ()"),
    "a string": ((np.ones((2, 3)), np.ones(2), "one"), {}, sg.SymgradError,
                 "argument 'gamma': cannot convert to float32"),
    "a complex number": ((np.ones((2, 3)), np.ones(2), 1j), {}, sg.SymgradError,
                         "argument 'gamma': cannot convert to float32"),
    "a ragged list": (([[1.0, 2.0, 3.0], [1.0]], np.ones(2), 1.0), {}, sg.SymgradError,
                      "argument 'alpha': cannot convert to float64"),
    "None": ((np.ones((2, 3)), np.ones(2), None), {}, sg.SymgradError,
             "argument 'gamma': cannot convert to float32 (None is not a real number)"),
    "None in a list": ((np.ones((2, 3)), [1.0, None], 1.0), {}, sg.SymgradError,
                       "argument 'beta': cannot convert to float64 (None is not a real number)"),
    "an object array": ((np.ones((2, 3), dtype=object), np.ones(2), 1.0), {}, sg.SymgradError,
                        "argument 'alpha': cannot convert to float64 (an array of dtype object"),
    "a numeric string": ((np.ones((2, 3)), np.ones(2), "2.0"), {}, sg.SymgradError,
                         "argument 'gamma': cannot convert to float32 (text"),
    "a list of strings": ((np.ones((2, 3)), ["1", "2"], 1.0), {}, sg.SymgradError,
                          "argument 'beta': cannot convert to float64 (text"),
    "a complex array": ((np.ones((2, 3)), np.ones(2) + 1j, 1.0), {}, sg.SymgradError,
                        "argument 'beta': cannot convert to float64 (complex numbers"),
    "an int past float64": ((np.ones((2, 3)), np.ones(2), 10**400), {}, sg.SymgradError,
                            "argument 'gamma': cannot convert to float32"),
}


@pytest.mark.parametrize("name", list(ARGUMENT_ERRORS))
def test_a_compiled_function_names_the_offending_argument(name, compiled):
    args, kwargs, error, fragment = ARGUMENT_ERRORS[name]
    with pytest.raises(error) as raised:
        compiled(*args, **kwargs)
    assert fragment in str(raised.value)
    # and it still works
    value, gradient = compiled(np.ones((2, 3)), np.array([1.0, 2.0]), np.float32(2.0))
    assert value == pytest.approx(18.0)
    np.testing.assert_array_equal(gradient, [[2.0] * 3, [4.0] * 3])


@pytest.mark.parametrize("backend", sg.api.BACKENDS)
def test_none_strings_and_object_arrays_are_refused_on_every_backend(backend):
    x, v = sg.var("x"), sg.var("v", shape=(2,))
    fn = sg.compile(x * sg.sum(v), inputs=[x, v], backend=backend)
    for bad, name in [((None, [1.0, 2.0]), "x"), ((1.0, np.array([1, 2], dtype=object)), "v"),
                      (("1.5", [1.0, 2.0]), "x"), ((1.0, [None, 2.0]), "v")]:
        with pytest.raises(sg.SymgradError, match=f"argument '{name}': cannot convert"):
            fn(*bad)
    # what keeps working: Python numbers (a Fraction, an int past int64), lists, NumPy arrays
    from fractions import Fraction
    for good in [(2, [1, 2]), (Fraction(1, 2), (2.0, 2.0)), (np.float32(2.0), np.ones(2)),
                 (True, [10**20, 0])]:
        assert float(fn(*good)) == pytest.approx(float(good[0]) * float(sum(good[1])))


# -- the command line: one line for a mistake, a traceback for a bug -----------------------------


def run_cli(capsys, *argv):
    from symgrad.cli import main
    try:
        code = main(list(argv))
    except SystemExit as exit_:         # argparse's --help and --version
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


# user mistakes not already in tests/test_cli.py's BAD table
CLI_MISTAKES = {
    "shape mismatch in the formula": ["grad", "sum(W @ v)", "--shape", "W=2x3,v=4"],
    "shape mismatch with --at": ["grad", "sum(v)", "--at", "v=[1,2]", "--shape", "v=3"],
    "index out of range": ["grad", "v[5]", "--shape", "v=3"],
    "softmax of a scalar": ["grad", "softmax(x)"],
    "bad --shape: double x": ["grad", "x * y", "--shape", "W=2xx3"],
    "bad --shape: negative": ["grad", "x * y", "--shape", "W=-3"],
    "bad --shape: no name": ["grad", "x * y", "--shape", "=3"],
    "bad --shape: bad name": ["grad", "x * y", "--shape", "W=(a-b,3)"],
    "bad --at: JSON true": ["grad", "x * y", "--at", "x=true,y=1", "--format", "json"],
    "bad --at: JSON null": ["grad", "x * y", "--at", "x=[null],y=1", "--format", "json"],
    "bad --at: an object": ["grad", "x * y", "--at", 'x={"a":1},y=1'],
    "bad --at: nested past JSON's recursion": ["grad", "x", "--at",
                                               "x=" + "[" * 100_000 + "]" * 100_000],
    "bad --wrt: digit first": ["grad", "x * y", "--wrt", "1x"],
    "bad --wrt: keyword": ["grad", "x * y", "--wrt", "lambda"],
    "disconnected --wrt": ["grad", "x * y", "--wrt", "z", "--at", "x=1,y=2", "--format", "json"],
    "--order with several --wrt": ["grad", "x * y", "--order", "3", "--wrt", "x,y"],
    "--order on hessian": ["hessian", "x * y", "--order", "2"],
    "unknown format": ["grad", "x * y", "--format", "xml"],
    "unwritable -o (no such folder)": ["grad", "x * y", "-o", "/nonexistent/folder/g.svg"],
    "unwritable -o (a folder)": ["grad", "x * y", "-o", "/"],
    "formula too long": ["grad", "x" + " + x" * 30_000],
    "formula too deep": ["grad", "(" * 1000 + "x" + ")" * 1000],
    "number too large": ["grad", "1e999 * x"],
    "a NUL character": ["grad", "x\x00"],
}


@pytest.mark.parametrize("argv", list(CLI_MISTAKES.values()), ids=list(CLI_MISTAKES))
def test_a_cli_mistake_is_one_line_and_status_2(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("symgrad: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err
    assert len(err) < 400
    assert list(tmp_path.iterdir()) == []


def _bug_in(monkeypatch, target, error):
    def broken(*args, **kwargs):
        raise error
    monkeypatch.setattr(target[0], target[1], broken)


@pytest.mark.parametrize("where, error", [
    ("grad", RuntimeError("simulated bug in grad")),
    ("compile", KeyError("simulated bug in compile")),
    ("show_graph", AttributeError("simulated bug in show_graph")),
    ("parse", TypeError("simulated bug in parse")),
])
def test_a_symgrad_bug_in_the_cli_prints_its_traceback(where, error, capsys, monkeypatch):
    import symgrad.cli as cli
    _bug_in(monkeypatch, (cli.api, where), error)
    code, out, err = run_cli(capsys, "grad", "x * y", "--at", "x=1,y=2")
    assert code not in (0, 2)
    assert out == ""
    assert "Traceback (most recent call last)" in err
    assert f"{type(error).__name__}: " in err and "simulated bug" in err
    assert err.rstrip().splitlines()[-1] == cli.BUG_REPORT


def test_a_broken_builtin_rule_is_a_bug_not_a_user_mistake(capsys, monkeypatch):
    """A built-in derivative rule giving the wrong shape is symgrad's bug (errors.InternalError,
    not a SymgradError): the CLI shows the traceback."""
    import symgrad.cli as cli
    broken = dataclasses.replace(sg.OPS["sin"], vjp=lambda g, out, x: [sg.sum(g)[None, None]])
    monkeypatch.setitem(sg.OPS, "sin", broken)
    code, _, err = run_cli(capsys, "grad", "sin(v)[0]", "--shape", "v=3")
    assert code not in (0, 2)
    assert "InternalError: the derivative rule of the built-in op 'sin'" in err
    assert err.rstrip().splitlines()[-1] == cli.BUG_REPORT


def test_the_cli_process_exit_statuses():
    """Through a real process: a mistake is status 2 and one line, a bug is a traceback."""
    import subprocess
    mistake = subprocess.run([sys.executable, "-m", "symgrad.cli", "grad", "sum(W @ v)",
                              "--shape", "W=2x3,v=4"], capture_output=True, text=True,
                             timeout=120, check=False)
    assert mistake.returncode == 2 and mistake.stdout == ""
    assert mistake.stderr.startswith("symgrad: error: matmul: ")
    assert mistake.stderr.count("\n") == 1
    assert "(at column 7 of 'sum(W @ v)')" in mistake.stderr
    program = ("import sys, symgrad.cli as cli\n"
               "def broken(*args, **kwargs):\n    raise RuntimeError('simulated bug')\n"
               "cli.api.hessian = broken\n"
               "sys.exit(cli.main(['hessian', 'x * y']))\n")
    bug = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         timeout=120, check=False)
    assert bug.returncode not in (0, 2)
    assert "Traceback (most recent call last)" in bug.stderr
    assert "RuntimeError: simulated bug" in bug.stderr
    assert "please report it" in bug.stderr
