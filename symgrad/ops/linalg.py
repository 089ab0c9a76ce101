"""Matrix products: matmul with NumPy's rules for 1-D operands and broadcast batch axes, dot, and
inner, the sum of an elementwise product over every axis; einsum, and the contractions built on
it (tensordot, outer, NumPy's inner, kron, cross, N-D dot).

Imports ops.core and ops.shape.
"""

import math
import numbers

import numpy as np

from ..errors import ShapeError
from .core import (Expr, apply, broadcast_shapes, const, defop, float_dtype, graph_of, lift,
                   literal, located, op_function, public)
from .shape import (broadcast_to_like, expand_dims, identity_like, reshape, squeeze,
                    stop_gradient, swap_last_axes, transpose, unbroadcast)


def _matmul_shape(shapes):
    a, b = shapes
    if not a or not b:
        raise ShapeError("scalar operands are not accepted; use *")
    a2 = a if len(a) >= 2 else (1,) + tuple(a)
    b2 = b if len(b) >= 2 else tuple(b) + (1,)
    if a2[-1] != b2[-2]:
        raise ShapeError(f"contracted dimensions differ: {a2[-1]} vs {b2[-2]}")
    batch = broadcast_shapes(a2[:-2], b2[:-2])
    return batch + ((a2[-2],) if len(a) >= 2 else ()) + ((b2[-1],) if len(b) >= 2 else ())


def _matmul_vjp(g, out, a, b):
    # Promote 1-D operands to matrices as NumPy does, so that one pair of formulas serves:
    # d(a @ b) = g @ b^T for a, a^T @ g for b; then undo the promotion and the batch broadcast.
    leading = g.ndim - out.ndim
    # A matrix and a vector: the vector's gradient written as one matrix product, so that a
    # Jacobian's batch of cotangents in g makes one product, not a matrix-vector product per row.
    if a.ndim == 2 and b.ndim == 1:             # a (m, k) @ b (k,), g (..., m)
        return [expand_dims(g, -1) * b, g @ a]
    if a.ndim == 1 and b.ndim == 2:             # a (k,) @ b (k, n), g (..., n)
        return [g @ swap_last_axes(b), expand_dims(a, -1) * expand_dims(g, -2)]
    a2 = a if a.ndim >= 2 else expand_dims(a, 0)
    b2 = b if b.ndim >= 2 else expand_dims(b, -1)
    g2 = g if b.ndim >= 2 else expand_dims(g, -1)
    g2 = g2 if a.ndim >= 2 else expand_dims(g2, -2)
    grad_a = g2 @ swap_last_axes(b2)
    grad_b = swap_last_axes(a2) @ g2
    grad_a = grad_a if a.ndim >= 2 else squeeze(grad_a, -2)
    grad_b = grad_b if b.ndim >= 2 else squeeze(grad_b, -1)
    return [unbroadcast(grad_a, a.shape, leading), unbroadcast(grad_b, b.shape, leading)]


# Past this many (result entry, operand entry) pairs, a product's pattern is taken as dense
MATMUL_PAIRS_LIMIT = 10**7


def _matmul_sparsity(shapes, out_shape, values):
    """Entry (i, j) of a @ b depends on a[i, k] and b[k, j] for the k where the other operand
    can be nonzero: where it is a constant, its nonzeros; otherwise every k. A batched
    product is the einsum it equals, its batch axes broadcast."""
    a, b = shapes
    if len(a) > 2 or len(b) > 2:
        batch = len(out_shape) - (len(a) >= 2) - (len(b) >= 2)
        rows, inner, columns = batch, batch + 1, batch + 2
        a_labels = tuple(range(batch - len(a) + 2, batch)) + (rows, inner) if len(a) >= 2 \
            else (inner,)
        b_labels = tuple(range(batch - len(b) + 2, batch)) + (inner, columns) if len(b) >= 2 \
            else (inner,)
        output = tuple(range(batch)) + ((rows,) if len(a) >= 2 else ()) + \
            ((columns,) if len(b) >= 2 else ())
        return _einsum_sparsity(shapes, out_shape, values, ((a_labels, b_labels), output))
    rows, inner = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    columns = 1 if len(b) == 1 else b[1]

    def nonzeros(value, shape):
        if value is None:
            return np.nonzero(np.ones(shape, dtype=bool))
        return np.nonzero(np.reshape(value, shape))
    a_rows, a_inner = nonzeros(values[0], (rows, inner))
    b_inner, b_columns = nonzeros(values[1], (inner, columns))
    if max(a_rows.size * columns, b_inner.size * rows) > MATMUL_PAIRS_LIMIT:
        return ["dense", "dense"]
    j = np.arange(columns)
    i = np.arange(rows)
    through_b = ((a_rows[:, None] * columns + j).ravel(), (a_inner[:, None] * columns + j).ravel())
    through_a = ((i[:, None] * columns + b_columns).ravel(),
                 (i[:, None] * inner + b_inner).ravel())
    return [through_a, through_b]


defop("matmul", 2, _matmul_shape, "{0} @ {1}", _matmul_vjp, sparsity=_matmul_sparsity)


@public("matmul")
def matmul(a, b):
    """Matrix product with NumPy's ``@`` rules (1-D operands, broadcast batch axes).

    >>> from symgrad import var
    >>> matmul(var("W", shape=(4, 3)), var("v", shape=(3,))).shape
    (4,)
    """
    return apply("matmul", a, b)


def _inner_shape(shapes):
    a, b = shapes
    if a != b or not a:
        raise ShapeError(f"operands must be arrays of one shape, got {a} and {b}")
    return ()


def _inner_vjp(g, out, a, b):
    # g (a scalar, or a Jacobian's batch of them) scales every entry of the other operand
    g = expand_dims(g, tuple(range(-a.ndim, 0)))
    return [g * b, g * a]


def _inner_sparsity(shapes, out_shape, values):
    """The scalar depends on each entry of one operand where the other can be nonzero."""
    def reached(other):
        if other is None:
            return np.arange(math.prod(shapes[0]))
        return np.flatnonzero(other)
    return [(np.zeros(reached(values[1 - p]).size, dtype=np.int64), reached(values[1 - p]))
            for p in range(2)]


defop("inner", 2, _inner_shape, "np.vdot({0}, {1})", _inner_vjp, sparsity=_inner_sparsity)


def inner(a, b):
    """``sum(a * b)`` over every axis for ``a`` and ``b`` of one shape, as ``np.vdot``: no array
    of products in between. The optimiser writes sums of products and of squares this way.

    >>> from symgrad import var
    >>> inner(var("W", shape=(4, 3)), var("W", shape=(4, 3))).shape
    ()
    """
    return apply("inner", a, b)


@public("dot")
@op_function("dot", operands=2)
def dot(a, b):
    """``np.dot``: a product with a scalar, matmul for operands of at most two dimensions, and
    NumPy's own rule beyond (dot_n_dimensional).

    >>> import symgrad as sg
    >>> sg.dot(sg.var("A", shape=(2, 3)), sg.var("v", shape=(3,))).shape
    (2,)
    """
    a_ndim, b_ndim = (len(getattr(e, "shape", ())) for e in (a, b))
    if a_ndim == 0 or b_ndim == 0:
        return apply("multiply", a, b)
    if a_ndim > 2 or b_ndim > 2:
        return dot_n_dimensional(a, b)
    return apply("matmul", a, b)


# -- einsum and the contractions built on it ----------------------------------------------------------
#
# One op, einsum, holds any contraction NumPy's einsum accepts. Its subscripts are normalised
# where the node is built: ellipses become letters (the operands' ranks are known), the output is
# explicit, and every letter is an int (0-51, "a"-"z" then "A"-"Z"), so that attributes are
# plain tuples: ``subscripts=((operand labels), ...), (output labels))``. Its derivative is an
# einsum of the cotangent with the other operands, so it nests to any order; tensordot, outer,
# NumPy's inner, kron, cross and N-D dot are einsums (and reshapes, transposes) too.

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _parse_labels(text, ndim, ellipsis_letters, operand):
    """An operand's subscripts (``text``, letters and at most one ``...``) as labels, the
    ellipsis spelt with the last ``ndim - letters`` of ``ellipsis_letters``."""
    if text.count("...") > 1 or "." in text.replace("...", ""):
        raise ShapeError(f"operand {operand}: subscripts {text!r} have a stray '.'")
    head, dots, tail = text.partition("...")
    for letter in head + tail:
        if letter not in _LETTERS:
            raise ShapeError(f"subscript {letter!r} is not a letter")
    named = len(head) + len(tail)
    if (dots and ndim < named) or (not dots and ndim != named):
        raise ShapeError(f"operand {operand} has {ndim} dimensions but subscripts {text!r}")
    middle = ellipsis_letters[len(ellipsis_letters) - (ndim - named):] if ndim > named else ""
    return tuple(_LETTERS.index(c) for c in head + middle + tail)


def _sublist_text(sublist):
    """The interleaved form's subscripts (ints 0-51 and Ellipsis) as letters."""
    text = []
    for item in sublist:
        if item is Ellipsis:
            text.append("...")
        elif isinstance(item, numbers.Integral) and not isinstance(item, bool) \
                and 0 <= item < len(_LETTERS):
            text.append(_LETTERS[item])
        else:
            raise ShapeError(f"subscript {item!r} is not an int in [0, {len(_LETTERS)})")
    return "".join(text)


def normalize_subscripts(subscripts, ndims):
    """(labels per operand, output labels) for NumPy's einsum ``subscripts`` on operands of
    ranks ``ndims``: ellipses spelt with letters the subscripts do not use, the implicit output
    made explicit (the letters used once, in alphabetical order, after the ellipsis).

    >>> normalize_subscripts("ab,bc", (2, 2))
    (((0, 1), (1, 2)), (0, 2))
    >>> normalize_subscripts("...c,c->...", (3, 1))
    (((0, 1, 2), (2,)), (0, 1))
    """
    text = "".join(subscripts.split())
    inputs, arrow, output = text.partition("->")
    if "->" in output or "-" in inputs or ">" in inputs:
        raise ShapeError(f"subscripts {subscripts!r} have a stray '-' or '>'")
    parts = inputs.split(",")
    if len(parts) != len(ndims):
        raise ShapeError(f"subscripts {subscripts!r} name {len(parts)} operands, "
                         f"{len(ndims)} given")
    used = set(text)
    free = [c for c in _LETTERS if c not in used]
    widest = max((ndim - len(p.replace("...", "")) for p, ndim in zip(parts, ndims)
                  if "..." in p), default=0)
    if widest > len(free):
        raise ShapeError(f"too many dimensions under '...': einsum has {len(_LETTERS)} letters")
    ellipsis_letters = "".join(free[:max(widest, 0)])
    labels = tuple(_parse_labels(p, ndim, ellipsis_letters, k)
                   for k, (p, ndim) in enumerate(zip(parts, ndims)))
    broadcast = tuple(_LETTERS.index(c) for c in ellipsis_letters)
    if arrow:
        if "..." not in output and widest > 0:
            raise ShapeError("the output has no '...' but the operands' ellipses cover "
                             "dimensions")
        out = _parse_labels(output, len(output.replace("...", "")) + widest, ellipsis_letters,
                            "output")
        if len(set(out)) != len(out):
            raise ShapeError(f"output subscripts {output!r} repeat a letter")
        unknown = set(out) - {label for operand in labels for label in operand}
        if unknown:
            raise ShapeError(f"output subscript {_LETTERS[min(unknown)]!r} names no operand's "
                             f"axis")
    else:
        counts = {}
        for operand in labels:
            for label in operand:
                counts[label] = counts.get(label, 0) + 1
        once = sorted((c for c in counts if counts[c] == 1 and c not in broadcast),
                      key=lambda label: _LETTERS[label])    # ASCII order: "A" before "a"
        out = broadcast + tuple(once)
    return labels, tuple(out)


def _label_sizes(labels, shapes):
    """Each label's length, broadcast over the operands as NumPy's einsum does (a length of 1
    stretches); a label repeated within one operand must have one length there."""
    sizes = {}
    for k, (operand, shape) in enumerate(zip(labels, shapes)):
        if len(operand) != len(shape):
            raise ShapeError(f"operand {k} has {len(shape)} dimensions but {len(operand)} "
                             f"subscripts")
        within = {}
        for label, dim in zip(operand, shape):
            if within.setdefault(label, dim) != dim:
                raise ShapeError(f"operand {k}: subscript {_LETTERS[label]!r} is repeated on "
                                 f"axes of lengths {within[label]} and {dim}")
        for label, dim in within.items():
            if label not in sizes or sizes[label] == 1:
                sizes[label] = dim
            elif dim != 1 and dim != sizes[label]:
                raise ShapeError(f"subscript {_LETTERS[label]!r} has lengths {sizes[label]} "
                                 f"and {dim} (operand {k})")
    return sizes


def _einsum_shape(shapes, subscripts):
    labels, output = subscripts
    if len(labels) != len(shapes):
        raise ShapeError(f"subscripts name {len(labels)} operands, {len(shapes)} given")
    sizes = _label_sizes(labels, shapes)
    return tuple(sizes[label] for label in output)


def subscripts_text(labels, output):
    """NumPy's explicit subscripts for normalised labels: ``"ij,jk->ik"``."""
    return ",".join("".join(_LETTERS[c] for c in operand) for operand in labels) + "->" + \
        "".join(_LETTERS[c] for c in output)


def _fresh_labels(count, used):
    fresh = [label for label in range(len(_LETTERS)) if label not in used][:count]
    if len(fresh) < count:
        raise ShapeError(f"einsum has only {len(_LETTERS)} letters")
    return tuple(fresh)


def _identity_for(x, labels, label, size):
    """The identity matrix of ``size``, the length of ``label`` on ``x``'s axes: a constant for
    a number, else made at run time from a vector of that length (the diagonal of ``x`` along
    the label; identity_like only lends its operand's shape)."""
    if isinstance(size, int):
        return const(np.eye(size, dtype=x.dtype), x.graph)
    return identity_like(apply("einsum", stop_gradient(x), subscripts=((labels,), (label,))))


def _einsum_vjp(g, out, *operands, subscripts):
    labels, output = subscripts
    sizes = _label_sizes(labels, [x.shape for x in operands])
    batch = _fresh_labels(g.ndim - out.ndim, {c for ls in (*labels, output) for c in ls})
    grads = []
    for k, x in enumerate(operands):
        others = [(labels[j], operands[j]) for j in range(len(operands)) if j != k]
        present = set(output) | {c for ls, _ in others for c in ls}
        used = set(batch) | {c for ls in (*labels, output) for c in ls}
        # an axis of length 1 that the label stretches elsewhere gets the sum over that label
        stretched = {c for c, d in zip(labels[k], x.shape) if d == 1 and sizes[c] != 1}
        # a label repeated on x's axes: the cotangent lies on their diagonal, which an identity
        # matrix over each further occurrence spreads it to (its own fresh label)
        result, seen, extra = [], set(), []
        for c in labels[k]:
            if c in stretched:
                result.append(None)
            elif c in seen:
                fresh = _fresh_labels(1, used)[0]
                used.add(fresh)
                extra.append(((c, fresh), _identity_for(x, labels[k], c, sizes[c])))
                result.append(fresh)
            else:
                seen.add(c)
                result.append(c)
        # a label of x's alone (summed out) reaches the gradient by broadcasting
        absent = [c for c in result if c is not None and c not in present
                  and not any(c in pair for pair, _ in extra)]
        kept = tuple(c for c in result if c is not None and c not in absent)
        terms = [(batch + output, g), *others, *extra]
        grad = apply("einsum", *(e for _, e in terms),
                     subscripts=(tuple(ls for ls, _ in terms), batch + kept))
        missing = tuple(len(batch) + p for p, c in enumerate(result) if c is None or c in absent)
        if missing:
            grad = expand_dims(grad, missing)
        if tuple(grad.shape[len(batch):]) != tuple(x.shape):
            # summed out on x alone, or stretched from length 1 on the other operands
            grad = broadcast_to_like(grad, x)
        grads.append(grad)
    return grads


def _einsum_simplify(inputs, subscripts):
    labels, output = subscripts
    if len(inputs) == 1 and labels[0] == output:
        return inputs[0]
    return None


def _einsum_sparsity(shapes, out_shape, values, subscripts):
    """Result entry o depends on entry e of operand p where o and e agree on the labels they
    share and the other operands, contracted over the remaining labels, can be nonzero there:
    their nonzeros where constant, else every entry. The contraction runs on 0/1 masks, whose
    sums of products cannot cancel, over the labels of the result and of p alone; past
    MATMUL_PAIRS_LIMIT of those, p is taken as dense."""
    labels, output = subscripts
    sizes = _label_sizes(labels, shapes)
    found = []
    for p, shape in enumerate(shapes):
        own = tuple(dict.fromkeys(labels[p]))
        kept = tuple(output) + tuple(c for c in own if c not in output)
        if math.prod(sizes[c] for c in kept) > MATMUL_PAIRS_LIMIT:
            found.append("dense")
            continue
        others = [q for q in range(len(shapes)) if q != p]
        reachable = {c for q in others for c in labels[q]}
        contracted = tuple(c for c in kept if c in reachable)
        if others:
            masks = [np.ones(shapes[q]) if values[q] is None else
                     (np.asarray(values[q]) != 0).astype(np.float64) for q in others]
            mask = np.einsum(subscripts_text([labels[q] for q in others], contracted), *masks)
        else:
            mask = np.ones(())
        # the labels no other operand has (or has of length 1): each value, the same mask
        laid = [mask.shape[contracted.index(c)] if c in contracted else 1 for c in kept]
        full = [sizes[c] for c in kept]
        flat = np.flatnonzero(np.broadcast_to(mask.reshape(laid), full))
        index = dict(zip(kept, np.unravel_index(flat, full))) if kept else {}
        zero = np.zeros(flat.size, dtype=np.int64)
        rows = np.ravel_multi_index([index[c] for c in output], out_shape) if output else zero
        # a length of 1 on p that the label stretches elsewhere: every value reads entry 0
        entries = np.ravel_multi_index([index[c] if dim != 1 else zero
                                        for c, dim in zip(labels[p], shape)], shape) \
            if shape else zero
        if any(dim == 1 and sizes[c] != 1 for c, dim in zip(labels[p], shape)):
            rows, entries = np.unique(np.stack([rows, entries]), axis=1)
        found.append((np.asarray(rows, dtype=np.int64), np.asarray(entries, dtype=np.int64)))
    return found


# The emitted contraction: one einsum_path at compile time orders the operands' pairwise
# contractions, and each pair is written as a person would, a matrix product (or a broadcast
# product) after transposes, where it is one; np.einsum otherwise. NumPy's einsum spends more
# in Python than a small product costs, and without a path it contracts in one C loop, no BLAS.
_PATH_LENGTH = 64           # the length a named dimension stands for when the path is chosen


def _contraction_path(labels, output, sizes):
    """The pairs of operands to contract, in order, as np.einsum_path gives them (each pair's
    result goes to the end of the list)."""
    if len(labels) <= 2:
        return [(0, 1)] if len(labels) == 2 else []
    stand_in = np.empty(())
    views = [np.broadcast_to(stand_in, tuple(sizes[c] if isinstance(sizes[c], int)
                                             else _PATH_LENGTH for c in operand))
             for operand in labels]
    strategy = "optimal" if len(labels) <= 4 else "greedy"
    path, _ = np.einsum_path(subscripts_text(labels, output), *views, optimize=strategy)
    return [tuple(pair) for pair in path[1:]]


def _pair_as_product(a, b, keep, shape_a, shape_b):
    """How ``a @ b`` (or ``a * b``) computes the contraction of operands labelled ``a`` and
    ``b`` keeping the labels ``keep``: (the result's labels, the contracted label or None, and
    per operand the order of its axes, None where a new axis goes), or None when it is no such
    product (a label repeated or summed alone, more than one contracted, or contracted over
    lengths that stretch)."""
    if len(set(a)) != len(a) or len(set(b)) != len(b):
        return None
    if any(c not in keep and c not in b for c in a) or any(c not in keep and c not in a
                                                           for c in b):
        return None
    contracted = [c for c in a if c in b and c not in keep]
    if len(contracted) > 1:
        return None
    if contracted and shape_a[a.index(contracted[0])] != shape_b[b.index(contracted[0])]:
        return None
    only_a = [c for c in a if c not in b]
    only_b = [c for c in b if c not in a]
    row, column = only_a[-1:], only_b[-1:]
    batch = [c for c in a if c not in row and c not in contracted] + \
        [c for c in b if c not in a and c not in column]
    result = batch + row + column
    if not contracted:
        return result, None, batch + row + [None] * len(column), batch + [None] * len(row) + column
    if not batch:
        # matmul's own rules for a vector operand: no new axis to add and take away
        return result, contracted[0], row + contracted, contracted + column
    return result, contracted[0], batch + (row or [None]) + contracted, \
        batch + contracted + (column or [None])


def _arranged(ctx, source, labels, layout, matrix_axes):
    """Source of the operand ``source`` (axes ``labels``) with its axes in ``layout``'s order,
    a new axis where the layout says None or names a label it lacks; leading new axes of the
    batch (all but the last ``matrix_axes``) are left to broadcasting."""
    leading = 0
    while leading < len(layout) - matrix_axes and layout[leading] not in labels:
        leading += 1
    layout = layout[leading:]
    order = tuple(labels.index(c) for c in layout if c in labels)
    if order != tuple(range(len(labels))):
        if order == tuple(range(len(labels) - 1, -1, -1)):
            source = ctx.transpose(source)
        else:
            source = f"np.transpose({source}, {literal(order)})"
    if len(order) != len(layout):
        whole = ("slice", None, None, None)
        source = ctx.item(source, tuple(whole if c in labels else ("newaxis",) for c in layout))
    return source


def _emit_pair(ctx, sources, labels, shapes, keep):
    """(source of the contraction of two operands, its labels)."""
    (x, y), (a, b) = sources, labels
    product = _pair_as_product(a, b, keep, *shapes)
    if product is None:
        result = [c for c in dict.fromkeys(a + b) if c in keep]
        text = subscripts_text((a, b), tuple(result))
        return f"np.einsum({text!r}, {x}, {y})", result
    result, contracted, layout_a, layout_b = product
    if contracted is None:
        return f"{_arranged(ctx, x, a, layout_a, 0)} * {_arranged(ctx, y, b, layout_b, 0)}", \
            result
    source = f"{_arranged(ctx, x, a, layout_a, 2)} @ {_arranged(ctx, y, b, layout_b, 2)}"
    if len(layout_a) > 2 and None in (layout_a[-2], layout_b[-1]):
        # the axes of length 1 a vector was given to multiply as a matrix go again
        whole = ("slice", None, None, None)
        source = ctx.item(f"({source})", (Ellipsis, 0 if layout_a[-2] is None else whole,
                                          0 if layout_b[-1] is None else whole))
    return source, result


def _emit_einsum(ctx):
    labels, output = (tuple(tuple(ls) for ls in ctx.attrs["subscripts"][0]),
                      tuple(ctx.attrs["subscripts"][1]))
    if len(labels) == 1:
        return f"np.einsum({subscripts_text(labels, output)!r}, {ctx.args[0]})"
    sizes = _label_sizes(labels, ctx.shapes)
    operands = [(source, list(ls), shape) for source, ls, shape
                in zip(ctx.args, labels, ctx.shapes)]
    statements, temporaries = [], []
    path = _contraction_path(labels, output, sizes)
    for step, positions in enumerate(path):
        taken = [operands[k] for k in positions]
        rest = [operand for k, operand in enumerate(operands) if k not in positions]
        keep = set(output) | {c for _, ls, _ in rest for c in ls}
        if len(taken) == 2:
            (x, a, shape_a), (y, b, shape_b) = taken
            source, result = _emit_pair(ctx, (x, y), (a, b), (shape_a, shape_b), keep)
        else:
            # einsum_path found no pair worth making first (or one operand to reduce)
            result = [c for c in dict.fromkeys(c for _, ls, _ in taken for c in ls) if c in keep]
            text = subscripts_text(tuple(ls for _, ls, _ in taken), tuple(result))
            source = f"np.einsum({text!r}, {', '.join(x for x, _, _ in taken)})"
        shape = tuple(sizes[c] for c in result)
        if step == len(path) - 1:
            final = source, result
        else:
            name = ctx.temp(f"pair{step}")
            statements.append(f"{name} = {source}")
            temporaries.append(name)
            rest.append((name, result, shape))
        operands = rest
    source, result = final
    if tuple(result) != output:
        order = tuple(result.index(c) for c in output)
        if order == tuple(range(len(order) - 1, -1, -1)):
            source = ctx.transpose(f"({source})")
        else:
            source = f"np.transpose({source}, {literal(order)})"
    statements.append(f"{ctx.out} = {source}")
    if temporaries:
        statements.append(f"del {', '.join(temporaries)}")
    return statements


# view: np.einsum of one operand that sums nothing (a transpose, a diagonal) returns a view of
# it, which codegen must neither update in place nor hand its buffer on: written into, the
# caller's argument changed (a vjp's cotangent came back with the signs of another)
defop("einsum", None, _einsum_shape, _emit_einsum, _einsum_vjp, simplify=_einsum_simplify,
      loop=None, view=True, sparsity=_einsum_sparsity)


@public("einsum", static=("subscripts", "optimize"))
def einsum(subscripts, *operands, optimize=False):
    """NumPy's einsum: ``einsum("bqd,bkd->bqk", q, k)``, or the interleaved form
    ``einsum(q, [0, 1, 2], k, [0, 3, 2], [0, 1, 3])``. Any subscripts NumPy accepts: an implicit
    or explicit output, a letter repeated on one operand (its diagonal), ``...``, letters summed
    out, one operand or many. Lengths of 1 stretch, as in NumPy. ``optimize`` is accepted for
    NumPy's signature and has no effect: the compiled code always contracts in the order
    np.einsum_path finds when it is compiled.

    >>> from symgrad import var
    >>> einsum("bqd,bkd->bqk", var("q", shape=("b", 5, 8)), var("k", shape=("b", 7, 8))).shape
    ('b', 5, 7)
    """
    items = (subscripts, *operands)
    given = operands if isinstance(subscripts, str) else items[:len(items) - len(items) % 2][0::2]
    graph = graph_of(*given)
    try:
        with graph.atomic():
            if not isinstance(subscripts, str):
                subscripts, operands = _interleaved(subscripts, *operands)
            if not operands:
                raise ShapeError("needs at least one operand")
            exprs = _lifted(*operands)
            normalized = normalize_subscripts(subscripts, [e.ndim for e in exprs])
            return apply("einsum", *exprs, subscripts=normalized)
    except ShapeError as error:
        raise located(error, "einsum", given) from None


def _interleaved(*items):
    """(subscripts, operands) of the interleaved form: operand, sublist, operand, sublist, ...,
    and an optional output sublist."""
    pairs = items[:len(items) - len(items) % 2]
    subscripts = ",".join(_sublist_text(s) for s in pairs[1::2])
    if len(items) % 2:
        subscripts += "->" + _sublist_text(items[-1])
    return subscripts, pairs[0::2]


def _axes_list(axes, ndim, which):
    axes = [axes] if isinstance(axes, numbers.Integral) else list(axes)
    result = []
    for axis in axes:
        if not isinstance(axis, numbers.Integral) or isinstance(axis, bool) \
                or not -ndim <= axis < ndim:
            raise ShapeError(f"axis {axis!r} of {which} is out of range for {ndim} dimensions")
        result.append(int(axis) % ndim)
    return result


@public("tensordot", static=("axes",))
@op_function("tensordot", operands=2)
def tensordot(a, b, axes=2):
    """NumPy's tensordot: the sum over the last ``axes`` axes of ``a`` and the first of ``b``,
    or over the axes of the pair of lists ``axes=([1, 0], [0, 1])``.

    >>> from symgrad import var
    >>> tensordot(var("A", shape=(2, 3, 4)), var("B", shape=(3, 4, 5))).shape
    (2, 5)
    """
    a, b = _lifted(a, b)
    if isinstance(axes, numbers.Integral) and not isinstance(axes, bool):
        if not 0 <= axes <= min(a.ndim, b.ndim):
            raise ShapeError(f"axes={axes} is more than the operands have")
        axes_a, axes_b = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        try:
            first, second = axes
        except (TypeError, ValueError):
            raise ShapeError(f"axes must be an int or a pair of lists of axes, got {axes!r}") \
                from None
        axes_a, axes_b = _axes_list(first, a.ndim, "a"), _axes_list(second, b.ndim, "b")
        if len(axes_a) != len(axes_b) or len(set(axes_a)) != len(axes_a) \
                or len(set(axes_b)) != len(axes_b):
            raise ShapeError(f"axes {axes!r} must pair distinct axes of a with those of b")
    labels_a = list(range(a.ndim))
    labels_b = list(range(a.ndim, a.ndim + b.ndim))
    for i, j in zip(axes_a, axes_b):
        labels_b[j] = labels_a[i]
        if a.shape[i] != b.shape[j]:
            raise ShapeError(f"contracted axes differ in length: {a.shape[i]} vs {b.shape[j]}")
    output = [c for k, c in enumerate(labels_a) if k not in axes_a] + \
        [c for k, c in enumerate(labels_b) if k not in axes_b]
    return apply("einsum", a, b, subscripts=((tuple(labels_a), tuple(labels_b)), tuple(output)))


def _lifted(*operands):
    graph = graph_of(*operands)
    hint = next((o.dtype for o in operands if isinstance(o, Expr) and o.dtype != "bool"),
                "float64")
    return [lift(o, graph, hint) for o in operands]


def _flat(x):
    return x if x.ndim == 1 else reshape(x, (-1,))


@public("outer")
@op_function("outer", operands=2)
def outer(a, b):
    """NumPy's outer: every entry of ``a`` (flattened) times every entry of ``b``.

    >>> from symgrad import var
    >>> outer(var("u", shape=(3,)), var("v", shape=("n",))).shape
    (3, 'n')
    """
    a, b = _lifted(a, b)
    return apply("einsum", _flat(a), _flat(b), subscripts=(((0,), (1,)), (0, 1)))


@public("inner")
@op_function("inner", operands=2)
def numpy_inner(a, b):
    """NumPy's inner: the sum over the last axes of ``a`` and ``b``, their other axes kept (a
    product with a scalar). The op named "inner" is another thing: a full ``np.vdot``.

    >>> from symgrad import var
    >>> numpy_inner(var("A", shape=(2, 3)), var("B", shape=(4, 3))).shape
    (2, 4)
    """
    a, b = _lifted(a, b)
    if a.ndim == 0 or b.ndim == 0:
        return apply("multiply", a, b)
    labels_a = tuple(range(a.ndim))
    labels_b = tuple(range(a.ndim - 1, a.ndim + b.ndim - 1))
    labels_b = labels_b[1:] + labels_b[:1]      # b's last axis meets a's
    output = labels_a[:-1] + labels_b[:-1]
    return apply("einsum", a, b, subscripts=((labels_a, labels_b), output))


def _padded(x, ndim):
    return x if x.ndim == ndim else expand_dims(x, tuple(range(ndim - x.ndim)))


@public("kron")
@op_function("kron", operands=2)
def kron(a, b):
    """NumPy's Kronecker product: blocks ``a[i, j] * b``; the operand of fewer dimensions gets
    leading ones. A named dimension can meet only a length of 1 on the other operand.

    >>> from symgrad import var
    >>> kron(var("A", shape=(2, 3)), var("B", shape=(4, 5))).shape
    (8, 15)
    """
    a, b = _lifted(a, b)
    ndim = max(a.ndim, b.ndim)
    a, b = _padded(a, ndim), _padded(b, ndim)
    labels_a, labels_b = tuple(range(ndim)), tuple(range(ndim, 2 * ndim))
    output = tuple(c for pair in zip(labels_a, labels_b) for c in pair)
    blocks = apply("einsum", a, b, subscripts=((labels_a, labels_b), output))
    shape = []
    for m, n in zip(a.shape, b.shape):
        if isinstance(m, int) and isinstance(n, int):
            shape.append(m * n)
        elif m == 1 or n == 1:
            shape.append(n if m == 1 else m)
        else:
            raise ShapeError(f"the product of lengths {m} and {n} cannot be named")
    return reshape(blocks, tuple(shape))


def _levi_civita(graph, dtype):
    epsilon = np.zeros((3, 3, 3), dtype=dtype)
    for (i, j, k), sign in {(0, 1, 2): 1, (1, 2, 0): 1, (2, 0, 1): 1,
                            (0, 2, 1): -1, (2, 1, 0): -1, (1, 0, 2): -1}.items():
        epsilon[i, j, k] = sign
    return const(epsilon, graph)


def _moved_last(x, axis, which):
    (axis,) = _axes_list(axis, x.ndim, which)
    if x.shape[axis] != 3:
        raise ShapeError(f"{which} has length {x.shape[axis]} on axis {axis}: cross takes "
                         f"3-vectors (NumPy's 2-vectors are deprecated)")
    order = [k for k in range(x.ndim) if k != axis] + [axis]
    return x if axis == x.ndim - 1 else transpose(x, tuple(order))


@public("cross", static=("axisa", "axisb", "axisc", "axis"))
@op_function("cross", operands=2)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """NumPy's cross product of 3-vectors along ``axisa`` of ``a`` and ``axisb`` of ``b``
    (``axis`` sets all three), batch axes broadcast, the result's vectors along ``axisc``:
    ``c_i = eps_ijk a_j b_k``, an einsum with the Levi-Civita tensor.

    >>> from symgrad import var
    >>> cross(var("u", shape=("n", 3)), var("v", shape=(3,))).shape
    ('n', 3)
    """
    a, b = _lifted(a, b)
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _moved_last(a, axisa, "a"), _moved_last(b, axisb, "b")
    epsilon = _levi_civita(a.graph, float_dtype([a.dtype, b.dtype]))
    result = einsum("ijk,...j,...k->...i", epsilon, a, b)
    (axisc,) = _axes_list(axisc, result.ndim, "the result")
    if axisc == result.ndim - 1:
        return result
    order = list(range(result.ndim - 1))
    order.insert(axisc, result.ndim - 1)
    return transpose(result, tuple(order))


def dot_n_dimensional(a, b):
    """``np.dot`` where an operand has more than two dimensions: the sum over the last axis of
    ``a`` and the second-to-last of ``b`` (its only axis for a vector), every other axis kept,
    ``a``'s first: unlike matmul, whose batch axes broadcast."""
    b_contracted = b.ndim - 2 if b.ndim >= 2 else 0
    return tensordot(a, b, axes=([a.ndim - 1], [b_contracted]))
