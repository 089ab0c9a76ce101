"""Reductions: sum, mean, max, min, logsumexp, and the normalisers softmax and log_softmax.

Each is stable in value and gradient: logsumexp and the softmaxes shift by the maximum before
exponentiating, and their rules reuse ``out`` rather than recomputing exponentials.
Imports ops.core, ops.shape and ops.elementwise (ops' import order: see ops/__init__).
"""

import math
import numbers

import numpy as np

from ..errors import ArgumentError, ShapeError
from .core import (Expr, apply, broadcast_shapes, const, defop, literal, normalize_axes,
                   op_function, public, same_dtype, static_length, static_shape, sympy_operand)
from .elementwise import exp, where
from .shape import (broadcast_to_like, concatenate, expand_dims, getitem, reshape, squeeze,
                    unbroadcast, zeros_like)


def _reduce(name, x, axis, keepdims):
    return apply(name, x, axis=normalize_axes(axis, x.ndim), keepdims=bool(keepdims))


def _kept(e, axis, keepdims):
    """A reduced value with its reduced axes restored as size one, to broadcast against the input."""
    return e if keepdims or not e.ndim else expand_dims(e, axis)


# -- which entries a reduction's result depends on (Op.sparsity) -------------------------------------


def _groups_along(shape, axis):
    """The operand's flat indices as rows of a (groups, group size) array: each row the entries
    that differ only along ``axis`` (negative axes), in ascending order along them."""
    ndim = len(shape)
    kept = [a for a in range(-ndim, 0) if a not in axis]
    order = tuple(a + ndim for a in kept) + tuple(a + ndim for a in axis)
    size = math.prod(shape[a] for a in axis)
    return np.transpose(np.arange(math.prod(shape)).reshape(shape), order).reshape(-1, size)


def along_axes_sparsity(shapes, out_shape, values, axis, **attrs):
    """A reduction over ``axis``: result entry k (the kept axes in order) depends on the entries
    of the k-th group; a normaliser (softmax: the operand's shape) on every entry of its own."""
    groups = _groups_along(shapes[0], axis)
    if math.prod(out_shape) == groups.shape[0]:
        return [(np.repeat(np.arange(groups.shape[0]), groups.shape[1]), groups.ravel())]
    return [(np.repeat(groups, groups.shape[1], axis=1).ravel(),
             np.tile(groups, (1, groups.shape[1])).ravel())]


def scan_sparsity(shapes, out_shape, values, axis):
    """A running sum or product: entry p along the axis depends on the entries up to p."""
    groups = _groups_along(shapes[0], (axis,))
    later, earlier = np.tril_indices(groups.shape[1])
    return [(groups[:, later].ravel(), groups[:, earlier].ravel())]


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
        if ufunc in ("add", "multiply") and ctx.dtypes[0] in ("bool", "int64"):
            # a count or product of a mask, a sum of ints: a float, as the graph says
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
      sympy=sympy_operand, sparsity=along_axes_sparsity)


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
      simplify=lambda inputs, axis, keepdims: inputs[0] if not axis else None, sympy=sympy_operand,
      sparsity=along_axes_sparsity)


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
      _extremum_vjp, dtype=same_dtype, sympy=sympy_operand, sparsity=along_axes_sparsity,
      simplify=lambda inputs, axis, keepdims: inputs[0] if not axis else None)
defop("min", 1, _nonempty_reduced_shape,
      emit_reduction("min", "minimum", initial=_identity_over_named_axes(lowest=False)),
      _extremum_vjp, dtype=same_dtype, sympy=sympy_operand, sparsity=along_axes_sparsity,
      simplify=lambda inputs, axis, keepdims: inputs[0] if not axis else None)


@public("max", static=("axis", "keepdims"))
@op_function("max")
def max(x, axis=None, keepdims=False):
    """Largest entry over ``axis`` (all by default); tied maxima share the gradient evenly.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> v = sg.var("v", shape=(3,))
    >>> sg.compile(sg.grad(sg.max(v), v))(np.array([1.0, 3.0, 3.0]))
    array([0. , 0.5, 0.5])
    """
    return _reduce("max", x, axis, keepdims)


@public("min", static=("axis", "keepdims"))
@op_function("min")
def min(x, axis=None, keepdims=False):
    """Smallest entry over ``axis`` (all by default); tied minima share the gradient evenly.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> A = sg.var("A", shape=(2, 2))
    >>> sg.compile(sg.min(A, axis=1))(np.array([[1.0, 2.0], [4.0, 3.0]]))
    array([1., 3.])
    """
    return _reduce("min", x, axis, keepdims)


# -- logsumexp, softmax, log_softmax -----------------------------------------------------------------


def _axis_argument(ctx):
    """The axis argument of a ufunc's reduce (see emit_reduction): None for every axis."""
    axis = ctx.attrs["axis"]
    if len(axis) == len(ctx.shapes[0]):
        return "axis=None"
    return f"axis={literal(axis[0] if len(axis) == 1 else axis)}"


def _emit_logsumexp(ctx, weights=None):
    """log(sum(weights * exp(x))) shifted by the maximum (weights: SciPy's b=, or none)."""
    x, out = ctx.args[0], ctx.out
    weighted = "" if weights is None else f"{weights} * "
    shift = ctx.temp("max")
    axis = _axis_argument(ctx)
    # over every axis the shift is one number, which broadcasts as it is (no np.squeeze call)
    whole = axis == "axis=None" and not ctx.attrs["keepdims"]
    kept = shift if ctx.attrs["keepdims"] or whole else f"np.squeeze({shift}, {axis})"
    return [f"{shift} = np.maximum.reduce({x}, {axis}{'' if whole else ', keepdims=True'}"
            f"{_initial_argument(ctx)})",
            # an all -inf (or +inf) slice would give inf - inf; shifting by 0 there is exact
            f"{shift} = np.where(np.isfinite({shift}), {shift}, 0.0)",
            f"{out} = np.log(np.add.reduce({weighted}np.exp({x} - {shift}), {axis}"
            f"{', keepdims=True' if ctx.attrs['keepdims'] else ''})) + {kept}"]


defop("logsumexp", 1, _nonempty_reduced_shape, _emit_logsumexp,
      lambda g, out, x, axis, keepdims: [_kept(g, axis, keepdims)
                                         * exp(x - _kept(out, axis, keepdims))],
      sympy=sympy_operand, sparsity=along_axes_sparsity)


@public("logsumexp", static=("axis", "keepdims"))
@op_function("logsumexp")
def logsumexp(x, axis=None, keepdims=False, b=None):
    """``log(sum(exp(x), axis))`` computed without overflow; its gradient is ``softmax(x)``.
    With weights ``b`` (broadcast against ``x``), ``log(sum(b * exp(x), axis))``, as SciPy's.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> z = sg.var("z", shape=(2,))
    >>> sg.compile(sg.grad(sg.logsumexp(z), z))(np.array([0.0, np.log(3.0)]))   # softmax(z)
    array([0.25, 0.75])
    """
    if b is not None:
        return _weighted_logsumexp(x, b, axis, keepdims)
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
      lambda g, out, x, axis: [out * (g - apply("sum", g * out, axis=axis, keepdims=True))],
      sparsity=along_axes_sparsity)
defop("log_softmax", 1, _normaliser_shape, _emit_log_softmax,
      lambda g, out, x, axis: [g - exp(out) * apply("sum", g, axis=axis, keepdims=True)],
      sparsity=along_axes_sparsity)


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
    """``x - logsumexp(x, axis, keepdims=True)``, stable for any magnitude of ``x``.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> z = sg.var("z", shape=(2,))
    >>> sg.compile(sg.log_softmax(z))(np.array([1000.0, 1000.0]))     # no overflow
    array([-0.69314718, -0.69314718])
    """
    return apply("log_softmax", x, axis=_normalised_axes(x, axis))


__all__ = ["mean", "max", "min", "logsumexp", "softmax", "log_softmax", "prod", "cumsum",
           "cumprod", "variance", "std", "average", "ptp", "diff", "norm",
           "select"]


# -- products, scans, spread (issue 18) ---------------------------------------------------------------
#
# prod's and cumprod's derivatives never divide by an entry: the product of the other entries
# along an axis is the product of those before times those after, each an exclusive scan, so
# that one zero or several give the exact derivative (JAX's rule, without its tree). Scanning
# shifts entries along the axis, which needs its length: these derivatives refuse a named one.


def _along(x, axis, item):
    """``x`` indexed by ``item`` (an int or a slice) on its axis ``axis`` (negative) alone."""
    return getitem(x, (slice(None),) * (x.ndim + axis) + (item,))


def _flip(x, axis):
    return _along(x, axis, slice(None, None, -1))


def _filled(x, fill):
    """An array of ``x``'s shape and dtype holding ``fill`` (``x`` only lends its shape)."""
    if static_shape(x.shape):
        return const(np.full(x.shape, fill), x.graph, dtype=x.dtype)
    return zeros_like(x) if fill == 0.0 else zeros_like(x) + fill


def _shifted(x, axis, by, fill):
    """``x`` moved ``by`` entries along ``axis`` (static length): toward its end (``by`` > 0)
    or its start, the entries left behind being ``fill``."""
    if abs(by) >= x.shape[axis]:
        return _filled(x, fill)
    if by > 0:
        return concatenate([_filled(_along(x, axis, slice(None, by)), fill),
                            _along(x, axis, slice(None, -by))], axis=axis)
    return concatenate([_along(x, axis, slice(-by, None)),
                        _filled(_along(x, axis, slice(by, None)), fill)], axis=axis)


def _scan_shape(shapes, axis):
    if not -len(shapes[0]) <= axis < 0:
        raise ShapeError(f"axis {axis} is out of range for {len(shapes[0])} dimensions")
    return shapes[0]


def emit_scan(ufunc):
    """Emitter for np.<ufunc>.accumulate(x, axis=...): the running sum or product, C all the way
    (as emit_reduction); a mask is counted in floats, as the graph says."""
    def emit(ctx):
        mask = ", dtype=np.float64" if ctx.dtypes[0] == "bool" else ""
        return f"np.{ufunc}.accumulate({ctx.args[0]}, axis={ctx.attrs['axis']}{mask})"
    return emit


def _scan_axis(x, axis):
    """(the operand, its one scanned axis): over axis None, the flattened operand, as NumPy."""
    if axis is None:
        return (x if x.ndim == 1 else reshape(x, (-1,))), -1
    (axis,) = normalize_axes(axis, x.ndim) if isinstance(axis, numbers.Integral) else (axis,)
    return x, axis


# the adjoint of a running sum is the running sum from the other end
defop("cumsum", 1, _scan_shape, emit_scan("add"),
      lambda g, out, x, axis: [_flip(apply("cumsum", _flip(g, axis), axis=axis), axis)],
      reduces_masks=True, sparsity=scan_sparsity)


@public("cumsum", static=("axis",))
@op_function("cumsum")
def cumsum(x, axis=None):
    """Running sum along ``axis`` (of the flattened operand by default), as ``np.cumsum``.

    >>> from symgrad import var
    >>> cumsum(var("X", shape=(2, 3)), axis=1).shape
    (2, 3)
    """
    x = x if isinstance(x, Expr) else apply("stop_gradient", x)
    x, axis = _scan_axis(x, axis)
    return apply("cumsum", x, axis=axis)


def _suffix_weighted_sums(g, x, axis):
    """h_j = sum over i >= j of g_i * (x_{j+1} ... x_i) along ``axis``, the reverse linear
    recurrence h_j = g_j + x_{j+1} h_{j+1}, by recursive doubling (Hillis and Steele): after
    the step of span s, ``weighted`` sums the terms of a window of 2s entries and ``factors``
    holds x_{j+1} ... x_{j+2s}, so ceil(log2 n) steps of products and sums, never a division."""
    length = x.shape[axis]
    weighted, factors = g, _shifted(x, axis, -1, 0.0)
    span = 1
    while span < length:
        weighted = weighted + factors * _shifted(weighted, axis, -span, 0.0)
        if 2 * span < length:
            factors = factors * _shifted(factors, axis, -span, 0.0)
        span *= 2
    return weighted


def _cumprod_vjp(g, out, x, axis):
    # d out_i / d x_j = (x_0 ... x_{j-1}) (x_{j+1} ... x_i) for j <= i: the running product
    # before j (out shifted by one) times the suffix sums of g weighted by the products after j
    static_length(x, axis, "take cumprod's derivative")
    before = _shifted(out, axis, 1, 1.0)
    return [before * _suffix_weighted_sums(g, x, axis)]


defop("cumprod", 1, _scan_shape, emit_scan("multiply"), _cumprod_vjp, reduces_masks=True,
      sparsity=scan_sparsity)


@public("cumprod", static=("axis",))
@op_function("cumprod")
def cumprod(x, axis=None):
    """Running product along ``axis`` (of the flattened operand by default), as ``np.cumprod``;
    its derivative is exact with zeros among the entries (it never divides by one).

    >>> import numpy as np
    >>> import symgrad as sg
    >>> v = sg.var("v", shape=(3,))
    >>> sg.compile(sg.cumprod(v))(np.array([1.0, 2.0, 3.0]))
    array([1., 2., 6.])
    >>> sg.compile(sg.grad(sg.cumprod(v)[2], v))(np.array([1.0, 2.0, 3.0]))
    array([6., 3., 2.])
    """
    x = x if isinstance(x, Expr) else apply("stop_gradient", x)
    x, axis = _scan_axis(x, axis)
    return apply("cumprod", x, axis=axis)


def _others_product(x, axis):
    """For each entry, the product of the other entries of its slice over ``axis`` (a tuple),
    without dividing: over the last axis, the running products before and after the entry;
    over the rest, the same of the products over the last axis, of which the entry's row is
    one (prod over (a, b) except (j, k) = prod over b except k, times prod over a except j of
    the products over b)."""
    last = axis[-1]
    static_length(x, last, "take prod's derivative")
    before = _shifted(apply("cumprod", x, axis=last), last, 1, 1.0)
    after = _flip(_shifted(apply("cumprod", _flip(x, last), axis=last), last, 1, 1.0), last)
    others = before * after
    if len(axis) == 1:
        return others
    return others * _others_product(apply("prod", x, axis=(last,), keepdims=True), axis[:-1])


defop("prod", 1, reduced_shape, emit_reduction("prod", "multiply"),
      lambda g, out, x, axis, keepdims: [_kept(g, axis, keepdims) * _others_product(x, axis)],
      reduces_masks=True, sympy=sympy_operand, sparsity=along_axes_sparsity,
      simplify=lambda inputs, axis, keepdims: inputs[0] if not axis else None)


@public("prod", static=("axis", "keepdims"))
@op_function("prod")
def prod(x, axis=None, keepdims=False):
    """Product over ``axis`` (all axes by default); its derivative is exact with zeros among
    the entries (it never divides by one).

    >>> from symgrad import var
    >>> prod(var("X", shape=(2, 3)), axis=0).shape
    (3,)
    """
    x = x if isinstance(x, Expr) else apply("stop_gradient", x)
    return _reduce("prod", x, axis, keepdims)


# -- variance and standard deviation ------------------------------------------------------------------
#
# The op of np.var is named "variance": "var" is the variable leaf, and sg.var makes variables.
# Its public function is variance (and Expr.var); np.var's name belongs to symgrad.numpy.


def _emit_spread(function):
    def emit(ctx):
        called = emit_reduction(function)(ctx)
        ddof = ctx.attrs["ddof"]
        return called if not ddof else f"{called[:-1]}, ddof={literal(ddof)})"
    return emit


def _centred_over(x, axis, ddof):
    """(x minus its mean over ``axis``, the count over ``axis`` less ``ddof``)."""
    return x - apply("mean", x, axis=axis, keepdims=True), _count(x, axis) - ddof


def _variance_vjp(g, out, x, axis, keepdims, ddof):
    centred, dof = _centred_over(x, axis, ddof)
    return [_kept(g, axis, keepdims) * (2.0 * centred / dof)]


def _std_vjp(g, out, x, axis, keepdims, ddof):
    # at a zero deviation the derivative is nan, as sqrt's at zero, and as JAX's; but over one
    # entry the deviation is zero whatever x is, so std is constant there and its derivative 0
    # (autograd's too): centred, exactly zero, gives it
    centred, dof = _centred_over(x, axis, ddof)
    if all(x.shape[a] == 1 for a in axis):
        return [_kept(g, axis, keepdims) * centred]
    return [_kept(g, axis, keepdims) * centred / (dof * _kept(out, axis, keepdims))]


defop("variance", 1, reduced_shape, _emit_spread("var"), _variance_vjp,
      sparsity=along_axes_sparsity)
defop("std", 1, reduced_shape, _emit_spread("std"), _std_vjp, sparsity=along_axes_sparsity)


def _ddof(ddof):
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Real):
        raise ArgumentError(f"ddof must be a number, got {ddof!r}")
    return int(ddof) if float(ddof).is_integer() else float(ddof)


@op_function("variance")
def variance(x, axis=None, ddof=0, keepdims=False):
    """Variance over ``axis`` (all axes by default) with ``ddof`` delta degrees of freedom, as
    ``np.var``: the mean squared deviation from the mean, divided by ``count - ddof``.

    >>> from symgrad import var
    >>> variance(var("X", shape=(2, 3)), axis=1, ddof=1).shape
    (2,)
    """
    return apply("variance", x, axis=normalize_axes(axis, x.ndim), keepdims=bool(keepdims),
                 ddof=_ddof(ddof))


@public("std", static=("axis", "ddof", "keepdims"))
@op_function("std")
def std(x, axis=None, ddof=0, keepdims=False):
    """Standard deviation over ``axis`` (all axes by default), as ``np.std``: the square root of
    ``variance``; its derivative at a zero deviation is nan, as sqrt's at zero.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> v = sg.var("v", shape=(2,))
    >>> float(sg.compile(sg.std(v))(np.array([1.0, 3.0])))
    1.0
    >>> sg.compile(sg.grad(sg.std(v), v))(np.array([1.0, 3.0]))      # (v - mean) / (n std)
    array([-0.5,  0.5])
    """
    return apply("std", x, axis=normalize_axes(axis, x.ndim), keepdims=bool(keepdims),
                 ddof=_ddof(ddof))


# -- logsumexp with weights (SciPy's b=) ----------------------------------------------------------------
#
# log(sum(b * exp(x))) is not logsumexp(x + log(b)): that form's derivative in b is nan where b is
# 0, where the true one is exp(x - out). Its own op keeps b an operand of its own.


def _weighted_logsumexp_shape(shapes, axis, keepdims):
    x, b = shapes
    try:
        fits = broadcast_shapes(x, b) == tuple(x)
    except ShapeError:
        fits = False
    if not fits:
        raise ShapeError(f"weights of shape {b} do not broadcast to the shape {x} they weigh")
    return _nonempty_reduced_shape([x], axis, keepdims)


def _emit_weighted_logsumexp(ctx):
    return _emit_logsumexp(ctx, weights=ctx.args[1])


def _weighted_logsumexp_vjp(g, out, x, b, axis, keepdims):
    shares = _kept(g, axis, keepdims) * exp(x - _kept(out, axis, keepdims))
    return [shares * b, unbroadcast(shares, b.shape, g.ndim - out.ndim)]


def _weighted_logsumexp_sparsity(shapes, out_shape, values, axis, keepdims):
    """Each result entry depends on its group of x and on the weights broadcast over it."""
    x, b = shapes
    (through_x,) = along_axes_sparsity([x], out_shape, values[:1], axis)
    weight_of = np.broadcast_to(np.arange(math.prod(b)).reshape(b), x).ravel()
    rows, entries = np.unique(np.stack([through_x[0], weight_of[through_x[1]]]), axis=1)
    return [through_x, (rows, entries)]


defop("weighted_logsumexp", 2, _weighted_logsumexp_shape, _emit_weighted_logsumexp,
      _weighted_logsumexp_vjp, sparsity=_weighted_logsumexp_sparsity)


def _weighted_logsumexp(x, b, axis, keepdims):
    x = x if isinstance(x, Expr) else apply("stop_gradient", x)
    return apply("weighted_logsumexp", x, b, axis=normalize_axes(axis, x.ndim),
                 keepdims=bool(keepdims))


# -- average, ptp, diff: NumPy's functions over the ops above ----------------------------------------


@public("average", static=("axis", "keepdims"))
@op_function("average")
def average(a, axis=None, weights=None, keepdims=False):
    """Weighted mean over ``axis`` (all by default), as ``np.average``: ``weights`` has ``a``'s
    shape, or is 1-D along the one ``axis``; without weights, the mean.

    >>> from symgrad import var
    >>> average(var("X", shape=(2, 3)), axis=1, weights=var("w", shape=(3,))).shape
    (2,)
    """
    a = a if isinstance(a, Expr) else apply("stop_gradient", a)
    if weights is None:
        return mean(a, axis, keepdims)
    weights = weights if isinstance(weights, Expr) else const(weights, a.graph)
    axes = normalize_axes(axis, a.ndim)
    if weights.shape != a.shape:
        if weights.ndim != 1 or len(axes) != 1 or weights.shape[0] != a.shape[axes[0]]:
            raise ShapeError(f"weights of shape {weights.shape} are neither of the shape "
                             f"{a.shape} they weigh nor 1-D along its one averaged axis")
        weights = expand_dims(weights, tuple(k for k in range(-a.ndim, 0) if k != axes[0]))
    total = apply("sum", broadcast_to_like(weights, a), axis=axes, keepdims=bool(keepdims))
    return apply("sum", a * weights, axis=axes, keepdims=bool(keepdims)) / total


@public("ptp", static=("axis", "keepdims"))
@op_function("ptp")
def ptp(x, axis=None, keepdims=False):
    """Range (largest minus smallest entry) over ``axis``, as ``np.ptp``; tied extremes share
    the gradient evenly, as max's and min's.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> v = sg.var("v", shape=(3,))
    >>> sg.compile(sg.grad(sg.ptp(v), v))(np.array([2.0, -1.0, 5.0]))
    array([ 0., -1.,  1.])
    """
    return max(x, axis, keepdims) - min(x, axis, keepdims)


@public("diff", static=("n", "axis"))
@op_function("diff")
def diff(x, n=1, axis=-1):
    """The ``n``-th forward difference along ``axis``, as ``np.diff``: ``x[1:] - x[:-1]``, ``n``
    times (the axis's length must be a number).

    >>> from symgrad import var
    >>> diff(var("v", shape=(5,)), n=2).shape
    (3,)
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ArgumentError(f"diff: n must be a non-negative int, got {n!r}")
    if x.ndim == 0:
        raise ShapeError("needs at least one dimension")
    (axis,) = normalize_axes(axis, x.ndim)
    for _ in range(n):
        x = _along(x, axis, slice(1, None)) - _along(x, axis, slice(None, -1))
    return x


# -- norms: linalg.norm ----------------------------------------------------------------------------------
#
# The 2-norm of vectors and the Frobenius norm of matrices are one op (the root of the sum of
# squares over one axis or two); the other orders are built of abs, sum, max and min, as NumPy
# defines them. The matrix 2-norm, -2-norm and the nuclear norm are functions of the singular
# values, which a later family (ops.decompositions) computes: it registers them here, as ord ->
# function(x, rows, columns) giving the norm with both axes kept.
MATRIX_NORMS_OF_SINGULAR_VALUES = {}


def _emit_norm(ctx):
    axis = _axis_argument(ctx)
    kept = ", keepdims=True" if ctx.attrs["keepdims"] else ""
    return f"np.sqrt(np.add.reduce(np.square({ctx.args[0]}), {axis}{kept}))"


def _norm_vjp(g, out, x, axis, keepdims):
    # x / |x|, and 0 at x = 0: the root's derivative is infinite there, and of the subgradients
    # 0 is the one that keeps the gradient odd, as the norm is even (PyTorch's and the
    # convention proposed for JAX's norm, which has nan there today)
    norm = _kept(out, axis, keepdims)
    positive = where(norm > 0.0, norm, const(1.0, x.graph, dtype=x.dtype))
    return [_kept(g, axis, keepdims) * (x / positive)]


defop("norm", 1, reduced_shape, _emit_norm, _norm_vjp, sparsity=along_axes_sparsity)


def _matrix_norm(x, order, rows, columns):
    """NumPy's matrix norms of orders 1, -1, inf and -inf, over the axes ``rows`` and
    ``columns``, with both kept."""
    magnitude = abs(x)
    if order in (1, -1):
        sums = apply("sum", magnitude, axis=(rows,), keepdims=True)
        return (max if order == 1 else min)(sums, axis=columns, keepdims=True)
    sums = apply("sum", magnitude, axis=(columns,), keepdims=True)
    return (max if order > 0 else min)(sums, axis=rows, keepdims=True)


def _vector_norm(x, order, axis):
    """NumPy's vector norm of ``order`` (not None nor 2) over ``axis``, kept."""
    magnitude = abs(x)
    if order == math.inf:
        return max(magnitude, axis, keepdims=True)
    if order == -math.inf:
        return min(magnitude, axis, keepdims=True)
    if order == 0:
        return apply("sum", x != 0.0, axis=axis, keepdims=True)
    if order == 1:
        return apply("sum", magnitude, axis=axis, keepdims=True)
    return apply("sum", magnitude ** float(order), axis=axis, keepdims=True) ** (1.0 / order)


@public("norm", static=("ord", "axis", "keepdims"))
@op_function("norm")
def norm(x, ord=None, axis=None, keepdims=False):
    """The vector or matrix norm ``np.linalg.norm`` gives: over ``axis`` (an int for vectors, a
    pair for matrices; by default every axis with ``ord`` None, else a vector or a matrix as
    ``x`` is one), the 2-norm (``ord`` None or 2), 1, inf, -inf, 0 and any p of vectors; the
    Frobenius ("fro", or None), 1, -1, inf, -inf, 2, -2 and nuclear ("nuc") norms of matrices,
    the last three of the singular values (symgrad.ops.decompositions.svdvals, whose derivative
    they share). The gradient of the 2-norm and Frobenius norm at zero is 0.

    >>> from symgrad import var
    >>> norm(var("X", shape=(4, 3)), ord=1).shape
    ()
    """
    x = x if isinstance(x, Expr) else apply("stop_gradient", x)
    if axis is None:
        if ord is None:
            return apply("norm", x, axis=normalize_axes(None, x.ndim), keepdims=bool(keepdims))
        if x.ndim not in (1, 2):
            raise ShapeError(f"ord={ord!r} without an axis needs a vector or a matrix, "
                             f"not {x.ndim} dimensions")
        axis = tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    if len(axes) not in (1, 2):
        raise ShapeError(f"takes one axis (vectors) or two (matrices), got {axis!r}")
    given = [a if a < 0 else a - x.ndim for a in axes]     # the caller's order: (rows, columns)
    axes = normalize_axes(axes, x.ndim)
    if len(axes) == 1 and ord in (None, 2) or len(axes) == 2 and ord in (None, "fro"):
        return apply("norm", x, axis=axes, keepdims=bool(keepdims))
    if len(axes) == 2:
        if not isinstance(ord, bool) and ord in (2, -2, "nuc"):
            result = MATRIX_NORMS_OF_SINGULAR_VALUES[ord](x, *given)
        elif ord not in (1, -1, math.inf, -math.inf):
            raise ArgumentError(f"norm: invalid order {ord!r} for matrices")
        else:
            result = _matrix_norm(x, ord, *given)
    else:
        if isinstance(ord, str) or isinstance(ord, bool) or not isinstance(ord, numbers.Real):
            raise ArgumentError(f"norm: invalid order {ord!r} for vectors")
        result = _vector_norm(x, ord, axes)
    return result if keepdims else squeeze(result, axes)


# -- select ------------------------------------------------------------------------------------------------


@public("select")
@op_function("select", operands="list")
def select(condlist, choicelist, default=0.0):
    """``np.select``: at each entry, the choice of the first condition that holds there, else
    ``default``; nested wheres, so each choice's gradient flows where it is selected.

    >>> from symgrad import var
    >>> x = var("x", shape=(3,))
    >>> select([x < -1.0, x > 1.0], [x * 0.0, x], default=x * x).shape
    (3,)
    """
    condlist, choicelist = list(condlist), list(choicelist)
    if len(condlist) != len(choicelist):
        raise ArgumentError(f"select: {len(condlist)} conditions for {len(choicelist)} choices")
    if not condlist:
        raise ArgumentError("select needs at least one condition and choice")
    result = default
    for condition, choice in reversed(list(zip(condlist, choicelist))):
        result = where(condition, choice, result)
    return result
