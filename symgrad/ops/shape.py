"""Ops that move and replicate entries: broadcast and its adjoint unbroadcast, expand_dims/squeeze,
reshape, transpose, indexing and its adjoint scatter, concatenate, zeros_like, identity_like,
identity, stop_gradient.

Imports only ops.core (ops' import order: see ops/__init__).
"""

import keyword
import math
import numbers

from ..errors import ArgumentError, InternalError, ShapeError, SymgradError
import numpy as np

from .core import (Expr, apply, broadcast_shapes, check_shape, const, default_graph, defop,
                   literal, normalize_axes, op_function, public, same_dtype, static_shape,
                   sympy_operand)


def _leading_axes(g, out):
    """How many batch axes the cotangent ``g`` carries in front of ``out``'s shape."""
    return g.ndim - out.ndim


# -- broadcast and its adjoint, unbroadcast ----------------------------------------------------------


def _broadcast_shape(shapes, **_):
    return broadcast_shapes(*shapes)


def _emit_broadcast(ctx):
    x = ctx.args[0]
    if static_shape(ctx.shape):
        return f"np.broadcast_to({x}, {literal(ctx.shape)})"
    return (f"np.broadcast_to({x}, "
            f"np.broadcast_shapes(np.shape({x}), np.shape({ctx.args[1]})))")


def _broadcast_vjp(g, out, x, like):
    return [unbroadcast(g, x.shape, _leading_axes(g, out)), None]


def _broadcast_simplify(inputs):
    x, like = inputs
    return x if broadcast_shapes(x.shape, like.shape) == x.shape else None


defop("broadcast_to_like", 2, _broadcast_shape, _emit_broadcast, _broadcast_vjp,
      dtype=same_dtype, simplify=_broadcast_simplify, nondifferentiable=(1,), view=True,
      sympy=sympy_operand, sparsity="moves")


def broadcast_to_like(x, like):
    """``x`` broadcast against ``like``'s shape (``like`` only lends its shape)."""
    return apply("broadcast_to_like", x, like)


def unbroadcast(g, shape, leading=0):
    """Sum the cotangent ``g`` back down to ``shape``, keeping ``leading`` batch axes in front.

    Every tensor rule ends with this, as autograd's do: broadcasting copies, so its adjoint sums.
    """
    g_shape = g.shape
    if len(g_shape) == leading + len(shape) and g_shape[leading:] == tuple(shape):
        return g            # already shaped like ``shape``: nothing to sum (most rules' case)
    extra = g.ndim - leading - len(shape)
    if extra < 0:
        raise InternalError(f"a cotangent of shape {g.shape} is smaller than {shape}")
    summed_size_one = tuple(i - len(shape) for i, d in enumerate(shape)
                            if d == 1 and g.shape[leading + extra + i] != 1)
    if summed_size_one:
        g = apply("sum", g, axis=summed_size_one, keepdims=True)
    if extra:
        g = apply("sum", g, axis=tuple(range(-len(shape) - extra, -len(shape))), keepdims=False)
    return g


# -- inserting and removing axes of size one ---------------------------------------------------------


def _expanded_shape(shapes, axis, **_):
    shape = shapes[0]
    ndim = len(shape) + len(axis)
    positions = {a + ndim for a in axis}
    if any(not 0 <= p < ndim for p in positions):
        raise ShapeError(f"cannot insert axes {axis} into {len(shape)} dimensions")
    dims = iter(shape)
    return tuple(1 if i in positions else next(dims) for i in range(ndim))


def _view_simplify(function):
    """No axes: the operand itself; a constant operand: a constant (these are cheap views)."""
    def simplify(inputs, axis):
        x = inputs[0]
        if not axis:
            return x
        if x.op == "const":
            return const(function(x.data["value"], axis), x.graph)
        return None
    return simplify


def _is_literal(source):
    """Whether an operand's source is a literal codegen inlined (2.0, True), not a name."""
    return not source.isidentifier() or keyword.iskeyword(source)


def _emit_expand_dims(ctx):
    """x[:, None]: indexing, a view as np.expand_dims gives, without its Python layer, which
    costs many times the indexing (tests/benchmarks/README.md)."""
    operand = ctx.args[0]
    if _is_literal(operand):
        return f"np.expand_dims({operand}, {literal(ctx.attrs['axis'])})"
    index = tuple(_NEWAXIS if axis in ctx.attrs["axis"] else _FULL
                  for axis in range(-len(ctx.shape), 0))
    return ctx.item(operand, _trimmed(index))


defop("expand_dims", 1, _expanded_shape, _emit_expand_dims,
      lambda g, out, x, axis: [squeeze(g, axis)], dtype=same_dtype,
      simplify=_view_simplify(np.expand_dims), view=True, sympy=sympy_operand, sparsity="moves")


@op_function("expand_dims")
def expand_dims(x, axis):
    """Insert size-one axes at ``axis`` (positions in the result)."""
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    ndim = x.ndim + len(axes)
    return apply("expand_dims", x, axis=normalize_axes(axes, ndim))


def _squeezed_shape(shapes, axis, **_):
    shape = shapes[0]
    if any(not -len(shape) <= a < 0 or shape[a] != 1 for a in axis):
        raise ShapeError(f"cannot squeeze axes {axis} of shape {shape}: each must have size one")
    return tuple(d for i, d in enumerate(shape) if i - len(shape) not in axis)


defop("squeeze", 1, _squeezed_shape, "np.squeeze({0}, {axis})",
      lambda g, out, x, axis: [expand_dims(g, axis)], dtype=same_dtype,
      simplify=_view_simplify(np.squeeze), view=True, sympy=sympy_operand, sparsity="moves")


@op_function("squeeze")
def squeeze(x, axis):
    """Remove the size-one axes ``axis``."""
    return apply("squeeze", x, axis=normalize_axes(axis, x.ndim))


# -- reshape -----------------------------------------------------------------------------------------


def _product(dims):
    result = 1
    for d in dims:
        result *= d
    return result


def resolve_reshape(old, new):
    """The target shape with -1 filled in, checked against the old shape's size.

    Named dimensions must reappear in the target unchanged (or be absorbed by a -1).
    """
    new = tuple(new)
    for d in new:
        if isinstance(d, bool) or not (isinstance(d, str) or (isinstance(d, numbers.Integral)
                                                              and d >= -1)):
            raise ShapeError(f"invalid dimension {d!r} in reshape target {new}")
    new = tuple(int(d) if isinstance(d, numbers.Integral) else d for d in new)
    if new.count(-1) > 1:
        raise ShapeError("only one dimension of a reshape target can be -1")
    old_names = sorted(d for d in old if isinstance(d, str))
    new_names = sorted(d for d in new if isinstance(d, str))
    old_size = _product(d for d in old if isinstance(d, int))
    new_size = _product(d for d in new if isinstance(d, int) and d != -1)
    if -1 in new:
        if old_names == new_names and new_size and old_size % new_size == 0:
            fill = old_size // new_size
        else:
            missing = list(old_names)
            for name in new_names:
                if name in missing:
                    missing.remove(name)
            if len(missing) == 1 and len(new_names) == len(old_names) - 1 and old_size == new_size:
                fill = missing[0]
            else:
                raise ShapeError(f"cannot infer -1 when reshaping {old} to {new}")
        new = tuple(fill if d == -1 else d for d in new)
    elif old_names != new_names or old_size != new_size:
        raise ShapeError(f"cannot reshape {old} to {new}: sizes differ")
    return new


def _emit_shape(ctx, shape):
    """A shape tuple in source, named dimensions read from the arguments at run time."""
    dims = [ctx.dim(d) if isinstance(d, str) else literal(d) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


defop("reshape", 1, lambda shapes, shape: shape,
      lambda ctx: f"np.reshape({ctx.args[0]}, {_emit_shape(ctx, ctx.attrs['shape'])})",
      lambda g, out, x, shape: [reshape_like(g, x, _leading_axes(g, out))], dtype=same_dtype,
      view=True, sympy=sympy_operand, sparsity="moves")


def _reshape_like_shape(shapes, keep):
    g, like = shapes
    target = tuple(g[:keep]) + tuple(like)
    if static_shape(g) and static_shape(target) and _product(g) != _product(target):
        raise ShapeError(f"cannot reshape {g} to {target}")
    return target


def _emit_reshape_like(ctx):
    if static_shape(ctx.shape):
        return f"np.reshape({ctx.args[0]}, {literal(ctx.shape)})"
    keep = ctx.attrs["keep"]
    return f"np.reshape({ctx.args[0]}, np.shape({ctx.args[0]})[:{keep}] + np.shape({ctx.args[1]}))"


defop("reshape_like", 2, _reshape_like_shape, _emit_reshape_like,
      lambda g, out, x, like, keep: [reshape_like(g, x, _leading_axes(g, out)), None],
      dtype=same_dtype, nondifferentiable=(1,), view=True, sympy=sympy_operand, sparsity="moves",
      simplify=lambda inputs, keep: inputs[0] if inputs[0].shape == tuple(
          inputs[0].shape[:keep]) + tuple(inputs[1].shape) else None)


def reshape_like(x, like, keep=0):
    """``x`` reshaped to its first ``keep`` axes followed by ``like``'s shape."""
    return apply("reshape_like", x, like, keep=keep)


@public("reshape", static=("shape",))
@op_function("reshape")
def reshape(x, shape):
    """``x`` with a new shape; one entry may be -1, named dimensions must be kept.

    >>> from symgrad import var
    >>> reshape(var("m", shape=(2, 3)), (-1,)).shape
    (6,)
    """
    if isinstance(shape, (numbers.Integral, str)):
        shape = (shape,)
    elif isinstance(shape, (tuple, list)):
        shape = tuple(shape)
    else:
        raise ArgumentError(f"reshape: the target must be an int, a name or a tuple of them, "
                            f"got {shape!r}")
    target = resolve_reshape(x.shape, shape)
    if target == x.shape:
        return x
    return apply("reshape", x, shape=target)


# -- transpose -----------------------------------------------------------------------------------------


def _transposed_shape(shapes, axes):
    shape = shapes[0]
    if sorted(axes) != list(range(len(shape))):
        raise ShapeError(f"axes {axes} are not a permutation of {len(shape)} dimensions")
    return tuple(shape[a] for a in axes)


def _emit_transpose(ctx):
    axes = ctx.attrs["axes"]
    if list(axes) == list(range(len(axes) - 1, -1, -1)):
        return ctx.transpose(ctx.args[0])
    return f"np.transpose({ctx.args[0]}, {literal(axes)})"


def _transpose_vjp(g, out, x, axes):
    leading = _leading_axes(g, out)
    inverse = [0] * len(axes)
    for position, axis in enumerate(axes):
        inverse[axis] = position
    return [apply("transpose", g, axes=tuple(range(leading)) + tuple(leading + a for a in inverse))]


def _transpose_simplify(inputs, axes):
    x = inputs[0]
    if list(axes) == list(range(len(axes))):
        return x
    if x.op == "transpose":
        inner = x.attrs["axes"]
        return transpose(x.inputs[0], tuple(inner[a] for a in axes))
    return None


defop("transpose", 1, _transposed_shape, _emit_transpose, _transpose_vjp, dtype=same_dtype,
      simplify=_transpose_simplify, view=True, sympy=sympy_operand, sparsity="moves")


@public("transpose", static=("axes",))
@op_function("transpose")
def transpose(x, axes=None):
    """Permute axes (reverse them by default), as ``np.transpose``.

    >>> import symgrad as sg
    >>> sg.transpose(sg.var("A", shape=(2, 3, 4)), (1, 0, 2)).shape
    (3, 2, 4)
    """
    if axes is None:
        axes = tuple(range(x.ndim - 1, -1, -1))
    if not isinstance(axes, (tuple, list)) or not all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes):
        raise ArgumentError(f"transpose: axes must be a tuple of ints, got {axes!r}")
    axes = tuple(a + x.ndim if isinstance(a, numbers.Integral) and a < 0 else a for a in axes)
    return apply("transpose", x, axes=axes)


def swap_last_axes(x):
    axes = list(range(x.ndim))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return apply("transpose", x, axes=tuple(axes))


# -- indexing: basic (int, slice, None, ...) indexing and its adjoint, a scatter into zeros ---------

_NEWAXIS = ("newaxis",)
_FULL = ("slice", None, None, None)


def normalize_index(index, ndim):
    """An index as a hashable tuple covering every axis: ints, ("slice", a, b, c), ("newaxis",)."""
    items = index if isinstance(index, tuple) else (index,)
    consumed = 0
    for item in items:
        if isinstance(item, (numbers.Integral, slice)) and not isinstance(item, bool):
            consumed += 1
        elif item is not None and item is not Ellipsis:
            raise SymgradError(f"unsupported index {item!r}: use ints, slices, None or ...")
    if consumed > ndim:
        raise ShapeError(f"too many indices ({consumed}) for {ndim} dimensions")
    if sum(item is Ellipsis for item in items) > 1:
        raise ShapeError("an index can only have a single ellipsis")
    normalized = []
    for item in items:
        if item is Ellipsis:
            normalized.extend([("slice", None, None, None)] * (ndim - consumed))
        elif item is None:
            normalized.append(_NEWAXIS)
        elif isinstance(item, slice):
            parts = (item.start, item.stop, item.step)
            for part in parts:
                if part is not None and (not isinstance(part, numbers.Integral)
                                         or isinstance(part, bool)):
                    raise SymgradError(f"slice bounds must be ints or None, got {part!r}")
            if item.step == 0:
                raise ShapeError("slice step cannot be zero")
            normalized.append(("slice",) + tuple(None if p is None else int(p) for p in parts))
        else:
            normalized.append(int(item))
    if Ellipsis not in items:
        normalized.extend([("slice", None, None, None)] * (ndim - consumed))
    return tuple(normalized)


def _indexed_shape(shapes, index, **_):
    dims = iter(shapes[0])
    result = []
    for item in index:
        if item == _NEWAXIS:
            result.append(1)
            continue
        dim = next(dims)
        if isinstance(item, int):
            if isinstance(dim, int) and not -dim <= item < dim:
                raise ShapeError(f"index {item} is out of bounds for an axis of size {dim}")
        elif isinstance(dim, int):
            result.append(len(range(*slice(*item[1:]).indices(dim))))
        elif item[1:] in ((None, None, None), (None, None, 1), (None, None, -1)):
            result.append(dim)
        else:
            raise ShapeError(f"slicing the named dimension {dim!r} with "
                             f"{index_source((item,))} is not supported: its length is unknown")
    return tuple(result)


def index_source(index):
    """Source of an index (normalize_index's items, or Ellipsis) such as ``1:, 0``; ``...``
    for no item."""
    parts = []
    for item in index:
        if item is Ellipsis:
            parts.append("...")
        elif item == _NEWAXIS:
            parts.append("None")
        elif isinstance(item, int):
            parts.append(str(item))
        else:
            start, stop, step = ("" if p is None else str(p) for p in item[1:])
            parts.append(f"{start}:{stop}" + (f":{step}" if step else ""))
    return ", ".join(parts) if parts else "..."


def _trimmed(index):
    """The index without its trailing full slices, which read as noise."""
    end = len(index)
    while end and index[end - 1] == _FULL:
        end -= 1
    return index[:end]


def _emit_getitem(ctx):
    operand = ctx.args[0]
    if _is_literal(operand):
        operand = f"np.array({operand})"    # True[None] is no Python
    return ctx.item(operand, _trimmed(ctx.attrs["index"]))


defop("getitem", 1, _indexed_shape, _emit_getitem,
      lambda g, out, x, index: [apply("index_grad", g, x, index=index,
                                      keep=_leading_axes(g, out))],
      dtype=same_dtype, simplify=lambda inputs, index: _getitem_simplify(inputs[0], index),
      view=True, sympy=sympy_operand, sparsity="moves")


def _python_index(index):
    return tuple(None if item == _NEWAXIS else item if isinstance(item, int)
                 else slice(*item[1:]) for item in index)


def _getitem_simplify(x, index):
    if all(item == ("slice", None, None, None) for item in index):
        return x
    if x.op == "const":
        # also keeps a subscript off an inlined scalar literal (2.0[None] is not Python)
        return const(x.data["value"][_python_index(index)], x.graph)
    if x.op == "identity":
        return _identity_part(x, index)
    return None


def _identity_part(identity_expr, index):
    """A part of the identity on an array of shape (n1, ..., nd), d > 1, selected along its
    trailing d axes (where a Jacobian's rules slice its seed), as the product of one part of
    eye(nk) per axis: [i1..id, j1..jd] is 1 where every ik equals jk. The n^2d-entry identity
    is then never made for the part, and the factors are small; their product is exact."""
    factors = identity_factors(identity_expr, index)
    if factors is None:
        return None
    product = factors[0]
    for factor in factors[1:]:
        product = apply("multiply", product, factor)
    return product


def identity_factors(identity_expr, index=None):
    """The factors of ``identity_expr[index]`` (_identity_part; the whole identity for None), one
    part of eye(nk) per axis of its half, each with ones along the others; None where the
    identity's half has one axis or the index reads its leading axes or adds some."""
    half = identity_expr.data["attrs"]["shape"]
    d = len(half)
    index = (_FULL,) * 2 * d if index is None else index
    if d < 2 or _NEWAXIS in index or any(item != _FULL for item in index[:d]):
        return None
    trailing = index[d:]
    kept = [k for k, item in enumerate(trailing) if not isinstance(item, int)]
    factors = []
    for k, n in enumerate(half):
        leading = tuple(_FULL if axis == k else _NEWAXIS for axis in range(d))
        if isinstance(trailing[k], int):     # it takes the factor's second axis away
            rest = (trailing[k],) + (_NEWAXIS,) * len(kept)
        else:
            rest = tuple(trailing[k] if j == k else _NEWAXIS for j in kept)
        eye = identity((n,), identity_expr.data["dtype"], identity_expr.graph)
        factors.append(apply("getitem", eye, index=leading + rest))
    return factors


# an index_grad's array of at least this many entries starts empty, the entries its cotangent
# does not fill then zeroed (index_grad_target)
EMPTY_MIN = 1 << 14


def index_grad_target(ctx):
    """(the statements making the array an index_grad starts from, the index its cotangent is
    written at); the array is zero everywhere the index does not select. Codegen also uses it
    to have the op computing the cotangent write straight into the slice."""
    g, like = ctx.args
    keep = ctx.attrs["keep"]
    index = ctx.attrs["index"]
    # the batch axes of the cotangent come first; the index addresses the axes after them
    written = (_FULL,) * keep + index
    dtype = dtype_keyword(ctx)
    if not static_shape(ctx.shape):
        return [f"{ctx.out} = np.zeros(np.shape({g})[:{keep}] + np.shape({like}){dtype})"], written
    uncovered = _uncovered(index, ctx.shape[keep:])
    # zeros a written slice overwrites cost a memset that np.empty and the rest zeroed spare; for
    # a small array that pays when the rest is addressed by ints, not by slices
    # (tests/benchmarks/README.md)
    if uncovered is None or (math.prod(ctx.shape) < EMPTY_MIN
                             and any(not isinstance(item, int)
                                     for rest in uncovered for item in rest)):
        return [f"{ctx.out} = np.zeros({literal(ctx.shape)}{dtype})"], written
    return ([f"{ctx.out} = np.empty({literal(ctx.shape)}{dtype})"]
            + [ctx.assign_item(ctx.out, (_FULL,) * keep + rest, "0.0")
               for rest in uncovered]), written


def _uncovered(index, shape):
    """Indexes of what ``index`` leaves out of an array of static ``shape``, when that is
    simple: every item a full slice but one, an int or a unit-step slice, whose complement is
    at most two slabs (``:3`` and ``999``, say: one entry along the axis is an int). None
    otherwise."""
    items = [item for item in index if item != _NEWAXIS]
    partial = [axis for axis, item in enumerate(items) if item != _FULL]
    if len(partial) != 1:
        return [] if not partial else None
    axis = partial[0]
    item = items[axis]
    if isinstance(item, int):
        start = item % shape[axis]
        stop = start + 1
    elif item[3] in (None, 1):
        start, stop, _ = slice(*item[1:]).indices(shape[axis])
        stop = max(start, stop)
    else:
        return None
    slabs = []
    if start > 0:
        slabs.append(0 if start == 1 else ("slice", None, start, None))
    if stop < shape[axis]:
        slabs.append(stop if stop == shape[axis] - 1 else ("slice", stop, None, None))
    return [(_FULL,) * axis + (slab,) for slab in slabs]


def _emit_index_grad(ctx):
    start, index = index_grad_target(ctx)
    return start + [ctx.assign_item(ctx.out, index, ctx.args[0])]


def _index_grad_vjp(g, out, x, like, index, keep):
    leading = g.ndim - like.ndim
    return [apply("getitem", g, index=(("slice", None, None, None),) * leading + index), None]


defop("index_grad", 2,
      lambda shapes, index, keep: tuple(shapes[0][:keep]) + tuple(shapes[1]),
      _emit_index_grad, _index_grad_vjp, nondifferentiable=(1,), sparsity="moves")


def _index_add_shape(shapes, index, keep):
    base, g = shapes
    if tuple(base[:keep]) != tuple(g[:keep]) or _indexed_shape([base[keep:]], index) != g[keep:]:
        raise ShapeError(f"{g} is not the shape of {base} indexed by the index")
    return tuple(base)


def _index_add_vjp(g, out, base, update, index, keep):
    leading = g.ndim - out.ndim
    return [g, apply("getitem", g, index=(("slice", None, None, None),) * (leading + keep) + index)]


# base + index_grad(g, index): g added into a copy of base, or into base's own buffer when it
# dies there (codegen's in-place rule) - the optimiser writes sums of index gradients this way,
# so that slicing's gradient needs no array of zeros
def _added_into(ctx, base):
    """Statements adding the update into ``base``'s indexed part (how: EmitContext.add_at)."""
    return ctx.add_at(base, (_FULL,) * ctx.attrs["keep"] + ctx.attrs["index"], ctx.args[1])


defop("index_add", 2, _index_add_shape,
      lambda ctx: [f"{ctx.out} = np.array({ctx.args[0]})", *_added_into(ctx, ctx.out)],
      _index_add_vjp,
      numpy_into=lambda ctx: [*_added_into(ctx, ctx.into), f"{ctx.out} = {ctx.into}"],
      into_positions=(0,), sparsity="moves")


def least_lengths(op, shapes, attrs):
    """What the int items of an indexing op ask of named dimensions, whose lengths only a call
    binds (the shape rules check the static ones): {name: (least length, the index)}."""
    if op == "getitem":
        shape = shapes[0]
    elif op == "index_grad":
        shape = shapes[1]
    elif op == "index_add":
        shape = shapes[0][attrs["keep"]:]
    else:
        return {}
    dims = iter(shape)
    needs = {}
    for item in attrs["index"]:
        if item == _NEWAXIS:
            continue
        dim = next(dims)
        if isinstance(item, int) and isinstance(dim, str):
            least = item + 1 if item >= 0 else -item
            if least > needs.get(dim, (0, None))[0]:
                needs[dim] = (least, item)
    return needs


@op_function("getitem")
def getitem(x, index):
    """NumPy indexing: ints, slices, None and one ellipsis (basic indexing, a view), and
    integer arrays (int64 expressions or NumPy arrays: a gather, whose gradient scatters and
    adds, so repeated indices add up)."""
    fancy = fancy_index(x, index)
    if fancy is None:
        return apply("getitem", x, index=normalize_index(index, x.ndim))
    arrays, normalized = fancy
    return apply("gather", x, *arrays, index=normalized)


# -- concatenate ---------------------------------------------------------------------------------------


def _concatenated_shape(shapes, axis):
    first = shapes[0]
    ndim = len(first)
    if ndim == 0:
        raise ShapeError("zero-dimensional arrays cannot be concatenated")
    if any(len(s) != ndim for s in shapes):
        raise ShapeError("all operands must have the same number of dimensions")
    if not -ndim <= axis < 0:
        raise ShapeError(f"axis {axis} is out of range for {ndim} dimensions")
    for s in shapes:
        for i in range(ndim):
            if i - ndim != axis and s[i] != first[i]:
                raise ShapeError(f"shapes {first} and {s} differ off the concatenation axis")
    along = [s[axis] for s in shapes]
    if not static_shape(along):
        raise ShapeError(f"concatenating along a named dimension ({along}) is not supported")
    result = list(first)
    result[axis] = sum(along)
    return tuple(result)


def _emit_concatenate(ctx):
    return f"np.concatenate([{', '.join(ctx.args)}], axis={ctx.attrs['axis']})"


def _concatenate_vjp(g, out, *parts, axis):
    grads = []
    start = 0
    for part in parts:
        stop = start + part.shape[axis]
        index = [("slice", None, None, None)] * g.ndim
        index[axis] = ("slice", start, stop, None)
        grads.append(apply("getitem", g, index=tuple(index)))
        start = stop
    return grads


defop("concatenate", None, _concatenated_shape, _emit_concatenate, _concatenate_vjp,
      simplify=lambda inputs, axis: inputs[0] if len(inputs) == 1 else None, sympy=sympy_operand,
      sparsity="moves")


@public("concatenate", static=("axis",))
@op_function("concatenate", operands="list")
def concatenate(parts, axis=0):
    """Join expressions along an existing axis, as ``np.concatenate``.

    >>> import symgrad as sg
    >>> sg.concatenate([sg.var("a", shape=(2, 3)), sg.var("b", shape=(4, 3))]).shape
    (6, 3)
    """
    parts = list(parts)
    if not parts:
        raise ShapeError("needs at least one operand")
    ndim = max(p.ndim if isinstance(p, Expr) else len(getattr(p, "shape", ())) for p in parts)
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ArgumentError(f"concatenate: axis must be an int, got {axis!r}")
    (axis,) = normalize_axes(axis, ndim) if ndim else (axis,)
    return apply("concatenate", *parts, axis=axis)


# -- zeros and stop_gradient ---------------------------------------------------------------------------


def dtype_keyword(ctx):
    """The ``dtype=`` argument making an array of the node's dtype: none for float64, which is
    what np.zeros, np.empty and np.eye make by default."""
    return ", dtype=np.float32" if ctx.dtype == "float32" else ""


def _emit_zeros_like(ctx):
    shape = literal(ctx.shape) if static_shape(ctx.shape) else f"np.shape({ctx.args[0]})"
    return f"np.zeros({shape}{dtype_keyword(ctx)})"


defop("zeros_like", 1, lambda shapes: shapes[0], _emit_zeros_like, lambda g, out, x: [None],
      nondifferentiable=(0,), scalar="0.0", sympy=lambda sympy, x: sympy.Integer(0))


def zeros_like(x):
    """Zeros of ``x``'s shape (``x`` only lends its shape)."""
    return apply("zeros_like", x)


def _emit_identity_like(ctx):
    x = ctx.args[0]
    return ctx.reshape(f"np.eye(np.size({x}){dtype_keyword(ctx)})", f"np.shape({x}) * 2")


defop("identity_like", 1, lambda shapes: shapes[0] + shapes[0], _emit_identity_like,
      lambda g, out, x: [None], nondifferentiable=(0,), scalar="1.0",
      loop=None)      # its result is not of its operand's shape: no loop over both


def identity_like(x):
    """The identity map on ``x``'s entries, shape ``x.shape + x.shape``; a named dimension's size
    is read from ``x`` at run time (``x`` only lends its shape)."""
    return apply("identity_like", x)


def _emit_identity(ctx):
    half = ctx.attrs["shape"]
    eye = f"np.eye({math.prod(half)}{dtype_keyword(ctx)})"
    return eye if len(half) == 1 else ctx.reshape(eye, literal(ctx.shape))


def _identity_shape(shapes, shape, dtype):
    shape = check_shape(shape)
    if not static_shape(shape):
        raise ShapeError(f"identity of shape {shape}: a named dimension needs identity_like")
    return shape + shape


# The seed of a dense Jacobian of a known shape: made when the function runs, where a constant
# would be stored, hashed and copied into every slice of it while the graph is built (an n^4 seed
# for the Hessian in an (n, n) variable). No operand, so computing it waits for nothing.
defop("identity", 0, _identity_shape, _emit_identity, dtype=lambda dtypes, shape, dtype: dtype,
      scalar="1.0", loop=None)


def identity(shape, dtype="float64", graph=None):
    """The identity map on the entries of an array of static ``shape``, of shape ``shape +
    shape`` (``np.eye(size).reshape(shape + shape)``), computed when the function runs.

    >>> identity((2, 3)).shape
    (2, 3, 2, 3)
    """
    graph = default_graph() if graph is None else graph
    shape = check_shape(shape)
    node = graph.add("identity", (), {"shape": shape, "dtype": str(np.dtype(dtype))},
                     _identity_shape([], shape, dtype), str(np.dtype(dtype)))
    return Expr(graph, node)


defop("stop_gradient", 1, lambda shapes: shapes[0], "{0}", lambda g, out, x: [None],
      dtype=same_dtype, nondifferentiable=(0,), scalar="{0}", view=True,
      loop=None,        # its operand under another name: nothing to compute in a loop
      sympy=sympy_operand,      # its value: SymPy's derivative of it is not zero
      simplify=lambda inputs: inputs[0] if inputs[0].op in ("const", "stop_gradient") else None)


@public("stop_gradient")
def stop_gradient(x):
    """``x``'s value, treated as a constant by every differentiation.

    >>> from symgrad import var, grad
    >>> x = var("x")
    >>> grad(x * stop_gradient(x), x).op
    'stop_gradient'
    """
    return apply("stop_gradient", x)


# -- integer-array indexing: gather, and its adjoint scatter_add -----------------------------------
#
# An index of integer arrays is the attribute ``index``, one item per indexed axis (the last
# len(index) axes of the operand; the axes before them are batch axes that stay in front): an
# int, ("slice", start, stop, step), ("array", k) for the k-th index operand (an int64 array),
# or ("range",) for the range of the axis's positions, laid along that axis (take_along_axis's
# other axes). NumPy's rules for advanced indexing say the result's shape: the index arrays (and
# the ints among them) broadcast to one block of axes, which takes their place when they are
# adjacent and goes first otherwise.

_MAX_INDEX_OPERANDS = 32
_INDEX_OPERANDS = tuple(range(1, 1 + _MAX_INDEX_OPERANDS))


def _is_advanced(item):
    return not (isinstance(item, tuple) and item[0] == "slice")


def _advanced_block(index, base, index_shapes):
    """(the broadcast shape of the index's advanced items, whether they are adjacent)."""
    positions = [p for p, item in enumerate(index) if _is_advanced(item)]
    shapes = []
    for p in positions:
        item = index[p]
        if isinstance(item, int):
            shapes.append(())
        elif item[0] == "array":
            shapes.append(tuple(index_shapes[item[1]]))
        else:
            shapes.append((1,) * p + (base[p],) + (1,) * (len(index) - p - 1))
    adjacent = positions == list(range(positions[0], positions[-1] + 1))
    return broadcast_shapes(*shapes), adjacent


def _gathered_shape(base, index, index_shapes):
    """The shape NumPy gives ``base``-shaped array indexed by ``index`` (see above)."""
    if len(index) != len(base):
        raise ShapeError(f"an index of {len(index)} items for {len(base)} axes")
    block, adjacent = _advanced_block(index, base, index_shapes)
    kept = []
    for p, (item, dim) in enumerate(zip(index, base)):
        if _is_advanced(item):
            if isinstance(item, int) and isinstance(dim, int) and not -dim <= item < dim:
                raise ShapeError(f"index {item} is out of bounds for an axis of size {dim}")
            continue
        kept.append((p, _indexed_shape([(dim,)], (item,))[0]))
    first = next(p for p, item in enumerate(index) if _is_advanced(item))
    if adjacent:
        return (tuple(d for p, d in kept if p < first) + block
                + tuple(d for p, d in kept if p > first))
    return block + tuple(d for _, d in kept)


def _gather_shape(shapes, index):
    x, index_shapes = shapes[0], shapes[1:]
    if len(index) > len(x):
        raise ShapeError(f"too many indices ({len(index)}) for {len(x)} dimensions")
    batch = len(x) - len(index)
    return tuple(x[:batch]) + _gathered_shape(tuple(x[batch:]), index, index_shapes)


def _index_parts(ctx, index, base_shape, operands):
    """Source of each item of ``index`` (``operands``: the index operands' source)."""
    parts = []
    for p, item in enumerate(index):
        if isinstance(item, int):
            parts.append(str(item))
        elif item[0] == "slice":
            parts.append(index_source((item,)))
        elif item[0] == "array":
            parts.append(operands[item[1]])
        else:
            dim = base_shape[p]
            length = ctx.dim(dim) if isinstance(dim, str) else literal(dim)
            laid = ["1"] * len(index)
            laid[p] = length
            parts.append(ctx.reshape(f"np.arange({length})", f"({', '.join(laid)})"))
    return parts


def _block_moved(ctx, source, batch, block_ndim, to_front):
    """``source`` with its batch axes moved behind the advanced block (``to_front``: back in
    front of it): NumPy puts a non-adjacent block first, before the batch axes, whose place
    symgrad keeps in front."""
    if not batch or not block_ndim:
        return source
    batch_axes = tuple(range(batch))
    behind = tuple(range(block_ndim, block_ndim + batch))
    origin, destination = (behind, batch_axes) if to_front else (batch_axes, behind)
    return f"np.moveaxis({source}, {literal(origin)}, {literal(destination)})"


def _non_adjacent_block(index, base, index_shapes):
    """The block's number of axes when the index puts it first (not adjacent), else 0."""
    block, adjacent = _advanced_block(index, base, index_shapes)
    return 0 if adjacent else len(block)


def _emit_gather(ctx):
    index = ctx.attrs["index"]
    x, operands = ctx.args[0], ctx.args[1:]
    batch = len(ctx.shapes[0]) - len(index)
    base = ctx.shapes[0][batch:]
    parts = [":"] * batch + _index_parts(ctx, index, base, operands)
    gathered = ctx.gather(x, parts)
    return _block_moved(ctx, gathered, batch, _non_adjacent_block(index, base, ctx.shapes[1:]),
                        to_front=True)


def _gather_vjp(g, out, x, *indices, index):
    return [apply("scatter_add", g, x, *indices, index=index)] + [None] * len(indices)


defop("gather", None, _gather_shape, _emit_gather, _gather_vjp, dtype=same_dtype,
      nondifferentiable=_INDEX_OPERANDS, loop=None, sparsity="moves")


def _scatter_add_shape(shapes, index):
    g, like, index_shapes = shapes[0], shapes[1], shapes[2:]
    if len(index) > len(like):
        raise ShapeError(f"too many indices ({len(index)}) for {len(like)} dimensions")
    base = tuple(like[len(like) - len(index):])
    gathered = _gathered_shape(base, index, index_shapes)
    batch = len(g) - len(gathered)
    if batch < 0 or tuple(g[batch:]) != gathered:
        raise ShapeError(f"{tuple(g)} is not the shape of {base} indexed by the index")
    return tuple(g[:batch]) + base


def _emit_scatter_add(ctx):
    """Zeros of the operand's shape, then np.add.at: repeated indices add up (NumPy's add.at
    is as quick as np.bincount on a 1-D index since NumPy 1.25, and takes any index)."""
    index = ctx.attrs["index"]
    g, like, operands = ctx.args[0], ctx.args[1], ctx.args[2:]
    like_shape = ctx.shapes[1]
    base = tuple(like_shape[len(like_shape) - len(index):])
    batch = len(ctx.shape) - len(index)
    if static_shape(ctx.shape):
        shape = literal(ctx.shape)
    else:
        shape = (f"np.shape({g})[:{batch}] + "
                 f"np.shape({like})[{len(like_shape) - len(index)}:]")
    parts = [":"] * batch + _index_parts(ctx, index, base, operands)
    moved = _block_moved(ctx, g, batch, _non_adjacent_block(index, base, ctx.shapes[2:]),
                         to_front=False)
    return [f"{ctx.out} = np.zeros({shape}{dtype_keyword(ctx)})",
            *ctx.scatter_add(ctx.out, parts, moved)]


def _scatter_add_vjp(g, out, cotangent, like, *indices, index):
    return [apply("gather", g, *indices, index=index), None] + [None] * len(indices)


defop("scatter_add", None, _scatter_add_shape, _emit_scatter_add, _scatter_add_vjp,
      dtype=same_dtype, nondifferentiable=(1,) + tuple(k + 1 for k in _INDEX_OPERANDS),
      loop=None, sparsity="adds")


def _index_operand(item, graph):
    """An integer index array as an int64 Expr, or None for an item of basic indexing; a
    boolean array is refused (masks select a number of entries that no shape can name), as
    is a floating one (ArgumentError: in a formula, a ParseError at the argument)."""
    if isinstance(item, Expr):
        dtype = item.dtype
    elif isinstance(item, (np.ndarray, list)):
        try:
            array = np.asarray(item)
        except ValueError:
            raise ArgumentError(f"unsupported index {item!r}: a ragged list") from None
        if array.dtype.kind in "iu" and array.ndim == 0:
            return None
        dtype = "bool" if array.dtype == bool else "int64" if array.dtype.kind in "iu" \
            else str(array.dtype)
        if dtype == "int64":
            return const(array, graph, dtype="int64")
        if array.size == 0 and array.dtype.kind == "f":     # x[[]] indexes nothing, as NumPy
            return const(array.astype(np.int64), graph, dtype="int64")
    else:
        return None
    if dtype == "bool":
        raise ArgumentError("indexing with a symbolic boolean mask is not supported: the number "
                            "of entries it selects is known only at run time (use "
                            "sg.compress(mask, x, axis, length='k'), which names that number "
                            "as a dimension, or sg.where to select values; a constant NumPy "
                            "mask selects a known number and is supported)")
    if dtype != "int64":
        raise ArgumentError(f"index arrays must be integers (int64), got one of dtype {dtype}")
    return item


def _constant_mask(item):
    """``item`` as a NumPy boolean array when it is a constant mask (an array or a list of
    bools of at least one axis), else None."""
    if isinstance(item, list):
        try:
            item = np.asarray(item)
        except ValueError:
            return None
    return item if isinstance(item, np.ndarray) and item.dtype == bool and item.ndim else None


def _masks_as_positions(x, items):
    """``items`` with each constant boolean mask replaced by the integer arrays of its True
    positions (np.nonzero), NumPy's meaning of a mask over as many axes as it has: the number of
    entries it selects is known when building. A mask whose shape differs from the axes it
    covers is refused, as NumPy refuses it."""
    if not any(_constant_mask(item) is not None for item in items):
        return items
    masks = [_constant_mask(item) for item in items]
    consumed = [mask.ndim if mask is not None else 0 if item is None or item is Ellipsis else 1
                for item, mask in zip(items, masks)]
    ellipsis = next((k for k, item in enumerate(items) if item is Ellipsis), len(items))
    expanded = []
    for k, (item, mask) in enumerate(zip(items, masks)):
        if mask is None:
            expanded.append(item)
            continue
        start = sum(consumed[:k]) if k < ellipsis else x.ndim - sum(consumed[k:])
        covered = tuple(x.shape[start:start + mask.ndim])
        if len(covered) < mask.ndim or any(isinstance(d, int) and d != m
                                           for d, m in zip(covered, mask.shape)):
            raise ShapeError(f"a boolean mask of shape {mask.shape} does not match the axes "
                             f"{covered} it indexes")
        if not all(isinstance(d, int) for d in covered):
            raise ShapeError(f"a boolean mask of shape {mask.shape} over the named dimensions "
                             f"{covered}: their lengths are known only at the call")
        expanded.extend(np.nonzero(mask))
    return tuple(expanded)


def fancy_index(x, index):
    """(index operands, the gather attribute) for an index with integer arrays, or None when
    the index is basic (normalize_index's). A constant boolean mask is the integer arrays of its
    True positions (_masks_as_positions)."""
    items = index if isinstance(index, tuple) else (index,)
    items = _masks_as_positions(x, items)
    operands = [_index_operand(item, x.graph) for item in items]
    if all(operand is None for operand in operands):
        return None
    if any(item is None for item in items):
        raise SymgradError("None (np.newaxis) in an index with integer arrays is not supported: "
                           "index first, then insert the axis (e[idx][:, None])")
    if sum(item is Ellipsis for item in items) > 1:
        raise ShapeError("an index can only have a single ellipsis")
    consumed = sum(item is not Ellipsis for item in items)
    if consumed > x.ndim:
        raise ShapeError(f"too many indices ({consumed}) for {x.ndim} dimensions")
    if len([o for o in operands if o is not None]) > _MAX_INDEX_OPERANDS:
        raise SymgradError(f"at most {_MAX_INDEX_OPERANDS} index arrays")
    normalized, arrays = [], []
    for item, operand in zip(items, operands):
        if item is Ellipsis:
            normalized.extend([_FULL] * (x.ndim - consumed))
        elif operand is not None:
            normalized.append(("array", len(arrays)))
            arrays.append(operand)
        else:
            normalized.extend(normalize_index(item, 1))
    normalized.extend([_FULL] * (x.ndim - len(normalized)))
    for item, dim in zip(normalized, x.shape):
        if isinstance(item, tuple) and item[0] == "array" and isinstance(dim, int) \
                and arrays[item[1]].op == "const":
            values = arrays[item[1]].data["value"]
            if values.size and not (-dim <= values.min() and values.max() < dim):
                raise ShapeError(f"index {values.max() if values.max() >= dim else values.min()}"
                                 f" is out of bounds for an axis of size {dim}")
    return arrays, tuple(normalized)


def _as_index_operand(indices, graph):
    operand = _index_operand(indices, graph)
    if operand is None:
        if isinstance(indices, Expr) or not isinstance(indices, numbers.Integral):
            raise ArgumentError(f"indices must be an integer array, got {indices!r}")
        operand = const(np.asarray(indices), graph, dtype="int64")
    return operand


@public("take", static=("axis",))
@op_function("take")
def take(x, indices, axis=None):
    """``np.take``: the entries of ``x`` at ``indices`` along ``axis`` (of the flattened ``x``
    when None); out-of-bounds indices raise, as NumPy's default mode.

    >>> from symgrad import var
    >>> import numpy as np
    >>> take(var("m", shape=(3, 4)), np.array([0, 2, 2]), axis=1).shape
    (3, 3)
    """
    if axis is None:
        x = reshape(x, (-1,))
        axis = 0
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ArgumentError(f"take: axis must be an int or None, got {axis!r}")
    (axis,) = normalize_axes(axis, x.ndim)
    operand = _as_index_operand(indices, x.graph)
    return getitem(x, (slice(None),) * (x.ndim + axis) + (operand,))


@public("take_along_axis", static=("axis",))
@op_function("take_along_axis", operands=2)
def take_along_axis(x, indices, axis):
    """``np.take_along_axis``: ``x``'s entries at ``indices`` along ``axis``, ``indices``
    having ``x``'s number of axes (the others broadcast against ``x``'s), as argsort's
    output is used.

    >>> from symgrad import var
    >>> import numpy as np
    >>> take_along_axis(var("m", shape=(3, 4)), np.zeros((3, 1), int), axis=1).shape
    (3, 1)
    """
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ArgumentError(f"take_along_axis: axis must be an int, got {axis!r}")
    operand = _as_index_operand(indices, x.graph)
    if operand.ndim != x.ndim:
        raise ShapeError(f"indices of {operand.ndim} axes for an array of {x.ndim}")
    (axis,) = normalize_axes(axis, x.ndim)
    axis += x.ndim
    index = tuple(("array", 0) if a == axis else ("range",) for a in range(x.ndim))
    for a, (dim, along) in enumerate(zip(x.shape, operand.shape)):
        if a != axis and along not in (1, dim):
            raise ShapeError(f"indices of shape {operand.shape} do not match {x.shape} "
                             f"off axis {axis}")
    return apply("gather", x, operand, index=index)


@public("one_hot", static=("num_classes",))
@op_function("one_hot")
def one_hot(labels, num_classes):
    """Rows of the identity at ``labels``: shape ``labels.shape + (num_classes,)``, floating
    (float64), 1.0 where the last axis's position is the label; no gradient flows into the
    labels, as into any comparison.

    >>> from symgrad import var
    >>> one_hot(var("y", shape=("n",), dtype="int64"), 10).shape
    ('n', 10)
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 0:
        raise ArgumentError(f"one_hot: num_classes must be a non-negative int, "
                            f"got {num_classes!r}")
    if not isinstance(labels, Expr):
        labels = _as_index_operand(np.asarray(labels), default_graph())
    classes = const(np.arange(int(num_classes)), labels.graph, dtype="int64")
    matches = apply("equal", expand_dims(labels, -1), classes)
    return apply("where", matches, 1.0, 0.0)


# -- compress: a symbolic boolean mask along one axis ---------------------------------------------

# the ops whose result's length the data decide, which the array-API backend refuses
USES_DATA_LENGTHS = ("compress", "compress_grad")


class SelectedCount:
    """What compiled code calls (as ``_sg_compress``, codegen.emission.LIBRARIES) after a
    compress whose named length an input also gives: the entries the condition selected must be
    that many, which only the call can tell."""

    @staticmethod
    def check(selected, axis, length, dimension, condition):
        count = np.shape(selected)[axis]
        if count != length:
            raise SymgradError(f"compress: the condition {condition!r} selects {count} entries, "
                               f"but dimension {dimension!r} is {length} (the length an input "
                               f"gives it)")


def _compress_shape(shapes, axis, length):
    x, condition = shapes
    if not -len(x) <= axis < 0:
        raise ShapeError(f"axis {axis} is out of range for {len(x)} dimensions")
    if tuple(condition) != (x[axis],):
        raise ShapeError(f"the condition of shape {tuple(condition)} is not one entry per "
                         f"entry of axis {axis} (of length {x[axis]!r})")
    return tuple(x[:axis]) + (length,) + tuple(x[axis:][1:])


def _emit_compress(ctx):
    """np.compress; when an input gives the named length too, a check that the condition
    selected that many. The check's helper is bound whether or not it is called: the array-API
    backend refuses it by this op's name (the standard's shapes cannot depend on data in
    every library)."""
    checks = ctx.library("_sg_compress")
    x, condition = ctx.args
    axis, length = ctx.attrs["axis"], ctx.attrs["length"]
    lines = [f"{ctx.out} = np.compress({condition}, {x}, axis={axis})"]
    try:
        bound = ctx.dim(length)
    except SymgradError:
        return lines        # no input gives the length: it is what the condition selects
    return lines + [f"{checks}.check({ctx.out}, {axis}, {bound}, {length!r}, {condition!r})"]


def _compress_vjp(g, out, x, condition, axis, length):
    return [apply("compress_grad", g, x, condition, axis=axis, length=length), None]


# the operand first, then the condition (compress's public order is NumPy's, the other way)
defop("compress", 2, _compress_shape, _emit_compress, _compress_vjp, dtype=same_dtype,
      nondifferentiable=(1,), loop=None, foldable=False)


def _compress_grad_shape(shapes, axis, length):
    g, like, condition = shapes
    batch = len(g) - len(like)
    if batch < 0 or tuple(g[batch:]) != _compress_shape((like, condition), axis, length):
        raise ShapeError(f"{tuple(g)} is not the shape of {tuple(like)} compressed along axis "
                         f"{axis} to length {length!r}")
    return tuple(g[:batch]) + tuple(like)


def _emit_compress_grad(ctx):
    """Zeros of the operand's shape with the cotangent written where the condition is True."""
    ctx.library("_sg_compress")         # refused by the array-API backend, as compress is
    g, like, condition = ctx.args
    batch = len(ctx.shape) - len(ctx.shapes[1])
    shape = literal(ctx.shape) if static_shape(ctx.shape) \
        else f"np.shape({g})[:{batch}] + np.shape({like})"
    index = ", ".join(["...", condition] + [":"] * (-ctx.attrs["axis"] - 1))
    return [f"{ctx.out} = np.zeros({shape}{dtype_keyword(ctx)})",
            f"{ctx.out}[{index}] = {g}"]


def _compress_grad_vjp(g, out, cotangent, like, condition, axis, length):
    return [apply("compress", g, condition, axis=axis, length=length), None, None]


defop("compress_grad", 3, _compress_grad_shape, _emit_compress_grad, _compress_grad_vjp,
      dtype=same_dtype, nondifferentiable=(1, 2), loop=None, foldable=False)


@public("compress", static=("axis", "length"))
@op_function("compress", operands=2)
def compress(condition, a, axis=None, *, length=None):
    """The entries of ``a`` along ``axis`` where the 1-D boolean ``condition`` is True, as
    np.compress (``axis=None``: of ``a`` flattened); the condition has one entry per entry of
    that axis. A symbolic condition selects a number of entries known only at the call: the
    result's axis is the named dimension ``length``. When an input of the compiled function
    has that dimension too, the call checks that the condition selected as many (SymgradError
    otherwise); when none has, the axis is as long as the condition makes it.

    The gradient scatters the cotangent back to the kept entries, zero elsewhere (as JAX's and
    PyTorch's masked selection); its own derivative is compress again, so it nests.

    >>> from symgrad import var
    >>> x = var("x", shape=(5, 3))
    >>> compress(x[:, 0] > 0, x, axis=0, length="k").shape
    ('k', 3)
    """
    graph = next((v.graph for v in (condition, a) if isinstance(v, Expr)), default_graph())
    if not isinstance(condition, Expr):
        mask = np.asarray(condition)
        if mask.dtype != bool:
            raise ArgumentError(f"compress: the condition must be boolean, got dtype "
                                f"{mask.dtype}")
        condition = const(mask, graph)
    if not isinstance(a, Expr):
        a = const(np.asarray(a, dtype=np.float64), graph)
    if condition.graph is not a.graph:
        raise SymgradError("cannot combine expressions from two different graphs")
    if condition.dtype != "bool":
        raise ArgumentError(f"compress: the condition must be boolean, got dtype "
                            f"{condition.dtype}")
    if condition.ndim != 1:
        raise ShapeError(f"the condition must be 1-D, got shape {condition.shape}")
    if axis is None:
        a = reshape(a, (-1,))
        axis = 0
    (axis,) = normalize_axes(axis, a.ndim)
    if length is None and condition.op == "const":
        # a constant condition selects a number known now: a gather at its True positions
        positions = np.flatnonzero(condition.data["value"])
        return getitem(a, (Ellipsis, positions) + (slice(None),) * (-axis - 1))
    if length is None:
        raise SymgradError("compress: the number of entries a symbolic condition selects is "
                           "known only at the call: name the result's length, "
                           "sg.compress(condition, a, axis, length='k') (np.compress cannot "
                           "pass it)")
    if not isinstance(length, str):
        raise ArgumentError(f"compress: length must name a dimension (a str), got {length!r}")
    check_shape((length,))
    return apply("compress", a, condition, axis=axis, length=length)
