"""Property-based gradient tests: random well-typed expression graphs against independent references.

Hypothesis draws a graph step by step: scalar and tensor variables (some with the symbolic batch
dimension ``"b"``), every op of the public contract, broadcasting, reductions over random axes,
slicing, matmul chains. Each graph is then checked against references that share no code with
symgrad's rules:

- first derivatives (``grad``, ``jacobian``, ``vjp``, ``jvp``) against central finite differences;
- second derivatives (``hvp``, ``hessian``) against finite differences of the (checked) gradient;
- scalar graphs, built in parallel from SymPy's own functions, against ``sympy.diff`` to 1e-8.

Every compiled function is compiled twice, with and without the optimiser, and both must pass.

Points are drawn away from kinks: a finite difference is taken at two step sizes, and a point
where they disagree (a kink, a discontinuity or an overflow within the step) is rejected rather
than judged. Rejections are rare and shown by ``--hypothesis-show-statistics``.

Profiles (registered in ``tests/conftest.py``): ``ci`` is the default, derandomized so CI always
tries the same graphs; ``long`` tries at least 10,000 graphs (5,000 per test) with fresh seeds::

    SYMGRAD_HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py \\
        --hypothesis-show-statistics -q
"""

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, assume, event, given, note, settings, strategies as st

import symgrad as sg
from symgrad.ops.printing import to_text

BATCH = "b"                     # the symbolic dimension; bound to 1..3 at evaluation time
STEP = 1e-5                     # finite-difference step (relative to one, inputs are O(1))
CONSTANT_STREAM = 1             # random constants never share a random stream with points
MAX_MAGNITUDE = 1e6             # a value this large makes differences meaningless: reject
TENSOR_SHAPES = [(), (3,), (4,), (2, 3), (3, 2), (BATCH,), (BATCH, 3), (BATCH, 2, 3), (2, 1, 3)]


# -- drawing graphs --------------------------------------------------------------------------------


class GraphDrawer:
    """Builds one random expression graph from Hypothesis draws, one op per step.

    ``pool`` holds the expressions built so far; every step applies one op kind to entries of the
    pool (preferring recent ones, so graphs grow deep as well as wide) and appends the result.
    """

    def __init__(self, draw, dtype="float64", kinds=None):
        self.draw = draw
        self.dtype = dtype      # of the variables and of the constant arrays
        # what a step draws from: the contract's kinds unless told (the emitted corpus,
        # tests/emitted_corpus.py, replays the graphs they draw, so they stay as they are)
        self.kinds = TENSOR_KINDS if kinds is None else kinds
        self.pool = []
        self.variables = {}
        self.used = set()       # pool entries consumed by a later step

    # building blocks

    def variable(self, shape):
        name = f"x{len(self.variables)}"
        self.variables[name] = sg.var(name, shape=shape, dtype=self.dtype)
        return self.variables[name]

    def pick(self, accept=lambda e: True):
        candidates = [e for e in self.pool if accept(e)]
        if not candidates:
            return None
        recent = candidates[-3:]
        chosen = self.draw(st.sampled_from(recent[::-1] + candidates[:-3]))
        self.used.add(id(chosen))
        return chosen

    def constant_like(self, e):
        """A constant array broadcasting against ``e`` (a trailing part of its static shape)."""
        trailing = []
        for d in reversed(e.shape):
            if not isinstance(d, int):
                break
            trailing.insert(0, d)
        keep = self.draw(st.integers(0, len(trailing)))
        shape = tuple(trailing[len(trailing) - keep:])
        seed = self.draw(st.integers(0, 2**16))
        # a stream of its own: a constant equal to a coordinate of the point would put the point
        # exactly on a kink of maximum(x, c), where central differences cannot tell
        value = np.random.default_rng([seed, CONSTANT_STREAM]).uniform(-1.5, 1.5, shape)
        if self.dtype != "float64":     # a Python number is float64 where no array is near
            return sg.const(value.astype(self.dtype))
        return sg.const(value) if shape else float(value)

    def partner(self, e):
        """A second operand that broadcasts against ``e``: from the pool, a reduction of ``e``,
        a new variable or a constant."""
        way = self.draw(st.sampled_from(["pool", "reduced", "variable", "constant"]))
        if way == "pool":
            other = self.pick(lambda o: o is not e and broadcasts(o.shape, e.shape))
            if other is not None:
                return other
        if way == "reduced" and e.ndim:
            axes = self.draw(st.sets(st.integers(0, e.ndim - 1), min_size=1))
            return sg.sum(e, axis=tuple(sorted(axes)), keepdims=True) * 0.5
        if way == "variable":
            shape = e.shape[self.draw(st.integers(0, e.ndim)):]
            return self.variable(shape)
        return self.constant_like(e)

    def positive(self, e):
        """``e`` mapped into positive values bounded away from zero, in one of several ways."""
        way = self.draw(st.sampled_from(["square", "exp", "softplus", "sigmoid", "abs"]))
        if way == "square":
            return e * e + 0.5
        if way == "exp":
            return sg.exp(sg.tanh(e))
        if way == "softplus":
            return sg.softplus(e) + 0.25
        if way == "sigmoid":
            return sg.sigmoid(e) + 0.2
        return abs(e) + 0.3

    def axes(self, e, allow_none=True):
        """A random axis argument for a reduction of ``e``: None, an int (maybe negative) or a tuple."""
        choices = ["int", "tuple"] + (["none"] if allow_none else [])
        way = self.draw(st.sampled_from(choices))
        if way == "none":
            return None
        if way == "int":
            axis = self.draw(st.integers(0, e.ndim - 1))
            return axis - e.ndim if self.draw(st.booleans()) else axis
        return tuple(sorted(self.draw(st.sets(st.integers(0, e.ndim - 1), min_size=1))))

    # the graph

    def build(self, steps):
        for _ in range(self.draw(st.integers(1, 2))):
            self.pool.append(self.variable(self.draw(st.sampled_from(TENSOR_SHAPES))))
        for _ in range(steps):
            kind = self.draw(st.sampled_from(sorted(self.kinds)))
            built = self.kinds[kind](self)
            if built is None:           # the kind does not apply to this pool: a plain unary op
                kind, built = "sin", sg.sin(self.pick())
            event(f"op {kind}")
            self.pool.append(built)
        return self.pool[-1]

    def sinks(self):
        """The pool entries no step consumed: the outputs of the graph."""
        return [e for e in self.pool if id(e) not in self.used]


def program_with_gradient(draw):
    """A random graph of 1 to 8 steps, in the current graph, as the emitted corpus and the
    optimiser's tests draw it: (its sinks and the gradient of their summed sums in every
    variable, the variables by name), or None when nothing was built on the variables."""
    drawer = GraphDrawer(draw)
    drawer.build(draw(st.integers(1, 8)))
    sinks = drawer.sinks()
    inputs = [drawer.variables[name] for name in sorted(drawer.variables)]
    total = sum(sg.sum(e) for e in sinks)
    if not isinstance(total, sg.Expr):
        return None     # a transpose left unread, say
    return sinks + sg.grad(total, inputs, disconnected="zero"), inputs


def broadcasts(a, b):
    """Whether shapes ``a`` and ``b`` broadcast to ``b`` (symbolic dimensions match by name)."""
    if len(a) > len(b):
        return False
    return all(x == y or x == 1 for x, y in zip(a[::-1], b[::-1]))


def _binary(function):
    def build(d):
        a = d.pick()
        return function(a, d.partner(a))
    return build


def _unary(function, domain=None):
    def build(d):
        a = d.pick()
        return function(domain(d, a) if domain else a)
    return build


def _positive(d, e):
    return d.positive(e)


def _reduction(function):
    def build(d):
        a = d.pick(lambda e: e.ndim > 0)
        if a is None:
            return None
        axis, keepdims = d.axes(a), d.draw(st.booleans())
        if function is None:          # the Expr methods, as users write them
            method = d.draw(st.sampled_from(["sum", "mean", "max", "min"]))
            return getattr(a, method)(axis=axis, keepdims=keepdims)
        return function(a, axis=axis, keepdims=keepdims)
    return build


def _normaliser(function):
    def build(d):
        a = d.pick(lambda e: e.ndim > 0)
        if a is None:
            return None
        return function(a, axis=d.axes(a, allow_none=False))
    return build


def _power(d):
    a = d.pick()
    way = d.draw(st.sampled_from(["integer", "real", "symbolic"]))
    if way == "integer":
        return a ** d.draw(st.sampled_from([2, 3]))
    if way == "real":
        return d.positive(a) ** d.draw(st.sampled_from([0.5, -1.5, 2.5, -1.0]))
    return d.positive(a) ** sg.tanh(d.partner(a))


def _shifted_product(d):
    """(a - c) written k times over: a polynomial with a repeated root, the form whose expansion
    cancels (issue 16); points are O(1), so near that root as often as not."""
    a, c = d.pick(), d.draw(st.sampled_from(SHIFTS))
    factor = a - c
    product = factor
    for _ in range(d.draw(st.integers(1, 4))):
        product = product * factor
    return product


SHIFTS = [0.5, 1.0, -0.75, 1.5]


def _divide(d):
    a = d.pick()
    return a / d.positive(d.partner(a))


def _where(d):
    a = d.pick()
    b = d.partner(a)
    compare = d.draw(st.sampled_from(["<", "<=", ">", ">="]))
    condition = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[compare]
    if d.draw(st.booleans()):
        return sg.where(condition, a, b)
    return sg.where(condition, sg.sin(a), 0.0)


def _clip(d):
    low = d.draw(st.sampled_from([-1.0, -0.5, 0.0]))
    return sg.clip(d.pick(), low, low + d.draw(st.sampled_from([0.3, 1.0, 2.0])))


def _leaky_relu(d):
    return sg.leaky_relu(d.pick(), d.draw(st.sampled_from([0.01, 0.1, 0.3])))


def _tan(d):
    return sg.tan(sg.tanh(d.pick()))       # |tanh| < 1 < pi/2 keeps tan away from its poles


def _exp(d):
    a = d.pick()
    return (sg.exp if d.draw(st.booleans()) else sg.expm1)(a)


def _matmul(d):
    a = d.pick(lambda e: e.ndim > 0)
    if a is None:
        return None
    k = d.draw(st.integers(1, 3))
    on_the_left = d.draw(st.booleans())
    if on_the_left:                       # W @ a contracts a's first non-batch axis
        if a.ndim == 1:
            return d.variable((k, a.shape[0])) @ a
        return d.variable((k, a.shape[-2])) @ a
    result = a @ d.variable((a.shape[-1], k))
    if d.draw(st.booleans()):             # a chain
        result = result @ d.variable((k, d.draw(st.integers(1, 3))))
    return result


def _dot(d):
    a = d.pick(lambda e: e.ndim == 1)
    if a is None:
        return None
    other = d.pick(lambda e: e.shape == a.shape and e is not a)
    return sg.dot(a, other if other is not None else d.variable(a.shape))


def _transpose(d):
    a = d.pick(lambda e: e.ndim > 1)
    if a is None:
        return None
    if d.draw(st.booleans()):
        return a.T
    return sg.transpose(a, tuple(d.draw(st.permutations(range(a.ndim)))))


def _reshape(d):
    a = d.pick(lambda e: e.ndim > 0)
    if a is None:
        return None
    named = [i for i, dim in enumerate(a.shape) if not isinstance(dim, int)]
    static = [dim for dim in a.shape if isinstance(dim, int)]
    size = math.prod(static)
    factors = [f for f in range(1, size + 1) if size % f == 0]
    first = d.draw(st.sampled_from(factors))
    target = [first, size // first] if d.draw(st.booleans()) else [size]
    if d.draw(st.booleans()) and not named:
        target[0] = -1
    if named:                             # keep the named dimension in front
        target = [a.shape[named[0]]] + target
        a = sg.transpose(a, tuple(named + [i for i in range(a.ndim) if i not in named]))
    return sg.reshape(a, tuple(target))


def _index_part(d, dim):
    if not isinstance(dim, int):
        return slice(None)
    way = d.draw(st.sampled_from(["int", "slice", "all", "reverse"]))
    if way == "int":
        return d.draw(st.integers(-dim, dim - 1))
    if way == "slice":
        start = d.draw(st.integers(0, dim - 1))
        return slice(start, d.draw(st.integers(start + 1, dim)))
    if way == "reverse":
        return slice(None, None, -1)
    return slice(None)


def _getitem(d):
    a = d.pick(lambda e: e.ndim > 0)
    if a is None:
        return a
    index = [_index_part(d, dim) for dim in a.shape[:d.draw(st.integers(1, a.ndim))]]
    if d.draw(st.booleans()):
        index.insert(d.draw(st.integers(0, len(index))), None)
    if d.draw(st.booleans()) and len(index) < a.ndim:
        index = [Ellipsis] + index[1:] if index and index[0] == slice(None) else index
    return a[tuple(index)]


def _concatenate(d):
    a = d.pick(lambda e: any(isinstance(dim, int) for dim in e.shape))
    if a is None:
        return None
    axis = d.draw(st.sampled_from([i for i, dim in enumerate(a.shape) if isinstance(dim, int)]))
    other = d.pick(lambda e: e is not a and e.shape == a.shape)
    if other is None:
        other = d.draw(st.sampled_from([sg.sin, sg.tanh, lambda e: e * e]))(a)
    return sg.concatenate([a, other], axis=axis - a.ndim if d.draw(st.booleans()) else axis)


TENSOR_KINDS = {
    "add": _binary(lambda a, b: a + b),
    "subtract": _binary(lambda a, b: b - a),
    "multiply": _binary(lambda a, b: a * b),
    "divide": _divide,
    "power": _power,
    "shifted_product": _shifted_product,
    "negative": _unary(lambda a: -a),
    "maximum": _binary(sg.maximum),
    "minimum": _binary(sg.minimum),
    "where": _where,
    "clip": _clip,
    "sin": _unary(sg.sin),
    "cos": _unary(sg.cos),
    "tan": _tan,
    "exp": _exp,
    "log": _unary(sg.log, _positive),
    "log1p": _unary(sg.log1p, _positive),
    "sqrt": _unary(sg.sqrt, _positive),
    "tanh": _unary(sg.tanh),
    "sigmoid": _unary(sg.sigmoid),
    "relu": _unary(sg.relu),
    "leaky_relu": _leaky_relu,
    "softplus": _unary(sg.softplus),
    "abs": _unary(sg.abs),
    "sign": _binary(lambda a, b: sg.sign(a) * b),
    "sum": _reduction(sg.sum),
    "mean": _reduction(sg.mean),
    "max": _reduction(sg.max),
    "min": _reduction(sg.min),
    "methods": _reduction(None),
    "logsumexp": _reduction(sg.logsumexp),
    "softmax": _normaliser(sg.softmax),
    "log_softmax": _normaliser(sg.log_softmax),
    "matmul": _matmul,
    "dot": _dot,
    "transpose": _transpose,
    "reshape": _reshape,
    "getitem": _getitem,
    "concatenate": _concatenate,
}

# every differentiable function of the public contract (API.md) is drawn; stop_gradient and
# custom_gradient change what the derivative means, so they are tested against their own rules
CONTRACT = {"sin", "cos", "tan", "exp", "log", "log1p", "expm1", "sqrt", "tanh", "sigmoid", "relu",
            "leaky_relu", "softplus", "abs", "sign", "maximum", "minimum", "where", "clip", "sum",
            "mean", "max", "min", "logsumexp", "softmax", "log_softmax", "matmul", "dot",
            "transpose", "reshape", "concatenate", "add", "subtract", "multiply", "divide", "power",
            "negative", "getitem"}


def test_the_generator_draws_every_op_of_the_contract():
    drawn = set(TENSOR_KINDS) | {"expm1"}           # _exp draws exp or expm1
    assert CONTRACT <= drawn, CONTRACT - drawn
    assert CONTRACT <= set(SCALAR_KINDS) | {"sum", "mean", "max", "min", "logsumexp", "softmax",
                                             "log_softmax", "matmul", "dot", "transpose",
                                             "reshape", "concatenate", "getitem"}


# -- the whole op table ----------------------------------------------------------------------------
#
# Every other public function (ops.PUBLIC) is drawn from one line of ARGUMENTS: the domain each
# operand is mapped into (where the function is differentiable and finite: away from poles and
# from the ends of its domain; kinks and jumps are left to the two-step difference check, which
# rejects a point near one), the static arguments drawn for the first operand, and which pool
# entries it applies to. Adding an op: a line here, or in OP_TABLE_EXCLUDED with the reason it is
# not drawn; test_the_generator_draws_every_op_and_public_function_of_the_table fails until then.


@dataclass(frozen=True)
class Arguments:
    """How to draw a call: ``domains`` maps each operand (one entry per operand, None where any
    value will do), ``static`` draws the keyword arguments from (drawer, first operand), ``accept``
    says which pool entries may be the first operand."""
    domains: tuple = (None,)
    static: Callable = lambda d, a: {}
    accept: Callable = lambda e: True


def _unit(d, e):
    return 0.9 * sg.tanh(e)                     # inside (-1, 1): arcsin, arccos, arctanh


def _above_one(d, e):
    return d.positive(e) + 1.0                  # arccosh


def _open_unit(d, e):
    return 0.1 + 0.8 * sg.sigmoid(e)            # logit


def _ranked(e):
    return e.ndim > 0


def _static(e):
    """Whether ``e`` has entries and every length is a number (flattening, scans and products
    need the lengths: symgrad refuses them along a named dimension)."""
    return e.ndim > 0 and all(isinstance(n, int) for n in e.shape)


def _matrix(e):
    return e.ndim >= 2 and all(isinstance(n, int) for n in e.shape[-2:])


def _static_axis(e):
    return any(isinstance(n, int) for n in e.shape)


def _int_axis(d, a, static=False):
    """An axis of ``a`` (negative half the time); one of static length when ``static``."""
    axes = [i for i, n in enumerate(a.shape) if isinstance(n, int) or not static]
    axis = d.draw(st.sampled_from(axes))
    return axis - a.ndim if d.draw(st.booleans()) else axis


def _axes(allow_none=True):
    return lambda d, a: {"axis": d.axes(a, allow_none=allow_none),
                         "keepdims": d.draw(st.booleans())}


def _one_axis(static=False, none=False):
    def draw(d, a):
        if none and d.draw(st.booleans()):
            return {"axis": None}
        return {"axis": _int_axis(d, a, static)}
    return draw


def _vector_norm(d, a):
    return {"ord": d.draw(st.sampled_from([None, 1, 2, 3, np.inf])), "axis": _int_axis(d, a)}


def _pad(d, a):
    widths = [(d.draw(st.integers(0, 2)), d.draw(st.integers(0, 2))) if isinstance(n, int)
              else (0, 0) for n in a.shape]
    mode = d.draw(st.sampled_from(["constant", "edge", "reflect", "symmetric", "wrap"]))
    if mode == "reflect":                       # a reflection needs one more entry than it copies
        widths = [(min(lo, n - 1), min(hi, n - 1)) if isinstance(n, int) else w
                  for (lo, hi), n, w in zip(widths, a.shape, widths)]
    return {"pad_width": widths, "mode": mode}


def _einsum(d):
    """A contraction of a pool entry with a new variable, or a trace or transpose of one."""
    a = d.pick(lambda e: 0 < e.ndim <= 3)
    if a is None:
        return None
    letters = "ijk"[:a.ndim]
    way = d.draw(st.sampled_from(["contract", "permute", "sum"]))
    if way == "contract":
        k = d.draw(st.integers(1, 3))
        other = d.variable((a.shape[-1], k))
        return sg.einsum(f"{letters},{letters[-1]}z->{letters[:-1]}z", a, other)
    if way == "permute":
        return sg.einsum(f"{letters}->{letters[::-1]}", a)
    return sg.einsum(f"{letters}->{letters[0]}", a)


def _contraction(function, same_shape=False):
    """``function`` of a pool entry and a new variable of its last axis's length (or shape)."""
    def build(d):
        a = d.pick(lambda e: 0 < e.ndim <= 2 and all(isinstance(n, int) for n in e.shape))
        if a is None:
            return None
        return function(a, d.variable(a.shape if same_shape else (a.shape[-1],)))
    return build


def _cross(d):
    a = d.pick(lambda e: e.ndim > 0 and e.shape[-1] == 3)
    if a is None:
        return None
    other = d.pick(lambda e: e is not a and e.shape == a.shape)
    return sg.cross(a, other if other is not None else d.variable((3,)))


def _stack(function, axis=True):
    def build(d):
        # stack makes a new axis; the others join along an existing one, which must have a length
        a = d.pick(_ranked if axis else lambda e: e.ndim and all(isinstance(n, int)
                                                                   for n in e.shape))
        if a is None:
            return None
        other = d.draw(st.sampled_from([sg.sin, sg.tanh, lambda e: e * e]))(a)
        if axis:
            return function([a, other], axis=d.draw(st.integers(-a.ndim - 1, a.ndim)))
        return function([a, other])
    return build


def _take(d):
    a = d.pick(lambda e: _static_axis(e))
    if a is None:
        return None
    axis = _int_axis(d, a, static=True)
    n = a.shape[axis]
    indices = d.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=4))
    return sg.take(a, np.array(indices), axis=axis)


def _split(function):
    def build(d):
        a = d.pick(lambda e: any(isinstance(n, int) and n > 1 for n in e.shape))
        if a is None:
            return None
        axis = d.draw(st.sampled_from([i for i, n in enumerate(a.shape)
                                       if isinstance(n, int) and n > 1]))
        pieces = function(a, d.draw(st.sampled_from([[1], [a.shape[axis] - 1]])), axis=axis)
        return pieces[d.draw(st.integers(0, len(pieces) - 1))]
    return build


def _weighted_logsumexp(d):
    a = d.pick(_ranked)
    if a is None:
        return None
    return sg.logsumexp(a, axis=d.axes(a), keepdims=d.draw(st.booleans()),
                        b=d.positive(d.partner(a)))


def _broadcast_to(d):
    a = d.pick()
    return sg.broadcast_to(a, (d.draw(st.integers(1, 3)),) + a.shape)


def _select(d):
    a = d.pick()
    b = d.partner(a)
    return sg.select([a < -0.5, a > b], [sg.sin(a), b], default=a * a)


def _one_hot(d):
    a = d.pick()
    classes = d.draw(st.integers(1, 4))
    labels = np.random.default_rng(d.draw(st.integers(0, 99))).integers(0, classes, (2,))
    return sg.one_hot(labels, classes) * sg.sum(a)


def _above(bound):
    return lambda d, e: d.positive(e) + bound     # multigammaln's a > (d - 1) / 2


def _open_two(d, e):
    return 1.0 + 0.9 * sg.tanh(e)               # erfcinv: inside (0, 2)


def _positive_constant(d, e):
    """A constant above zero in the graph's dtype: the operand (gammainc's a, betainc's a and b,
    stdtr's df) has no derivative, so no variable may reach it."""
    return sg.const(np.asarray(d.draw(st.sampled_from([0.5, 1.0, 2.5, 4.0])), dtype=d.dtype))


def _random_square(d, n):
    seed = d.draw(st.integers(0, 2**16))
    return np.random.default_rng([seed, CONSTANT_STREAM]).uniform(-1.0, 1.0, (n, n))


def _spd(d, a):
    """A symmetric positive definite matrix of ``a`` (..., m, n): I + t t^T / n with t = tanh(a),
    whose eigenvalues lie in [1, 1 + m]."""
    m, n = a.shape[-2:]
    t = sg.tanh(a)
    return np.eye(m, dtype=d.dtype) + sg.matmul(t, sg.swapaxes(t, -1, -2)) / n


def _invertible(d, a):
    """A square matrix of ``a`` (..., m, n), not symmetric and well conditioned: the identity
    plus t C t^T (t = tanh(a), C a random constant) scaled to spectral norm at most 1/2, so its
    singular values lie in [1/2, 3/2]."""
    m, n = a.shape[-2:]
    t = sg.tanh(a)
    c = (_random_square(d, n) * (0.5 / (m * n * n))).astype(d.dtype)
    return np.eye(m, dtype=d.dtype) + sg.matmul(sg.matmul(t, c), sg.swapaxes(t, -1, -2))


def _full_rank(d, a):
    """``a`` (..., m, n) near the m-by-n identity, its singular values in [0.7, 1.3]."""
    m, n = a.shape[-2:]
    return np.eye(m, n, dtype=d.dtype) + 0.3 / max(m, n) * sg.tanh(a)


def _square_ops(function, operand, accept=_matrix):
    """``function`` of a well-conditioned matrix made from a pool entry and a right-hand side
    from the pool or a new variable of the matrix's rows (a vector or a matrix); a piece of a
    tuple result is drawn."""
    def build(d):
        a = d.pick(accept)
        if a is None:
            return None
        matrix = operand(d, a)
        m = matrix.shape[-2]
        b = d.pick(lambda e: e is not a and e.shape == (m,))
        if b is None or d.draw(st.booleans()):
            b = d.variable((m,) if d.draw(st.booleans()) else (m, d.draw(st.integers(1, 2))))
        result = function(matrix, b, d)
        return result[d.draw(st.integers(0, 1))] if isinstance(result, tuple) else result
    return build


def _triangular_solve(matrix, b, d):
    lower = d.draw(st.booleans())
    return sg.ops.PUBLIC["solve_triangular"].function(
        sg.tril(matrix) if lower else sg.triu(matrix), b, trans=d.draw(st.sampled_from([0, 1])),
        lower=lower, unit_diagonal=d.draw(st.booleans()))


def _multi_dot(d):
    a = d.pick(lambda e: 0 < e.ndim <= 2 and all(isinstance(n, int) for n in e.shape))
    if a is None:
        return None
    middle = d.variable((a.shape[-1], d.draw(st.integers(1, 3))))
    last = d.variable((middle.shape[-1],) if d.draw(st.booleans()) else (middle.shape[-1], 2))
    return sg.ops.PUBLIC["multi_dot"].function([a, middle, last])


def _order_first(name, orders):
    """A Bessel or polygamma function: a static order first, then the operand above zero."""
    def build(d):
        a = d.pick()
        return sg.ops.PUBLIC[name].function(d.draw(st.sampled_from(orders)), d.positive(a))
    return build


def _vector_convolution(name):
    def build(d):
        a = d.pick(lambda e: e.ndim == 1 and isinstance(e.shape[0], int))
        if a is None:
            return None
        v = d.variable((d.draw(st.integers(1, a.shape[0] + 1)),))
        pair = (a, v) if d.draw(st.booleans()) else (v, a)
        return sg.ops.PUBLIC[name].function(*pair, mode=d.draw(st.sampled_from(["full", "same",
                                                                                 "valid"])))
    return build


def _conv(d):
    """A convolution of a pool entry read as (..., C, L) with new filters (and maybe a bias)."""
    a = d.pick(lambda e: e.ndim >= 2 and all(isinstance(n, int) for n in e.shape[-2:]))
    if a is None:
        return None
    channels, length = a.shape[-2:]
    padding = d.draw(st.integers(0, 1))
    out = d.draw(st.integers(1, 2))
    w = d.variable((out, channels, d.draw(st.integers(1, length + 2 * padding))))
    bias = d.variable((out,)) if d.draw(st.booleans()) else None
    return sg.conv(a, w, bias, stride=d.draw(st.integers(1, 2)), padding=padding,
                   dilation=1)


def _pool(d, a):
    kernel = d.draw(st.integers(1, min(2, a.shape[-1])))
    return {"kernel_size": kernel, "stride": d.draw(st.sampled_from([None, 1])),
            "padding": d.draw(st.integers(0, kernel // 2))}


def _kth(d, a):
    axis = _int_axis(d, a, static=True)
    return {"kth": d.draw(st.integers(-a.shape[axis], a.shape[axis] - 1)), "axis": axis}


def _levels(top):
    def draw(d, a):
        level = st.floats(0, top, allow_nan=False)
        q = d.draw(level | st.lists(level, min_size=1, max_size=3).map(tuple))
        return dict(_axes()(d, a), q=q)
    return draw


def _split_along(name, axis, ndim):
    """vsplit, hsplit, dsplit: one piece, cut after the first entry or before the last."""
    def build(d):
        a = d.pick(lambda e: e.ndim >= ndim and isinstance(e.shape[axis if e.ndim > 1 else 0],
                                                             int)
                   and e.shape[axis if e.ndim > 1 else 0] > 1)
        if a is None:
            return None
        n = a.shape[axis if a.ndim > 1 else 0]
        pieces = sg.ops.PUBLIC[name].function(a, d.draw(st.sampled_from([[1], [n - 1]])))
        return pieces[d.draw(st.integers(0, len(pieces) - 1))]
    return build


def _gradient(d):
    edge_order = d.draw(st.integers(1, 2))
    a = d.pick(lambda e: any(isinstance(n, int) and n > edge_order for n in e.shape))
    if a is None:
        return None
    axis = d.draw(st.sampled_from([i for i, n in enumerate(a.shape)
                                   if isinstance(n, int) and n > edge_order]))
    spacing = d.draw(st.sampled_from([(), (0.5,)]))
    return sg.gradient(a, *spacing, axis=axis, edge_order=edge_order)


ARGUMENTS = {
    # element-wise
    "arccos": Arguments((_unit,)),
    "arccosh": Arguments((_above_one,)),
    "arcsin": Arguments((_unit,)),
    "arcsinh": Arguments(),
    "arctan": Arguments(),
    "arctan2": Arguments((None, None)),
    "arctanh": Arguments((_unit,)),
    "cbrt": Arguments((_positive,)),
    "ceil": Arguments(),
    "cosh": Arguments(),
    "deg2rad": Arguments(),
    "elu": Arguments(static=lambda d, a: {"alpha": d.draw(st.sampled_from([0.5, 1.0]))}),
    "erf": Arguments(),
    "erfc": Arguments(),
    "exp2": Arguments(),
    "expit": Arguments(),
    "fabs": Arguments(),
    "floor": Arguments(),
    "fmax": Arguments((None, None)),
    "fmin": Arguments((None, None)),
    "fmod": Arguments((None, _positive)),
    "gelu": Arguments(static=lambda d, a: {"approximate": d.draw(st.sampled_from(["none",
                                                                                   "tanh"]))}),
    "hypot": Arguments((None, None)),
    "log10": Arguments((_positive,)),
    "log2": Arguments((_positive,)),
    "logaddexp": Arguments((None, None)),
    "logaddexp2": Arguments((None, None)),
    "logit": Arguments((_open_unit,)),
    "mod": Arguments((None, _positive)),
    "nan_to_num": Arguments(),
    "rad2deg": Arguments(),
    "reciprocal": Arguments((_positive,)),
    "remainder": Arguments((None, _positive)),
    "round": Arguments(static=lambda d, a: {"decimals": d.draw(st.integers(0, 2))}),
    "selu": Arguments(),
    "silu": Arguments(),
    "sinh": Arguments(),
    "softsign": Arguments(),
    "square": Arguments(),
    "trunc": Arguments(),
    "xlogy": Arguments((None, _positive)),
    # reductions and scans
    "average": Arguments(static=lambda d, a: {"axis": d.axes(a)}, accept=_ranked),
    "cumprod": Arguments(static=_one_axis(none=True), accept=_static),
    "cumsum": Arguments(static=_one_axis(none=True), accept=_static),
    "diff": Arguments(static=lambda d, a: {"axis": _int_axis(d, a, static=True)},
                      accept=lambda e: _static_axis(e) and min(
                          (n for n in e.shape if isinstance(n, int)), default=0) > 1),
    "norm": Arguments(static=_vector_norm, accept=_ranked),
    "prod": Arguments(static=_axes(), accept=_static),
    "ptp": Arguments(static=_axes(), accept=_ranked),
    "std": Arguments(static=lambda d, a: dict(_axes()(d, a), ddof=0), accept=_ranked),
    # building and reshaping
    "append": Arguments((None, None), static=lambda d, a: {"axis": None}, accept=_static),
    "diag": Arguments(static=lambda d, a: {"k": d.draw(st.integers(-1, 1))},
                      accept=lambda e: e.ndim == 1 and isinstance(e.shape[0], int)
                      or _matrix(e) and e.ndim == 2),
    "diagonal": Arguments(static=lambda d, a: {"offset": d.draw(st.integers(-1, 1)), "axis1": -2,
                                             "axis2": -1},
                          accept=_matrix),
    "expand_dims": Arguments(static=lambda d, a: {"axis": d.draw(st.integers(-a.ndim - 1,
                                                                             a.ndim))}),
    "flip": Arguments(static=_one_axis(none=True), accept=_ranked),
    "fliplr": Arguments(accept=lambda e: e.ndim >= 2),
    "flipud": Arguments(accept=_ranked),
    "moveaxis": Arguments(static=lambda d, a: {"source": _int_axis(d, a),
                                               "destination": _int_axis(d, a)},
                         accept=lambda e: e.ndim > 1),
    "pad": Arguments(static=_pad, accept=_ranked),
    "ravel": Arguments(accept=_static),
    "repeat": Arguments(static=lambda d, a: {"repeats": d.draw(st.integers(1, 2)),
                                             "axis": _int_axis(d, a, static=True)},
                        accept=_static_axis),
    "roll": Arguments(static=lambda d, a: {"shift": d.draw(st.integers(-3, 3)),
                                           "axis": _int_axis(d, a, static=True)},
                      accept=_static_axis),
    "squeeze": Arguments(static=lambda d, a: {"axis": None}),
    "swapaxes": Arguments(static=lambda d, a: {"axis1": _int_axis(d, a),
                                               "axis2": _int_axis(d, a)},
                         accept=lambda e: e.ndim > 1),
    "tile": Arguments(static=lambda d, a: {"reps": (d.draw(st.integers(1, 2)),)}, accept=_static),
    "trace": Arguments(static=lambda d, a: {"offset": d.draw(st.integers(-1, 1)), "axis1": -2,
                                             "axis2": -1},
                       accept=_matrix),
    "tril": Arguments(static=lambda d, a: {"k": d.draw(st.integers(-1, 1))}, accept=_matrix),
    "triu": Arguments(static=lambda d, a: {"k": d.draw(st.integers(-1, 1))}, accept=_matrix),
    # special functions (an operand without a derivative is a constant)
    "beta": Arguments((_positive, _positive)),
    "betainc": Arguments((_positive_constant, _positive_constant, _open_unit)),
    "betaln": Arguments((_positive, _positive)),
    "digamma": Arguments((_positive,)),
    "erfcinv": Arguments((_open_two,)),
    "erfcx": Arguments(),
    "erfinv": Arguments((_unit,)),
    "gamma": Arguments((_positive,)),
    "gammainc": Arguments((_positive_constant, _positive)),
    "gammaincc": Arguments((_positive_constant, _positive)),
    "gammaln": Arguments((_positive,)),
    "gammasgn": Arguments((_positive,)),
    "i0": Arguments(),
    "i0e": Arguments(),
    "i1": Arguments(),
    "i1e": Arguments(),
    "j0": Arguments(),
    "j1": Arguments(),
    "log_ndtr": Arguments(),
    "multigammaln": Arguments((_above(1.0),), static=lambda d, a: {"d": d.draw(st.integers(1,
                                                                                           3))}),
    "ndtr": Arguments(),
    "ndtri": Arguments((_open_unit,)),
    "psi": Arguments((_positive,)),
    "rgamma": Arguments(),
    "sinc": Arguments(),
    "stdtr": Arguments((_positive_constant, None)),
    "xlog1py": Arguments((None, _positive)),
    "y0": Arguments((_positive,)),
    "y1": Arguments((_positive,)),
    # order statistics (kinks at ties, left to the two-step difference check)
    "median": Arguments(static=_axes(), accept=_static),
    "partition": Arguments(static=_kth, accept=_static_axis),
    "percentile": Arguments(static=_levels(100.0), accept=_static),
    "quantile": Arguments(static=_levels(1.0), accept=_static),
    "sort": Arguments(static=_one_axis(static=True), accept=_static_axis),
    # linear algebra, on well-conditioned matrices made from the pool entry
    "cholesky": Arguments((_spd,), static=lambda d, a: {"upper": d.draw(st.booleans())},
                          accept=_matrix),
    "det": Arguments((_invertible,), accept=_matrix),
    "inv": Arguments((_invertible,), accept=_matrix),
    "matrix_power": Arguments((_invertible,), static=lambda d, a: {"n": d.draw(st.integers(-2,
                                                                                           3))},
                              accept=_matrix),
    "pinv": Arguments((_full_rank,), accept=_matrix),
    # decompositions: the values, whose rules are exact at ties; expm on any square matrix
    "eigvalsh": Arguments((_spd,), accept=_matrix),
    "svdvals": Arguments((_full_rank,), accept=_matrix),
    "expm": Arguments((_invertible,), accept=_matrix),
    # convolution (max_pool's kinks at ties, as max's)
    "avg_pool": Arguments(static=_pool, accept=lambda e: e.ndim == 3 and isinstance(e.shape[-1],
                                                                                   int)),
    "max_pool": Arguments(static=_pool, accept=lambda e: e.ndim == 3 and isinstance(e.shape[-1],
                                                                                   int)),
    # peer functions
    "atleast_1d": Arguments(accept=lambda e: e.ndim < 1),
    "atleast_2d": Arguments(accept=lambda e: e.ndim < 2),
    "atleast_3d": Arguments(accept=lambda e: e.ndim < 3),
    "linspace": Arguments((None, None), static=lambda d, a: {"num": d.draw(st.integers(1, 4)),
                                                             "endpoint": d.draw(st.booleans())}),
    "rollaxis": Arguments(static=lambda d, a: {"axis": _int_axis(d, a),
                                               "start": d.draw(st.integers(0, a.ndim))},
                          accept=lambda e: e.ndim > 1),
    "rot90": Arguments(static=lambda d, a: {"k": d.draw(st.integers(-1, 4)),
                                            "axes": d.draw(st.sampled_from([(0, 1), (-1, -2)]))},
                       accept=lambda e: e.ndim > 1),
}

# The public functions drawn by a builder of their own, where one operand's shape decides the
# others' (a one-line table entry each all the same).
BUILDERS = {
    "array": _stack(lambda parts: sg.array(parts), axis=False),
    "asarray": _stack(lambda parts: sg.asarray(parts), axis=False),
    "array_split": _split(sg.array_split),
    "broadcast_to": _broadcast_to,
    "column_stack": _stack(sg.column_stack, axis=False),
    "cross": _cross,
    "dstack": _stack(sg.dstack, axis=False),
    "einsum": _einsum,
    "hstack": _stack(sg.hstack, axis=False),
    "inner": _contraction(sg.inner),
    "logsumexp weighted": _weighted_logsumexp,
    "kron": _contraction(sg.kron, same_shape=True),
    "one_hot": _one_hot,
    "outer": _contraction(sg.outer),
    "select": _select,
    "split": _split(sg.split),
    "stack": _stack(sg.stack),
    "take": _take,
    "tensordot": _contraction(lambda a, b: sg.tensordot(a, b, axes=1)),
    "vstack": _stack(sg.vstack, axis=False),
    "conv": _conv,
    "convolve": _vector_convolution("convolve"),
    "correlate": _vector_convolution("correlate"),
    "dsplit": _split_along("dsplit", 2, 3),
    "gradient": _gradient,
    "hsplit": _split_along("hsplit", 1, 1),
    "iv": _order_first("iv", [0, 1, 2.5]),
    "ive": _order_first("ive", [0, 1, 2.5]),
    "jn": _order_first("jn", [0, 1, 2]),
    "jv": _order_first("jv", [0, 1, 2.5]),
    # the solution: a square system's residuals are NumPy's empty array, nothing to compare
    "lstsq": _square_ops(lambda a, b, d: sg.ops.PUBLIC["lstsq"].function(a, b)[0],
                         _full_rank, accept=lambda e: e.ndim == 2 and _matrix(e)),
    "multi_dot": _multi_dot,
    "polygamma": _order_first("polygamma", [0, 1, 2]),
    "slogdet": _square_ops(lambda a, b, d: tuple(sg.ops.PUBLIC["slogdet"].function(a)),
                           _invertible),
    "solve": _square_ops(lambda a, b, d: sg.ops.PUBLIC["solve"].function(a, b), _invertible),
    "solve_triangular": _square_ops(_triangular_solve, _invertible),
    "vsplit": _split_along("vsplit", 0, 2),
    "yn": _order_first("yn", [0, 1, 2]),
}


def _drawn(name, arguments):
    function = sg.ops.PUBLIC[name].function

    def build(d):
        a = d.pick(arguments.accept)
        if a is None:
            return None
        operands = [a] + [d.partner(a) for _ in arguments.domains[1:]]
        operands = [domain(d, o) if domain else o for domain, o in zip(arguments.domains,
                                                                           operands)]
        return function(*operands, **arguments.static(d, a))
    return build


ALL_KINDS = dict(TENSOR_KINDS, **{name: _drawn(name, spec) for name, spec in ARGUMENTS.items()},
                 **BUILDERS)

# Public functions and ops the generator does not draw, each with its reason.
PUBLIC_EXCLUDED = {
    "stop_gradient": "changes what the derivative means; tested against its own rule",
    "take_along_axis": "its integer indices are drawn by take's builder, through the same gather",
    "argmax": "integer output, no gradient",
    "argmin": "integer output, no gradient",
    "argpartition": "integer output, no gradient",
    "argsort": "integer output, no gradient",
    "eigh": "a pair whose eigenvectors' signs are LAPACK's choice; tests/test_decompositions.py "
            "checks functions of them that do not depend on the signs, eigvalsh is drawn",
    "svd": "as eigh, for the singular vectors; svdvals is drawn",
    "qr": "as eigh, for the columns' signs; tests/test_decompositions.py checks it",
    "astype": "into float32 it rounds below what finite differences resolve, into int64 or bool "
              "it has no gradient, and into its own dtype it builds nothing; "
              "test_the_float32 graphs check float32 and tests/test_ops.py the casts",
    "compress": "its length depends on the drawn values (a named dimension); tests/test_ops.py "
                "and tests/test_compress.py check it against np.compress and finite differences",
}
OP_TABLE_EXCLUDED = {
    "var": "the variable leaf itself",
    "const": "constants are every graph's leaves",
    "stop_gradient": PUBLIC_EXCLUDED["stop_gradient"],
    "custom_gradient": "a user's rule (sg.custom_gradient), tested against its own rule",
    "csr_matrix": "a SciPy CSR matrix, no array: tests/test_sparse.py draws its own graphs",
    "heaviside": "only the differentiator creates it (the derivative of relu, abs, max...)",
    "index_grad": "only the differentiator creates it (the derivative of getitem)",
    "index_add": "only the differentiator creates it (the derivative of getitem)",
    "scatter_add": "only the differentiator creates it (the derivative of gather)",
    "put_add": "only a sparse derivative's direct emission creates it (tests/test_sparse.py)",
    "zeros_like": "only the differentiator creates it (a gradient that is zero)",
    "identity_like": "only the differentiator creates it (the seed of a Jacobian)",
    "identity": "only the differentiator creates it (the seed of a dense Jacobian of a known shape)",
    "reshape_like": "only the differentiator creates it (the adjoint of a reshape)",
    "axis_size": "only the differentiator creates it (a named dimension's length in a mean's "
                 "derivative)",
    "inner": "only the optimiser creates it (np.vdot for a sum of products); compiled_both_ways "
             "checks the graphs it rewrites",
    "variance": "not a public function (np.var goes through symgrad.numpy); std builds it",
    "argmax": PUBLIC_EXCLUDED["argmax"],
    "argmin": PUBLIC_EXCLUDED["argmin"],
    "argsort": PUBLIC_EXCLUDED["argsort"],
    "astype": PUBLIC_EXCLUDED["astype"],
    "eigh": PUBLIC_EXCLUDED["eigh"],
    "svd": PUBLIC_EXCLUDED["svd"],
    "qr": PUBLIC_EXCLUDED["qr"],
    "conv_transpose": "only the differentiator creates it (the derivative of conv in its input)",
    "conv_weight": "only the differentiator creates it (the derivative of conv in its filters)",
    "unwindows": "only the differentiator creates it (the derivative of the pools' windows)",
    "compress": PUBLIC_EXCLUDED["compress"],
    "compress_grad": "only the differentiator creates it (the derivative of compress)",
    "scan": "sg.scan takes a Python step, no operand the generator draws: tests/test_loops.py "
            "draws random bodies with this generator and checks them against the unrolled loop",
    "polynomial": "only the differentiator creates it (a derivative of a derivative kept as "
                  "exact coefficients): tests/test_compaction.py",
}


# The kinds the float32 test leaves out, each with its reason.
FLOAT32_EXCLUDED = {
    "one_hot": "float64 by definition, as documented; astype cannot narrow it",
    "xlogy": "known bug: SciPy's ufuncs read a Python float as float64 (no NEP 50 weak scalar), "
             "so xlogy(x32, 2.0) is emitted as special.xlogy(x, 2.0) and computes float64 where "
             "its node says float32",
}
FLOAT32_KINDS = {kind: build for kind, build in ALL_KINDS.items() if kind not in FLOAT32_EXCLUDED}


def ops_of_each_kind(kinds, examples=5):
    """The ops each kind of ``kinds`` builds, over a few derandomized draws on a varied pool."""
    built = {kind: set() for kind in kinds}

    def of(kind):
        @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def draw(data):
            with sg.use_graph() as graph:
                drawer = GraphDrawer(data.draw, kinds=kinds)
                for shape in TENSOR_SHAPES:
                    drawer.pool.append(drawer.variable(shape))
                before = set(graph.nodes)
                if kinds[kind](drawer) is not None:
                    built[kind] |= {graph.nodes[n]["op"] for n in set(graph.nodes) - before}
        return draw

    for kind in sorted(kinds):
        of(kind)()
    return built


def test_the_generator_draws_every_op_and_public_function_of_the_table():
    drawn = ALL_KINDS.keys() | {"expm1"}              # _exp draws exp or expm1
    missing = set(sg.ops.PUBLIC) - drawn - set(PUBLIC_EXCLUDED)
    assert not missing, f"public functions neither drawn nor excluded (add to ARGUMENTS): {missing}"
    assert not set(PUBLIC_EXCLUDED) & drawn
    built = ops_of_each_kind(ALL_KINDS)
    assert all(built[kind] for kind in ALL_KINDS if kind not in ("getitem", "reshape")), \
        [kind for kind, ops in built.items() if not ops]
    ops_drawn = set().union(*built.values())
    missing = set(sg.ops.OPS) - ops_drawn - set(OP_TABLE_EXCLUDED)
    assert not missing, f"ops neither drawn nor excluded (add to ARGUMENTS): {missing}"
    assert not set(OP_TABLE_EXCLUDED) & ops_drawn - {"const", "var"}


# -- numbers ---------------------------------------------------------------------------------------


class Point:
    """Values for the variables of a graph, flattened into one vector for finite differences."""

    def __init__(self, variables, batch, seed):
        self.names = sorted(variables)
        rng = np.random.default_rng(seed)
        self.batch = batch
        self.shapes = [tuple(batch if d == BATCH else d for d in variables[n].shape)
                       for n in self.names]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.flat = rng.uniform(-1.5, 1.5, sum(self.sizes))

    def split(self, flat):
        parts, start = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            parts.append(flat[start:start + size].reshape(shape))
            start += size
        return parts

    def direction(self, seed):
        return np.random.default_rng(seed).standard_normal(self.flat.size)


def flat(results):
    """One vector of every result's entries, in order."""
    return np.concatenate([np.ravel(np.asarray(r, dtype=float)) for r in results])


def finite(values):
    return bool(np.all(np.isfinite(values)) and np.all(np.abs(values) < MAX_MAGNITUDE))


def drawn_gradients_against_numpy(data, backend):
    """A drawn graph and its gradients, compiled by the NumPy backend and by ``backend``: (the
    other backend's function, the arguments, NumPy's values), or None where NumPy's values are
    not all ordinary numbers (nothing to compare there)."""
    with sg.use_graph():
        f, _, inputs, point = draw_case(data)
        outputs = [f, *sg.grad(f, inputs, disconnected="zero")]
        numpy_fn, other_fn = [sg.compile(outputs, inputs=inputs, backend=b)
                              for b in ("numpy", backend)]
    args = point.split(point.flat)
    with np.errstate(all="ignore"):
        want = numpy_fn(*args)
    if not all(finite(np.ravel(w)) for w in want):
        return None
    return other_fn, args, want


def difference_along(function, point, direction, step):
    return (function(point + step * direction) - function(point - step * direction)) / (2 * step)


def assert_matches_differences(analytic, function, point, directions, what):
    """Check ``analytic[:, k]`` against central differences of ``function`` along ``directions[k]``.

    The difference is taken at STEP and 2*STEP. Their disagreement estimates the truncation error;
    where it is large the point is too close to a kink and is rejected, otherwise the analytic
    derivative must lie within that estimate plus rounding.
    """
    analytic = np.asarray(analytic, dtype=float).reshape(-1, len(directions))
    fine = np.stack([difference_along(function, point, u, STEP) for u in directions], axis=1)
    coarse = np.stack([difference_along(function, point, u, 2 * STEP) for u in directions], axis=1)
    assume(finite(fine) and finite(coarse))
    scale = 1.0 + np.abs(fine)
    truncation = np.abs(fine - coarse)
    smooth = bool(np.all(truncation <= 1e-3 * scale))
    if not smooth:
        event("rejected: a kink or discontinuity within the step")
    assume(smooth)
    error = np.abs(analytic - fine)
    bound = 2 * truncation + 1e-6 * scale
    worst = np.unravel_index(np.argmax(error - bound), error.shape)
    assert np.all(error <= bound), (
        f"{what}: entry {worst} is {analytic[worst]!r}, finite differences give {fine[worst]!r}")


def compiled_both_ways(outputs, inputs):
    """The same outputs compiled with and without the optimiser."""
    return [sg.compile(outputs, inputs=inputs, optimize=optimize) for optimize in (True, False)]


def draw_case(data, max_steps=8, dtype="float64", kinds=None):
    """A graph (f scalar, the variables, the sinks) and a point away from overflow; ``kinds``
    as GraphDrawer's (the property tests below draw from ALL_KINDS)."""
    drawer = GraphDrawer(data.draw, dtype, kinds)
    drawer.build(data.draw(st.integers(1, max_steps), label="steps"))
    sinks = drawer.sinks()
    weights = [1.0 + 0.25 * i for i in range(len(sinks))]     # no two sinks cancel
    f = sum((w * sg.sum(s) for w, s in zip(weights, sinks)), start=sg.const(np.zeros((), dtype)))
    note(f"f = {to_text(f, limit=2000)}")
    variables = drawer.variables
    point = Point(variables, data.draw(st.integers(1, 3), label="batch"),
                  data.draw(st.integers(0, 2**32 - 1), label="seed"))
    return f, drawer, [variables[n] for n in point.names], point


# -- first order -----------------------------------------------------------------------------------


@given(st.data())
def test_gradients_match_finite_differences(data):
    with sg.use_graph():
        f, _, inputs, point = draw_case(data, kinds=ALL_KINDS)
        grads = sg.grad(f, inputs, disconnected="zero")
        value = sg.compile(f, inputs=inputs, optimize=False)
        assume(finite(value(*point.split(point.flat))))
        identity = np.eye(point.flat.size)
        for fn in compiled_both_ways([f, *grads], inputs):
            def of(x, fn=fn):
                return np.asarray(fn(*point.split(x))[0], dtype=float).reshape(1)
            results = fn(*point.split(point.flat))
            gradient = flat(results[1:])
            assume(finite(gradient))
            assert_matches_differences(gradient, of, point.flat, identity, "grad")


@given(st.data())
def test_jacobian_vjp_and_jvp_match_finite_differences(data):
    with sg.use_graph():
        _, drawer, inputs, point = draw_case(data, kinds=ALL_KINDS)
        y = drawer.pool[-1]
        y_shape = tuple(point.batch if d == BATCH else d for d in y.shape)
        forward = sg.compile(y, inputs=inputs, optimize=False)

        def of(x):
            return np.asarray(forward(*point.split(x)), dtype=float).ravel()

        assume(finite(of(point.flat)))
        jacobians = sg.jacobian(y, inputs, disconnected="zero")
        u = sg.var("u_cotangent", shape=y.shape)
        tangents = [sg.var(f"t_{v.name}", shape=v.shape) for v in inputs]
        pullback = sg.vjp(y, inputs, u, disconnected="zero")
        pushforward = sg.jvp(y, inputs, tangents, disconnected="zero")
        u_value = np.random.default_rng(1).standard_normal(y_shape)
        t_flat = point.direction(2)
        identity = np.eye(point.flat.size)
        for fn in compiled_both_ways([*jacobians, *pullback, pushforward],
                                     [*inputs, u, *tangents]):
            results = fn(*point.split(point.flat), u_value, *point.split(t_flat))
            size = max(1, math.prod(y_shape))
            jacobian = np.concatenate([np.reshape(j, (size, -1)) for j in results[:len(inputs)]],
                                      axis=1)
            assume(finite(jacobian))
            assert_matches_differences(jacobian, of, point.flat, identity, "jacobian")
            vjp = flat(results[len(inputs):2 * len(inputs)])
            np.testing.assert_allclose(vjp, u_value.ravel() @ jacobian, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(np.ravel(results[-1]), jacobian @ t_flat,
                                       rtol=1e-9, atol=1e-9)


# -- second order ----------------------------------------------------------------------------------


@given(st.data())
def test_hvp_and_hessian_match_differences_of_the_gradient(data):
    with sg.use_graph():
        f, _, inputs, point = draw_case(data, max_steps=6, kinds=ALL_KINDS)
        grads = sg.grad(f, inputs, disconnected="zero")
        gradient_fn = sg.compile(grads, inputs=inputs, optimize=False)

        def gradient_of(x):
            return flat(gradient_fn(*point.split(x)))

        assume(finite(gradient_of(point.flat)))
        directions = [sg.var(f"v_{v.name}", shape=v.shape) for v in inputs]
        products = sg.hvp(f, inputs, directions, disconnected="zero")
        direction = point.direction(3)
        for fn in compiled_both_ways(products, [*inputs, *directions]):
            product = flat(fn(*point.split(point.flat), *point.split(direction)))
            assume(finite(product))
            assert_matches_differences(product, gradient_of, point.flat, [direction], "hvp")
        if point.flat.size > 24:
            return                                # dense Hessians only for small variables
        blocks = sg.hessian(f, inputs, disconnected="zero")
        for fn in compiled_both_ways([b for row in blocks for b in row], inputs):
            results = fn(*point.split(point.flat))
            rows = []
            for i, size_i in enumerate(point.sizes):
                row = [np.reshape(results[i * len(inputs) + j], (size_i, size_j))
                       for j, size_j in enumerate(point.sizes)]
                rows.append(np.concatenate(row, axis=1))
            hessian = np.concatenate(rows, axis=0)
            assume(finite(hessian))
            assert_matches_differences(hessian, gradient_of, point.flat,
                                       np.eye(point.flat.size), "hessian")


# -- float32 ---------------------------------------------------------------------------------------


@given(st.data())
def test_float32_graphs_and_their_derivatives_compute_in_float32(data):
    # the values themselves are held to float64's in test_float32.py, op by op
    with sg.use_graph():
        f, _, inputs, point = draw_case(data, max_steps=6, dtype="float32", kinds=FLOAT32_KINDS)
        directions = [sg.var(f"v_{v.name}", shape=v.shape, dtype="float32") for v in inputs]
        outputs = [f, *sg.grad(f, inputs, disconnected="zero"),
                   *sg.hvp(f, inputs, directions, disconnected="zero")]
        assert [o.dtype for o in outputs] == ["float32"] * len(outputs)
        args = [a.astype(np.float32) for a in point.split(point.flat)]
        args += [a.astype(np.float32) for a in point.split(point.direction(3))]
        for fn in compiled_both_ways(outputs, [*inputs, *directions]):
            with np.errstate(all="ignore"):
                results = fn(*args)
            assert [np.asarray(r).dtype for r in results] == [np.float32] * len(outputs)


# -- scalar graphs against SymPy -------------------------------------------------------------------

EXACT_CONSTANTS = [-1.5, -0.75, 0.5, 1.25, 2.0]     # binary fractions: the same number in both


class ScalarDrawer:
    """Builds a scalar graph twice, step by step: in symgrad and with SymPy's own functions.

    ``kinks`` collects SymPy expressions whose zeros are kinks or jumps of the graph (the
    argument of relu, abs and sign, the difference of max/min/where operands, clip's distances
    to its bounds), so that points near them are rejected rather than judged.
    """

    def __init__(self, draw):
        self.draw = draw
        self.pool = []                # (symgrad Expr, SymPy expression) pairs
        self.symbols = {}
        self.kinks = []

    def variable(self):
        name = f"x{len(self.symbols)}"
        self.symbols[name] = sympy.Symbol(name, real=True)
        return sg.var(name), self.symbols[name]

    def pick(self):
        recent = self.pool[-3:]
        return self.draw(st.sampled_from(recent[::-1] + self.pool[:-3]))

    def partner(self, pair):
        way = self.draw(st.sampled_from(["pool", "variable", "constant"]))
        others = [p for p in self.pool if p is not pair]
        if way == "pool" and others:
            return self.draw(st.sampled_from(others))
        if way == "variable":
            return self.variable()
        c = self.draw(st.sampled_from(EXACT_CONSTANTS))
        return c, sympy.nsimplify(c)

    def positive(self, pair):
        (e, s), way = pair, self.draw(st.sampled_from(["square", "exp", "softplus", "sigmoid",
                                                        "abs"]))
        half, quarter, fifth = sympy.Rational(1, 2), sympy.Rational(1, 4), sympy.Rational(1, 5)
        if way == "square":
            return e * e + 0.5, s * s + half
        if way == "exp":
            return sg.exp(sg.tanh(e)), sympy.exp(sympy.tanh(s))
        if way == "softplus":
            return sg.softplus(e) + 0.25, sympy.log(1 + sympy.exp(s)) + quarter
        if way == "sigmoid":
            return sg.sigmoid(e) + 0.2, 1 / (1 + sympy.exp(-s)) + fifth
        self.kinks.append(s)
        return abs(e) + 0.3, sympy.Abs(s) + 3 * sympy.Rational(1, 10)

    def build(self, steps):
        for _ in range(self.draw(st.integers(1, 3))):
            self.pool.append(self.variable())
        for _ in range(steps):
            kind = self.draw(st.sampled_from(sorted(SCALAR_KINDS)))
            event(f"scalar op {kind}")
            self.pool.append(SCALAR_KINDS[kind](self))
        return self.pool[-1]


def _scalar_binary(ours, theirs, kink=False):
    def build(d):
        (a, sa) = pair = d.pick()
        b, sb = d.partner(pair)
        if kink:
            d.kinks.append(sa - sb)
        return ours(a, b), theirs(sa, sb)
    return build


def _scalar_unary(ours, theirs, domain=None, kink=False):
    def build(d):
        pair = d.pick()
        a, sa = domain(d, pair) if domain else pair
        if kink:
            d.kinks.append(sa)
        return ours(a), theirs(sa)
    return build


def _scalar_shifted_product(d):
    (a, sa), c = d.pick(), d.draw(st.sampled_from(SHIFTS))
    times = d.draw(st.integers(2, 5))
    product, symbolic = a - c, sa - sympy.nsimplify(c)
    for _ in range(times - 1):
        product = product * (a - c)
    return product, symbolic ** times


def _scalar_power(d):
    pair = d.pick()
    way = d.draw(st.sampled_from(["integer", "real", "symbolic"]))
    if way == "integer":
        n = d.draw(st.sampled_from([2, 3]))
        return pair[0] ** n, pair[1] ** n
    base, symbolic_base = d.positive(pair)
    if way == "real":
        p = d.draw(st.sampled_from([0.5, -1.5, 2.5, -1.0]))
        return base ** p, symbolic_base ** sympy.nsimplify(p)
    e, s = d.partner(pair)
    return base ** sg.tanh(e), symbolic_base ** sympy.tanh(s)


def _scalar_where(d):
    (a, sa) = pair = d.pick()
    b, sb = d.partner(pair)
    d.kinks.append(sa - sb)
    compare = d.draw(st.sampled_from(["<", ">="]))
    if compare == "<":
        return sg.where(a < b, a, b), sympy.Piecewise((sa, sa < sb), (sb, True))
    return sg.where(a >= b, sg.sin(a), 0.0), sympy.Piecewise((sympy.sin(sa), sa >= sb), (0, True))


def _scalar_clip(d):
    a, sa = d.pick()
    low = d.draw(st.sampled_from([-1.0, -0.5, 0.0]))
    high = low + d.draw(st.sampled_from([0.5, 1.0, 2.0]))
    d.kinks += [sa - sympy.nsimplify(low), sa - sympy.nsimplify(high)]
    return sg.clip(a, low, high), sympy.Min(sympy.Max(sa, sympy.nsimplify(low)),
                                             sympy.nsimplify(high))


def _scalar_divide(d):
    (a, sa) = pair = d.pick()
    b, sb = d.positive(d.partner(pair))
    return a / b, sa / sb


def _scalar_sign(d):
    (a, sa) = pair = d.pick()
    b, sb = d.partner(pair)
    d.kinks.append(sa)
    return sg.sign(a) * b, sympy.sign(sa) * sb


def _scalar_leaky_relu(d):
    a, sa = d.pick()
    slope = d.draw(st.sampled_from([0.125, 0.25]))
    d.kinks.append(sa)
    return sg.leaky_relu(a, slope), sympy.Max(sa, sympy.nsimplify(slope) * sa)


SCALAR_KINDS = {
    "add": _scalar_binary(lambda a, b: a + b, lambda a, b: a + b),
    "subtract": _scalar_binary(lambda a, b: a - b, lambda a, b: a - b),
    "multiply": _scalar_binary(lambda a, b: a * b, lambda a, b: a * b),
    "divide": _scalar_divide,
    "power": _scalar_power,
    "shifted_product": _scalar_shifted_product,
    "negative": _scalar_unary(lambda a: -a, lambda a: -a),
    "maximum": _scalar_binary(sg.maximum, sympy.Max, kink=True),
    "minimum": _scalar_binary(sg.minimum, sympy.Min, kink=True),
    "where": _scalar_where,
    "clip": _scalar_clip,
    "sin": _scalar_unary(sg.sin, sympy.sin),
    "cos": _scalar_unary(sg.cos, sympy.cos),
    "tan": _scalar_unary(lambda a: sg.tan(sg.tanh(a)), lambda a: sympy.tan(sympy.tanh(a))),
    "exp": _scalar_unary(sg.exp, sympy.exp),
    "expm1": _scalar_unary(sg.expm1, lambda a: sympy.exp(a) - 1),
    "log": _scalar_unary(sg.log, sympy.log, _positive),
    "log1p": _scalar_unary(sg.log1p, lambda a: sympy.log(1 + a), _positive),
    "sqrt": _scalar_unary(sg.sqrt, sympy.sqrt, _positive),
    "tanh": _scalar_unary(sg.tanh, sympy.tanh),
    "sigmoid": _scalar_unary(sg.sigmoid, lambda a: 1 / (1 + sympy.exp(-a))),
    "relu": _scalar_unary(sg.relu, lambda a: sympy.Max(a, 0), kink=True),
    "leaky_relu": _scalar_leaky_relu,
    "softplus": _scalar_unary(sg.softplus, lambda a: sympy.log(1 + sympy.exp(a))),
    "abs": _scalar_unary(sg.abs, sympy.Abs, kink=True),
    "sign": _scalar_sign,
}


# where the fast path's cases meet: zeros of both signs, ties (the same value twice), infinities
EDGE_VALUES = [0.0, -0.0, 0.5, -1.5, 2.0, np.inf, -np.inf, np.nan]


def same_float(got, want):
    """The same number, signed zeros and nan included; 1e-12 relative apart where math's libm
    and NumPy's round a transcendental function differently."""
    if np.isnan(want):
        return bool(np.isnan(got))
    if got == want:
        return bool(want != 0.0 or np.signbit(got) == np.signbit(want))
    return bool(want != 0.0 and np.isfinite(want) and abs(got - want) <= 1e-12 * abs(want))


@given(st.data())
def test_the_scalar_fast_path_is_the_numpy_function_on_kinks_and_edges(data):
    """The fast path (cases split at a kink, ordered ops decided in each, temporaries inlined)
    against the NumPy function of the same graph, at points on kinks and ties, at signed zeros,
    infinities and nan."""
    with sg.use_graph():
        drawer = ScalarDrawer(data.draw)
        f, symbolic = drawer.build(data.draw(st.integers(1, 6), label="steps"))
        inputs = [sg.var(name) for name in sorted(drawer.symbols)]
        fn = sg.compile([f, *sg.grad(f, inputs, disconnected="zero")], inputs=inputs)
        assume(fn.scalar_source is not None)
        note(fn.scalar_source)
        point = data.draw(st.lists(st.sampled_from(EDGE_VALUES), min_size=len(inputs),
                                   max_size=len(inputs)), label="point")
        with np.errstate(all="ignore"):
            fast = fn(*point)
            reference = fn(*(np.float64(v) for v in point))
        symbols = [drawer.symbols[name] for name in sorted(drawer.symbols)]
        exact = [symbolic] + [derivative(symbolic, s) for s in symbols]
        for got, want, expression in zip(fast, reference, exact):
            if same_float(got, want):
                continue
            # math's and NumPy's tanh, exp, ... may round apart by an ulp, and a cancellation
            # after them (tanh's 1 - t * t near saturation) makes that more than 1e-12: then
            # both must still be the function, judged against SymPy at the (finite) point
            assert np.isfinite(want) and np.isfinite(got), f"fast path {fast}, NumPy {reference}"
            value = sympy_value(expression, {s: sympy.Rational(v) for s, v in zip(symbols, point)})
            assert abs(got - value) <= 1e-8 * abs(value) and \
                abs(want - value) <= 1e-8 * abs(value), f"fast path {fast}, NumPy {reference}"


def derivative(expression, *symbols):
    """``sympy.diff`` with its DiracDelta terms dropped: they vanish away from the kinks, and
    points near kinks are rejected, but SymPy leaves ``DiracDelta(tan(0.4))`` unevaluated."""
    return sympy.diff(expression, *symbols).replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)


def sympy_value(expression, at):
    """``expression`` at the point (``at`` holds exact Rationals), to 30 digits.

    evalf with substitution evaluates functions such as sign() of an unevaluated argument, but
    cannot compare a structural zero (``Max(-1, x - Abs(x))`` at ``x > 0``); substituting first
    keeps that zero exact. Each way covers what the other cannot.
    """
    try:
        value = complex(expression.evalf(30, subs=at))
    except (TypeError, ValueError):
        value = complex(expression.subs(at).evalf(30))
    assume(abs(value.imag) < 1e-12)
    return value.real


@given(st.data())
def test_scalar_derivatives_match_sympy(data):
    with sg.use_graph():
        drawer = ScalarDrawer(data.draw)
        f, reference = drawer.build(data.draw(st.integers(1, 6), label="steps"))
        note(f"f = {to_text(f, limit=2000)}\nSymPy: {reference}")
        names = sorted(drawer.symbols)
        symbols = [drawer.symbols[n] for n in names]
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
        point = rng.uniform(-1.5, 1.5, len(names))
        at = {s: sympy.Rational(float(x)) for s, x in zip(symbols, point)}
        for kink in drawer.kinks:
            near = abs(sympy_value(sympy.sympify(kink), at)) < 1e-6
            if near:
                event("rejected: a kink at the point")
            assume(not near)
        inputs = [sg.var(n) for n in names]
        grads = sg.grad(f, inputs, disconnected="zero")
        hessian = sg.hessian(f, inputs, disconnected="zero")
        expected_value = sympy_value(reference, at)
        expected_grad = [sympy_value(derivative(reference, s), at) for s in symbols]
        expected_hessian = [[sympy_value(derivative(reference, s, t), at) for t in symbols]
                            for s in symbols]
        assume(finite(np.array([expected_value, *expected_grad])))
        assume(finite(np.array(expected_hessian)))
        compiled = compiled_both_ways([f, *grads, *(h for row in hessian for h in row)], inputs)
        # NumPy scalars take the NumPy function; Python floats the scalar fast path
        for fn, arguments in itertools.product(compiled, [list(point), point.tolist()]):
            value, *rest = (float(r) for r in fn(*arguments))
            n = len(names)
            np.testing.assert_allclose(value, expected_value, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(rest[:n], expected_grad, rtol=1e-8, atol=1e-10)
            np.testing.assert_allclose(np.reshape(rest[n:], (n, n)), expected_hessian,
                                       rtol=1e-7, atol=1e-9)
