"""Order statistics: sort, argsort, partition, argpartition, argmax, argmin, and the quantiles
built on sort (median, quantile, percentile), with NumPy's names and signatures.

sort is a primitive whose derivative follows its permutation: the cotangent is scattered back
to the positions the stable argsort names (the adjoint of take_along_axis with those indices),
so it nests to any order. argsort, argmax and argmin are int64 results no gradient flows
through. Imports ops.core, ops.shape, ops.elementwise and ops.arrays (ops' import order: see
ops/__init__).
"""

import math
import numbers

import numpy as np

from ..errors import ArgumentError, ShapeError, SymgradError
from .arrays import _lifted
from .core import (Expr, apply, const, defop, literal, normalize_axes, op_function, public,
                   same_dtype)
from .elementwise import where
from .reduce import along_axes_sparsity
from .shape import getitem, reshape, take, transpose


def _int64(dtypes, **attrs):
    return "int64"


def _no_gradient(g, out, x, **attrs):
    return [None]


def _axis_shape(shapes, axis):
    """The shape of a sort or an argsort along ``axis`` (a negative int): the operand's."""
    if not -len(shapes[0]) <= axis < 0:
        raise ShapeError(f"axis {axis} is out of range for {len(shapes[0])} dimensions")
    return shapes[0]


def _along_axis(ndim, axis):
    """gather's index that take_along_axis(x, indices, axis) makes of indices shaped like x."""
    return tuple(("array", 0) if a == axis else ("range",) for a in range(-ndim, 0))


def _sort_vjp(g, out, x, axis):
    # out = take_along_axis(x, argsort(x)): its adjoint scatters g back to where each entry came
    # from; the scatter's own adjoint is the gather, so every order follows the same permutation
    order = apply("argsort", x, axis=axis)
    return [apply("scatter_add", g, x, order, index=_along_axis(x.ndim, axis))]


# a sort along an axis of length one, or of none, is its operand
def _sort_simplify(inputs, axis):
    return inputs[0] if inputs[0].shape[axis] in (0, 1) else None


def _sort_sparsity(shapes, out_shape, values, axis):
    # which entry lands where depends on the values: each entry of a lane on every entry of it
    return along_axes_sparsity(shapes, out_shape, values, axis=(axis,))


defop("sort", 1, _axis_shape, "np.sort({0}, axis={axis})", _sort_vjp, dtype=same_dtype,
      simplify=_sort_simplify, loop=None, sparsity=_sort_sparsity)
# the stable order on every backend: ties keep their order, and sort's rule names the same
# permutation whatever sort kind the NumPy call asked for
defop("argsort", 1, _axis_shape, "np.argsort({0}, axis={axis}, kind='stable')", _no_gradient,
      dtype=_int64, nondifferentiable=(0,), loop=None)


def _flattened(x, axis):
    """(x, its axis as a negative int): None flattens x first, as NumPy's sort does."""
    if axis is None:
        return reshape(x, (-1,)), -1
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ArgumentError(f"axis must be an int or None, got {axis!r}")
    if x.ndim == 0:
        raise ShapeError(f"axis {axis} is out of range for 0 dimensions")
    return x, normalize_axes(axis, x.ndim)[0]


_SORT_KINDS = (None, "quicksort", "mergesort", "heapsort", "stable")


def _check_kind(function, kind, stable):
    if kind not in _SORT_KINDS:
        raise ArgumentError(f"{function}: kind must be one of {', '.join(map(str, _SORT_KINDS[1:]))}"
                            f", got {kind!r}")
    if stable not in (None, True, False):
        raise ArgumentError(f"{function}: stable must be a bool or None, got {stable!r}")
    if kind is not None and stable is not None:
        raise ArgumentError(f"{function}: give kind or stable, not both (as NumPy)")


@public("sort", static=("axis", "kind", "stable"))
@op_function("sort")
def sort(x, axis=-1, kind=None, stable=None):
    """``np.sort``: ``x`` sorted along ``axis`` (the flattened ``x`` when None). The derivative
    sends each entry's cotangent back to where the entry came from; tied entries take the
    stable sort's order (the first of equal entries comes first), as in JAX, whatever ``kind``
    says: every kind gives the same values.

    >>> from symgrad import var
    >>> sort(var("m", shape=(3, 4)), axis=0).shape
    (3, 4)
    """
    _check_kind("sort", kind, stable)
    (x,) = _lifted(x)
    x, axis = _flattened(x, axis)
    return apply("sort", x, axis=axis)


@public("argsort", static=("axis", "kind", "stable"))
@op_function("argsort")
def argsort(x, axis=-1, kind=None, stable=None):
    """``np.argsort``: the int64 indices that sort ``x`` along ``axis`` (the flattened ``x``
    when None), in the stable order whatever ``kind`` says (NumPy leaves the order of ties to
    the other kinds unspecified). No gradient flows through indices.

    >>> from symgrad import var
    >>> argsort(var("v", shape=(3,))).dtype
    dtype('int64')
    """
    _check_kind("argsort", kind, stable)
    (x,) = _lifted(x)
    x, axis = _flattened(x, axis)
    return apply("argsort", x, axis=axis)


def _checked_kth(function, kth, length):
    """kth as a tuple of ints, each within an axis of ``length`` when that is a number."""
    items = kth if isinstance(kth, (list, tuple, np.ndarray)) else (kth,)
    checked = []
    for k in np.asarray(items, dtype=object).ravel():
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise ArgumentError(f"{function}: kth must be an int or a sequence of ints, "
                                f"got {kth!r}")
        if isinstance(length, int) and not -length <= k < length:
            raise ArgumentError(f"{function}: kth {k} is out of bounds for an axis of "
                                f"length {length}")
        checked.append(int(k))
    return tuple(checked)


@public("partition", static=("kth", "axis", "kind"))
@op_function("partition")
def partition(x, kth, axis=-1, kind="introselect"):
    """``np.partition``: ``x`` rearranged along ``axis`` so that the entry at each position of
    ``kth`` is the one a sort puts there, the smaller entries before it and the larger after.
    NumPy leaves the order within those parts unspecified; symgrad's is the sorted order (a
    stable sort, the same on every backend), so the result is ``sort(x, axis)`` and the
    derivative follows that permutation.

    >>> from symgrad import var
    >>> partition(var("v", shape=(5,)), 2).op
    'sort'
    """
    return _partitioned("partition", "sort", x, kth, axis, kind)


@public("argpartition", static=("kth", "axis", "kind"))
@op_function("argpartition")
def argpartition(x, kth, axis=-1, kind="introselect"):
    """``np.argpartition``: the int64 indices that partition ``x`` (see partition): those of
    the stable sort.

    >>> from symgrad import var
    >>> argpartition(var("v", shape=(5,)), (1, 3)).op
    'argsort'
    """
    return _partitioned("argpartition", "argsort", x, kth, axis, kind)


def _partitioned(function, op, x, kth, axis, kind):
    """partition's and argpartition's arguments checked, and the stable sort's ``op`` (sort or
    argsort) that answers them."""
    if kind != "introselect":
        raise ArgumentError(f"{function}: kind must be 'introselect', got {kind!r}")
    (x,) = _lifted(x)
    x, axis = _flattened(x, axis)
    _checked_kth(function, kth, x.shape[axis])
    return apply(op, x, axis=axis)


# -- argmax and argmin --------------------------------------------------------------------------


# argmax's and argmin's axis is a reduction's: a tuple, of every axis for NumPy's axis=None
# (a position in the flattened array), else of the one axis


def _arg_extremum_shape(shapes, axis, keepdims):
    shape = shapes[0]
    empty = [a + len(shape) for a in axis if shape[a] == 0]
    if empty:
        raise ShapeError(f"axis {empty[0]} has length 0: it has no position of an extreme")
    if keepdims:
        return tuple(1 if a - len(shape) in axis else d for a, d in enumerate(shape))
    return tuple(d for a, d in enumerate(shape) if a - len(shape) not in axis)


def _emit_arg_extremum(function):
    def emit(ctx):
        axis = ctx.attrs["axis"]
        parts = [ctx.args[0]]
        if len(axis) != len(ctx.shapes[0]):
            parts.append(f"axis={literal(axis[0])}")
        if ctx.attrs["keepdims"]:
            parts.append("keepdims=True")
        return f"np.{function}({', '.join(parts)})"
    return emit


# the first position of the extreme among ties, as NumPy's (and the array API's)
defop("argmax", 1, _arg_extremum_shape, _emit_arg_extremum("argmax"), _no_gradient,
      dtype=_int64, nondifferentiable=(0,), loop=None)
defop("argmin", 1, _arg_extremum_shape, _emit_arg_extremum("argmin"), _no_gradient,
      dtype=_int64, nondifferentiable=(0,), loop=None)


def _arg_extremum(name, x, axis, keepdims):
    (x,) = _lifted(x)
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, numbers.Integral)):
        raise ArgumentError(f"{name}: axis must be an int or None, got {axis!r}")
    return apply(name, x, axis=normalize_axes(axis, x.ndim), keepdims=bool(keepdims))


@public("argmax", static=("axis", "keepdims"))
@op_function("argmax")
def argmax(x, axis=None, keepdims=False):
    """``np.argmax``: the int64 position of the largest entry along ``axis`` (in the flattened
    ``x`` when None), the first one among ties. No gradient flows through positions.

    >>> from symgrad import var
    >>> argmax(var("m", shape=(3, 4)), axis=1).shape
    (3,)
    """
    return _arg_extremum("argmax", x, axis, keepdims)


@public("argmin", static=("axis", "keepdims"))
@op_function("argmin")
def argmin(x, axis=None, keepdims=False):
    """``np.argmin``: the int64 position of the smallest entry along ``axis`` (in the flattened
    ``x`` when None), the first one among ties. No gradient flows through positions.

    >>> from symgrad import var
    >>> argmin(var("m", shape=(3, 4)), keepdims=True).shape
    (1, 1)
    """
    return _arg_extremum("argmin", x, axis, keepdims)


# -- median, quantile, percentile: entries of the sorted array -----------------------------------


def _sorted_last(x, axis):
    """(x's entries over ``axis`` sorted along one last axis, the other axes in front in their
    order; the shape of those other axes; x's shape with the axes of ``axis`` as length one
    (keepdims); the number of entries sorted), which must be known when it is built."""
    axes = normalize_axes(axis, x.ndim)
    lengths = [x.shape[a] for a in axes]
    if not all(isinstance(d, int) for d in lengths):
        raise ShapeError(f"the length of the axes {tuple(a + x.ndim for a in axes)} must be a "
                         f"number, not a named dimension: it says which entries to take")
    count = math.prod(lengths)
    if count == 0:
        raise ShapeError("over an empty axis it has no value")
    others = [a for a in range(-x.ndim, 0) if a not in axes]
    moved = transpose(x, tuple(a + x.ndim for a in others + list(axes)))
    flat = reshape(moved, tuple(x.shape[a] for a in others) + (count,))
    kept = tuple(1 if a in axes else x.shape[a] for a in range(-x.ndim, 0))
    return apply("sort", flat, axis=-1), flat.shape[:-1], kept, count


def _nan_propagated(result, ordered):
    """``result`` where no slice has a nan, which sorts last, and nan elsewhere, as NumPy's
    (a constant nan: no gradient flows into the slice's last entry)."""
    last = getitem(ordered, (Ellipsis, -1))
    if result.ndim > last.ndim:
        last = getitem(last, (Ellipsis, None))
    return where(last != last, np.nan, result)


def _shaped_as_numpy(result, levels_shape, others, kept, keepdims):
    """``result`` (the kept axes, then one axis of the levels when there are levels) as NumPy
    shapes it: the levels' axes first, then the kept axes, the reduced ones as length one with
    ``keepdims``."""
    if levels_shape:
        result = transpose(result, (result.ndim - 1,) + tuple(range(result.ndim - 1)))
    return reshape(result, tuple(levels_shape) + (kept if keepdims else others))


def _checked_levels(q, function, scale):
    """``q / scale`` as a float64 array of levels in [0, 1] (a 0-d one for a number)."""
    refused = ArgumentError(f"{function}: q must be a number or an array of numbers (fixed "
                            f"when the expression is built), got {q!r}")
    if isinstance(q, (Expr, str, bytes)):
        raise refused
    try:
        levels = np.asarray(q, dtype=np.float64)
    except (TypeError, ValueError, SymgradError):       # ragged, text, expressions inside
        raise refused from None
    levels = levels / scale if scale != 1 else levels
    if not np.all((levels >= 0) & (levels <= 1)):
        raise ArgumentError(f"{function}: q must be in [0, {scale}], got {q!r}")
    return levels


def _interpolated(ordered, levels, count):
    """NumPy's 'linear' quantiles of each slice of ``ordered`` along its last axis, at
    ``levels`` (a number, or an array whose levels then make one last axis), computed as NumPy
    computes them: the virtual index (count - 1) q between the previous and the next entry,
    lerped from the nearer side. A virtual index that falls on an entry gives that entry,
    where NumPy's lerp gives nan if a neighbour is infinite (np.quantile([1, 2, inf], 0.5) is
    nan, np.median of it 2.0)."""
    virtual = (count - 1) * (levels if levels.ndim == 0 else levels.ravel())
    previous = np.minimum(np.floor(virtual), count - 1).astype(np.int64)
    following = np.minimum(previous + 1, count - 1)
    gamma = virtual - previous
    on_entry = gamma == 0
    if virtual.ndim == 0:
        a = getitem(ordered, (Ellipsis, int(previous)))
        if on_entry:
            return a
        b = getitem(ordered, (Ellipsis, int(following)))
    else:
        a = take(ordered, previous, axis=-1)
        if on_entry.all():
            return a
        b = take(ordered, following, axis=-1)
    difference = b - a
    dtype = ordered.dtype
    lower = a + difference * const(gamma, ordered.graph, dtype=dtype)
    upper = b - difference * const(1 - gamma, ordered.graph, dtype=dtype)
    near_upper = gamma >= 0.5
    result = upper if near_upper.all() else lower if not near_upper.any() else \
        where(const(near_upper, ordered.graph), upper, lower)
    return where(const(on_entry, ordered.graph), a, result) if on_entry.any() else result


def _quantile(x, levels, axis, keepdims):
    (x,) = _lifted(x)
    ordered, others, kept, count = _sorted_last(x, axis)
    result = _nan_propagated(_interpolated(ordered, levels, count), ordered)
    return _shaped_as_numpy(result, levels.shape, others, kept, keepdims)


def _check_method(function, method):
    if method != "linear":
        raise ArgumentError(f"{function}: only method='linear' is supported, got {method!r}")


@public("quantile", static=("q", "axis", "overwrite_input", "method", "keepdims"))
@op_function("quantile")
def quantile(x, q, axis=None, overwrite_input=False, method="linear", keepdims=False):
    """``np.quantile`` by the 'linear' method: at each level of ``q`` (numbers in [0, 1]),
    the entry a sort puts at (n - 1) q over ``axis`` (an int, a tuple, or None for all),
    interpolated linearly between its two neighbours; the levels' axes come first. The axes'
    length must be a number. Where (n - 1) q falls on an entry the result is that entry, as
    np.median's, also beside an infinite entry (where NumPy's lerp gives nan). The derivative
    follows the sort's permutation (ties: the stable order, as JAX); ``overwrite_input`` has
    no effect (expressions are immutable).

    >>> from symgrad import var
    >>> quantile(var("m", shape=(3, 4)), [0.25, 0.75], axis=1).shape
    (2, 3)
    """
    _check_method("quantile", method)
    return _quantile(x, _checked_levels(q, "quantile", 1), axis, keepdims)


@public("percentile", static=("q", "axis", "overwrite_input", "method", "keepdims"))
@op_function("percentile")
def percentile(x, q, axis=None, overwrite_input=False, method="linear", keepdims=False):
    """``np.percentile``: quantile at ``q / 100`` (``q`` in [0, 100]).

    >>> from symgrad import var
    >>> percentile(var("v", shape=(5,)), 90).shape
    ()
    """
    _check_method("percentile", method)
    return _quantile(x, _checked_levels(q, "percentile", 100), axis, keepdims)


@public("median", static=("axis", "overwrite_input", "keepdims"))
@op_function("median")
def median(x, axis=None, overwrite_input=False, keepdims=False):
    """``np.median`` over ``axis`` (an int, a tuple, or None for all): the middle entry a sort
    gives, or the mean of the two middle ones, whose gradient then halves between them. The
    axes' length must be a number; ties take the stable sort's order, as JAX.

    >>> from symgrad import var
    >>> median(var("m", shape=(3, 4)), axis=0).shape
    (4,)
    """
    (x,) = _lifted(x)
    ordered, others, kept, count = _sorted_last(x, axis)
    middle = getitem(ordered, (Ellipsis, count // 2))
    if count % 2 == 0:
        middle = (getitem(ordered, (Ellipsis, count // 2 - 1)) + middle) / 2.0
    result = _nan_propagated(middle, ordered)
    return _shaped_as_numpy(result, (), others, kept, keepdims)
