"""Algebraic rewrites that keep values identical (up to rounding) where the inputs are valid:
cancellations, canonical forms that let common subexpressions meet, constants gathered together,
and zeros dropped from derivatives.

Imports ops and optimize.rebuild.
"""

import math

import numpy as np

from ..ops import apply, broadcast_shapes, const, static_shape
from ..ops.core import constant_value, existing_const, is_scalar_constant
from ..ops.shape import identity_factors
from .rebuild import rewrite


def _scalar(expr):
    value = constant_value(expr)
    if value is not None and value.size == 1 and value.dtype != bool:
        return float(value.reshape(()))
    return None


def _read_once(expr):
    """Whether nothing but the node being built reads ``expr`` so far (later readers of the
    graph being rebuilt are not known yet)."""
    return expr.graph.out_degree(expr.node) <= 1


@rewrite("log", structural=True, operand_ops=("exp",))
def cancel_log_exp(data, inputs):
    (x,) = inputs
    return _same_dtype(x.inputs[0], data) if x.op == "exp" else None


@rewrite("exp", structural=True, operand_ops=("log",))
def cancel_exp_log(data, inputs):
    # exp(log x) = x for x > 0, the only inputs where the original is defined
    (x,) = inputs
    return _same_dtype(x.inputs[0], data) if x.op == "log" else None


@rewrite("exp", readers=True, operand_ops=("subtract",))
def softmax_of_a_shift_by_logsumexp(data, inputs, readers):
    """exp(x - logsumexp(x)) -> softmax(x) over the same axes, when nothing else reads the
    logsumexp or the shift: a logsumexp's gradient and Hessian are made of this, and softmax
    takes one exp and a division where this takes logsumexp's exp, sum and log, and then a
    second exp."""
    (shifted,) = inputs
    if shifted.op != "subtract" or readers(shifted) != 1:
        return None
    x, total = shifted.inputs
    if total.op == "expand_dims" and readers(total) == 1:
        axis = total.attrs["axis"]
        (total,) = total.inputs
        if total.op != "logsumexp" or total.attrs["keepdims"] or total.attrs["axis"] != axis:
            return None
    elif total.op == "logsumexp" and not total.attrs["keepdims"] and total.shape != ():
        return None     # it lines up with x's last axes, not the ones it reduced
    if total.op != "logsumexp" or total.inputs[0].node != x.node or readers(total) != 1 \
            or not total.attrs["axis"] or x.dtype != data["dtype"] or x.shape != data["shape"]:
        return None
    return apply("softmax", x, axis=total.attrs["axis"])


def _same_dtype(candidate, data):
    """``candidate`` if it has the replaced node's dtype (log(exp(mask)) is not the mask)."""
    return candidate if candidate.dtype == data["dtype"] else None


@rewrite("multiply", structural=True)
def square_product_of_equals(data, inputs):
    x, y = inputs
    return apply("power", x, 2.0) if x.node == y.node else None


@rewrite("multiply", structural=True, operand_ops=("const",))
def gather_constant_factors(data, inputs):
    """(x * a) * b -> x * (a b) and (-x) * a -> x * (-a): constants meet and fold, and equal
    products written in different orders become one node."""
    if inputs[0].op != "const" and inputs[1].op != "const":
        return None     # declined on the operands' ops alone, as most nodes are
    x, y = inputs
    if _scalar(x) is not None and _scalar(y) is None:
        x, y = y, x
    factor = _scalar(y)
    if factor is None or y.shape != () and broadcast_shapes(x.shape, y.shape) != x.shape:
        return None
    if x.op == "multiply":
        a, b = x.inputs
        for inner, other in ((b, a), (a, b)):
            inner_factor = _scalar(inner)
            if inner_factor is not None and inner.shape == () \
                    and _representable(inner_factor * factor, inner_factor, factor):
                return apply("multiply", other, inner_factor * factor)
    if x.op == "negative":
        return apply("multiply", x.inputs[0], -factor)
    return None


@rewrite("multiply", structural=True, operand_ops=("const",))
def negate_instead_of_times_minus_one(data, inputs):
    if inputs[0].op != "const" and inputs[1].op != "const":
        return None     # declined on the operands' ops alone, as most nodes are
    x, y = inputs
    for minus_one, other in ((y, x), (x, y)):
        if is_scalar_constant(minus_one, -1) and other.dtype == data["dtype"] \
                and broadcast_shapes(x.shape, y.shape) == other.shape:
            return apply("negative", other)
    return None


def _representable(product, *factors):
    """Whether gathering factors into ``product`` keeps its value: no overflow to inf, no
    underflow to zero (x * 1e200 * 1e200 is not x * inf), and no zero factor, whose product
    with an intermediate inf must stay nan."""
    if any(f == 0 for f in factors):
        return False
    return math.isfinite(product) and abs(product) > 1e-300


@rewrite("negative", structural=True, operand_ops=("multiply",))
def negate_constant_factor(data, inputs):
    (x,) = inputs
    if x.op == "multiply":
        a, b = x.inputs
        for inner, other in ((b, a), (a, b)):
            factor = _scalar(inner)
            if factor is not None and inner.shape == ():
                return apply("multiply", other, -factor)
    return None


@rewrite("add", structural=True, operand_ops=("negative",))
def subtract_a_negation(data, inputs):
    x, y = inputs
    if y.op == "negative":
        return apply("subtract", x, y.inputs[0])
    if x.op == "negative":
        return apply("subtract", y, x.inputs[0])
    return None


@rewrite("subtract", structural=True, operand_ops=("negative",))
def add_a_negation(data, inputs):
    x, y = inputs
    return apply("add", x, y.inputs[0]) if y.op == "negative" else None


@rewrite("multiply", structural=True, operand_ops=("const",))
def fold_mul_by_zero_in_derivatives(data, inputs):
    # only in derivatives: there 0 * (anything) is the exact zero of a missing contribution,
    # while a forward 0 * inf must stay nan
    if not data["derivative"]:
        return None
    x, y = inputs
    for zero, other in ((x, y), (y, x)):
        if is_scalar_constant(zero, 0) and broadcast_shapes(x.shape, y.shape) == other.shape:
            return apply("zeros_like", other)
    return None


@rewrite("matmul", structural=True)
def identity_products_in_derivatives(data, inputs):
    """I @ B -> B and B @ I in derivatives, where the identity is the seed of a Jacobian's batch
    of cotangents (a Hessian's rows): there its zeros times an inf are the exact zeros of
    missing contributions, as in fold_mul_by_zero_in_derivatives."""
    if not data["derivative"]:
        return None
    a, b = inputs
    for identity, other in ((a, b), (b, a)):
        if other.shape == data["shape"] and other.dtype == data["dtype"] \
                and identity.ndim == 2 and _is_identity(identity):
            return other
    return None


def _is_identity(expr):
    """Whether ``expr`` is an identity matrix: the seed op, or a constant (checked without
    building one)."""
    if expr.op == "identity":
        return True
    value = constant_value(expr)
    return value is not None and value.shape[0] == value.shape[1] \
        and np.count_nonzero(value) == value.shape[0] and bool(np.all(np.diagonal(value) == 1))


def _part_of_an_identity(expr):
    """Whether ``expr`` is the identity op, a part of one or a product of such parts (a dense
    Jacobian's seed as its rules slice it): entries 0 and 1, never inf or nan."""
    return _identity_part_kind(expr) is not None


def _factor_of_a_larger_identity(expr):
    """Whether ``expr`` is a part of an identity with ones along some axes: a factor of the
    identity on an array of two or more axes (ops.shape.identity_factors), or a product of
    such. The rules below spread those; a Jacobian's seed in a vector is left as it was."""
    return _identity_part_kind(expr) == "factor"


def _identity_part_kind(expr):
    """None when ``expr`` is not a part of an identity (_part_of_an_identity), "factor" when it
    is one with an axis added (_factor_of_a_larger_identity), else "part"."""
    stack, seen, kind = [expr], 0, "part"
    while stack and seen < 16:
        expr = stack.pop()
        seen += 1
        if expr.op == "multiply":
            stack.extend(expr.inputs)
        elif expr.op == "getitem":
            if ("newaxis",) in expr.data["attrs"]["index"]:
                kind = "factor"
            stack.append(expr.inputs[0])
        elif expr.op != "identity":
            return None
    return None if stack else kind


def _factor_and_part(product):
    """(the other factor, the identity part, a finite number the two's product is then
    multiplied by, or None) of a product with a part of an identity, (a * p) * c, or None."""
    scale = None
    if product.op == "multiply":
        x, y = product.inputs
        for number, rest in ((y, x), (x, y)):
            value = _scalar(number)
            if value is not None and math.isfinite(value) and number.shape == () \
                    and rest.op == "multiply" and rest.shape == product.shape:
                scale, product = number, rest
                break
    if product.op != "multiply":
        return None
    x, y = product.inputs
    for other, part in ((x, y), (y, x)):
        if _factor_of_a_larger_identity(part) and not _part_of_an_identity(other):
            return other, part, scale
    return None


def _scaled(product, scale):
    return product if scale is None else apply("multiply", product, scale)


def _spreads_an_identity_part(index_grad):
    """Whether pad_the_factor_of_an_identity_part may rewrite ``index_grad`` once the other
    rules have brought its operand to a product with a part of the seed: add_into_the_slice
    then leaves it to that rule, so that a sum of such terms keeps the part as a common
    factor."""
    stack, seen = [index_grad.inputs[0]], 0
    while stack and seen < 16:      # the seed's part reached through the linear ops between
        expr = stack.pop()
        seen += 1
        if _factor_of_a_larger_identity(expr) or _factor_and_part(expr) is not None:
            return True
        if expr.op in ("negative", "add", "subtract", "multiply"):
            stack.extend(expr.inputs)
    return False


@rewrite("negative", structural=True)
def negate_the_factor_of_an_identity_part(data, inputs):
    """-(a * p) -> (-a) * p for a part p of a dense Jacobian's seed (and -((a * p) * c) ->
    ((-a) * p) * c for a number c): a, often much smaller than the product (p spreads it), is
    negated instead of the product; a negation moves through products exactly, signed zeros
    included."""
    pair = _factor_and_part(inputs[0])
    if pair is None:
        return None
    other, part, scale = pair
    if broadcast_shapes(other.shape, part.shape) != data["shape"] \
            or not other.data["dtype"] == part.data["dtype"] == data["dtype"]:
        return None
    return _scaled(apply("multiply", apply("negative", other), part), scale)


@rewrite("index_grad", structural=True)
def pad_the_factor_of_an_identity_part(data, inputs, index, keep):
    """index_grad(a * p) -> index_grad(a) * p where p, a part of a dense Jacobian's seed, is
    spread along every axis the index slices (and index_grad((a * p) * c) -> (index_grad(a) * p)
    * c for a finite number c): the zeros around the slice are made for a (spread over the
    sliced axes only) instead of for the whole product. The slice's entries are computed as
    before, and 0 * p * c is a zero. With the seed of the Hessian in an (n, n) variable, a is
    n^3 where the product is n^4."""
    g, like = inputs
    pair = _factor_and_part(g)
    if pair is None or g.ndim != len(data["shape"]) or not static_shape(data["shape"]):
        return None
    other, part, scale = pair
    if not other.data["dtype"] == part.data["dtype"] == data["dtype"]:
        return None
    sliced = [keep + axis for axis, item in enumerate(i for i in index if i != ("newaxis",))
              if item != ("slice", None, None, None)]
    offset = g.ndim - part.ndim
    if ("newaxis",) in index or any(axis < offset or part.shape[axis - offset] != 1
                                    for axis in sliced):
        return None
    leading = tuple(broadcast_shapes(other.shape, (1,) * g.ndim)[:keep])
    spread = leading + tuple(g.shape[keep:])
    if math.prod(spread) >= math.prod(g.shape) \
            or broadcast_shapes(leading + tuple(like.shape), part.shape) != data["shape"]:
        return None
    if other.shape != spread:
        other = apply("broadcast_to", other, shape=spread)
    return _scaled(apply("multiply", apply("index_grad", other, like, index=index, keep=keep),
                         part), scale)


@rewrite("multiply", structural=True)
def spread_a_multiple_of_the_identity(data, inputs):
    """(+-I) * x -> (+-p1) * (p2 * x) for the identity I on an array of shape (n1, n2) (and so
    on for more axes) and an array x smaller than I, or ((+-p1) * c) * p2 for a number c: I is
    the product of parts of eye(nk) (identity_factors), 0 and 1, which meet x one at a time, so
    that the product is made from small operands (in blocks where a sum reads it:
    codegen.memory.blocked_sums) instead of from an n^4-entry identity. Exact: each entry is x
    times 1, or a zero times x, as before."""
    for seed, x in (inputs, inputs[::-1]):
        negated = seed.op == "negative"
        identity_expr = seed.inputs[0] if negated else seed
        if identity_expr.op != "identity" or _part_of_an_identity(x) \
                or not seed.data["dtype"] == x.data["dtype"] == data["dtype"] \
                or broadcast_shapes(seed.shape, x.shape) != seed.shape \
                or not static_shape(x.shape) or math.prod(x.shape) >= math.prod(seed.shape):
            continue
        factors = identity_factors(identity_expr)
        if factors is None:
            continue
        first = apply("negative", factors[0]) if negated else factors[0]
        if x.shape == ():
            product = apply("multiply", first, x)
            for factor in factors[1:]:
                product = apply("multiply", product, factor)
            return product
        product = x
        for factor in reversed(factors[1:]):
            product = apply("multiply", factor, product)
        return apply("multiply", first, product)
    return None


@rewrite("multiply", structural=True, operand_ops=("multiply",))
def spread_a_product_with_a_part_of_the_seed(data, inputs):
    """(s * p) * y -> s * (p * y) where p is a part of a dense Jacobian's seed (entries 0 and 1)
    and s and p * y are smaller than the product: it is then made from small operands (in
    blocks where a sum reads it) rather than from an array its size. Exact: where p is 1 both
    are s * y, and where it is 0 both are a zero (of the same sign), or nan where s or y is not
    finite."""
    if inputs[0].op != "multiply" and inputs[1].op != "multiply":
        return None     # declined on the operands' ops alone, as most nodes are
    for inner, y in (inputs, inputs[::-1]):
        if inner.op != "multiply" or _part_of_an_identity(y) or not static_shape(data["shape"]):
            continue
        size = math.prod(data["shape"])
        for s, p in (inner.inputs, inner.inputs[::-1]):
            if not _factor_of_a_larger_identity(p) or not static_shape(s.shape) \
                    or not s.data["dtype"] == p.data["dtype"] == y.data["dtype"] == data["dtype"]:
                continue
            spread = broadcast_shapes(p.shape, y.shape)
            if math.prod(s.shape) < size and math.prod(spread) < size \
                    and broadcast_shapes(s.shape, spread) == data["shape"]:
                return apply("multiply", s, apply("multiply", p, y))
    return None


@rewrite("add", "subtract", structural=True)
def drop_added_zeros(data, inputs):
    x, y = inputs
    # x - 0 is x, -0.0 included; 0 - x is not -x (0 - 0.0 is 0.0)
    for zero, other in ((x, y), (y, x)) if data["op"] == "add" else ((y, x),):
        if zero.op == "zeros_like" and broadcast_shapes(x.shape, y.shape) == other.shape \
                and other.dtype == data["dtype"]:
            return other
    return None


@rewrite("sum", structural=True, operand_ops=("broadcast_to_like",))
def sum_of_a_broadcast_scalar(data, inputs, axis, keepdims):
    """sum(broadcast(c, like)) over every axis = c * size(like), with no array in between."""
    (x,) = inputs
    if x.op != "broadcast_to_like" or keepdims or len(axis) != x.ndim:
        return None
    value, like = x.inputs
    while value.op == "expand_dims":            # the scalar a sum's gradient spread
        value = value.inputs[0]
    if value.op == "const" and value.data["value"].size == 1:
        value = const(value.data["value"].reshape(()), value.graph)
    if value.shape != ():
        return None         # reshaping it first would cost the statement the rewrite saves
    if static_shape(x.shape):
        return apply("multiply", value, float(np.prod(x.shape)))
    return apply("multiply", value, apply("axis_size", like, axis=tuple(range(-like.ndim, 0))))


@rewrite("add", structural=True)
def add_into_the_slice(data, inputs):
    """a + index_grad(g, index) -> index_add(a, g, index): g added into the slice of (a copy of,
    or the dying buffer of) a, with no array of zeros spread around it (slicing's gradient).

    Of two slicing gradients, the one computed with fewer ops stays the base: it is computed
    first, straight into its slice, so that what both read dies in the larger one, which can
    update it in place (Rosenbrock's 200 d goes into g[1:] before d becomes -400 x d + ...)."""
    candidates = (inputs, inputs[::-1])     # (base, spread), in the order they are tried
    if all(x.op == "index_grad" for x in inputs) \
            and _ops_up_to(inputs[0].inputs[0]) > _ops_up_to(inputs[1].inputs[0]):
        candidates = candidates[::-1]
    for base, spread in candidates:
        if spread.op == "index_grad" and base.shape == spread.shape == data["shape"] \
                and base.dtype == data["dtype"] and not _spreads_an_identity_part(spread):
            update = spread.inputs[0]
            return apply("index_add", base, update, index=spread.attrs["index"],
                         keep=spread.attrs["keep"])
    return None


def _ops_up_to(expr, limit=64):
    """How many ops ``expr`` is computed with, counting up to ``limit``."""
    nodes = expr.graph.nodes
    seen, stack = {expr.node}, [expr.node]
    while stack and len(seen) < limit:
        for operand in nodes[stack.pop()]["inputs"]:
            if operand not in seen and nodes[operand]["op"] not in ("var", "const"):
                seen.add(operand)
                stack.append(operand)
    return len(seen)


@rewrite("sum", structural=True, operand_ops=("negative",))
def negate_after_summing(data, inputs, axis, keepdims):
    """sum(-x) -> -sum(x): the negation runs on the (smaller) sum, not on every entry."""
    (x,) = inputs
    if x.op != "negative":
        return None
    return apply("negative", apply("sum", x.inputs[0], axis=axis, keepdims=keepdims))


@rewrite("sum", structural=True, operand_ops=("multiply", "power"))
def sum_of_products_as_inner_product(data, inputs, axis, keepdims):
    """sum(a * b) and sum(a ** 2) over every axis -> inner(a, b), one np.vdot: no array of
    products (an L2 penalty on a weight matrix, a squared norm, a dot product written out)."""
    (x,) = inputs
    if keepdims or not x.ndim or len(axis) != x.ndim:
        return None
    if x.op == "multiply":
        a, b = x.inputs
    elif x.op == "power" and is_scalar_constant(x.inputs[1], 2):
        a = b = x.inputs[0]
    else:
        return None
    if a.shape != x.shape or b.shape != x.shape or a.dtype != b.dtype:
        return None         # a broadcast operand: the products are more than the operands
    return apply("inner", a, b)


@rewrite("sum", operand_ops=("multiply",))
def sum_of_products_as_a_matvec(data, inputs, axis, keepdims):
    """sum(M * v, axis=-1) -> M @ v for a matrix M and a vector v along its rows: one BLAS
    matrix-vector product, faster than a row-wise np.sum (tests/benchmarks/README.md) over an
    array of products, which the rewrite spares too when nothing else reads it (the gradient
    of a linear map's outputs meeting its matrix: A.T * p summed is A.T @ p)."""
    (x,) = inputs
    if keepdims or axis != (-1,) or x.op != "multiply" or x.ndim != 2 \
            or data["dtype"] != "float64":
        return None
    for matrix, vector in (x.inputs, x.inputs[::-1]):
        if matrix.shape == x.shape and vector.shape == x.shape[-1:] \
                and matrix.dtype == vector.dtype == "float64":
            untransposed = _untransposed(matrix)
            if untransposed is not None:
                # v @ A, not A.T @ v: the same values, and the product meets the others with
                # the matrix as written (the logsumexp Hessian's p @ A, one gemv fewer)
                return apply("matmul", vector, untransposed)
            return apply("matmul", matrix, vector)
    return None


def _untransposed(matrix):
    """A for a matrix that is A.T: a transposition, or a constant folded from one (a product's
    gradient transposes its constant matrix) when A's constant exists; else None."""
    if matrix.op == "transpose" and matrix.attrs["axes"] == (1, 0):
        return matrix.inputs[0]
    value = constant_value(matrix)
    return None if value is None else existing_const(value.T, matrix.graph)


def _outer_product_term(total, single_use):
    """(rest, column, row) when ``total`` is rest + column * row or rest - column * row, an
    (m, n) matrix nothing else reads, with column of shape (m, 1) and row of shape (n,) or
    (1, n); else None."""
    if total.op not in ("add", "subtract") or total.ndim != 2 or not single_use:
        return None
    m, n = total.shape
    a, b = total.inputs
    for rest, product in ((a, b), (b, a)) if total.op == "add" else ((a, b),):
        if product.op != "multiply" or rest.shape != total.shape or rest.dtype != total.dtype:
            continue
        for column, row in (product.inputs, product.inputs[::-1]):
            if column.shape == (m, 1) and row.shape in ((n,), (1, n)):
                return rest, column, row
    return None


@rewrite("matmul", uses=True)
def rank_one_update_through_a_matmul(data, inputs, uses):
    """(P - c * r) @ B -> P @ B - c * (r @ B) for a column c (m, 1) and a row r (n,) and an
    (n, k) matrix B with k <= n, when nothing else reads P - c * r: the outer product and the
    subtraction then run on the (m, k) result instead of the (m, n) operand, for one
    vector-matrix product more. The Hessian of logsumexp(A x) is A.T (diag(p) - p p.T) A,
    whose backward pass builds (A.T * p - (A.T @ p) p.T) @ A; B @ (P - c * r) likewise with
    B (k, m), k <= m."""
    left, right = inputs
    if data["dtype"] != "float64" or left.ndim != 2 or right.ndim != 2 \
            or not static_shape(left.shape) or not static_shape(right.shape):
        return None         # the sizes decide whether it pays: they must be numbers
    term = _outer_product_term(left, uses[0] == 1)
    if term is not None and right.shape[1] <= right.shape[0]:
        rest, column, row = term
        moved = apply("multiply", column, apply("matmul", row, right))
        result = apply(left.op, apply("matmul", rest, right), moved)
        return result if result.shape == data["shape"] else None
    term = _outer_product_term(right, uses[1] == 1)
    if term is not None and left.shape[0] <= left.shape[1]:
        rest, column, row = term
        moved = apply("multiply", apply("matmul", left, column), row)
        result = apply(right.op, apply("matmul", left, rest), moved)
        return result if result.shape == data["shape"] else None
    return None


@rewrite("add", "subtract", "multiply", "divide", "power", structural=True,
         operand_ops=("broadcast_to_like",))
def scalar_arithmetic_before_broadcast(data, inputs):
    """broadcast(a, like) * s -> broadcast(a * s, like) for a scalar s: one multiplication
    instead of one per entry, and the broadcast may then vanish into a later op."""
    if inputs[0].op != "broadcast_to_like" and inputs[1].op != "broadcast_to_like":
        return None     # declined on the operands' ops alone, as most nodes are
    x, y = inputs
    for position, (spread, scalar) in enumerate(((x, y), (y, x))):
        if spread.op == "broadcast_to_like" and scalar.shape == () and \
                broadcast_shapes(x.shape, y.shape) == spread.shape:
            value, like = spread.inputs
            operands = (value, scalar) if position == 0 else (scalar, value)
            return apply("broadcast_to_like", apply(data["op"], *operands), like)
    return None


def _constant_factor(product, single_use):
    """(the other factor, c) when ``product`` is a * c with c a scalar constant and nothing
    else reads it, else None."""
    if product.op != "multiply" or not single_use:
        return None
    a, b = product.inputs
    for inner, constant in ((a, b), (b, a)):
        if _scalar(constant) is not None and constant.shape == () and _scalar(inner) is None:
            return inner, _scalar(constant)
    return None


@rewrite("multiply", uses=True, operand_ops=("multiply",))
def constants_of_two_products_meet(data, inputs, uses):
    """(a * c) * (b * d) -> (a * b) * cd, and (a * (b * d)) * c -> (a * b) * cd, for scalar
    constants c and d in products nothing else reads: the chain rule's -200 * r times 2 * x is
    (r * x) * -400, one pass fewer. (gather_constant_factors handles (a * c) * d.)"""
    if inputs[0].op != "multiply" and inputs[1].op != "multiply":
        return None     # declined on the operands' ops alone, as most nodes are
    x, y = inputs
    first, second = _constant_factor(x, uses[0] == 1), _constant_factor(y, uses[1] == 1)
    if first is not None and second is not None:
        (a, c), (b, d) = first, second
    else:
        for product, constant in ((x, y), (y, x)):
            c = _scalar(constant)
            if c is None or constant.shape != () or product.op != "multiply":
                continue
            for a, nested in (product.inputs, product.inputs[::-1]):
                # nothing else reads the nested product yet (later readers are not known here)
                inner = _constant_factor(nested, _read_once(nested))
                if inner is not None and _scalar(a) is None:
                    (b, d) = inner
                    break
            else:
                continue
            break
        else:
            return None
    if not _representable(c * d, c, d):
        return None
    result = apply("multiply", apply("multiply", a, b), c * d)
    return result if result.shape == data["shape"] and result.dtype == data["dtype"] else None


@rewrite("add", "subtract", "multiply", "divide", "power", "maximum", "minimum",
         operand_ops=("const",))
def one_number_as_a_scalar(data, inputs):
    """x * c -> x * 2.0 for a constant c holding one number in an array of ones (a seed of
    shape (1,)): the emitted code reads a literal instead of an array broadcast over x."""
    if inputs[0].op != "const" and inputs[1].op != "const":
        return None     # declined on the operands' ops alone, as most nodes are
    for position, number in enumerate(inputs):
        value = constant_value(number)
        other = inputs[1 - position]
        if value is None or number.shape == () or value.size != 1 or value.dtype == bool \
                or broadcast_shapes(other.shape, number.shape) != other.shape:
            continue
        operands = list(inputs)
        operands[position] = const(value.reshape(()), number.graph)
        result = apply(data["op"], *operands)
        return result if result.dtype == data["dtype"] else None
    return None


def _factorings(term):
    """(factor, the other factors) for each factor of the product ``term``, one level of nesting
    deep (x * y, and a * b of x = a * b when nothing else reads x yet); x ** 2 is x * x."""
    if term.op == "power":
        base, exponent = term.inputs
        square = _scalar(exponent) == 2.0 and exponent.shape == () and term.shape == base.shape
        return [(base, (base,))] if square else []
    if term.op != "multiply":
        return []
    x, y = term.inputs
    found = [(x, (y,)), (y, (x,))]
    for inner, other in ((x, y), (y, x)):
        if inner.op == "multiply" and _read_once(inner):
            a, b = inner.inputs
            found += [(a, (b, other)), (b, (a, other))]
    return found


def _times(factors, graph, dtype):
    """The product of ``factors``: expressions, and numbers made constants of ``graph`` of the
    sum's ``dtype`` (a float32 sum stays float32)."""
    factors = [const(f, graph, dtype=dtype) if isinstance(f, float) else f for f in factors]
    result = factors[0]
    for factor in factors[1:]:
        result = apply("multiply", result, factor)
    return result


def _term_factorings(term):
    """(factor, the other factors, whether the factor is the whole term) for each way of
    reading ``term`` as a product. A negation -u is u times -1, and any other expression t is t
    times 1: pairing on such a factor pays only when the coefficients meet in one number
    (x + 2 x is 3 x; x + a x as x (1 + a) would only move an operation), and then it pays even
    if other nodes read t."""
    if term.op == "negative":
        (inner,) = term.inputs
        found = [(factor, rest + (-1.0,), False) for factor, rest in _factorings(inner)
                 if _read_once(inner)]
        return found + [(inner, (-1.0,), True)]
    return [(factor, rest, False) for factor, rest in _factorings(term)] + [(term, (1.0,), True)]


def _numbers_only(factors):
    return all(isinstance(f, float) or f.op == "const" and _scalar(f) is not None
               for f in factors)


def _signed_terms(data, inputs, uses):
    """x ± y as [(sign, term, read only here)]. A sum or difference among x and y is not
    opened: x * a + s + x * b -> x * (a + b) + s reorders a sum, and x * a + c (k - x) ->
    x * (a - c) + c k distributes a constant, and either can cancel where the written sum did
    not (tests/test_rewrite_safety.py); g * a + g * b -> g * (a + b) never rounds worse."""
    x, y = inputs
    return [(1, x, uses[0] == 1), (1 if data["op"] == "add" else -1, y, uses[1] == 1)]


def _signed_sum(first, second):
    """sign1 t1 + sign2 t2 for two (sign, term), as few ops as the signs allow; a negative
    constant is subtracted as a positive one."""
    (sign1, term1), (sign2, term2) = (_positive_constant(*first), _positive_constant(*second))
    if sign1 < 0:
        (sign1, term1), (sign2, term2) = (sign2, term2), (sign1, term1)
    if sign1 < 0:
        return -1, apply("add", term1, term2)
    return 1, apply("add" if sign2 > 0 else "subtract", term1, term2)


def _positive_constant(sign, term):
    value = _scalar(term)
    if value is not None and value < 0.0 and term.shape == ():
        return -sign, const(-value, term.graph, dtype=term.dtype)
    return sign, term


_FACTORED_OPS = frozenset(("multiply", "power", "negative"))     # the ops _term_factorings opens


@rewrite("add", "subtract", uses=True)
def factor_out_a_common_factor(data, inputs, uses):
    """g * a + g * b -> g * (a + b), and likewise for -, and for x * a + x ** 2 -> x * (a + x):
    backprop sums the contributions to a node, each scaled by the same cotangent g, where a
    careful hand factors g out (one pass instead of one per term). Only when nothing else reads
    the products: then the rewrite saves a multiplication, otherwise it would add one. A pair
    whose coefficients are numbers is taken first (2 x + 3 x is 5 x). The factored form rounds
    at most twice, relative to its value, where the written sum of products can cancel."""
    if data["dtype"] == "bool":
        return None
    graph = inputs[0].graph
    nodes = graph._node
    x_node, y_node = inputs[0].node, inputs[1].node
    # a term that is no product, power or negation is its only factor: then the two pair only
    # when they are the same node (x + x), and most sums are declined here, before the lists
    if x_node != y_node and nodes[x_node]["op"] not in _FACTORED_OPS \
            and nodes[y_node]["op"] not in _FACTORED_OPS:
        return None
    (sign_a, a, once_a), (sign_b, b, once_b) = _signed_terms(data, inputs, uses)
    # only terms of the sum's shape and dtype can pair
    wanted = (tuple(data["shape"]), data["dtype"])
    if (tuple(a.shape), a.dtype) != wanted or (tuple(b.shape), b.dtype) != wanted:
        return None
    theirs = {factor.node: (rest, whole) for factor, rest, whole in _term_factorings(b)}
    pairs = []
    for factor, rest, whole in _term_factorings(a):
        if factor.node not in theirs or factor.dtype != data["dtype"]:
            continue
        their_rest, their_whole = theirs[factor.node]
        # a product read elsewhere stays: factoring it out would add a multiplication
        if not (once_a or whole) or not (once_b or their_whole):
            continue
        numbers = _numbers_only(rest) and _numbers_only(their_rest)
        if (whole or their_whole) and not numbers:
            continue
        pairs.append((not numbers, len(pairs), factor, rest, their_rest))
    if not pairs:
        return None
    _, _, factor, rest, their_rest = min(pairs)
    dtype = data["dtype"]
    sign, inner = _signed_sum((sign_a, _times(rest, graph, dtype)),
                              (sign_b, _times(their_rest, graph, dtype)))
    product = apply("multiply", factor, inner)
    return product if sign > 0 else apply("negative", product)


RULES = [cancel_log_exp, cancel_exp_log, softmax_of_a_shift_by_logsumexp,
         square_product_of_equals, gather_constant_factors,
         negate_instead_of_times_minus_one, negate_constant_factor, subtract_a_negation, add_a_negation,
         fold_mul_by_zero_in_derivatives, identity_products_in_derivatives, drop_added_zeros,
         negate_the_factor_of_an_identity_part, pad_the_factor_of_an_identity_part,
         spread_a_multiple_of_the_identity, spread_a_product_with_a_part_of_the_seed,
         sum_of_a_broadcast_scalar,
         negate_after_summing, add_into_the_slice,
         sum_of_products_as_inner_product, scalar_arithmetic_before_broadcast,
         factor_out_a_common_factor, one_number_as_a_scalar, constants_of_two_products_meet,
         sum_of_products_as_a_matvec, rank_one_update_through_a_matmul]

__all__ = ["RULES", "const"]
