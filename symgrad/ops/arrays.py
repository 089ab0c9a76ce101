"""NumPy's functions that build and rearrange arrays: stack and its kin, split, flip, roll, pad,
tile, repeat, moveaxis, swapaxes, broadcast_to, diag, diagonal, trace, triu, tril, and an array
made of a (nested) list of expressions.

Most are compositions of the moving ops of ops.shape (concatenate, expand_dims, reshape,
transpose, getitem), whose derivative rules then serve them to any order; roll and broadcast_to
are primitives of their own. Imports ops.core, ops.shape, ops.elementwise and ops.reduce (ops'
import order: see ops/__init__).
"""

import numbers

import numpy as np

from ..errors import ArgumentError, ShapeError
from .core import (Expr, apply, check_shape, defop, graph_of, lift, literal, located,
                   normalize_axes, op_function, public, same_dtype, static_length)
from .elementwise import where
from .reduce import sum as reduce_sum
from .shape import _FULL, _emit_shape, _leading_axes, concatenate
from .shape import expand_dims as insert_axes, squeeze as squeeze_axes
from .shape import reshape, transpose, unbroadcast


def _lifted(*operands):
    """The operands as expressions of one graph (numbers and arrays become constants)."""
    graph = graph_of(*operands)
    hint = next((o.dtype for o in operands if isinstance(o, Expr) and o.dtype != "bool"),
                "float64")
    return [lift(o, graph, hint) for o in operands]


def _int(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentError(f"{what} must be an int, got {value!r}")
    return int(value)


def _axis(axis, ndim):
    """One axis as a negative int (counted from the right, as the rules address axes)."""
    (axis,) = normalize_axes(_int(axis, "axis"), ndim)
    return axis


def _slice_along(x, axis, start, stop, step=None):
    """``x`` sliced along the (negative) ``axis``; ``x`` itself where the slice takes it all."""
    if start in (0, None) and step in (1, None) and stop is not None and stop == x.shape[axis]:
        return x
    index = [_FULL] * x.ndim
    index[axis] = ("slice", start, stop, step)
    return apply("getitem", x, index=tuple(index))


def _with_dim(shape, axis, length):
    shape = list(shape)
    shape[axis] = length
    return tuple(shape)


# -- joining: stack and its kin -------------------------------------------------------------------


def _parts(arrays, name):
    if not isinstance(arrays, (list, tuple)):
        raise ArgumentError(f"{name} takes a list of arrays, got {type(arrays).__name__}")
    if not arrays:
        raise ShapeError("needs at least one array")
    return _lifted(*arrays)


@public("stack", static=("axis",))
@op_function("stack", operands="list")
def stack(arrays, axis=0):
    """Join arrays of one shape along a new axis, as ``np.stack``.

    >>> from symgrad import var
    >>> stack([var("a", shape=(3,)), var("b", shape=(3,))], axis=1).shape
    (3, 2)
    """
    parts = _parts(arrays, "stack")
    if len({p.shape for p in parts}) > 1:
        raise ShapeError(f"all arrays must have the same shape, got {[p.shape for p in parts]}")
    axis = _axis(axis, parts[0].ndim + 1)
    return concatenate([insert_axes(p, axis) for p in parts], axis=axis)


def _at_least(x, ndim):
    """``x`` with size-one axes added as np.atleast_2d and np.atleast_3d add them: a vector
    becomes a row (and a matrix of one row and one layer in 3-D), a matrix gains a last axis."""
    if x.ndim >= ndim:
        return x
    if x.ndim == 0:
        return reshape(x, (1,) * ndim)
    if ndim == 2:
        return insert_axes(x, 0)
    return insert_axes(x, (0, -1)) if x.ndim == 1 else insert_axes(x, -1)


@public("vstack")
@op_function("vstack", operands="list")
def vstack(tup):
    """Stack arrays row-wise (vectors become rows), as ``np.vstack``.

    >>> import symgrad as sg
    >>> sg.vstack([sg.var("a", shape=(3,)), sg.var("b", shape=(3,))]).shape
    (2, 3)
    """
    return concatenate([_at_least(p, 2) for p in _parts(tup, "vstack")], axis=0)


@public("hstack")
@op_function("hstack", operands="list")
def hstack(tup):
    """Stack arrays column-wise (vectors are joined end to end), as ``np.hstack``.

    >>> import symgrad as sg
    >>> sg.hstack([sg.var("a", shape=(2,)), sg.var("b", shape=(3,))]).shape
    (5,)
    """
    parts = [_at_least(p, 1) for p in _parts(tup, "hstack")]
    return concatenate(parts, axis=0 if parts[0].ndim == 1 else 1)


@public("dstack")
@op_function("dstack", operands="list")
def dstack(tup):
    """Stack arrays along a third axis, as ``np.dstack``.

    >>> import symgrad as sg
    >>> sg.dstack([sg.var("a", shape=(2, 3)), sg.var("b", shape=(2, 3))]).shape
    (2, 3, 2)
    """
    return concatenate([_at_least(p, 3) for p in _parts(tup, "dstack")], axis=2)


@public("column_stack")
@op_function("column_stack", operands="list")
def column_stack(tup):
    """Stack vectors as the columns of a matrix (matrices join as they are), as
    ``np.column_stack``.

    >>> import symgrad as sg
    >>> sg.column_stack([sg.var("a", shape=(3,)), sg.var("b", shape=(3,))]).shape
    (3, 2)
    """
    parts = [insert_axes(p, -1) if p.ndim < 2 else p for p in _parts(tup, "column_stack")]
    return concatenate([_at_least(p, 2) for p in parts], axis=1)


@public("append", static=("axis",))
@op_function("append", operands=2)
def append(arr, values, axis=None):
    """``values`` appended to ``arr``: both flattened when ``axis`` is None, as ``np.append``.

    >>> import symgrad as sg
    >>> v = sg.var("v", shape=(3,))
    >>> sg.append(v, [0.0, 1.0]).shape
    (5,)
    """
    arr, values = _lifted(arr, values)
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], axis=0)
    return concatenate([arr, values], axis=axis)


# -- splitting -------------------------------------------------------------------------------------


def _split(ary, indices_or_sections, axis, equal):
    (ary,) = _lifted(ary)
    axis = _axis(axis, ary.ndim)
    length = static_length(ary, axis, "split")
    if isinstance(indices_or_sections, (list, tuple)):
        bounds = [_int(i, "a split index") for i in indices_or_sections]
        starts, stops = [0, *bounds], [*bounds, length]
    else:
        sections = _int(indices_or_sections, "the number of sections")
        if sections <= 0:
            raise ShapeError("the number of sections must be larger than 0")
        each, extra = divmod(length, sections)
        if equal and extra:
            raise ShapeError(f"an axis of length {length} does not split into {sections} "
                             f"equal sections")
        sizes = [each + 1] * extra + [each] * (sections - extra)
        stops = list(np.cumsum(sizes, dtype=int))
        starts = [0, *stops[:-1]]
    return [_slice_along(ary, axis, int(start), int(stop)) for start, stop in zip(starts, stops)]


@public("split", static=("indices_or_sections", "axis"))
@op_function("split")
def split(ary, indices_or_sections, axis=0):
    """A list of parts of ``ary`` along ``axis``: ``indices_or_sections`` equal ones, or cut at
    the given indices, as ``np.split``.

    >>> import symgrad as sg
    >>> [part.shape for part in sg.split(sg.var("v", shape=(6,)), [1, 4])]
    [(1,), (3,), (2,)]
    """
    return _split(ary, indices_or_sections, axis, equal=True)


@public("array_split", static=("indices_or_sections", "axis"))
@op_function("array_split")
def array_split(ary, indices_or_sections, axis=0):
    """As split, the sections' lengths differing by at most one, as ``np.array_split``.

    >>> import symgrad as sg
    >>> [part.shape for part in sg.array_split(sg.var("v", shape=(7,)), 3)]
    [(3,), (2,), (2,)]
    """
    return _split(ary, indices_or_sections, axis, equal=False)


# -- axes of size one, flattening, and moving axes -------------------------------------------------


@public("squeeze", static=("axis",))
@op_function("squeeze")
def squeeze(a, axis=None):
    """``a`` without its size-one axes (all of them, or those of ``axis``), as ``np.squeeze``.

    >>> import symgrad as sg
    >>> sg.squeeze(sg.var("A", shape=(1, 3, 1))).shape
    (3,)
    """
    (a,) = _lifted(a)
    if axis is None:
        axis = tuple(i for i, d in enumerate(a.shape) if d == 1)
        if not axis:
            return a
    return squeeze_axes(a, axis)


@public("expand_dims", static=("axis",))
@op_function("expand_dims")
def expand_dims(a, axis):
    """``a`` with size-one axes inserted at ``axis`` (positions in the result), as
    ``np.expand_dims``.

    >>> import symgrad as sg
    >>> sg.expand_dims(sg.var("v", shape=(3,)), axis=(0, 2)).shape
    (1, 3, 1)
    """
    (a,) = _lifted(a)
    return insert_axes(a, axis)


@public("ravel")
@op_function("ravel")
def ravel(a):
    """``a`` as a vector, as ``np.ravel``.

    >>> import symgrad as sg
    >>> sg.ravel(sg.var("A", shape=(2, 3))).shape
    (6,)
    """
    (a,) = _lifted(a)
    return reshape(a, (-1,))


@public("moveaxis", static=("source", "destination"))
@op_function("moveaxis")
def moveaxis(a, source, destination):
    """``a`` with the axes ``source`` moved to ``destination``, the others keeping their order,
    as ``np.moveaxis``.

    >>> import symgrad as sg
    >>> sg.moveaxis(sg.var("A", shape=(2, 3, 4)), 0, -1).shape
    (3, 4, 2)
    """
    (a,) = _lifted(a)
    sources, destinations = ([_axis(axis, a.ndim) % a.ndim
                              for axis in (axes if isinstance(axes, (list, tuple)) else [axes])]
                             for axes in (source, destination))
    if len(sources) != len(destinations):
        raise ShapeError("source and destination must name as many axes")
    if len(set(sources)) != len(sources) or len(set(destinations)) != len(destinations):
        raise ShapeError(f"repeated axis in {source!r} or {destination!r}")
    order = [axis for axis in range(a.ndim) if axis not in sources]
    for destination, source in sorted(zip(destinations, sources)):
        order.insert(destination, source)
    return transpose(a, tuple(order))


@public("swapaxes", static=("axis1", "axis2"))
@op_function("swapaxes")
def swapaxes(a, axis1, axis2):
    """``a`` with two axes exchanged, as ``np.swapaxes``.

    >>> import symgrad as sg
    >>> sg.swapaxes(sg.var("A", shape=(2, 3, 4)), 0, 2).shape
    (4, 3, 2)
    """
    (a,) = _lifted(a)
    order = list(range(a.ndim))
    first, second = _axis(axis1, a.ndim) % a.ndim, _axis(axis2, a.ndim) % a.ndim
    order[first], order[second] = second, first
    return transpose(a, tuple(order))


# -- reversing -------------------------------------------------------------------------------------


@public("flip", static=("axis",))
@op_function("flip")
def flip(m, axis=None):
    """``m`` with the order of its entries reversed along ``axis`` (every axis by default), as
    ``np.flip``: a slice of step -1, whose adjoint is the same slice.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> sg.compile(sg.flip(sg.var("v", shape=(3,))))(np.array([1.0, 2.0, 3.0]))
    array([3., 2., 1.])
    """
    (m,) = _lifted(m)
    axes = set(normalize_axes(axis, m.ndim))
    return apply("getitem", m, index=tuple(("slice", None, None, -1) if a in axes else _FULL
                                           for a in range(-m.ndim, 0)))


@public("fliplr")
@op_function("fliplr")
def fliplr(m):
    """``m`` with its columns in reverse order, as ``np.fliplr``.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> sg.compile(sg.fliplr(sg.var("A", shape=(1, 3))))(np.array([[1.0, 2.0, 3.0]]))
    array([[3., 2., 1.]])
    """
    (m,) = _lifted(m)
    if m.ndim < 2:
        raise ShapeError("needs at least two dimensions")
    return flip(m, 1)


@public("flipud")
@op_function("flipud")
def flipud(m):
    """``m`` with its rows in reverse order, as ``np.flipud``.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> sg.compile(sg.flipud(sg.var("A", shape=(3, 1))))(np.array([[1.0], [2.0], [3.0]])).ravel()
    array([3., 2., 1.])
    """
    (m,) = _lifted(m)
    if m.ndim < 1:
        raise ShapeError("needs at least one dimension")
    return flip(m, 0)


# -- roll: a primitive, its adjoint the roll back --------------------------------------------------


def _rolled_shape(shapes, shift, axis):
    shape = shapes[0]
    if len(shift) != len(axis) or any(not -len(shape) <= a < 0 for a in axis):
        raise ShapeError(f"cannot roll axes {axis} of {len(shape)} dimensions")
    return shape


def _emit_roll(ctx):
    shift, axis = ctx.attrs["shift"], ctx.attrs["axis"]
    if len(axis) == 1:
        shift, axis = shift[0], axis[0]
    return f"np.roll({ctx.args[0]}, {literal(shift)}, axis={literal(axis)})"


defop("roll", 1, _rolled_shape, _emit_roll,
      lambda g, out, x, shift, axis: [apply("roll", g, shift=tuple(-s for s in shift), axis=axis)],
      dtype=same_dtype, sparsity="moves")


@public("roll", static=("shift", "axis"))
@op_function("roll")
def roll(a, shift, axis=None):
    """``a``'s entries shifted cyclically by ``shift`` along ``axis`` (of the flattened array
    when None), as ``np.roll``.

    >>> from symgrad import var
    >>> roll(var("u", shape=("n",)), 1).shape
    ('n',)
    """
    (a,) = _lifted(a)
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), a.shape)
    shifts = list(shift) if isinstance(shift, (list, tuple)) else [shift]
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    if len(shifts) == 1:
        shifts *= len(axes)
    elif len(axes) == 1:
        axes *= len(shifts)
    if len(shifts) != len(axes):
        raise ShapeError(f"shift {shift!r} and axis {axis!r} do not broadcast")
    total = {}
    for s, ax in zip(shifts, axes):       # NumPy adds the shifts of an axis named twice
        ax = _axis(ax, a.ndim)
        total[ax] = total.get(ax, 0) + _int(s, "shift")
    for ax, s in list(total.items()):
        if isinstance(a.shape[ax], int) and a.shape[ax]:
            total[ax] = s % a.shape[ax]
        if total[ax] == 0:
            del total[ax]
    if not total:
        return a
    ordered = sorted(total)
    return apply("roll", a, shift=tuple(total[ax] for ax in ordered), axis=tuple(ordered))


# -- broadcast_to: a primitive, its adjoint the sum back -------------------------------------------


def _broadcast_to_shape(shapes, shape):
    source = shapes[0]
    if len(source) > len(shape) or any(d != 1 and d != t for d, t in
                                       zip(reversed(source), reversed(shape))):
        raise ShapeError(f"cannot broadcast {source} to {shape}")
    return shape


defop("broadcast_to", 1, _broadcast_to_shape,
      lambda ctx: f"np.broadcast_to({ctx.args[0]}, {_emit_shape(ctx, ctx.attrs['shape'])})",
      lambda g, out, x, shape: [unbroadcast(g, x.shape, _leading_axes(g, out))],
      dtype=same_dtype, view=True, sparsity="moves",
      simplify=lambda inputs, shape: inputs[0] if inputs[0].shape == shape else None)


@public("broadcast_to", static=("shape",))
@op_function("broadcast_to")
def broadcast_to(array, shape):
    """``array`` broadcast to ``shape`` (which may name dimensions), as ``np.broadcast_to``.

    >>> import symgrad as sg
    >>> sg.broadcast_to(sg.var("v", shape=(3,)), ("n", 3)).shape
    ('n', 3)
    """
    (array,) = _lifted(array)
    if isinstance(shape, (numbers.Integral, str)):
        shape = (shape,)
    if not isinstance(shape, (list, tuple)):
        raise ArgumentError(f"broadcast_to: the shape must be a tuple, got {shape!r}")
    return apply("broadcast_to", array, shape=check_shape(shape))


# -- replicating: tile and repeat, broadcasts of a new axis merged into its neighbour --------------


def _replicated(x, copies):
    """``x`` with each axis a replicated ``copies[a]`` times, the copies of an axis side by side
    (``outer``) or each entry repeated in place (``inner``): ``copies`` maps a (negative) axis
    to (count, "outer" or "inner"). A broadcast of a new size-``count`` axis beside the axis,
    merged into it: the adjoint sums the copies back."""
    broadcast = []          # the shape with each new axis beside the axis it replicates
    new_axes = []           # their positions in it
    merged = []             # the result's shape
    for axis in range(-x.ndim, 0):
        dim = x.shape[axis]
        count, placement = copies.get(axis, (1, None))
        if count == 1:
            broadcast.append(dim)
            merged.append(dim)
            continue
        if not isinstance(dim, int):
            raise ShapeError(f"replicating the named dimension {dim!r} is not supported: "
                             f"its length is unknown")
        new_axes.append(len(broadcast) + (placement == "inner"))
        broadcast.extend([count, dim] if placement == "outer" else [dim, count])
        merged.append(count * dim)
    if not new_axes:
        return x
    expanded = insert_axes(x, tuple(a - len(broadcast) for a in new_axes))
    return reshape(broadcast_to(expanded, tuple(broadcast)), tuple(merged))


@public("tile", static=("reps",))
@op_function("tile")
def tile(A, reps):
    """``A`` repeated ``reps`` times along each axis, as ``np.tile``.

    >>> import symgrad as sg
    >>> sg.tile(sg.var("A", shape=(2, 3)), (2, 1)).shape
    (4, 3)
    """
    (A,) = _lifted(A)
    reps = tuple(_int(r, "a repetition count") for r in
                 (reps if isinstance(reps, (list, tuple)) else (reps,)))
    if any(r < 0 for r in reps):
        raise ShapeError(f"negative repetition count in {reps}")
    ndim = max(A.ndim, len(reps))
    if A.ndim < ndim:
        A = reshape(A, (1,) * (ndim - A.ndim) + A.shape)
    reps = (1,) * (ndim - len(reps)) + reps
    return _replicated(A, {axis: (count, "outer") for axis, count in zip(range(-ndim, 0), reps)})


@public("repeat", static=("repeats", "axis"))
@op_function("repeat")
def repeat(a, repeats, axis=None):
    """Each entry of ``a`` repeated ``repeats`` times along ``axis`` (of the flattened array
    when None), as ``np.repeat`` with one count for every entry.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> v = sg.var("v", shape=(2,))
    >>> sg.compile(sg.repeat(v, 2))(np.array([1.0, 2.0]))
    array([1., 1., 2., 2.])
    """
    (a,) = _lifted(a)
    if isinstance(repeats, bool) or not isinstance(repeats, numbers.Integral):
        raise ArgumentError(f"repeat: repeats must be one int, a count for every entry, got "
                            f"{repeats!r}")
    count = int(repeats)
    if count < 0:
        raise ShapeError(f"negative repetition count {count}")
    if axis is None:
        a, axis = ravel(a), 0
    return _replicated(a, {_axis(axis, a.ndim): (count, "inner")})


# -- pad: pieces of the array (or constants) joined along each padded axis -------------------------

PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def _pairs(value, ndim, what, kind):
    """NumPy's per-axis (before, after) pairs from a number, a pair, or one pair per axis."""
    array = np.asarray(value, dtype=object)
    try:
        pairs = np.broadcast_to(array, (ndim, 2)).tolist()
    except ValueError:
        raise ShapeError(f"the {what} {value!r} does not give a (before, after) pair for each of "
                         f"{ndim} axes") from None
    return [tuple(kind(v, what) for v in pair) for pair in pairs]


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentError(f"{what} must be a number, got {value!r}")
    return float(value)


def _runs(sources):
    """(start, length, step) runs of consecutive source indices, each step -1, 0 or 1."""
    runs = []
    position = 0
    while position < len(sources):
        start = sources[position]
        step = sources[position + 1] - start if position + 1 < len(sources) else 1
        step = step if step in (-1, 0, 1) else 1
        length = 1
        while (position + length < len(sources)
               and sources[position + length] == start + step * length):
            length += 1
        runs.append((int(start), length, step))
        position += length
    return runs


def _gathered(x, axis, sources):
    """The entries of ``x`` at the ``sources`` indices along ``axis``, as slices (a repeated
    index broadcast) joined; adjacent equal pieces are one node, as the graph hash-conses."""
    pieces = []
    for start, length, step in _runs(sources):
        if step == 0:
            piece = _slice_along(x, axis, start, start + 1)
            pieces.append(broadcast_to(piece, _with_dim(x.shape, axis, length)))
        elif step == 1:
            pieces.append(_slice_along(x, axis, start, start + length))
        else:
            stop = start - length
            pieces.append(_slice_along(x, axis, start, None if stop < 0 else stop, -1))
    return pieces


@public("pad", static=("pad_width", "mode", "constant_values"))
@op_function("pad")
def pad(array, pad_width, mode="constant", constant_values=0.0):
    """``array`` padded by ``pad_width`` entries before and after along each axis, as ``np.pad``
    with ``mode`` "constant" (``constant_values``), "edge", "reflect", "symmetric" or "wrap".
    The padding is made of the array's own entries (or constants), so the adjoint sums each
    padded entry's cotangent into the entry it copies. An axis that is padded must have a
    static length.

    >>> from symgrad import var
    >>> pad(var("u", shape=(4,)), 1, mode="wrap").shape
    (6,)
    """
    (array,) = _lifted(array)
    if mode not in PAD_MODES:
        raise ArgumentError(f"pad: mode must be one of {', '.join(PAD_MODES)}, got {mode!r}")
    widths = _pairs(pad_width, array.ndim, "pad_width", _int)
    if any(w < 0 for pair in widths for w in pair):
        raise ShapeError(f"a negative width in pad_width {pad_width!r}")
    values = _pairs(constant_values, array.ndim, "constant_values", _number)
    padded = array
    for axis, ((before, after), (first, last)) in zip(range(-array.ndim, 0), zip(widths, values)):
        if not before and not after:
            continue
        length = static_length(padded, axis, "pad")
        if mode == "constant":
            sides = [broadcast_to(_constant(v, padded), _with_dim(padded.shape, axis, w))
                     for v, w in ((first, before), (last, after))]
            parts = [p for p, w in zip([sides[0], padded, sides[1]], [before, 1, after]) if w]
        else:
            if length == 0:
                raise ShapeError(f"cannot pad an empty axis in mode {mode!r}")
            sources = np.pad(np.arange(length), (before, after), mode=mode).tolist()
            parts = _gathered(padded, axis, sources)
        padded = concatenate(parts, axis=axis)
    return padded


def _constant(value, like):
    """The number ``value`` as a constant of ``like``'s dtype."""
    return lift(np.asarray(value, dtype=like.dtype), like.graph)


# -- diagonals and triangles -----------------------------------------------------------------------


def _diagonal_slice(rows, columns, offset):
    """(start, stop, step) of the ``offset`` diagonal in a row-major (rows, columns) matrix
    flattened, and the diagonal's length."""
    length = max(0, min(rows, columns - offset) if offset >= 0 else min(rows + offset, columns))
    start = offset if offset >= 0 else -offset * columns
    step = columns + 1
    return (start, start + (length - 1) * step + 1, step) if length else (0, 0, 1), length


@public("diagonal", static=("offset", "axis1", "axis2"))
@op_function("diagonal")
def diagonal(a, offset=0, axis1=0, axis2=1):
    """The ``offset`` diagonal of the matrices ``a`` holds in axes ``axis1`` and ``axis2``, last
    in the result, as ``np.diagonal``: a strided slice of the matrices flattened, whose adjoint
    writes the cotangent back onto the diagonal. Those two axes must have static lengths.

    >>> import symgrad as sg
    >>> sg.diagonal(sg.var("A", shape=(2, 3, 3)), axis1=1, axis2=2).shape
    (2, 3)
    """
    (a,) = _lifted(a)
    if a.ndim < 2:
        raise ShapeError("needs at least two dimensions")
    first, second = _axis(axis1, a.ndim), _axis(axis2, a.ndim)
    if first == second:
        raise ShapeError("axis1 and axis2 cannot be the same")
    offset = _int(offset, "offset")
    moved = moveaxis(a, (first, second), (-2, -1))
    rows, columns = static_length(moved, -2, "take a diagonal"), \
        static_length(moved, -1, "take a diagonal")
    (start, stop, step), _ = _diagonal_slice(rows, columns, offset)
    flat = reshape(moved, moved.shape[:-2] + (rows * columns,))
    return _slice_along(flat, -1, start, stop, step)


@public("trace", static=("offset", "axis1", "axis2"))
@op_function("trace")
def trace(a, offset=0, axis1=0, axis2=1):
    """The sum of the ``offset`` diagonal of the matrices in ``a``, as ``np.trace``.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> A = sg.var("A", shape=(2, 2))
    >>> sg.compile(sg.grad(sg.trace(A), A))(np.ones((2, 2)))
    array([[1., 0.],
           [0., 1.]])
    """
    return reduce_sum(diagonal(a, offset, axis1, axis2), axis=-1)


@public("diag", static=("k",))
@op_function("diag")
def diag(v, k=0):
    """For a vector, the square matrix with ``v`` on its ``k`` diagonal; for a matrix, its
    ``k`` diagonal, as ``np.diag``. The matrix is ``v`` broadcast against a constant of ones
    on that diagonal, so its derivative is one product.

    >>> import symgrad as sg
    >>> sg.diag(sg.var("v", shape=(3,))).shape, sg.diag(sg.var("A", shape=(3, 3))).shape
    ((3, 3), (3,))
    """
    (v,) = _lifted(v)
    k = _int(k, "k")
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise ShapeError("needs a vector or a matrix")
    length = static_length(v, -1, "place a diagonal")
    size = length + abs(k)
    rows = np.eye(length, size, max(k, 0), dtype=v.dtype)
    placed = insert_axes(v, -1) * lift(rows, v.graph)
    if size == length:
        return placed
    zeros = broadcast_to(_constant(0.0, v), (abs(k), size))
    return concatenate([placed, zeros] if k > 0 else [zeros, placed], axis=0)


def _triangle(m, k, lower):
    (m,) = _lifted(m)
    k = _int(k, "k")
    if m.ndim < 2:
        raise ShapeError("needs at least two dimensions")
    rows, columns = static_length(m, -2, "keep a triangle"), \
        static_length(m, -1, "keep a triangle")
    kept = np.tri(rows, columns, k if lower else k - 1, dtype=bool)
    # where, not a product with a mask of ones, so that an inf outside the triangle gives 0
    return where(lift(kept if lower else ~kept, m.graph), m, 0.0)


@public("triu", static=("k",))
@op_function("triu")
def triu(m, k=0):
    """``m`` with the entries below its ``k`` diagonal zeroed, as ``np.triu``.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> sg.compile(sg.triu(sg.var("A", shape=(2, 2)), k=1))(np.ones((2, 2)))
    array([[0., 1.],
           [0., 0.]])
    """
    return _triangle(m, k, lower=False)


@public("tril", static=("k",))
@op_function("tril")
def tril(m, k=0):
    """``m`` with the entries above its ``k`` diagonal zeroed, as ``np.tril``.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> sg.compile(sg.tril(sg.var("A", shape=(2, 2))))(np.ones((2, 2)))
    array([[1., 0.],
           [1., 1.]])
    """
    return _triangle(m, k, lower=True)


# -- an array of expressions -----------------------------------------------------------------------


def _leaves(nested):
    """The entries of a nested list that are not lists, in order (walked iteratively)."""
    found, pending = [], [nested]
    while pending:
        item = pending.pop()
        if isinstance(item, (list, tuple)):
            pending.extend(reversed(item))
        else:
            found.append(item)
    return found


def _array(nested):
    if not isinstance(nested, (list, tuple)):
        (result,) = _lifted(nested)
        return result
    if not any(isinstance(entry, (Expr, list, tuple)) for entry in nested):
        (result,) = _lifted(np.asarray(nested, dtype=float))
        return result
    return stack([_array(entry) for entry in nested], axis=0)


@public("array")
def array(object):
    """An array of the entries of a (nested) list of expressions and numbers, of equal shapes
    at each level, as ``np.array``; an expression is returned as it is.

    >>> from symgrad import var
    >>> a, b = var("a"), var("b")
    >>> array([[a, b], [b, a]]).shape
    (2, 2)
    """
    leaves = _leaves(object)
    graph = graph_of(*leaves)
    # one failure adds nothing, though the rows before it were stacked already
    try:
        with graph.atomic():
            return _array(object)
    except ShapeError as error:
        raise located(error, "array", leaves) from None


@public("asarray")
def asarray(a):
    """As ``array``: an expression is returned as it is.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> sg.asarray(x) is x
    True
    """
    return array(a)


# -- more of NumPy's rearrangements (the peer suite's, issue 18): compositions of the above --------


@public("atleast_1d")
def atleast_1d(ary):
    """``ary`` with at least one axis (a scalar becomes a vector of one), as ``np.atleast_1d``
    of one array (symgrad.numpy's takes several).

    >>> from symgrad import var
    >>> atleast_1d(var("s")).shape
    (1,)
    """
    (ary,) = _lifted(ary)
    return _at_least(ary, 1)


@public("atleast_2d")
def atleast_2d(ary):
    """``ary`` with at least two axes (a vector becomes a row), as ``np.atleast_2d``.

    >>> import symgrad as sg
    >>> sg.atleast_2d(sg.var("v", shape=(3,))).shape
    (1, 3)
    """
    (ary,) = _lifted(ary)
    return _at_least(ary, 2)


@public("atleast_3d")
def atleast_3d(ary):
    """``ary`` with at least three axes (a vector v becomes v[None, :, None], a matrix
    M[:, :, None]), as ``np.atleast_3d``.

    >>> import symgrad as sg
    >>> sg.atleast_3d(sg.var("v", shape=(3,))).shape
    (1, 3, 1)
    """
    (ary,) = _lifted(ary)
    return _at_least(ary, 3)


@public("rollaxis", static=("axis", "start"))
@op_function("rollaxis")
def rollaxis(a, axis, start=0):
    """``a`` with ``axis`` moved to stand before ``start``, the others keeping their order, as
    ``np.rollaxis``.

    >>> import symgrad as sg
    >>> sg.rollaxis(sg.var("A", shape=(2, 3, 4)), 2).shape
    (4, 2, 3)
    """
    (a,) = _lifted(a)
    axis = _axis(axis, a.ndim) % a.ndim
    start = _int(start, "start")
    if not -a.ndim <= start <= a.ndim:
        raise ShapeError(f"start {start} is out of range for {a.ndim} dimensions")
    start = start + a.ndim if start < 0 else start
    if axis < start:
        start -= 1
    order = [other for other in range(a.ndim) if other != axis]
    order.insert(start, axis)
    return transpose(a, tuple(order))


def _split_along(ary, indices_or_sections, axis, ndim):
    (ary,) = _lifted(ary)
    if ary.ndim < ndim:
        raise ShapeError(f"needs at least {ndim} dimensions")
    return _split(ary, indices_or_sections, axis if ary.ndim > 1 else 0, equal=True)


@public("vsplit", static=("indices_or_sections",))
@op_function("vsplit")
def vsplit(ary, indices_or_sections):
    """``split`` along the first axis, of an array of at least two, as ``np.vsplit``.

    >>> import symgrad as sg
    >>> [part.shape for part in sg.vsplit(sg.var("A", shape=(4, 2)), 2)]
    [(2, 2), (2, 2)]
    """
    return _split_along(ary, indices_or_sections, 0, 2)


@public("hsplit", static=("indices_or_sections",))
@op_function("hsplit")
def hsplit(ary, indices_or_sections):
    """``split`` along the second axis (a vector's only one), as ``np.hsplit``.

    >>> import symgrad as sg
    >>> [part.shape for part in sg.hsplit(sg.var("A", shape=(2, 4)), 2)]
    [(2, 2), (2, 2)]
    """
    return _split_along(ary, indices_or_sections, 1, 1)


@public("dsplit", static=("indices_or_sections",))
@op_function("dsplit")
def dsplit(ary, indices_or_sections):
    """``split`` along the third axis, of an array of at least three, as ``np.dsplit``.

    >>> import symgrad as sg
    >>> [part.shape for part in sg.dsplit(sg.var("A", shape=(2, 2, 4)), 2)]
    [(2, 2, 2), (2, 2, 2)]
    """
    return _split_along(ary, indices_or_sections, 2, 3)


@public("rot90", static=("k", "axes"))
@op_function("rot90")
def rot90(m, k=1, axes=(0, 1)):
    """``m`` turned ``k`` quarter turns in the plane of ``axes``, from the first axis towards
    the second, as ``np.rot90``: flips and a swap of the two axes.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> sg.compile(sg.rot90(sg.var("A", shape=(2, 2))))(np.array([[1.0, 2.0], [3.0, 4.0]]))
    array([[2., 4.],
           [1., 3.]])
    """
    (m,) = _lifted(m)
    if not isinstance(axes, (list, tuple)) or len(axes) != 2:
        raise ArgumentError(f"rot90: axes must be two axes, got {axes!r}")
    if m.ndim < 2:
        raise ShapeError("needs at least two dimensions")
    first, second = (_axis(axis, m.ndim) for axis in axes)
    if first == second:
        raise ShapeError(f"the axes {tuple(axes)} of the plane are the same")
    turns = _int(k, "k") % 4
    order = list(range(-m.ndim, 0))
    order[first], order[second] = order[second], order[first]
    swapped = tuple(axis % m.ndim for axis in order)
    if turns == 0:
        return m
    if turns == 2:
        return flip(m, (first, second))
    if turns == 1:
        return transpose(flip(m, second), swapped)
    return flip(transpose(m, swapped), second)


@public("linspace", static=("num", "endpoint", "retstep", "axis"))
@op_function("linspace", operands=2)
def linspace(start, stop, num=50, endpoint=True, retstep=False, axis=0):
    """``num`` evenly spaced values from ``start`` to ``stop`` (included when ``endpoint``), as
    ``np.linspace`` computes them (start plus multiples of the step, the last one ``stop``
    itself), differentiable in both ends; arrays of ends give a new first axis. With
    ``retstep``, the values and the step.

    >>> import symgrad as sg
    >>> a, b = sg.var("a"), sg.var("b")
    >>> sg.compile(sg.linspace(a, b, num=3))(0.0, 1.0)
    array([0. , 0.5, 1. ])
    """
    start, stop = _lifted(start, stop)
    num = _int(num, "num")
    if num < 0:
        raise ShapeError(f"the number of samples {num} is negative")
    if _int(axis, "axis") != 0:
        raise ArgumentError("linspace: only axis=0 is supported")
    divisions = num - 1 if endpoint else num
    delta = stop - start
    step = delta / float(divisions) if divisions > 0 else delta * np.nan
    extra = (1,) * max(start.ndim, stop.ndim)
    # the counts in the ends' dtype, so that float32 ends give float32 values
    counts = lift(np.arange(num - 1 if endpoint and num > 1 else num,
                            dtype=np.result_type(start.dtype, stop.dtype)).reshape((-1,) + extra),
                  start.graph)
    values = counts * insert_axes(step if divisions > 0 else delta, 0)
    values = values + insert_axes(start, 0)
    if endpoint and num > 1:
        shape = values.shape[1:]
        values = concatenate([values, insert_axes(broadcast_to(stop, shape), 0)], axis=0)
    return (values, step) if retstep else values


@public("gradient", static=("spacing", "axis", "edge_order"))
@op_function("gradient")
def gradient(f, *spacing, axis=None, edge_order=1):
    """NumPy's ``np.gradient``: central differences (f[i+1] - f[i-1]) / 2h inside, one-sided
    ones of first or second order (``edge_order``) at the two ends, along each axis of
    ``axis`` (all by default) with one uniform spacing h per axis (default 1); a list of
    results for several axes, one array for one. Each axis needs a static length of at least
    ``edge_order + 1``.

    >>> import numpy as np
    >>> import symgrad as sg
    >>> f = sg.var("f", shape=(4,))
    >>> sg.compile(sg.gradient(f))(np.array([0.0, 1.0, 4.0, 9.0]))
    array([1., 2., 4., 5.])
    """
    (f,) = _lifted(f)
    axes = [_axis(a, f.ndim) for a in ((axis,) if isinstance(axis, numbers.Integral)
                                       else range(f.ndim) if axis is None else axis)]
    if len(set(axes)) != len(axes):
        raise ShapeError(f"repeated axis in {axis!r}")
    if len(spacing) == 1:
        spacing = spacing * len(axes)
    if len(spacing) not in (0, len(axes)) or any(np.ndim(h) for h in spacing):
        raise ArgumentError("gradient: give one number as the spacing of every axis, or one per "
                            "axis (coordinate arrays are not supported)")
    if edge_order not in (1, 2):
        raise ArgumentError(f"gradient: edge_order must be 1 or 2, got {edge_order!r}")
    results = []
    for position, ax in enumerate(axes):
        h = _number(spacing[position], "the spacing") if spacing else 1.0
        length = static_length(f, ax, "take differences")
        if length < edge_order + 1:
            raise ShapeError(f"an axis of length {length} is too short for differences of edge "
                             f"order {edge_order}")

        def at(start, stop=None):
            return _slice_along(f, ax, start, start + 1 if stop is None else stop)
        if edge_order == 1:
            first = (at(1) - at(0)) / h
            last = (at(length - 1) - at(length - 2)) / h
        else:
            first = (-1.5 * at(0) + 2.0 * at(1) - 0.5 * at(2)) / h
            last = (0.5 * at(length - 3) - 2.0 * at(length - 2) + 1.5 * at(length - 1)) / h
        parts = [first]
        if length > 2:
            parts.append((at(2, length) - at(0, length - 2)) / (2.0 * h))
        parts.append(last)
        results.append(concatenate(parts, axis=ax))
    return results[0] if len(results) == 1 else results
