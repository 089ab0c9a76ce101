"""Reductions: sum, mean, max, min, logsumexp, and the normalisers softmax and log_softmax.

Each is stable in value and gradient: logsumexp and the softmaxes shift by the maximum before
exponentiating, and their rules reuse ``out`` rather than recomputing exponentials.
Imports ops.core, ops.shape and ops.elementwise (ops' import order: see ops/__init__).
"""

import math

import numpy as np

from ..errors import ShapeError
from .core import (Expr, apply, const, defop, literal, normalize_axes, op_function, public,
                   same_dtype, static_shape, sympy_operand)
from .elementwise import exp, where
from .shape import broadcast_to_like, expand_dims


def _reduce(name, x, axis, keepdims):
    return apply(name, x, axis=normalize_axes(axis, x.ndim), keepdims=bool(keepdims))


def _kept(e, axis, keepdims):
    """A reduced value with its reduced axes restored as size one, to broadcast against the input."""
    return e if keepdims or not e.ndim else expand_dims(e, axis)


# -- sum, whose adjoint is broadcast_to_like (ops.shape) ---------------------------------------------


def reduced_shape(shapes, axis, keepdims, **_):
    shape = shapes[0]
    ndim = len(shape)
    if any(not -ndim <= a < 0 for a in axis):
        raise ShapeError(f"axis {axis} is out of range for {ndim} dimensions")
    if keepdims:
        return tuple(1 if i - ndim in axis else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i - ndim not in axis)


def emit_reduction(function, ufunc=None, initial=None):
    """Emitter for np.<function>(x, axis=..., keepdims=...), omitting what the default says; for a
    reduction that is a ufunc's, np.<ufunc>.reduce(x, axis=...): C all the way, without the
    Python layer of np.sum, which costs more than a small sum itself (tests/benchmarks/README.md).
    The arrays' own methods are as quick but import NumPy internals at their first call, which
    the emitted code's namespace (no builtins) refuses. ``initial(ctx)``, when given, is the
    literal of an ``initial=`` argument, or None for none."""
    def emit(ctx):
        axis, keepdims = ctx.attrs["axis"], ctx.attrs["keepdims"]
        parts = [ctx.args[0]]
        if len(axis) != len(ctx.shapes[0]):
            parts.append(f"axis={literal(axis[0] if len(axis) == 1 else axis)}")
        elif ufunc is not None:
            parts.append("axis=None")       # a ufunc reduces over axis 0 unless told
        if keepdims:
            parts.append("keepdims=True")
        if ufunc == "add" and ctx.dtypes[0] in ("bool", "int64"):
            # a count of a mask, a sum of ints: a float, as the graph says
            parts.append("dtype=np.float64")
        start = initial(ctx) if initial is not None else None
        if start is not None:
            parts.append(f"initial={start}")
        called = f"{ufunc}.reduce" if ufunc is not None else function
        return f"np.{called}({', '.join(parts)})"
    return emit


@public("sum", static=("axis", "keepdims"))
@op_function("sum")
def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (all axes by default).

    >>> from symgrad import var
    >>> sum(var("v", shape=(3,))).shape
    ()
    """
    x = x if isinstance(x, Expr) else apply("stop_gradient", x)
    return apply("sum", x, axis=normalize_axes(axis, x.ndim), keepdims=bool(keepdims))


def _sum_vjp(g, out, x, axis, keepdims):
    # a scalar cotangent (of a sum over every axis) broadcasts as it is: restoring the summed
    # axes would turn a constant seed into a constant array of shape (1, ...)
    if not keepdims and g.ndim:
        g = expand_dims(g, axis)
    return [broadcast_to_like(g, x)]


def _sum_simplify(inputs, axis, keepdims):
    return inputs[0] if not axis else None


_emit_sum = emit_reduction("sum", "add")

defop("sum", 1, reduced_shape, _emit_sum, _sum_vjp, simplify=_sum_simplify, reduces_masks=True,
      sympy=sympy_operand)


# -- mean ------------------------------------------------------------------------------------------


def _count(x, axis):
    dims = [x.shape[a] for a in axis]
    if static_shape(dims):
        total = 1
        for d in dims:
            total *= d
        return float(total)
    return apply("axis_size", x, axis=axis)


def _emit_axis_size(ctx):
    # a NumPy float, as the graph's 0-d values are (a Python float takes no indexing, t[None]),
    # of the graph's dtype: a float64 scalar would make a float32 gradient float64
    scalar = "np.float32" if ctx.dtypes[0] == "float32" else "np.float64"
    factors = [f"np.shape({ctx.args[0]})[{a}]" for a in ctx.attrs["axis"]]
    return f"{scalar}({' * '.join(factors) if factors else '1.0'})"


defop("axis_size", 1, lambda shapes, axis: (), _emit_axis_size, lambda g, out, x, axis: [None],
      nondifferentiable=(0,), sympy=lambda sympy, x, axis: sympy.Integer(1))


def _mean_vjp(g, out, x, axis, keepdims):
    return [broadcast_to_like(_kept(g, axis, keepdims), x) / _count(x, axis)]


_emit_np_mean = emit_reduction("mean")


def _emit_mean(ctx):
    """The sum over the axes divided by their count, which is how np.mean computes it, bit for
    bit, without its Python layer, which inside the MLP's gradient took many times what the sum
    does (tests/benchmarks/README.md). np.mean divides a float32 sum in float64 (by an integer
    count), which a Python-float count would not: float32 keeps np.mean."""
    if ctx.dtypes[0] == "float32":
        return _emit_np_mean(ctx)
    lengths = [ctx.shapes[0][a] for a in ctx.attrs["axis"]]
    if static_shape(lengths):
        count = literal(float(math.prod(lengths)))
    else:
        count = _emit_axis_size(ctx)
    return f"{_emit_sum(ctx)} / {count}"


defop("mean", 1, reduced_shape, _emit_mean, _mean_vjp, reduces_masks=True,
      simplify=lambda inputs, axis, keepdims: inputs[0] if not axis else None, sympy=sympy_operand)


@public("mean", static=("axis", "keepdims"))
@op_function("mean")
def mean(x, axis=None, keepdims=False):
    """Arithmetic mean over ``axis`` (all axes by default); named dimensions are counted at run time.

    >>> from symgrad import var
    >>> mean(var("X", shape=("n", 3)), axis=0).shape
    (3,)
    """
    return _reduce("mean", x, axis, keepdims)


# -- max and min: ties share the gradient evenly ----------------------------------------------------
#
# Neither has an identity that is a value of the data, so an axis of length 0 is refused where it
# is built; a named dimension bound to 0 at run time gets the identity of the extended reals, as
# JAX gives it (max of nothing is -inf, min +inf, logsumexp -inf, softmax an empty array).


def _refuse_empty_axes(shape, axis):
    empty = [a + len(shape) for a in axis if shape[a] == 0]
    if empty:
        raise ShapeError(f"axis {empty[0]} has length 0, and over an empty axis it has no value")


def _nonempty_reduced_shape(shapes, axis, keepdims, **attrs):
    shape = reduced_shape(shapes, axis, keepdims, **attrs)
    _refuse_empty_axes(shapes[0], axis)
    return shape


def _extreme(dtype, lowest):
    """The literal of the bottom (``lowest``) or top of ``dtype``'s values."""
    kind = np.dtype(dtype).kind
    if kind == "b":
        return literal(not lowest)
    if kind in "iu":
        limits = np.iinfo(dtype)
        return literal(int(limits.min if lowest else limits.max))
    return literal(-math.inf if lowest else math.inf)


def _identity_over_named_axes(lowest):
    """An ``initial(ctx)`` for emit_reduction: the extreme that max (``lowest``) or min starts
    from, when a reduced axis is a named dimension, which may be bound to 0."""
    def initial(ctx):
        lengths = [ctx.shapes[0][a] for a in ctx.attrs["axis"]]
        return None if static_shape(lengths) else _extreme(ctx.dtypes[0], lowest)
    return initial


def _initial_argument(ctx):
    """``, initial=-np.inf`` for the maximum a logsumexp or a softmax shifts by, when it may
    reduce a named dimension bound to 0; else nothing."""
    initial = _identity_over_named_axes(lowest=True)(ctx)
    return "" if initial is None else f", initial={initial}"


def _extremum_vjp(g, out, x, axis, keepdims):
    # numbers of x's dtype: alone under a where, Python numbers would make float64 shares
    one, zero = (const(number, x.graph, dtype=x.dtype) for number in (1.0, 0.0))
    hits = where(x == _kept(out, axis, keepdims), one, zero)
    share = hits / apply("sum", hits, axis=axis, keepdims=True)
    return [_kept(g, axis, keepdims) * share]


defop("max", 1, _nonempty_reduced_shape,
      emit_reduction("max", "maximum", initial=_identity_over_named_axes(lowest=True)),
      _extremum_vjp, dtype=same_dtype, sympy=sympy_operand,
      simplify=lambda inputs, axis, keepdims: inputs[0] if not axis else None)
defop("min", 1, _nonempty_reduced_shape,
      emit_reduction("min", "minimum", initial=_identity_over_named_axes(lowest=False)),
      _extremum_vjp, dtype=same_dtype, sympy=sympy_operand,
      simplify=lambda inputs, axis, keepdims: inputs[0] if not axis else None)


@public("max", static=("axis", "keepdims"))
@op_function("max")
def max(x, axis=None, keepdims=False):
    """Largest entry over ``axis`` (all by default); tied maxima share the gradient evenly."""
    return _reduce("max", x, axis, keepdims)


@public("min", static=("axis", "keepdims"))
@op_function("min")
def min(x, axis=None, keepdims=False):
    """Smallest entry over ``axis`` (all by default); tied minima share the gradient evenly."""
    return _reduce("min", x, axis, keepdims)


# -- logsumexp, softmax, log_softmax -----------------------------------------------------------------


def _axis_argument(ctx):
    """The axis argument of a ufunc's reduce (see emit_reduction): None for every axis."""
    axis = ctx.attrs["axis"]
    if len(axis) == len(ctx.shapes[0]):
        return "axis=None"
    return f"axis={literal(axis[0] if len(axis) == 1 else axis)}"


def _emit_logsumexp(ctx):
    x, out = ctx.args[0], ctx.out
    shift = ctx.temp("max")
    axis = _axis_argument(ctx)
    # over every axis the shift is one number, which broadcasts as it is (no np.squeeze call)
    whole = axis == "axis=None" and not ctx.attrs["keepdims"]
    kept = shift if ctx.attrs["keepdims"] or whole else f"np.squeeze({shift}, {axis})"
    return [f"{shift} = np.maximum.reduce({x}, {axis}{'' if whole else ', keepdims=True'}"
            f"{_initial_argument(ctx)})",
            # an all -inf (or +inf) slice would give inf - inf; shifting by 0 there is exact
            f"{shift} = np.where(np.isfinite({shift}), {shift}, 0.0)",
            f"{out} = np.log(np.add.reduce(np.exp({x} - {shift}), {axis}"
            f"{', keepdims=True' if ctx.attrs['keepdims'] else ''})) + {kept}"]


defop("logsumexp", 1, _nonempty_reduced_shape, _emit_logsumexp,
      lambda g, out, x, axis, keepdims: [_kept(g, axis, keepdims)
                                         * exp(x - _kept(out, axis, keepdims))],
      sympy=sympy_operand)


@public("logsumexp", static=("axis", "keepdims"))
@op_function("logsumexp")
def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x), axis))`` computed without overflow; its gradient is ``softmax(x)``."""
    return _reduce("logsumexp", x, axis, keepdims)


def _normalised_axes(x, axis):
    """softmax and log_softmax normalise over one axis or a tuple of them (as SciPy and JAX do);
    None is refused rather than read as "all axes", which a batch dimension would silently join."""
    if x.ndim == 0:
        raise ShapeError("needs at least one dimension")
    if axis is None:
        raise ShapeError("needs an axis (an int or a tuple of ints), not None")
    return normalize_axes(axis, x.ndim)


def _axis_literal(ctx):
    axis = ctx.attrs["axis"]
    return literal(axis[0] if len(axis) == 1 else axis)


def _emit_softmax(ctx):
    x, out, axis = ctx.args[0], ctx.out, _axis_literal(ctx)
    return [f"{out} = np.exp({x} - np.maximum.reduce({x}, axis={axis}, keepdims=True"
            f"{_initial_argument(ctx)}))",
            f"{out} /= np.add.reduce({out}, axis={axis}, keepdims=True)"]


def _emit_log_softmax(ctx):
    x, out, axis = ctx.args[0], ctx.out, _axis_literal(ctx)
    return [f"{out} = {x} - np.maximum.reduce({x}, axis={axis}, keepdims=True"
            f"{_initial_argument(ctx)})",
            f"{out} -= np.log(np.add.reduce(np.exp({out}), axis={axis}, keepdims=True))"]


def _normaliser_shape(shapes, axis):
    if not shapes[0] or not all(-len(shapes[0]) <= a < 0 for a in axis):
        raise ShapeError(f"axis {axis} is out of range for shape {shapes[0]}")
    _refuse_empty_axes(shapes[0], axis)
    return shapes[0]


# d softmax = diag(p) - p p^T applied to g; d log_softmax = I - 1 p^T applied to g
defop("softmax", 1, _normaliser_shape, _emit_softmax,
      lambda g, out, x, axis: [out * (g - apply("sum", g * out, axis=axis, keepdims=True))])
defop("log_softmax", 1, _normaliser_shape, _emit_log_softmax,
      lambda g, out, x, axis: [g - exp(out) * apply("sum", g, axis=axis, keepdims=True)])


@public("softmax", static=("axis",))
@op_function("softmax")
def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x), axis)``, shifted by the maximum so it never overflows. ``axis`` is
    an int or a tuple of ints.

    >>> from symgrad import var
    >>> softmax(var("z", shape=(4,))).shape
    (4,)
    >>> softmax(var("Z", shape=(2, 3, 4)), axis=(1, 2)).shape
    (2, 3, 4)
    """
    return apply("softmax", x, axis=_normalised_axes(x, axis))


@public("log_softmax", static=("axis",))
@op_function("log_softmax")
def log_softmax(x, axis=-1):
    """``x - logsumexp(x, axis, keepdims=True)``, stable for any magnitude of ``x``."""
    return apply("log_softmax", x, axis=_normalised_axes(x, axis))


__all__ = ["mean", "max", "min", "logsumexp", "softmax", "log_softmax"]
