"""Element-wise ops: arithmetic, transcendental functions, activations, comparisons and where.

Kinks and ties follow the conventions PyTorch and JAX share: at a tie ``maximum``/``minimum``
split the gradient evenly, ``abs'(0) = 0`` (abs is ``maximum(x, -x)``) and ``clip`` is half-open at
its bounds; the activations take the one-sided derivative those libraries (and TensorFlow) give:
``relu'(0) = 0`` and ``leaky_relu'(0) = alpha`` (PyTorch's and TensorFlow's; JAX's is 1).
Imports ops.core and ops.shape.
"""

import functools
import math
import numbers
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import ArgumentError, InternalError
from .core import (FOLD_LIMIT, Expr, apply, bool_dtype, broadcast_shape, const,
                   constant_value, defop, float_dtype, is_scalar_constant, literal, op_function,
                   promoted_dtypes, public, same_shape, PUBLIC)
from .shape import unbroadcast


def _to_input(g, out, x):
    """Sum the cotangent ``g`` of ``out`` down to operand ``x``'s shape, keeping batch axes."""
    return unbroadcast(g, x.shape, g.ndim - out.ndim)


def _fold(function):
    """A build rule that evaluates ``function`` when every operand is a constant (and the
    result is small enough to be worth keeping as one)."""
    def simplify(inputs, **attrs):
        values = []
        for x in inputs:        # most operands are not constants: stop at the first
            value = constant_value(x)
            if value is None or value.dtype == bool:
                return None
            values.append(value)
        shape = np.broadcast_shapes(*(v.shape for v in values))
        if int(np.prod(shape, dtype=np.int64)) <= FOLD_LIMIT:
            with np.errstate(all="ignore"):
                result = function(*values)
            return _constant_like(result, inputs)
        return None
    return simplify


def _constant_like(value, inputs):
    dtype = float_dtype(promoted_dtypes(inputs))
    return const(np.asarray(value, dtype=dtype), inputs[0].graph)


def _identity_when(check):
    """A build rule returning the operand ``check`` picks when the other one is neutral,
    provided that dropping the other changes neither shape nor dtype."""
    def simplify(inputs, **attrs):
        kept = check(*inputs)
        if kept is None or any(x.dtype != kept.dtype for x in inputs):
            return None
        return kept if broadcast_shape([x.shape for x in inputs]) == kept.shape else None
    return simplify


def _unspread(x):
    """What a broadcast spreads: its operand, or the scalar under a chain of broadcasts and
    inserted axes (the gradient of a mean is such a chain)."""
    if x.op == "broadcast_to_like":
        core = x.inputs[0]
    elif x.op == "expand_dims":
        core = x
    else:
        return x
    while core.op in ("broadcast_to_like", "expand_dims") and core.inputs[0].ndim <= core.ndim:
        if core.inputs[0].shape == ():
            return core.inputs[0]
        core = core.inputs[0]
    return x.inputs[0] if x.op == "broadcast_to_like" else x


def _through_broadcasts(name):
    """A build rule that feeds ``name`` the operands of explicit broadcasts directly when the
    result keeps its shape: NumPy broadcasts inside the element-wise op for free."""
    def simplify(inputs, **attrs):
        nodes = inputs[0].graph._node       # asked of every element-wise node built
        for x in inputs:
            if nodes[x.node]["op"] in ("broadcast_to_like", "expand_dims"):
                break
        else:
            return None
        inner = [_unspread(x) for x in inputs]
        if all(a.node == b.node for a, b in zip(inner, inputs)):
            return None
        if broadcast_shape([x.shape for x in inner]) != broadcast_shape([x.shape for x in inputs]):
            return None
        return apply(name, *inner, **attrs)
    return simplify


def _into_selection(name, positions):
    """While derivatives are built, ``where(c, a, 0) * d`` becomes ``where(c, a * d, 0)`` (and so
    for ``/``): a local derivative that is infinite where the other branch was taken (sqrt'(0),
    log'(0)) then never meets the zero cotangent there, so no NaN leaks out of the branch not
    taken. Forward expressions are left as written."""
    def simplify(inputs, **attrs):
        if not inputs[0].graph.building_derivatives:
            return None
        for position in positions:
            selection = inputs[position]
            if selection.op != "where":
                continue
            condition, taken, other = selection.inputs
            operands = list(inputs)
            if is_scalar_constant(other, 0):
                operands[position] = taken
                return _same_shape(where(condition, apply(name, *operands), 0.0), inputs)
            if is_scalar_constant(taken, 0):
                operands[position] = other
                return _same_shape(where(condition, 0.0, apply(name, *operands)), inputs)
        return None
    return simplify


def _same_shape(rewritten, inputs):
    """The rewrite if it has the shape the original op would have had, else None."""
    return rewritten if rewritten.shape == broadcast_shape([x.shape for x in inputs]) else None


def _selections_added(name):
    """While derivatives are built, ``where(c, a, 0) + where(c, b, 0)`` is ``where(c, a + b, 0)``, so
    the selection keeps guarding what the sum meets next."""
    def simplify(inputs, **attrs):
        x, y = inputs
        if not x.graph.building_derivatives or x.op != "where" or y.op != "where":
            return None
        (cx, ax, bx), (cy, ay, by) = x.inputs, y.inputs
        if cx.node != cy.node:
            return None
        if is_scalar_constant(bx, 0) and is_scalar_constant(by, 0):
            return _same_shape(where(cx, apply(name, ax, ay), 0.0), inputs)
        if is_scalar_constant(ax, 0) and is_scalar_constant(ay, 0):
            return _same_shape(where(cx, 0.0, apply(name, bx, by)), inputs)
        return None
    return simplify


# -- unary functions: one line each, the derivative reusing ``out`` where the math allows ----------


def unary(name, numpy_name, vjp, sympy, scalar=None, **emission):
    """Register ``name`` as ``np.<numpy_name>`` with derivative rule ``vjp(g, out, x)``, SymPy
    form ``sympy`` (Op.sympy) and its public function ``numpy_name``; on Python floats it is
    ``math.<numpy_name>`` unless ``scalar`` says otherwise (``emission``: the other fields of its
    Emission)."""
    function = getattr(np, numpy_name)
    defop(name, 1, same_shape, f"np.{numpy_name}({{0}})", lambda g, out, x: [vjp(g, out, x)],
          sympy=sympy, simplify=_fold(function), scalar=scalar or f"math.{numpy_name}({{0}})",
          numpy_into=f"np.{numpy_name}({{0}}, out={{out}})", **emission)

    def build(x):
        return apply(name, x)
    build.__name__ = name
    build.__doc__ = f"Element-wise ``np.{numpy_name}``, differentiable."
    return public(numpy_name)(build)


sin = unary("sin", "sin", lambda g, out, x: g * cos(x), "sin")
cos = unary("cos", "cos", lambda g, out, x: -(g * sin(x)), "cos")
# loop=None: NumPy's SIMD ufunc is faster than the C library's function a loop calls; tanh's
# loop form is the kernel module's (codegen.numba.KERNEL_HEADER)
tan = unary("tan", "tan", lambda g, out, x: g * (1.0 + out ** 2), "tan", loop=None)
exp = unary("exp", "exp", lambda g, out, x: g * out, "exp", loop=None)
log = unary("log", "log", lambda g, out, x: g / x, "log", loop=None)
log1p = unary("log1p", "log1p", lambda g, out, x: g / (1.0 + x),
              lambda sympy, x: sympy.log(1 + x), loop=None)
expm1 = unary("expm1", "expm1", lambda g, out, x: g * (out + 1.0),
              lambda sympy, x: sympy.exp(x) - 1, loop=None)
sqrt = unary("sqrt", "sqrt", lambda g, out, x: g / (2.0 * out), "sqrt")
tanh = unary("tanh", "tanh", lambda g, out, x: g * (1.0 - out ** 2), "tanh",
             loop="_sg_tanh({0})")
# the conditional expressions keep NumPy's answers at 0 and for nan (which fails every
# comparison); x + 0.0 is NumPy's sign of -0.0, which is 0.0
sign = unary("sign", "sign", lambda g, out, x: None, "sign",
             scalar="(1.0 if {0} > 0.0 else -1.0 if {0} < 0.0 else {0} + 0.0)",
             ordered=(1.0, -1.0))
absolute = unary("absolute", "abs", lambda g, out, x: g * sign(x), "Abs", scalar="math.fabs({0})",
                 ordered=(0, None))

def _inside_broadcast(name):
    """f(broadcast(a, like)) -> broadcast(f(a), like): the function runs on the small operand."""
    def simplify(inputs, **attrs):
        (x,) = inputs
        if x.op != "broadcast_to_like":
            return None
        value, like = x.inputs
        return apply("broadcast_to_like", apply(name, value, **attrs), like)
    return simplify


defop("negative", 1, same_shape, "-{0}", lambda g, out, x: [-g], scalar="-{0}",
      sympy=lambda sympy, x: -x,
      numpy_into="np.negative({0}, out={out})",
      simplify=(_fold(np.negative), _inside_broadcast("negative"),
                lambda inputs: inputs[0].inputs[0] if inputs[0].op == "negative" else None,
                _into_selection("negative", (0,))))


def negative(x):
    return apply("negative", x)


def _heaviside_simplify(inputs, at_zero):
    value = constant_value(inputs[0])
    if value is not None and value.shape == ():
        return _constant_like(np.heaviside(value, at_zero), inputs)
    return None


# np.heaviside is a scalar loop; np.sign is SIMD, and sign / 2 + 1/2 is exactly the step with 1/2
# at zero, max(sign, 0) the step with 0 there (nan stays nan in both), several times faster into
# another array. Not in place: np.sign(a, out=a) takes NumPy's scalar loop
# (tests/benchmarks/README.md).
def _emit_heaviside(ctx):
    x, at_zero = ctx.args[0], ctx.attrs["at_zero"]
    if at_zero == 0.5:
        return f"np.sign({x}) * 0.5 + 0.5"
    if at_zero == 0.0:
        return f"np.maximum(np.sign({x}), 0.0)"
    return f"np.heaviside({x}, {literal(at_zero)})"


def _emit_heaviside_into(ctx):
    x, at_zero = ctx.args[0], ctx.attrs["at_zero"]
    if at_zero == 0.5:
        return [f"{ctx.out} = np.sign({x}, out={ctx.into})", f"{ctx.out} *= 0.5",
                f"{ctx.out} += 0.5"]
    if at_zero == 0.0:
        return [f"{ctx.out} = np.sign({x}, out={ctx.into})",
                f"np.maximum({ctx.out}, 0.0, out={ctx.out})"]
    return [f"{ctx.out} = np.heaviside({x}, {literal(at_zero)}, out={ctx.into})"]


# As a mask (a ReLU's derivative times its cotangent): x > 0 is one comparison writing a byte an
# entry, and multiplying by it one pass, as a hand writes ``g *= x > 0``; counting the entries
# on either side of 0 (two more byte-wide passes) finds a nan, or a tie where the step is not 0,
# and only then is the floating step made: faster than sign / 2 + 1/2 and the product
# (tests/benchmarks/README.md). With 0 at zero the mask is the step at ties too (zeros, as
# images and ReLU outputs have them, keep the fast path).
def _emit_heaviside_mask(ctx):
    x = ctx.args[0]
    other_side = f"{x} <= 0.0" if ctx.attrs["at_zero"] == 0.0 else f"{x} < 0.0"
    return [f"{ctx.out} = {x} > 0.0",
            f"if np.count_nonzero({ctx.out}) + np.count_nonzero({other_side}) != {ctx.out}.size:",
            f"    {ctx.out} = {_emit_heaviside(ctx)}"]


defop("heaviside", 1, same_shape, _emit_heaviside, lambda g, out, x, at_zero: [None],
      simplify=_heaviside_simplify, nondifferentiable=(0,),
      scalar="(1.0 if {0} > 0.0 else 0.0 if {0} < 0.0 else {at_zero} if {0} == 0.0 else {0})",
      numpy_into=_emit_heaviside_into, into_positions=(), ordered=(1.0, 0.0),
      numpy_mask=_emit_heaviside_mask,
      sympy=lambda sympy, x, at_zero=0.5: sympy.Heaviside(x, sympy.nsimplify(at_zero)))


def heaviside(x, at_zero=0.5):
    """The unit step, ``at_zero`` at 0; the derivative of relu and of maximum's selection."""
    return apply("heaviside", x, at_zero=float(at_zero))


# Stable forms: sigmoid = exp(-log(1 + exp(-x))) never overflows and keeps relative accuracy in
# both tails; softplus = log(exp(0) + exp(x)) through logaddexp never overflows either. Neither
# fuses: they are exp and log1p inside (see tan's loop=None).
defop("sigmoid", 1, same_shape, "np.exp(-np.logaddexp(0.0, -{0}))",
      lambda g, out, x: [g * (out * (1.0 - out))],
      # the NumPy form with logaddexp written out as NumPy computes it, branch for branch
      scalar="(math.exp(-math.log1p(math.exp(-{0}))) if {0} > 0.0 "
             "else math.exp({0} - math.log1p(math.exp({0}))))", loop=None,
      sympy=lambda sympy, x: 1 / (1 + sympy.exp(-x)))
defop("softplus", 1, same_shape, "np.logaddexp(0.0, {0})", lambda g, out, x: [g * sigmoid(x)],
      scalar="({0} + math.log1p(math.exp(-{0})) if {0} > 0.0 else math.log1p(math.exp({0})))",
      numpy_into="np.logaddexp(0.0, {0}, out={out})", loop=None,
      sympy=lambda sympy, x: sympy.log(1 + sympy.exp(x)))
defop("relu", 1, same_shape, "np.maximum({0}, 0.0)", lambda g, out, x: [g * heaviside(x, 0.0)],
      scalar="({0} if {0} > 0.0 else 0.0 if {0} <= 0.0 else {0})",
      numpy_into="np.maximum({0}, 0.0, out={out})", ordered=(0, 0.0),
      sympy=lambda sympy, x: sympy.Max(x, 0))
defop("leaky_relu", 1, same_shape, "np.where({0} > 0.0, {0}, {alpha} * {0})",
      lambda g, out, x, alpha: [g * (alpha + (1.0 - alpha) * heaviside(x, 0.0))],
      scalar="({0} if {0} > 0.0 else {alpha} * {0})", ordered=(0, None),
      sympy=lambda sympy, x, alpha: sympy.Piecewise((x, x > 0), (alpha * x, True)))


@public("sigmoid")
def sigmoid(x):
    """The logistic function ``1 / (1 + exp(-x))``, computed without overflow.

    >>> from symgrad import var
    >>> sigmoid(var("x")).op
    'sigmoid'
    """
    return apply("sigmoid", x)


@public("softplus")
def softplus(x):
    """``log(1 + exp(x))`` without overflow; its derivative is ``sigmoid(x)``.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> float(sg.compile(sg.softplus(x))(1000.0))
    1000.0
    >>> float(sg.compile(sg.grad(sg.softplus(x), x))(0.0))
    0.5
    """
    return apply("softplus", x)


@public("relu")
def relu(x):
    """``maximum(x, 0)``; the derivative at 0 is 0, as PyTorch, JAX and TensorFlow compute it.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(3,))
    >>> sg.compile(sg.grad(sg.sum(sg.relu(x)), x))(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 1.])
    """
    return apply("relu", x)


@public("leaky_relu", static=("alpha",))
def leaky_relu(x, alpha=0.01):
    """``x`` where positive, ``alpha * x`` elsewhere; the derivative at 0 is ``alpha``, as
    PyTorch and TensorFlow compute it (JAX's is 1).

    >>> import numpy as np
    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(3,))
    >>> sg.compile(sg.grad(sg.sum(sg.leaky_relu(x, alpha=0.1)), x))(np.array([-1.0, 0.0, 2.0]))
    array([0.1, 0.1, 1. ])
    """
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise ArgumentError(f"leaky_relu: the slope alpha must be a real number, got {alpha!r}")
    return apply("leaky_relu", x, alpha=float(alpha))


# -- binary arithmetic -----------------------------------------------------------------------------


def _either_side(number):
    def check(x, y):
        if is_scalar_constant(y, number):
            return x
        return y if is_scalar_constant(x, number) else None
    return check


def _right_is(number):
    def check(x, y):
        return x if is_scalar_constant(y, number) else None
    return check


defop("add", 2, broadcast_shape, "{0} + {1}",
      lambda g, out, x, y: [_to_input(g, out, x), _to_input(g, out, y)],
      simplify=(_fold(np.add), _identity_when(_either_side(0)),
                _through_broadcasts("add"), _selections_added("add")),
      scalar="{0} + {1}", numpy_into="np.add({0}, {1}, out={out})", augmented="+",
      sympy=lambda sympy, x, y: x + y)
defop("subtract", 2, broadcast_shape, "{0} - {1}",
      lambda g, out, x, y: [_to_input(g, out, x), _to_input(-g, out, y)],
      simplify=(_fold(np.subtract), _identity_when(_right_is(0)),
                _through_broadcasts("subtract"), _selections_added("subtract")),
      scalar="{0} - {1}", numpy_into="np.subtract({0}, {1}, out={out})", augmented="-",
      scalar_identities=((1, "0.0"),), sympy=lambda sympy, x, y: x - y)
defop("multiply", 2, broadcast_shape, "{0} * {1}",
      lambda g, out, x, y: [_to_input(g * y, out, x), _to_input(g * x, out, y)],
      simplify=(_fold(np.multiply), _identity_when(_either_side(1)),
                _through_broadcasts("multiply"), _into_selection("multiply", (0, 1))),
      scalar="{0} * {1}", numpy_into="np.multiply({0}, {1}, out={out})", augmented="*",
      scalar_identities=((1, "1.0"), (0, "1.0")), sympy=lambda sympy, x, y: x * y)
defop("divide", 2, broadcast_shape, "{0} / {1}",
      lambda g, out, x, y: [_to_input(g / y, out, x), _to_input(-(g * out) / y, out, y)],
      simplify=(_fold(np.divide), _identity_when(_right_is(1)),
                _through_broadcasts("divide"), _into_selection("divide", (0,))),
      scalar="{0} / {1}", numpy_into="np.divide({0}, {1}, out={out})", augmented="/",
      scalar_identities=((1, "1.0"),), sympy=lambda sympy, x, y: x / y)
defop("power", 2, broadcast_shape, lambda ctx: _power_numpy(ctx),
      lambda g, out, x, y: [_power_base_vjp(g, out, x, y), _power_exponent_vjp(g, out, x, y)],
      simplify=(_fold(np.power), _identity_when(_right_is(1)),
                _through_broadcasts("power")),
      scalar=lambda ctx: _scalar_power(*ctx.args), numpy_into=lambda ctx: _power_into(ctx),
      sympy=lambda sympy, x, y: x ** y)


# an array ** 2.0 as np.square: `a ** 2.0` and np.power take NumPy's general path, slower on
# arrays (tests/benchmarks/README.md); a NumPy scalar keeps ** (a ufunc call costs it more)
def _power_numpy(ctx):
    base, exponent = ctx.args
    if _squares_floats(ctx) and ctx.shape != ():
        return f"np.square({base})"
    return f"{base} ** {exponent}"


def _power_into(ctx):
    base, exponent = ctx.args
    if _squares_floats(ctx):
        return f"np.square({base}, out={ctx.into})"
    return f"np.power({base}, {exponent}, out={ctx.into})"


def _squares_floats(ctx):
    # np.square keeps its operand's dtype: a mask squared would stay boolean, where ** 2.0 gives
    # the float64 the graph says
    return ctx.args[1] == "2.0" and ctx.dtypes[0] in ("float64", "float32")


def _scalar_power(base, exponent):
    # math.pow raises where float ** would answer a complex number (a negative base)
    return f"{base} * {base}" if exponent == "2.0" else f"math.pow({base}, {exponent})"


def _power_base_vjp(g, out, x, y):
    if x.op == "const":
        return None         # no gradient is asked of a constant: build nothing for it
    # x ** 0 is 1 at every x, 0 and nan included, so a zero exponent's term y x ** (y - 1) must be
    # 0 there, not 0 * x ** -1 (nan at x = 0): its x ** (y - 1) is taken as x ** 0 instead
    exponent = constant_value(y)
    if exponent is not None:
        if not exponent.any():
            return None
        lowered = const(np.where(exponent == 0, 0.0, exponent - 1.0).astype(exponent.dtype),
                        y.graph)
        return _to_input(g * (y * x ** lowered), out, x)
    # an exponent that varies keeps y - 1 wherever it can, so that the derivative in y of this
    # term (x ** -1 at y = 0) stays right; only where x and y are both 0 is the base taken as 1
    base = where(y == 0.0, where(x == 0.0, 1.0, x), x)
    return _to_input(g * (y * base ** (y - 1.0)), out, x)


def _power_exponent_vjp(g, out, x, y):
    if y.op == "const":
        return None
    # d(x**y)/dy = x**y log x, whose limit at x = 0 (where x**y = 0 for y > 0) is 0, not nan
    base = constant_value(x)
    if base is not None:    # 2 ** y: log 2 is a number, as weak as the 2 (a float32 y stays so)
        with np.errstate(invalid="ignore"):
            logarithm = const(np.log(np.where(base == 0.0, 1.0, base)).astype(base.dtype), x.graph)
        return _to_input(g * (out * logarithm), out, y)
    return _to_input(g * (out * log(where(x == 0.0, 1.0, x))), out, y)


# One step serves both operands: H(y - x) = 1 - H(x - y), at a tie (1/2) and for nan alike.
def _maximum_vjp(g, out, x, y):
    step = heaviside(x - y)
    return [_to_input(g * step, out, x), _to_input(g * (1.0 - step), out, y)]


def _minimum_vjp(g, out, x, y):
    step = heaviside(y - x)
    return [_to_input(g * step, out, x), _to_input(g * (1.0 - step), out, y)]


# on floats, the last branch is reached only with a nan operand, which the sum propagates; a tie
# (0.0 and -0.0) gives the second operand, as NumPy's scalar and SIMD loops do
defop("maximum", 2, broadcast_shape, "np.maximum({0}, {1})", _maximum_vjp,
      simplify=(_fold(np.maximum), _through_broadcasts("maximum")),
      scalar="({0} if {0} > {1} else {1} if {1} >= {0} else {0} + {1})",
      numpy_into="np.maximum({0}, {1}, out={out})", ordered=(0, 1), sympy="Max")
defop("minimum", 2, broadcast_shape, "np.minimum({0}, {1})", _minimum_vjp,
      simplify=(_fold(np.minimum), _through_broadcasts("minimum")),
      scalar="({0} if {0} < {1} else {1} if {1} <= {0} else {0} + {1})",
      numpy_into="np.minimum({0}, {1}, out={out})", ordered=(1, 0), sympy="Min")


def add(x, y): return apply("add", x, y)
def subtract(x, y): return apply("subtract", x, y)
def multiply(x, y): return apply("multiply", x, y)
def divide(x, y): return apply("divide", x, y)
def power(x, y): return apply("power", x, y)


@public("maximum")
def maximum(x, y):
    """Element-wise maximum; at a tie each operand gets half the gradient.

    >>> from symgrad import var
    >>> maximum(var("y"), var("z")).op
    'maximum'
    """
    return apply("maximum", x, y)


@public("minimum")
def minimum(x, y):
    """Element-wise minimum; at a tie each operand gets half the gradient.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> float(sg.compile(sg.grad(sg.minimum(x, 1.0), x))(1.0))
    0.5
    """
    return apply("minimum", x, y)


@public("clip")
@op_function("clip", operands=3)
def clip(x, lower, upper):
    """``minimum(maximum(x, lower), upper)``; at a bound the derivative is 1/2 (the tie rule).

    >>> import numpy as np
    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(3,))
    >>> sg.compile(sg.grad(sg.sum(sg.clip(x, 0.0, 1.0)), x))(np.array([-1.0, 0.5, 1.0]))
    array([0. , 1. , 0.5])
    """
    return minimum(maximum(x, lower), upper)


# -- comparisons and selection: no gradient flows through a boolean ---------------------------------

for _name, _symbol, _relation in [("less", "<", "Lt"), ("less_equal", "<=", "Le"),
                                  ("greater", ">", "Gt"), ("greater_equal", ">=", "Ge"),
                                  ("equal", "==", "Eq"), ("not_equal", "!=", "Ne")]:
    defop(_name, 2, broadcast_shape, f"{{0}} {_symbol} {{1}}", lambda g, out, x, y: [None, None],
          dtype=bool_dtype, nondifferentiable=(0, 1), scalar=f"{{0}} {_symbol} {{1}}",
          sympy=_relation)


def _where_vjp(g, out, condition, x, y):
    return [None, _to_input(where(condition, g, 0.0), out, x),
            _to_input(where(condition, 0.0, g), out, y)]


defop("where", 3, broadcast_shape, "np.where({0}, {1}, {2})", _where_vjp,
      scalar="({1} if {0} else {2})",
      dtype=lambda dtypes: float_dtype(dtypes[1:]), simplify=_through_broadcasts("where"),
      nondifferentiable=(0,), sympy=lambda sympy, c, x, y: sympy.Piecewise((x, c), (y, True)))


@public("where")
def where(condition, x, y):
    """``x`` where ``condition`` holds, else ``y``; the gradient goes only to the branch taken.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(3,))
    >>> f = sg.sum(sg.where(x > 0, x ** 2, -x))
    >>> sg.compile(sg.grad(f, x))(np.array([-1.0, 0.0, 2.0]))
    array([-1., -1.,  4.])
    """
    return apply("where", condition, x, y)



# -- issue 18: NumPy's other element-wise functions ------------------------------------------------
# Derivatives in forms that stay accurate where the textbook's cancel: (1 - x)(1 + x) for 1 - x²
# (exact near |x| = 1), hypot(x, 1) for sqrt(x² + 1) (no overflow), sigmoid(x - y) for logaddexp's
# weights (exp(x - out) would carry the rounding of a large out). Rounding has no derivative almost everywhere: floor, ceil, trunc and round
# give zero, as NumPy-based autodiff tools define it (JAX, autograd); mod's derivatives are JAX's.

_LN2 = 0.6931471805599453
_LN10 = 2.302585092994046

sinh = unary("sinh", "sinh", lambda g, out, x: g * cosh(x), "sinh")
cosh = unary("cosh", "cosh", lambda g, out, x: g * sinh(x), "cosh")
arcsin = unary("arcsin", "arcsin", lambda g, out, x: g / sqrt((1.0 - x) * (1.0 + x)), "asin",
               scalar="math.asin({0})")
arccos = unary("arccos", "arccos", lambda g, out, x: -(g / sqrt((1.0 - x) * (1.0 + x))), "acos",
               scalar="math.acos({0})")
arctan = unary("arctan", "arctan", lambda g, out, x: g / (1.0 + x * x), "atan",
               scalar="math.atan({0})")
arcsinh = unary("arcsinh", "arcsinh", lambda g, out, x: g / hypot(x, 1.0), "asinh",
                scalar="math.asinh({0})")
arccosh = unary("arccosh", "arccosh", lambda g, out, x: g / sqrt((x - 1.0) * (x + 1.0)), "acosh",
                scalar="math.acosh({0})")
arctanh = unary("arctanh", "arctanh", lambda g, out, x: g / ((1.0 - x) * (1.0 + x)), "atanh",
                scalar="math.atanh({0})")
log2 = unary("log2", "log2", lambda g, out, x: g / (x * _LN2), lambda sympy, x: sympy.log(x, 2))
log10 = unary("log10", "log10", lambda g, out, x: g / (x * _LN10),
              lambda sympy, x: sympy.log(x, 10))
# math has no cube root before Python 3.11 (and pow(x, 1/3) is not NumPy's answer): no
# Python-float form, so a graph with cbrt takes the NumPy function
defop("cbrt", 1, same_shape, "np.cbrt({0})", lambda g, out, x: [g / (3.0 * (out * out))],
      simplify=_fold(np.cbrt), numpy_into="np.cbrt({0}, out={out})", public="cbrt",
      sympy=lambda sympy, x: sympy.sign(x) * sympy.Abs(x) ** sympy.Rational(1, 3))
cbrt = PUBLIC["cbrt"].function


def _binary(name, vjp, scalar, sympy, fold, **emission):
    """Register the binary ufunc ``np.<name>`` (broadcasting), public under its name."""
    defop(name, 2, broadcast_shape, f"np.{name}({{0}}, {{1}})", vjp, scalar=scalar, sympy=sympy,
          simplify=(_fold(fold), _through_broadcasts(name)),
          numpy_into=f"np.{name}({{0}}, {{1}}, out={{out}})", public=name, **emission)


def _arctan2_vjp(g, out, y, x):
    radius = hypot(y, x)            # x / (x² + y²) as (x / r) / r: no overflow in the squares
    return [_to_input(g * ((x / radius) / radius), out, y),
            _to_input(-(g * ((y / radius) / radius)), out, x)]


_binary("arctan2", _arctan2_vjp, "math.atan2({0}, {1})", "atan2", np.arctan2)
_binary("hypot", lambda g, out, x, y: [_to_input(g * (x / out), out, x),
                                       _to_input(g * (y / out), out, y)],
        "math.hypot({0}, {1})", lambda sympy, x, y: sympy.sqrt(x ** 2 + y ** 2), np.hypot)
# NumPy's npy_logaddexp, branch for branch: a tie adds log 2, nan falls through to x + y
_binary("logaddexp", lambda g, out, x, y: [_to_input(g * sigmoid(x - y), out, x),
                                           _to_input(g * sigmoid(y - x), out, y)],
        f"({{0}} + {_LN2!r} if {{0}} == {{1}} "
        "else {0} + math.log1p(math.exp({1} - {0})) if {0} > {1} "
        "else {1} + math.log1p(math.exp({0} - {1})) if {0} < {1} else {0} + {1})",
        lambda sympy, x, y: sympy.log(sympy.exp(x) + sympy.exp(y)), np.logaddexp, loop=None)
# npy_logaddexp2 likewise, with log2(1 + t) as log1p(t) / ln 2 (NPY_LOG2E * log1p)
_binary("logaddexp2", lambda g, out, x, y: [_to_input(g * sigmoid((x - y) * _LN2), out, x),
                                            _to_input(g * sigmoid((y - x) * _LN2), out, y)],
        "({0} + 1.0 if {0} == {1} "
        "else {0} + math.log1p(math.pow(2.0, {1} - {0})) * 1.4426950408889634 if {0} > {1} "
        "else {1} + math.log1p(math.pow(2.0, {0} - {1})) * 1.4426950408889634 if {0} < {1} "
        "else {0} + {1})",
        lambda sympy, x, y: sympy.log(2 ** x + 2 ** y, 2), np.logaddexp2, loop=None)


# fmax and fmin ignore a nan operand: the gradient goes wholly to the other one; between numbers
# they are maximum and minimum, a tie split evenly. x != x is True only for nan.
def _nan_ignoring_vjp(step_of):
    def vjp(g, out, x, y):
        step = where(y != y, 1.0, where(x != x, 0.0, step_of(x, y)))
        return [_to_input(g * step, out, x), _to_input(g * (1.0 - step), out, y)]
    return vjp


# NumPy's scalar loop, nan included: a tie gives the first operand
_binary("fmax", _nan_ignoring_vjp(lambda x, y: heaviside(x - y)),
        "({1} if {0} < {1} or {0} != {0} else {0})", lambda sympy, x, y: sympy.Max(x, y), np.fmax)
_binary("fmin", _nan_ignoring_vjp(lambda x, y: heaviside(y - x)),
        "({1} if {0} > {1} or {0} != {0} else {0})", lambda sympy, x, y: sympy.Min(x, y), np.fmin)
# The remainders: 1 with respect to the dividend, and minus the quotient the remainder
# subtracted (floor for mod, trunc for fmod) with respect to the divisor, as JAX's rules
# (lax.rem's, and jnp.remainder built on it). Python's float % is NumPy's remainder, signed
# zeros included; math.fmod is C's fmod, as np.fmod.
_binary("remainder", lambda g, out, x, y: [_to_input(g, out, x),
                                           _to_input(-(g * floor(x / y)), out, y)],
        "{0} % {1}", lambda sympy, x, y: sympy.Mod(x, y), np.remainder)
_binary("fmod", lambda g, out, x, y: [_to_input(g, out, x),
                                      _to_input(-(g * trunc(x / y)), out, y)],
        "math.fmod({0}, {1})", lambda sympy, x, y: x - y * sympy.sign(x / y) * sympy.floor(
            sympy.Abs(x / y)), np.fmod, loop=None)      # Numba has no math.fmod


def hypot(x, y): return apply("hypot", x, y)


# Rounding: a step function, derivative zero almost everywhere. The Python-float forms take the
# sign of their operand (float(math.floor(-0.0)) would be 0.0, NumPy's -0.0); math.floor of inf
# or nan raises, and the call goes to NumPy. loop=None: NumPy's rounding ufuncs are SIMD
# instructions, where a loop converts to an int and back.
floor = unary("floor", "floor", lambda g, out, x: None, "floor",
              scalar="math.copysign(float(math.floor({0})), {0})", loop=None)
ceil = unary("ceil", "ceil", lambda g, out, x: None, "ceiling",
             scalar="math.copysign(float(math.ceil({0})), {0})", loop=None)
trunc = unary("trunc", "trunc", lambda g, out, x: None,
              lambda sympy, x: sympy.sign(x) * sympy.floor(sympy.Abs(x)),
              scalar="math.copysign(float(math.trunc({0})), {0})", loop=None)


# np.round: rint(x * 10**d) / 10**d, or rint(x / 10**-d) * 10**-d for negative d, as NumPy
# computes it; rint on Python floats is x - remainder(x, 1), exact, with x's sign
def _round_numpy(ctx):
    decimals = ctx.attrs["decimals"]
    return f"np.rint({ctx.args[0]})" if decimals == 0 else \
        f"np.round({ctx.args[0]}, {decimals})"


def _round_into(ctx):
    decimals = ctx.attrs["decimals"]
    if decimals == 0:
        return f"np.rint({ctx.args[0]}, out={ctx.into})"
    return f"np.round({ctx.args[0]}, {decimals}, out={ctx.into})"


def _round_scalar(ctx):
    x, decimals = ctx.args[0], ctx.attrs["decimals"]
    if decimals == 0:
        return f"math.copysign({x} - math.remainder({x}, 1.0), {x})"
    scale = literal(10.0 ** abs(decimals))
    scaled = f"({x} * {scale})" if decimals > 0 else f"({x} / {scale})"
    undo = "/" if decimals > 0 else "*"
    return (f"(math.copysign({scaled} - math.remainder({scaled}, 1.0), {scaled}) "
            f"{undo} {scale})")


defop("round", 1, same_shape, _round_numpy, lambda g, out, x, decimals: [None],
      scalar=_round_scalar, numpy_into=_round_into, loop=None)


@public("round", static=("decimals",))
def round_(a, decimals=0):
    """``np.round``: to the nearest multiple of ``10**-decimals``, ties to even; its derivative is
    zero (a step function, almost everywhere).

    >>> import numpy as np
    >>> import symgrad as sg
    >>> v = sg.var("v", shape=(3,))
    >>> sg.compile(sg.round(v))(np.array([0.5, 1.5, 2.25]))     # ties to even
    array([0., 2., 2.])
    """
    if isinstance(decimals, bool) or not isinstance(decimals, numbers.Integral):
        raise ArgumentError(f"round: decimals must be an int, got {decimals!r}")
    return apply("round", a, decimals=int(decimals))


# Functions that are an existing op: NumPy computes them as that op does (np.square is x**2's
# emission, np.reciprocal is 1/x, deg2rad multiplies by pi/180), so they are that op
@public("square")
def square(x):
    """``x ** 2``, emitted as ``np.square``.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> float(sg.compile(sg.grad(sg.square(x), x))(3.0))
    6.0
    """
    return apply("power", x, 2.0)


@public("reciprocal")
def reciprocal(x):
    """``1 / x``.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> float(sg.compile(sg.grad(sg.reciprocal(x), x))(2.0))     # -1 / x**2
    -0.25
    """
    return apply("divide", 1.0, x)


@public("fabs")
def fabs(x):
    """``np.fabs``: the absolute value (``abs``'s op).

    >>> import symgrad as sg
    >>> float(sg.compile(sg.fabs(sg.var("x")))(-2.5))
    2.5
    """
    return apply("absolute", x)


@public("exp2")
def exp2(x):
    """``2 ** x`` (NumPy's power, within an ulp of ``np.exp2``).

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> float(sg.compile(sg.exp2(x))(10.0))
    1024.0
    """
    return apply("power", 2.0, x)


@public("deg2rad")
def deg2rad(x):
    """``x * (pi / 180)``, as ``np.deg2rad`` computes it.

    >>> import symgrad as sg
    >>> float(sg.compile(sg.deg2rad(sg.var("x")))(180.0))
    3.141592653589793
    """
    return apply("multiply", x, np.pi / 180.0)


@public("rad2deg")
def rad2deg(x):
    """``x * (180 / pi)``, as ``np.rad2deg`` computes it.

    >>> import math
    >>> import symgrad as sg
    >>> float(sg.compile(sg.rad2deg(sg.var("x")))(math.pi))
    180.0
    """
    return apply("multiply", x, 180.0 / np.pi)


@public("mod")
def mod(x, y):
    """``np.mod``, the remainder of floor division (``%``), with the divisor's sign.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> y = sg.mod(x, 3.0)
    >>> [float(r) for r in sg.compile([y, sg.grad(y, x)], inputs=[x])(-1.0)]
    [2.0, 1.0]
    """
    return apply("remainder", x, y)



# -- sinc and its derivatives: one op, ``order`` saying which derivative ------------------------------
# NumPy's normalized sinc, sin(pi x) / (pi x) and 1 at 0. As JAX defines it, the op of order k
# is the k-th derivative and its derivative is the op of order k + 1, so every order is finite at
# 0 (JAX's Maclaurin coefficient at 0). Unlike JAX, which differentiates sin(u) / u away from 0,
# each order is computed without cancellation near 0 too: below a cutoff from its Maclaurin
# series, beyond it from Leibniz's rule, sin(pi x) and cos(pi x) times polynomials in 1 / x. The
# cutoff grows with the order, where the closed form's terms of size k! / x^(k+1) would cancel.
_PI = math.pi


def _sinc_cutoff(order):
    return 0.5 + order / 16.0


def _sinc_series(order):
    """Coefficients c_m of the k-th derivative near 0: sum over m of c_m x^(2m + k % 2)."""
    coefficients, n = [], (order + 1) // 2
    scale, cutoff = math.pi ** order / (order + 1), _sinc_cutoff(order)
    while True:
        coefficient = ((-1) ** n * math.pi ** (2 * n) * math.factorial(2 * n)
                       / (math.factorial(2 * n - order) * math.factorial(2 * n + 1)))
        coefficients.append(coefficient)
        if abs(coefficient) * cutoff ** (2 * n - order) < 1e-18 * scale:
            return coefficients
        n += 1


def _sinc_closed(order):
    """(a, b): the k-th derivative is (sin(pi x) A + cos(pi x) B) / x with A, B polynomials in
    1 / x whose coefficients are a and b, lowest degree first (Leibniz's rule on sin(pi x) / (pi x):
    the j-th derivative of 1 / x times the (k - j)-th of sin(pi x))."""
    sine, cosine = [0.0] * (order + 1), [0.0] * (order + 1)
    for j in range(order + 1):
        term = math.comb(order, j) * (-1) ** j * math.factorial(j) * math.pi ** (order - j - 1)
        phase = (order - j) % 4
        if phase % 2 == 0:
            sine[j] = term if phase == 0 else -term
        else:
            cosine[j] = term if phase == 1 else -term
    return sine, cosine


def _horner(coefficients, variable):
    """Source of the polynomial with ``coefficients`` (lowest degree first) in ``variable``."""
    text = literal(coefficients[-1])
    for coefficient in reversed(coefficients[:-1]):
        text = f"{literal(coefficient)} + {variable} * ({text})"
    return text


def _in_reciprocal(coefficients, x):
    """Source of the polynomial in 1 / x, by Horner's rule with divisions (no powers of x to
    overflow at large x): a0 + (a1 + (a2 + ...) / x) / x, its zero coefficients left out."""
    degree = max(j for j, c in enumerate(coefficients) if c != 0.0)
    text = literal(coefficients[degree])
    for coefficient in reversed(coefficients[:degree]):
        text = f"({text}) / {x}" if coefficient == 0.0 else \
            f"{literal(coefficient)} + ({text}) / {x}"
    return text


def _sinc_forms(order, small, square, large, library):
    """(near 0, away from 0): sources of the k-th derivative at ``small`` (whose square is
    ``square``) and at ``large``, names NumPy's form gives safe values (module comment)."""
    series = _horner(_sinc_series(order), square)
    if order % 2:
        series = f"{small} * ({series})"
    sine, cosine = _sinc_closed(order)
    pi_x = f"{_PI!r} * {large}"
    closed = (f"({library}.sin({pi_x}) * ({_in_reciprocal(sine, large)}) + "
              f"{library}.cos({pi_x}) * ({_in_reciprocal(cosine, large)})) / {large}")
    return series, closed


def _emit_sinc(ctx):
    x, order = ctx.args[0], ctx.attrs["order"]
    if order == 0:
        return f"np.sinc({x})"
    near, small, square, large = (ctx.temp(part) for part in ("near", "small", "square", "large"))
    series, closed = _sinc_forms(order, small, square, large, "np")
    # each form is evaluated only on values where it neither overflows nor divides by 0
    return [f"{near} = np.abs({x}) < {literal(_sinc_cutoff(order))}",
            f"{small} = np.where({near}, {x}, 0.0)",
            f"{square} = {small} * {small}",
            f"{large} = np.where({near}, 1.0, {x})",
            f"{ctx.out} = np.where({near}, {series}, {closed})",
            f"del {near}, {small}, {square}, {large}"]


def _sinc_scalar(ctx):
    x, order = ctx.args[0], ctx.attrs["order"]
    if order == 0:
        return f"(math.sin({_PI!r} * {x}) / ({_PI!r} * {x}) if {x} != 0.0 else 1.0)"
    series, closed = _sinc_forms(order, x, f"({x} * {x})", x, "math")
    return f"({series} if math.fabs({x}) < {literal(_sinc_cutoff(order))} else {closed})"


def _sinc_sympy(sympy, x, order):
    point = sympy.Dummy("x")
    normalized = sympy.sin(sympy.pi * point) / (sympy.pi * point)
    return sympy.diff(normalized, point, order).subs(point, x)


def _sinc_fold(inputs, order):
    return _fold(np.sinc)(inputs) if order == 0 else None


defop("sinc", 1, same_shape, _emit_sinc,
      lambda g, out, x, order: [g * apply("sinc", x, order=order + 1)],
      simplify=_sinc_fold, scalar=_sinc_scalar, sympy=_sinc_sympy)


@public("sinc")
def sinc(x):
    """NumPy's normalized sinc, ``sin(pi x) / (pi x)`` and 1 at 0. Its derivatives are ops too
    (the k-th: ``sinc`` of order k), as JAX's, so every order is finite and right at 0; each
    is computed from its Maclaurin series near 0, without the cancellation of the closed form.

    >>> from symgrad import var
    >>> sinc(var("x")).op
    'sinc'
    """
    return apply("sinc", x, order=0)



# -- casts: a node's dtype changed, as ndarray.astype --------------------------------------------
# Between float64 and float32 the cast is differentiable: the cotangent is cast back to the
# operand's dtype. Into int64 or bool, or out of them, no gradient flows (JAX's rule: the
# derivative through a float -> int cast is zero).

CAST_DTYPES = ("float64", "float32", "int64", "bool")


def _floating(dtype):
    return dtype in ("float64", "float32")


def _astype_vjp(g, out, x, dtype):
    if not (_floating(dtype) and _floating(x.data["dtype"])):
        return [None]
    return [apply("astype", g, dtype=x.data["dtype"])]


def _astype_scalar(ctx):
    # the fast path sees only float64 and bool nodes
    x = ctx.args[0]
    return f"({x} != 0.0)" if ctx.attrs["dtype"] == "bool" else f"(1.0 if {x} else 0.0)"


def _emit_astype(ctx):
    return f"np.{'bool_' if ctx.attrs['dtype'] == 'bool' else ctx.attrs['dtype']}({ctx.args[0]})"


def _astype_fold(inputs, dtype):
    value = constant_value(inputs[0])
    if value is None or value.size > FOLD_LIMIT:
        return None
    return const(value.astype(dtype), inputs[0].graph, dtype=dtype)


defop("astype", 1, same_shape, _emit_astype, _astype_vjp, dtype=lambda dtypes, dtype: dtype,
      simplify=_astype_fold, scalar=_astype_scalar,
      loop=None, sympy=lambda sympy, x, dtype: x,
      reduces_masks=True)         # it converts a boolean operand itself: codegen need not


@public("astype", static=("dtype", "copy"))
def astype(x, dtype, copy=True):
    """``x`` in ``dtype`` (float64, float32, int64 or bool), as ``ndarray.astype``: an
    expression in its own dtype is returned as it is, as NumPy's ``copy=False`` (expressions are
    immutable, so ``copy`` changes nothing else). float64 <-> float32 is differentiable, the
    gradient cast back to ``x``'s dtype; into or out of int64 and bool no gradient flows (JAX's
    convention: the derivative through a float -> int cast is zero).

    >>> from symgrad import var
    >>> astype(var("x", shape=(2,)), "float32").dtype
    dtype('float32')
    """
    if not isinstance(copy, (bool, np.bool_)):
        raise ArgumentError(f"astype: copy must be True or False, got {copy!r}")
    try:
        target = str(np.dtype(dtype))
    except TypeError:
        raise ArgumentError(f"astype: {dtype!r} is not a dtype") from None
    if target not in CAST_DTYPES:
        raise ArgumentError(f"astype: symgrad's dtypes are {', '.join(CAST_DTYPES)}; "
                            f"got {target}")
    x = x if isinstance(x, Expr) else const(x)
    if x.data["dtype"] == target:
        return x
    return apply("astype", x, dtype=target)



# -- activations: compositions of ops, so their derivatives follow from the ops' rules ------------
# At 0, elu's one-sided derivatives 1 and alpha meet at their midpoint (1 + alpha) / 2, the
# module's convention (relu'(0) = 1/2): relu(x) + alpha expm1(min(x, 0)) has it from relu's and
# minimum's tie rules, and never computes expm1 of a large x.


@public("silu")
def silu(x):
    """The sigmoid linear unit (swish) ``x * sigmoid(x)``.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> float(sg.compile(sg.grad(sg.silu(x), x))(0.0))      # sigmoid(0) + 0
    0.5
    """
    return x * sigmoid(x)


@public("elu", static=("alpha",))
def elu(x, alpha=1.0):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere; the derivative at 0 is the
    left one, ``alpha``, as PyTorch and JAX compute it (1 for the default alpha, where elu is
    smooth).

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> float(sg.compile(sg.grad(sg.elu(x, alpha=0.5), x))(0.0))
    0.5
    """
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise ArgumentError(f"elu: alpha must be a real number, got {alpha!r}")
    positive = apply("greater", x, 0.0)         # refuses what cannot be an operand, first
    # the inner where keeps expm1 from overflowing where its branch is not taken, and its
    # derivative from reaching those entries (0 times inf would be nan)
    return where(positive, x, float(alpha) * expm1(where(positive, 0.0, x)))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@public("selu")
def selu(x):
    """The scaled ELU, ``scale * elu(x, alpha)`` with the constants of Klambauer et al. (as in
    PyTorch and JAX).

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> round(float(sg.compile(sg.grad(sg.selu(x), x))(1.0)), 10)    # the scale
    1.0507009874
    """
    return _SELU_SCALE * elu(x, _SELU_ALPHA)


@public("softsign")
def softsign(x):
    """``x / (1 + |x|)``.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> float(sg.compile(sg.grad(sg.softsign(x), x))(1.0))     # 1 / (1 + |x|)**2
    0.25
    """
    return x / (1.0 + absolute(x))


@public("nan_to_num", static=("nan", "posinf", "neginf"))
def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """``np.nan_to_num`` (``copy`` aside): nan, inf and -inf replaced, by default by 0 and the
    largest finite numbers of x's dtype. The gradient flows where x is finite and is 0 where an
    entry was replaced.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> v = sg.var("v", shape=(3,))
    >>> sg.compile(sg.nan_to_num(v, posinf=1.0))(np.array([np.nan, np.inf, 2.0]))
    array([0., 1., 2.])
    >>> sg.compile(sg.grad(sg.sum(sg.nan_to_num(v)), v))(np.array([np.nan, np.inf, 2.0]))
    array([0., 0., 1.])
    """
    # every argument checked before a node is built: a refusal leaves the graph as it was
    finfo = np.finfo(x.dtype if isinstance(x, Expr) else "float64")
    replacements = []
    for name, value, default in [("nan", nan, 0.0), ("posinf", posinf, float(finfo.max)),
                                 ("neginf", neginf, float(finfo.min))]:
        value = default if value is None else value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ArgumentError(f"nan_to_num: {name} must be a real number, got {value!r}")
        replacements.append(float(value))
    nan, posinf, neginf = replacements
    x = x if isinstance(x, Expr) else const(x)      # a list's != would be Python's
    # x != x holds only for nan
    return where(x != x, nan, where(x == np.inf, posinf, where(x == -np.inf, neginf, x)))



# -- polynomials with exact coefficients -----------------------------------------------------------
#
# A derivative of a derivative is a polynomial in one node more often than not (every derivative
# of tanh is one in tanh(x)); differentiation keeps it as one node holding its exact integer
# coefficients (optimize.compaction), so that the next order is computed exactly from them and
# the graph grows by a few nodes per order instead of doubling. The node is written as the
# product of its factors, each root rounded once (factored_form): no two terms of it cancel, so
# it rounds within a few units of the value's own error from the rounding of t itself. The
# optimiser writes it by Horner's rule instead where that rounds no worse (optimize.polynomial).


@dataclass(frozen=True)
class Factors:
    """p(t) = leading * t**odd * v**zeros * prod(v - real) * prod((v - a)**2 + b2 for (a, b2)
    in pairs), with v = t * t when ``squared`` (p even or odd, as every derivative of tanh is)
    and v = t otherwise; each number rounded once from the exact polynomial. ``exact`` says
    which of leading, the real roots and the pairs' numbers are that exactly (a rounded one
    carries its rounding)."""
    leading: float
    zeros: int
    real: tuple
    pairs: tuple
    exact: tuple        # (leading exact, (each real root exact), ((a exact, b2 exact), ...))
    squared: bool = False
    odd: bool = False

    @property
    def cost(self):
        """Operations of the written product: one per factor after the first, one per root,
        three per pair, one for t * t."""
        factors = (self.odd + self.zeros + len(self.real) + len(self.pairs)
                   + (self.leading != 1.0))
        return factors - 1 + len(self.real) + 3 * len(self.pairs) + self.squared


ROOT_DIGITS = 40


@functools.lru_cache(maxsize=512)
def factored_form(coefficients, denominator=1):
    """The Factors of sum(c_k t**k) / denominator, ``coefficients`` exact integers, lowest
    degree first (degree at least 1). An even or odd p is factored in v = t * t: half the
    factors, each of which a rounding of t moves as little as it moves p. Roots come once per
    multiplicity, found exactly (factorisation over the rationals: a rational root is exact),
    and each irrational one is computed to ROOT_DIGITS digits before it is rounded to a float."""
    present = [k for k, c in enumerate(coefficients) if c]
    if len(present) > 1 and len({k % 2 for k in present}) == 1:
        odd = present[0] % 2
        halved = _factors(tuple(coefficients[odd::2]), denominator)
        return Factors(halved.leading, halved.zeros, halved.real, halved.pairs, halved.exact,
                       squared=True, odd=bool(odd))
    return _factors(tuple(coefficients), denominator)


def _factors(coefficients, denominator):
    import sympy        # only when a polynomial node is written: the package imports sympy late
    variable = sympy.Symbol("v")
    zeros = next(k for k, c in enumerate(coefficients) if c)
    polynomial = sympy.Poly([sympy.Integer(c) for c in reversed(coefficients[zeros:])],
                            variable)
    leading = Fraction(int(polynomial.LC()), denominator)
    real, real_exact, pairs, pairs_exact = [], [], [], []
    for factor, multiplicity in polynomial.factor_list()[1] if polynomial.degree() else ():
        if factor.degree() == 1:
            c1, c0 = (Fraction(int(c)) for c in factor.all_coeffs())
            roots, exact = [float(-c0 / c1)], [Fraction(float(-c0 / c1)) == -c0 / c1]
            complex_roots = []
        else:
            found = _roots([int(c) for c in factor.all_coeffs()])
            if found is None:
                found = [complex(r) if not r.is_real else float(r)
                         for r in factor.nroots(n=ROOT_DIGITS, maxsteps=500)]
            roots = [float(r) for r in found if not isinstance(r, complex)]
            exact = [False] * len(roots)
            complex_roots = [r for r in found if isinstance(r, complex) and r.imag > 0]
        for _ in range(multiplicity):
            real += roots
            real_exact += exact
            for root in complex_roots:
                pairs.append((root.real, root.imag * root.imag))
                pairs_exact.append((False, False))
    order = sorted(range(len(real)), key=lambda k: real[k])
    return Factors(float(leading), zeros, tuple(real[k] for k in order), tuple(pairs),
                   (Fraction(float(leading)) == leading, tuple(real_exact[k] for k in order),
                    tuple(pairs_exact)))


def _roots(coefficients):
    """The roots of the irreducible integer polynomial ``coefficients`` (highest degree first),
    each a float, or a complex of floats rounded from a complex root: NumPy's approximations
    refined by Newton's method at ROOT_DIGITS + 20 digits. None when the refined roots are not
    all distinct and converged (SymPy's nroots, much slower, then finds them)."""
    import mpmath
    with mpmath.workdps(ROOT_DIGITS + 20):
        tolerance = mpmath.mpf(10) ** -(ROOT_DIGITS + 5)
        derivative = [c * k for c, k in zip(coefficients, range(len(coefficients) - 1, 0, -1))]
        refined = []
        for start in np.roots([float(c) for c in coefficients]):
            root = mpmath.mpc(complex(start))
            for _ in range(200):
                step = mpmath.polyval(coefficients, root) / mpmath.polyval(derivative, root)
                root -= step
                if abs(step) <= tolerance * max(abs(root), 1):
                    break
            else:
                return None
            refined.append(root)
        scale = max(max(abs(r) for r in refined), 1)
        if any(abs(a - b) <= 10 ** -ROOT_DIGITS * scale
               for k, a in enumerate(refined) for b in refined[:k]):
            return None
        return [float(r.real) if abs(r.imag) <= tolerance * scale
                else complex(float(r.real), float(r.imag)) for r in refined]


def factored_terms(factors, t, v, constant, shift, square, plus):
    """The terms of ``factors`` over ``t`` (and ``v``, its square when squared), in the order
    they are multiplied, each made by the given functions: ``constant(value, exact)``,
    ``shift(v, root, exact)`` for v - root, ``square(x)``, ``plus(x, value, exact)``. One
    recipe for the node's source, the optimiser's nodes and its error bound."""
    _, real_exact, pairs_exact = factors.exact
    terms = [t] * factors.odd + [v] * factors.zeros
    terms += [shift(v, r, e) for r, e in zip(factors.real, real_exact)]
    terms += [plus(square(shift(v, a, ea)), b2, eb)
              for (a, b2), (ea, eb) in zip(factors.pairs, pairs_exact)]
    if factors.leading != 1.0 or not terms:
        terms.insert(0, constant(factors.leading, factors.exact[0]))
    return terms


def _factored_source(t, factors):
    """``factors`` written over the source ``t`` (Python operators: every backend's form)."""
    terms = factored_terms(
        factors, t, f"({t} ** 2)" if factors.squared else t,
        constant=lambda value, exact: "(-1.0)" if value == -1.0 else f"({value!r})",
        shift=lambda v, r, exact: f"({v} - {r!r})" if r > 0.0 else f"({v} + {-r!r})",
        square=lambda x: f"{x} ** 2", plus=lambda x, value, exact: f"({x} + {value!r})")
    return "(" + " * ".join(terms) + ")"


def _polynomial_emission(ctx):
    t = ctx.args[0] if ctx.args[0].isidentifier() else f"({ctx.args[0]})"
    return _factored_source(t, factored_form(ctx.attrs["coefficients"],
                                             ctx.attrs["denominator"]))


def polynomial(t, coefficients, denominator=1):
    """Internal: the polynomial sum(coefficients[k] * t**k) / denominator in the node ``t``,
    with exact integer coefficients (lowest degree first), reduced to lowest terms; a constant
    shaped like ``t`` when its degree is 0.

    >>> from symgrad import var
    >>> str(polynomial(var("t"), (2, 0, -2), 4))      # (1 - t**2) / 2
    'polynomial(t, coefficients=(1, 0, -1), denominator=2)'
    """
    coefficients = [int(c) for c in coefficients]
    while len(coefficients) > 1 and coefficients[-1] == 0:
        coefficients.pop()
    common = math.gcd(*coefficients, int(denominator))
    coefficients = tuple(c // common for c in coefficients)
    denominator = int(denominator) // common
    if len(coefficients) < 2:
        raise InternalError(f"polynomial of degree 0 in {t!r}: build the constant instead")
    return apply("polynomial", t, coefficients=coefficients, denominator=denominator)


def _polynomial_vjp(g, out, t, coefficients, denominator):
    derivative = tuple(k * c for k, c in enumerate(coefficients))[1:]
    if len(derivative) == 1:
        return [g * float(Fraction(derivative[0], denominator))]
    return [g * polynomial(t, derivative, denominator)]


def _polynomial_sympy(sympy, t, coefficients, denominator):
    return sum(sympy.Integer(c) * t ** k for k, c in enumerate(coefficients)) / denominator


defop("polynomial", 1, same_shape, _polynomial_emission, _polynomial_vjp,
      scalar=_polynomial_emission, sympy=_polynomial_sympy)

__all__ = ["sin", "cos", "tan", "exp", "log", "log1p", "expm1", "sqrt", "tanh", "sign", "absolute",
           "negative", "heaviside", "sigmoid", "softplus", "relu", "leaky_relu", "add", "subtract",
           "multiply", "divide", "power", "maximum", "minimum", "clip", "where", "Expr"]
__all__ += ["sinh", "cosh", "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "log2",
            "log10", "cbrt", "hypot", "floor", "ceil", "trunc", "round_", "square", "reciprocal",
            "fabs", "exp2", "deg2rad", "rad2deg", "mod",
            "silu", "elu", "selu", "softsign", "nan_to_num"]
__all__ += ["sinc", "astype"]
