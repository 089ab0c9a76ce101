"""Convolution and pooling: the network-style conv, channels first as PyTorch's conv1d/conv2d
(stride, padding, dilation, groups), max and average pooling, and NumPy's convolve and correlate;
symgrad.scipy.signal builds SciPy's N-D convolutions on the same ops.

Three primitives carry every convolution: conv (an input correlated with a bank of filters),
conv_transpose (its adjoint in the input) and conv_weight (its adjoint in the filters). The
pairing <g, conv(x, w)> is linear in each of x, w and g, so each primitive's derivatives are the
other two, and derivatives nest to any order. Pooling reads the windows of its input (windows)
and reduces them with max or mean, whose rules serve it; unwindows, the adjoint of windows, adds
each window back where it was read. Their NumPy form reads windows as a strided view
(numpy.lib.stride_tricks.sliding_window_view) and contracts them with one tensordot, one matrix
product; an adjoint adds one strided slice per kernel offset. The array API has no strided views:
that backend refuses these ops, naming them.
Imports ops.core, ops.shape, ops.reduce and ops.arrays.
"""

import math
import numbers

import numpy as np

from ..errors import ArgumentError, ShapeError
from .arrays import flip, pad
from .core import Expr, apply, defop, graph_of, lift, literal, op_function, public
from .reduce import max as reduce_max, mean as reduce_mean
from .shape import reshape, transpose

# the ops whose NumPy form reads a strided window view (stride_tricks), which the array-API
# backend has no counterpart for
USES_WINDOWS = ("conv", "conv_transpose", "conv_weight", "windows", "unwindows")

_BATCH_LETTERS, _OUT_LETTERS, _KERNEL_LETTERS = "ABCDEFGH", "pqrstu", "ijklmn"


# -- shapes ------------------------------------------------------------------------------------------


def _output_length(size, kernel, stride, dilation, axis):
    extent = dilation * (kernel - 1) + 1
    if extent > size:
        raise ShapeError(f"spatial axis {axis} has length {size}, shorter than the kernel's "
                         f"extent {extent}")
    return (size - extent) // stride + 1


def _spatial(shape, nd, what):
    """The last ``nd`` lengths of ``shape`` (``what``'s), which must be numbers."""
    if len(shape) < nd + 1:
        raise ShapeError(f"{what} has {len(shape)} dimensions; it needs channels and {nd} "
                         f"spatial axes")
    spatial = tuple(shape[-nd:])
    if not all(isinstance(d, int) for d in spatial):
        raise ShapeError(f"the spatial lengths of {what}, {spatial}, must be numbers")
    return spatial


def _channels(shape, nd, what):
    channels = shape[-nd - 1]
    if not isinstance(channels, int):
        raise ShapeError(f"the channels of {what} must be a number, got {channels!r}")
    return channels


def _check_filters(w, groups):
    """(out channels, in channels per group, kernel) of a filter bank's shape ``w``."""
    if len(w) < 3 or not all(isinstance(d, int) for d in w):
        raise ShapeError(f"the filters must have static shape (out channels, in channels / "
                         f"groups, *kernel), got {w}")
    if w[0] % groups:
        raise ShapeError(f"{w[0]} output channels do not split into {groups} groups")
    return w[0], w[1], tuple(w[2:])


def _conv_shape(shapes, stride, dilation, groups):
    x, w = shapes
    out_channels, per_group, kernel = _check_filters(w, groups)
    nd = len(kernel)
    spatial = _spatial(x, nd, "the input")
    if _channels(x, nd, "the input") != per_group * groups:
        raise ShapeError(f"the input has {x[-nd - 1]} channels, the filters take "
                         f"{per_group} x {groups} groups")
    return tuple(x[:-nd - 1]) + (out_channels,) + tuple(
        _output_length(s, k, st, d, a) for a, (s, k, st, d)
        in enumerate(zip(spatial, kernel, stride, dilation)))


def _conv_transpose_shape(shapes, stride, dilation, groups, size):
    g, w = shapes
    out_channels, per_group, kernel = _check_filters(w, groups)
    nd = len(kernel)
    expected = _conv_shape([(per_group * groups,) + tuple(size), w], stride, dilation, groups)
    if _channels(g, nd, "the cotangent") != out_channels or _spatial(g, nd, "the cotangent") \
            != expected[1:]:
        raise ShapeError(f"the cotangent's last axes {g[-nd - 1:]} are not those of a "
                         f"convolution's result, {expected}")
    return tuple(g[:-nd - 1]) + (per_group * groups,) + tuple(size)


def _conv_weight_shape(shapes, stride, dilation, groups, kernel):
    x, g = shapes
    nd = len(kernel)
    in_channels = _channels(x, nd, "the input")
    if in_channels % groups:
        raise ShapeError(f"{in_channels} input channels do not split into {groups} groups")
    w = (_channels(g, nd, "the cotangent"), in_channels // groups) + tuple(kernel)
    expected = _conv_shape([x, w], stride, dilation, groups)
    if tuple(g) != expected:
        raise ShapeError(f"the cotangent has shape {g}, the convolution's result {expected}")
    return w


def _windows_shape(shapes, window, stride, dilation):
    (x,) = shapes
    nd = len(window)
    if len(x) < nd or not all(isinstance(d, int) for d in x[len(x) - nd:]):
        raise ShapeError(f"the last {nd} axes of {x} must have static lengths")
    spatial = tuple(x[len(x) - nd:])
    return tuple(x[:len(x) - nd]) + tuple(
        _output_length(s, k, st, d, a) for a, (s, k, st, d)
        in enumerate(zip(spatial, window, stride, dilation))) + tuple(window)


def _unwindows_shape(shapes, window, stride, dilation, size):
    (g,) = shapes
    nd = len(window)
    expected = _windows_shape([tuple(size)], window, stride, dilation)
    if len(g) < 2 * nd or tuple(g[len(g) - 2 * nd:]) != expected:
        raise ShapeError(f"the cotangent's last axes are not windows {expected}")
    return tuple(g[:len(g) - 2 * nd]) + tuple(size)


# -- batched cotangents: extra leading axes folded into the channels and back ---------------------


def _fold(t, extra, axis, groups):
    """``t`` without its ``extra`` leading axes, which join its channel axis ``axis`` (counted
    from the right) inside each of ``groups`` groups: a convolution over the stacked channels
    is one per leading index, each group meeting its own filters."""
    if extra == 0:
        return t
    leading, rest = t.shape[:extra], t.shape[extra:]
    at = len(rest) + axis
    channels = rest[at]
    split = rest[:at] + (groups, channels // groups) + rest[at + 1:]
    t = reshape(t, leading + split)
    order = (tuple(range(extra, extra + at + 1)) + tuple(range(extra))
             + tuple(range(extra + at + 1, extra + len(split))))
    merged = rest[:at] + (groups * math.prod(leading) * (channels // groups),) + rest[at + 1:]
    return reshape(transpose(t, order), merged)


def _unfold(t, leading, axis, groups):
    """The inverse of _fold: the channel axis ``axis`` of ``t`` (groups x leading x channels)
    gives back the ``leading`` axes in front."""
    if not leading:
        return t
    at = t.ndim + axis
    before, after = t.shape[:at], t.shape[at + 1:]
    channels = t.shape[at] // (groups * math.prod(leading))
    split = before + (groups,) + tuple(leading) + (channels,) + after
    extra = len(leading)
    order = (tuple(range(at + 1, at + 1 + extra)) + tuple(range(at + 1))
             + tuple(range(at + 1 + extra, len(split))))
    return reshape(transpose(reshape(t, split), order),
                   tuple(leading) + before + (groups * channels,) + after)


# -- the three convolutions --------------------------------------------------------------------------


def conv_transpose(g, w, stride, dilation, groups, size):
    """The adjoint of conv in its input: each output entry's cotangent spread over the window
    it was read from, through the filters; ``size`` is the input's spatial shape. A filter bank
    with leading axes gives one result per leading index, in front."""
    nd = len(size)
    extra = w.ndim - nd - 2
    if extra:
        folded = _fold(w, extra, -nd - 1, 1)
        result = apply("conv_transpose", g, folded, stride=stride, dilation=dilation,
                       groups=groups, size=size)
        return _unfold(result, w.shape[:extra], -nd - 1, groups)
    return apply("conv_transpose", g, w, stride=stride, dilation=dilation, groups=groups,
                 size=size)


def conv_weight(x, g, stride, dilation, groups, kernel):
    """The adjoint of conv in its filters: the correlation of the input with the cotangent,
    summed over the batch. The operand with more leading axes keeps the extra ones in front."""
    nd = len(kernel)
    extra = (x.ndim - nd - 1) - (g.ndim - nd - 1)
    if extra > 0:          # the input's leading axes, a stack of inputs
        result = apply("conv_weight", _fold(x, extra, -nd - 1, groups), g, stride=stride,
                       dilation=dilation, groups=groups, kernel=kernel)
        return _unfold(result, x.shape[:extra], -nd - 1, 1)
    if extra < 0:          # the cotangent's: a batch of cotangents
        result = apply("conv_weight", x, _fold(g, -extra, -nd - 1, groups), stride=stride,
                       dilation=dilation, groups=groups, kernel=kernel)
        return _unfold(result, g.shape[:-extra], -nd - 2, groups)
    return apply("conv_weight", x, g, stride=stride, dilation=dilation, groups=groups,
                 kernel=kernel)


def _conv_stacked(x, w, nd, stride, dilation, groups):
    """conv of ``x`` by a filter bank ``w`` of ``nd`` spatial axes and leading extra axes: one
    result per leading index, in front (the extra filters join the output channels)."""
    extra = w.ndim - nd - 2
    if not extra:
        return apply("conv", x, w, stride=stride, dilation=dilation, groups=groups)
    folded = _fold(w, extra, -nd - 2, groups)
    result = apply("conv", x, folded, stride=stride, dilation=dilation, groups=groups)
    return _unfold(result, w.shape[:extra], -nd - 1, groups)


def _conv_vjp(g, out, x, w, stride, dilation, groups):
    nd = w.ndim - 2
    kernel, size = tuple(w.shape[2:]), tuple(x.shape[-nd:])
    return [conv_transpose(g, w, stride, dilation, groups, size),
            conv_weight(x, g, stride, dilation, groups, kernel)]


def _conv_transpose_vjp(h, out, g, w, stride, dilation, groups, size):
    nd = len(size)
    return [_conv_stacked(h, w, nd, stride, dilation, groups),
            conv_weight(h, g, stride, dilation, groups, tuple(w.shape[2:]))]


def _conv_weight_vjp(h, out, x, g, stride, dilation, groups, kernel):
    nd = len(kernel)
    return [conv_transpose(g, h, stride, dilation, groups, tuple(x.shape[-nd:])),
            _conv_stacked(x, h, nd, stride, dilation, groups)]


# -- emission ------------------------------------------------------------------------------------------


def _window_view(ctx, source, window, stride, dilation, writeable=False):
    """Source of the windows of ``source``'s last ``len(window)`` axes: a strided view of shape
    (..., *output lengths, *window), a window every ``stride`` entries, its entries every
    ``dilation``."""
    extent = tuple(d * (k - 1) + 1 for k, d in zip(window, dilation))
    axes = tuple(range(-len(window), 0))
    view = (f"{ctx.library('stride_tricks')}.sliding_window_view({source}, {literal(extent)}, "
            f"axis={literal(axes)}" + (", writeable=True)" if writeable else ")"))
    steps = tuple(stride) + tuple(dilation)
    if any(s != 1 for s in steps):
        # every window axis is indexed: the index starts at the ellipsis
        view = ctx.item(view, (Ellipsis, *(("slice", None, None, s if s != 1 else None)
                                           for s in steps)))
    return view


def _grouped(ctx, source, shape, nd, groups):
    """Source of ``source`` (channels at axis -nd-1) with the channel axis split in (groups,
    channels per group)."""
    leading = len(shape) - nd - 1
    tail = (groups, shape[-nd - 1] // groups) + tuple(shape[-nd:])
    return ctx.reshape(source, f"{source}.shape[:{leading}] + {literal(tail)}")


def _ungrouped(ctx, source, leading, tail):
    """Source of ``source`` with its axes after ``leading`` ones reshaped to ``tail``."""
    return ctx.reshape(source, f"{source}.shape[:{leading}] + {literal(tail)}")


def _emit_conv(ctx):
    x, w = ctx.args
    stride, dilation, groups = ctx.attrs["stride"], ctx.attrs["dilation"], ctx.attrs["groups"]
    kernel = tuple(ctx.shapes[1][2:])
    nd, nb = len(kernel), len(ctx.shapes[0]) - len(kernel) - 1
    if groups == 1:
        windows = _window_view(ctx, x, kernel, stride, dilation)     # (*B, C, *O, *K)
        contracted = (-2 * nd - 1,) + tuple(range(-nd, 0))
        product = f"np.tensordot({windows}, {w}, axes=({literal(contracted)}, " \
                  f"{literal(tuple(range(1, nd + 2)))}))"                # (*B, *O, C_out)
        return f"np.moveaxis({product}, -1, {-nd - 1})"
    windows = _window_view(ctx, _grouped(ctx, x, ctx.shapes[0], nd, groups), kernel, stride,
                           dilation)                                 # (*B, G, Cg, *O, *K)
    filters = ctx.reshape(w, literal((groups, ctx.shapes[1][0] // groups) + ctx.shapes[1][1:]))
    batch, outs, ks = _BATCH_LETTERS[:nb], _OUT_LETTERS[:nd], _KERNEL_LETTERS[:nd]
    subscripts = f"{batch}gc{outs}{ks},goc{ks}->{batch}go{outs}"
    grouped = ctx.temp("groups")
    return [f"{grouped} = np.einsum({subscripts!r}, {windows}, {filters})",
            f"{ctx.out} = {_ungrouped(ctx, grouped, nb, ctx.shape[nb:])}",
            f"del {grouped}"]


def _overlap_add(ctx, out, columns, window, stride, dilation):
    """Statements adding ``columns`` (kernel offsets first) into ``out``'s windows, one strided
    slice per kernel offset: the slices of one offset never overlap."""
    view = ctx.temp("windows")
    offsets = [ctx.temp(f"k{a}") for a in range(len(window))]
    index = ", ".join(offsets)
    return [f"{view} = {_window_view(ctx, out, window, stride, dilation, writeable=True)}",
            f"for {index}{',' if len(offsets) == 1 else ''} in np.ndindex{literal(window)}:",
            f"    {view}[..., {index}] += {columns}[{index}]",
            f"del {view}"]


def _emit_conv_transpose(ctx):
    g, w = ctx.args
    stride, dilation, groups = ctx.attrs["stride"], ctx.attrs["dilation"], ctx.attrs["groups"]
    size, (out_channels, per_group, *kernel) = ctx.attrs["size"], ctx.shapes[1]
    nd, nb = len(size), len(ctx.shapes[0]) - len(size) - 1
    columns = ctx.temp("columns")
    batch, outs, ks = _BATCH_LETTERS[:nb], _OUT_LETTERS[:nd], _KERNEL_LETTERS[:nd]
    if groups == 1:
        # (*B, *O, C_in, *K), then kernel offsets first: (*K, *B, C_in, *O)
        order = (tuple(range(nb + nd + 1, nb + 2 * nd + 1)) + tuple(range(nb)) + (nb + nd,)
                 + tuple(range(nb, nb + nd)))
        made = [f"{columns} = np.transpose(np.tensordot({g}, {w}, axes=([{-nd - 1}], [0])), "
                f"{literal(order)})"]
    else:
        grouped_g = _grouped(ctx, g, ctx.shapes[0], nd, groups)
        filters = ctx.reshape(w, literal((groups, out_channels // groups, per_group,
                                          *kernel)))
        subscripts = f"{batch}go{outs},goc{ks}->{ks}{batch}gc{outs}"
        made = [f"{columns} = np.einsum({subscripts!r}, {grouped_g}, {filters})",
                f"{columns} = "
                f"{_ungrouped(ctx, columns, nd + nb, (per_group * groups,) + ctx.shapes[0][-nd:])}"]
    zeros = (f"{ctx.out} = np.zeros({g}.shape[:{nb}] + {literal((per_group * groups,) + size)}, "
             f"dtype={columns}.dtype)")
    return [*made, zeros,
            *_overlap_add(ctx, ctx.out, columns, tuple(kernel), stride, dilation),
            f"del {columns}"]


def _emit_conv_weight(ctx):
    x, g = ctx.args
    stride, dilation, groups = ctx.attrs["stride"], ctx.attrs["dilation"], ctx.attrs["groups"]
    kernel = ctx.attrs["kernel"]
    nd, nb = len(kernel), len(ctx.shapes[0]) - len(kernel) - 1
    if groups == 1:
        windows = _window_view(ctx, x, kernel, stride, dilation)     # (*B, C, *O, *K)
        summed = tuple(range(nb)) + tuple(range(nb + 1, nb + nd + 1))
        return f"np.tensordot({g}, {windows}, axes=({literal(summed)}, {literal(summed)}))"
    windows = _window_view(ctx, _grouped(ctx, x, ctx.shapes[0], nd, groups), kernel, stride,
                           dilation)                                 # (*B, G, Cg, *O, *K)
    grouped_g = _grouped(ctx, g, ctx.shapes[1], nd, groups)          # (*B, G, Og, *O)
    batch, outs, ks = _BATCH_LETTERS[:nb], _OUT_LETTERS[:nd], _KERNEL_LETTERS[:nd]
    subscripts = f"{batch}go{outs},{batch}gc{outs}{ks}->goc{ks}"
    return ctx.reshape(f"np.einsum({subscripts!r}, {grouped_g}, {windows})", literal(ctx.shape))


def _emit_windows(ctx):
    return _window_view(ctx, ctx.args[0], ctx.attrs["window"], ctx.attrs["stride"],
                        ctx.attrs["dilation"])


def _emit_unwindows(ctx):
    (g,), window = ctx.args, ctx.attrs["window"]
    nd = len(window)
    leading = len(ctx.shapes[0]) - 2 * nd
    # kernel offsets first, as _overlap_add reads them
    order = tuple(range(leading + nd, leading + 2 * nd)) + tuple(range(leading + nd))
    columns = ctx.temp("columns")
    return [f"{columns} = np.transpose({g}, {literal(order)})",
            f"{ctx.out} = np.zeros({g}.shape[:{leading}] + {literal(ctx.attrs['size'])}, "
            f"dtype={g}.dtype)",
            *_overlap_add(ctx, ctx.out, columns, window, ctx.attrs["stride"],
                          ctx.attrs["dilation"]),
            f"del {columns}"]


# -- which entries each result entry depends on (Op.sparsity) -----------------------------------------

# Past this many (result entry, operand entry) pairs, a convolution's pattern is taken as dense
CONV_PAIRS_LIMIT = 10**7


def _conv_terms(x, w, stride, dilation, groups):
    """The terms of a convolution of an input of shape ``x`` with filters of shape ``w``, flat
    indices of the three arrays each term multiplies: (result entry, input entry, filter
    entry), one per (batch index, output channel, output position, input channel of the group,
    kernel offset); None past CONV_PAIRS_LIMIT of them. conv sums them into its result,
    conv_transpose into its input-shaped result, conv_weight into its filter-shaped one."""
    out_channels, per_group, kernel = w[0], w[1], tuple(w[2:])
    nd = len(kernel)
    result = _conv_shape([x, w], stride, dilation, groups)
    if math.prod(result) * per_group * math.prod(kernel) > CONV_PAIRS_LIMIT:
        return None
    batch, spatial = math.prod(x[:-nd - 1]), tuple(result[-nd:])
    positions = np.arange(math.prod(x)).reshape((batch, x[-nd - 1]) + tuple(x[-nd:]))
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    windows = np.lib.stride_tricks.sliding_window_view(
        positions, extent, axis=tuple(range(2, 2 + nd)))
    windows = windows[(Ellipsis,) + tuple(slice(None, None, s) for s in stride)
                      + tuple(slice(None, None, d) for d in dilation)]
    # (batch, groups, in channels of the group, *positions, *kernel)
    windows = windows.reshape((batch, groups, per_group) + spatial + kernel)
    group_of = np.arange(out_channels) // (out_channels // groups)
    # axes of the terms: (batch, output channel, *positions, input channel, *kernel)
    inputs = np.moveaxis(windows[:, group_of], 2, 2 + nd)
    shape = inputs.shape
    outputs = np.arange(math.prod(result)).reshape((batch, out_channels) + spatial)
    outputs = outputs.reshape(outputs.shape + (1,) * (1 + nd))
    filters = np.arange(math.prod(w)).reshape(w)
    filters = filters.reshape((1, out_channels) + (1,) * nd + (per_group,) + kernel)
    return tuple(np.broadcast_to(a, shape).ravel() for a in (outputs, inputs, filters))


def _conv_sparsity_rule(result_term, operand_terms):
    """The sparsity rule of one of the three convolutions: its result sums the terms at index
    ``result_term`` (0 result, 1 input, 2 filters), its operands are the arrays at
    ``operand_terms``; each operand's entry counts where the other operand can be nonzero."""
    def rule(shapes, out_shape, values, stride, dilation, groups, **attrs):
        x, w = _conv_operand_shapes(shapes, out_shape, operand_terms, attrs, groups)
        terms = _conv_terms(x, w, stride, dilation, groups)
        if terms is None:
            return ["dense", "dense"]
        found = []
        for p, q in ((0, 1), (1, 0)):
            rows, entries = terms[result_term], terms[operand_terms[p]]
            if values[q] is not None:
                kept = np.asarray(values[q]).ravel()[terms[operand_terms[q]]] != 0
                rows, entries = rows[kept], entries[kept]
            pairs = np.unique(rows * math.prod(shapes[p]) + entries)
            found.append(np.divmod(pairs, math.prod(shapes[p])))
        return found
    return rule


def _conv_operand_shapes(shapes, out_shape, operand_terms, attrs, groups):
    """(input shape, filters shape) of a convolution given one of its three ops' shapes."""
    if operand_terms == (1, 2):                 # conv(x, w)
        return shapes
    if operand_terms == (0, 2):                 # conv_transpose(g, w): an input's shape
        return out_shape, shapes[1]
    return shapes[0], out_shape                 # conv_weight(x, g): the filters'


defop("conv", 2, _conv_shape, _emit_conv, _conv_vjp, loop=None,
      sparsity=_conv_sparsity_rule(0, (1, 2)))
defop("conv_transpose", 2, _conv_transpose_shape, _emit_conv_transpose, _conv_transpose_vjp,
      loop=None, sparsity=_conv_sparsity_rule(1, (0, 2)))
defop("conv_weight", 2, _conv_weight_shape, _emit_conv_weight, _conv_weight_vjp, loop=None,
      sparsity=_conv_sparsity_rule(2, (1, 0)))
defop("windows", 1, _windows_shape, _emit_windows,
      lambda g, out, x, window, stride, dilation: [
          apply("unwindows", g, window=window, stride=stride, dilation=dilation,
                size=tuple(x.shape[x.ndim - len(window):]))],
      loop=None, view=True, sparsity="moves")
defop("unwindows", 1, _unwindows_shape, _emit_unwindows,
      lambda g, out, x, window, stride, dilation, size: [
          apply("windows", g, window=window, stride=stride, dilation=dilation)],
      loop=None, sparsity="adds")


# -- the public functions ------------------------------------------------------------------------------


def _lifted(*operands):
    graph = graph_of(*operands)
    hint = next((o.dtype for o in operands if isinstance(o, Expr) and o.dtype != "bool"),
                "float64")
    return [lift(o, graph, hint) for o in operands]


def _per_axis(value, nd, what, least=1):
    """An int for every one of ``nd`` spatial axes, from an int or a tuple of them."""
    values = (value,) * nd if isinstance(value, numbers.Integral) else value
    if not isinstance(values, (tuple, list)) or len(values) != nd or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= least
            for v in values):
        raise ArgumentError(f"{what} must be an int of at least {least} or {nd} of them, "
                            f"got {value!r}")
    return tuple(int(v) for v in values)


def _padding(padding, nd, kernel, dilation, stride):
    """(before, after) for each spatial axis: from an int, an int or a pair per axis, 'valid'
    or 'same' (PyTorch's: the extra entry of an odd total after)."""
    if padding == "valid":
        return ((0, 0),) * nd
    if padding == "same":
        if any(s != 1 for s in stride):
            raise ArgumentError("padding='same' needs stride 1, as in PyTorch")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    if isinstance(padding, str):
        raise ArgumentError(f"padding must be an int, a tuple, 'valid' or 'same', "
                            f"got {padding!r}")
    items = (padding,) * nd if isinstance(padding, numbers.Integral) else padding
    if not isinstance(items, (tuple, list)) or len(items) != nd:
        raise ArgumentError(f"padding must be an int, {nd} ints or {nd} (before, after) pairs, "
                            f"got {padding!r}")
    pairs = []
    for item in items:
        pair = (item, item) if isinstance(item, numbers.Integral) else item
        if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(
                isinstance(p, numbers.Integral) and not isinstance(p, bool) and p >= 0
                for p in pair):
            raise ArgumentError(f"padding must be made of ints of at least 0, got {padding!r}")
        pairs.append((int(pair[0]), int(pair[1])))
    return tuple(pairs)


def _padded(x, widths, value=0.0):
    """``x`` padded on its last axes by ``widths``; unchanged when there is nothing to add."""
    if not any(w for pair in widths for w in pair):
        return x
    return pad(x, ((0, 0),) * (x.ndim - len(widths)) + tuple(widths), constant_values=value)


@public("conv", static=("stride", "padding", "dilation", "groups"))
@op_function("conv", operands=2)
def conv(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """A convolution layer, channels first, as PyTorch's ``conv1d``/``conv2d``/``conv3d``
    (``torch.nn.functional``): ``x`` of shape (N, C_in, *spatial) (or any leading batch axes,
    or none), filters ``w`` of shape (C_out, C_in / groups, *kernel), whose rank sets the
    number of spatial axes, an optional ``bias`` of shape (C_out,). ``stride``, ``dilation``:
    an int or one per spatial axis; ``padding``: zeros, an int or one per axis (or a (before,
    after) pair per axis), 'valid' (none) or 'same' (the input's size, stride 1); ``groups``
    splits the channels into independent convolutions. A correlation, as in every network
    library: the filters are not flipped.

    >>> from symgrad import var
    >>> conv(var("x", shape=("n", 3, 8, 8)), var("w", shape=(4, 3, 3, 3)), padding=1).shape
    ('n', 4, 8, 8)
    """
    x, w = _lifted(x, w)
    if w.ndim < 3:
        raise ShapeError(f"the filters must have shape (out channels, in channels / groups, "
                         f"*kernel), got {w.shape}")
    nd = w.ndim - 2
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ArgumentError(f"groups must be a positive int, got {groups!r}")
    stride = _per_axis(stride, nd, "stride")
    dilation = _per_axis(dilation, nd, "dilation")
    kernel = tuple(w.shape[2:])
    widths = _padding(padding, nd, kernel, dilation, stride)
    out = apply("conv", _padded(x, widths), w, stride=stride, dilation=dilation,
                groups=int(groups))
    if bias is None:
        return out
    (bias,) = _lifted(bias)
    if bias.shape != (w.shape[0],):
        raise ShapeError(f"the bias must have shape ({w.shape[0]},), got {bias.shape}")
    return out + reshape(bias, (w.shape[0],) + (1,) * nd)


def _pool_windows(x, kernel_size, stride, padding, value):
    if isinstance(kernel_size, numbers.Integral):
        nd = x.ndim - 2
        if nd < 1:
            raise ShapeError(f"an input of shape {x.shape} has no spatial axis after (N, C): "
                             f"give kernel_size one length per spatial axis")
    elif isinstance(kernel_size, (tuple, list)):
        nd = len(kernel_size)
    else:
        raise ArgumentError(f"kernel_size must be an int or a tuple of ints, "
                            f"got {kernel_size!r}")
    kernel = _per_axis(kernel_size, nd, "kernel_size")
    stride = kernel if stride is None else _per_axis(stride, nd, "stride")
    widths = _padding(padding, nd, kernel, (1,) * nd, stride)
    if any(max(pair) > k // 2 for pair, k in zip(widths, kernel)):
        raise ArgumentError(f"padding {padding!r} is more than half the kernel {kernel}, "
                            f"as PyTorch refuses")
    if x.ndim < nd + 1:
        raise ShapeError(f"an input of shape {x.shape} has fewer than {nd} spatial axes after "
                         f"its channels")
    windows = apply("windows", _padded(x, widths, value), window=kernel, stride=stride,
                    dilation=(1,) * nd)
    return windows, tuple(range(-nd, 0))


@public("max_pool", static=("kernel_size", "stride", "padding"))
@op_function("max_pool")
def max_pool(x, kernel_size, stride=None, padding=0):
    """Max pooling, channels first, as PyTorch's ``max_pool1d``/``max_pool2d``: the largest
    entry of each window of ``kernel_size`` (an int for every axis after (N, C), or a tuple
    whose length sets the number of spatial axes) every ``stride`` entries (the kernel's size
    by default), the input padded by ``padding`` (at most half the kernel) with -inf. Its
    gradient goes to the largest entry of each window; a tie splits it evenly between the
    tied entries, as ``max`` does (PyTorch and JAX give it all to one of them: the same
    derivative wherever the maximum is unique).

    >>> from symgrad import var
    >>> max_pool(var("x", shape=("n", 3, 8, 8)), 2).shape
    ('n', 3, 4, 4)
    """
    (x,) = _lifted(x)
    windows, axes = _pool_windows(x, kernel_size, stride, padding, -math.inf)
    return reduce_max(windows, axis=axes)


@public("avg_pool", static=("kernel_size", "stride", "padding"))
@op_function("avg_pool")
def avg_pool(x, kernel_size, stride=None, padding=0):
    """Average pooling, channels first, as PyTorch's ``avg_pool1d``/``avg_pool2d`` (zeros of
    the padding counted, its default): the mean of each window, with ``max_pool``'s arguments.

    >>> from symgrad import var
    >>> avg_pool(var("x", shape=(2, 3, 9)), 3, stride=2).shape
    (2, 3, 4)
    """
    (x,) = _lifted(x)
    windows, axes = _pool_windows(x, kernel_size, stride, padding, 0.0)
    return reduce_mean(windows, axis=axes)


# -- NumPy's and SciPy's convolutions of arrays ----------------------------------------------------------

MODES = ("full", "same", "valid")


def _mode_widths(mode, kernel, centre_late):
    """Zeros before and after each axis for ``mode``, a kernel of lengths ``kernel`` meeting
    every position where it overlaps the input ('full'), centred positions as many as the
    input's ('same') or the positions inside it ('valid'). A kernel of even length has no
    centre: 'same' pads one more before it, or with ``centre_late`` one more after."""
    if mode == "full":
        return tuple((k - 1, k - 1) for k in kernel)
    if mode == "same":
        return tuple(((k - 1) // 2, k // 2) if centre_late else (k // 2, (k - 1) // 2)
                     for k in kernel)
    return ((0, 0),) * len(kernel)


def sliding_product(in1, in2, mode, flipped, boundary="fill", fillvalue=0.0, centre_late=False):
    """The correlation (``flipped``: the convolution) of arrays ``in1`` and ``in2`` of one rank,
    ``in2`` sliding over ``in1`` padded as ``mode`` says (with ``fillvalue``, or by NumPy's
    pad mode ``boundary``; ``centre_late``: see _mode_widths): one conv of a single channel.
    For scipy.signal and NumPy's convolve and correlate, which decide which operand slides."""
    if mode not in MODES:
        raise ArgumentError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    nd = in1.ndim
    if nd == 0 or in2.ndim != nd:
        raise ShapeError(f"the operands must have one rank of at least 1, got {in1.shape} and "
                         f"{in2.shape}")
    for what, operand in (("in1", in1), ("in2", in2)):
        if not all(isinstance(d, int) and d > 0 for d in operand.shape):
            raise ShapeError(f"{what} must have static, non-zero lengths, got {operand.shape}")
    widths = _mode_widths(mode, in2.shape, centre_late)
    if boundary == "fill":
        padded = _padded(in1, widths, fillvalue)
    else:
        padded = pad(in1, widths, mode=boundary) if any(w for p in widths for w in p) else in1
    kernel = flip(in2) if flipped else in2
    filters = reshape(kernel, (1, 1) + in2.shape)
    result = apply("conv", reshape(padded, (1,) + padded.shape), filters, stride=(1,) * nd,
                   dilation=(1,) * nd, groups=1)
    return reshape(result, result.shape[1:])


@public("convolve", static=("mode",))
@op_function("convolve", operands=2)
def convolve(a, v, mode="full"):
    """NumPy's ``convolve`` of two vectors: ``mode`` 'full', 'same' (the longer's length) or
    'valid'; when ``v`` is the longer, they are swapped first, as NumPy does.

    >>> from symgrad import var
    >>> convolve(var("a", shape=(5,)), var("v", shape=(3,)), mode="same").shape
    (5,)
    """
    a, v = _lifted(a, v)
    _check_vectors(a, v)
    if v.shape[0] > a.shape[0]:
        a, v = v, a
    return sliding_product(a, v, mode, flipped=True)


@public("correlate", static=("mode",))
@op_function("correlate", operands=2)
def correlate(a, v, mode="valid"):
    """NumPy's ``correlate`` of two vectors, ``c[k] = sum_n a[n + k] v[n]``: ``mode`` 'valid'
    (its default), 'same' or 'full'; when ``v`` is the longer, NumPy's answer is the
    correlation of ``v`` with ``a``, reversed.

    >>> from symgrad import var
    >>> correlate(var("a", shape=(5,)), var("v", shape=(3,))).shape
    (3,)
    """
    a, v = _lifted(a, v)
    _check_vectors(a, v)
    if v.shape[0] > a.shape[0]:
        return flip(sliding_product(v, a, mode, flipped=False))
    return sliding_product(a, v, mode, flipped=False)


def _check_vectors(a, v):
    if a.ndim != 1 or v.ndim != 1 or not all(isinstance(d, int) and d > 0
                                             for d in a.shape + v.shape):
        raise ShapeError(f"the operands must be non-empty vectors of static lengths, got "
                         f"{a.shape} and {v.shape}")
