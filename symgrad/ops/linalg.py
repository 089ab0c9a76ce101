"""Matrix products: matmul with NumPy's rules for 1-D operands and broadcast batch axes, dot, and
inner, the sum of an elementwise product over every axis.

Imports ops.core and ops.shape.
"""

from ..errors import ShapeError
from .core import apply, broadcast_shapes, defop, op_function, public
from .shape import expand_dims, squeeze, swap_last_axes, unbroadcast


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


defop("matmul", 2, _matmul_shape, "{0} @ {1}", _matmul_vjp)


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


defop("inner", 2, _inner_shape, "np.vdot({0}, {1})", _inner_vjp)


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
    """``np.dot`` for operands of at most two dimensions: a product with a scalar, else matmul."""
    a_ndim, b_ndim = (len(getattr(e, "shape", ())) for e in (a, b))
    if a_ndim == 0 or b_ndim == 0:
        return apply("multiply", a, b)
    if a_ndim > 2 or b_ndim > 2:
        raise ShapeError("operands with more than two dimensions are not accepted: use "
                         "matmul (batch semantics) or reshape first")
    return apply("matmul", a, b)
