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


def _add(name, covers, error, make):
    CASES.append(Case(name, tuple(covers.split()), make, error))


# variables and constants
_add("var redeclared with another shape", "var", SH, lambda e, o: lambda: sg.var("v", shape=(4,)))
_add("var redeclared with another dtype", "var", SH,
     lambda e, o: lambda: sg.var("x", dtype="float32"))
_add("var named with a digit first", "var", SE, lambda e, o: lambda: sg.var("2x"))
_add("var named with a keyword", "var", SE, lambda e, o: lambda: sg.var("lambda"))
_add("var with a negative dimension", "var", SH, lambda e, o: lambda: sg.var("n1", shape=(-1,)))
_add("var of an integer dtype", "var", SE, lambda e, o: lambda: sg.var("n2", dtype="int64"))
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
_add("iterating an expression", "Expr", SE, lambda e, o: lambda: list(e.v))

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
_add("dot of three-dimensional arrays", "dot", SH,
     lambda e, o: functools.partial(sg.dot, e.T3, e.T3))
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
_add("concatenate of an array and a mismatched expression", "concatenate", SH,
     lambda e, o: functools.partial(sg.concatenate, [np.ones((2, 2)), e.W], axis=0))
_add("reshape to another size", "reshape", SH,
     lambda e, o: functools.partial(sg.reshape, e.W, (4,)))
_add("reshape dropping a named dimension", "reshape", SH,
     lambda e, o: functools.partial(sg.reshape, e.X, (2, 3)))
_add("transpose with a repeated axis", "transpose", SH,
     lambda e, o: functools.partial(sg.transpose, e.W, (0, 0)))
_add("transpose with too few axes", "transpose", SH,
     lambda e, o: functools.partial(sg.transpose, e.T3, (1, 0)))
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


# Public callables with no entry above, and why.
EXEMPT = {
    "default_graph": "takes no arguments and always returns a graph",
    "Graph": "makes a new, empty graph: there is no existing graph to spoil",
    "SymgradError": "an exception class, not a call",
    "ParseError": "an exception class, not a call",
    "ShapeError": "an exception class, not a call",
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
        assert data["derivative"] == (data["order"] > 0)
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
