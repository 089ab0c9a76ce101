"""Linear algebra of square matrices, batched over leading axes as np.linalg broadcasts them:
solve, inv, det, slogdet, cholesky, pinv and SciPy's solve_triangular are ops; matrix_power,
multi_dot, lstsq, cho_factor and cho_solve are built on them. Every derivative rule is written in
these ops (closed forms of Giles 2008, Murray 2016 for the Cholesky factor), so rules nest to any
order: the Hessian of a Gaussian-process likelihood is one more call of grad.

A function NumPy gives as a tuple (slogdet) is one op whose result packs the parts along a last
axis, and its public function returns slices of it: no node has two outputs, so every pass and
backend serves it unchanged, and the parts' derivatives meet in the one rule.
Imports ops.core, ops.shape, ops.elementwise, ops.reduce, ops.linalg and ops.arrays.
"""

import collections
import math
import numbers

import numpy as np

from ..errors import ArgumentError, ShapeError, SymgradError
from .arrays import tril, triu
from .core import (Expr, apply, broadcast_shapes, const, defop, graph_of, lift, op_function,
                   public, static_shape)
from .linalg import matmul
from .reduce import max as reduce_max, sum as reduce_sum
from .shape import (broadcast_to_like, expand_dims, getitem, reshape, squeeze, swap_last_axes,
                    unbroadcast)

# the ops whose NumPy form calls SciPy (scipy.linalg), which the array-API backend refuses
USES_SCIPY = ("solve_triangular",)


def _square(shape, what="a"):
    """The batch axes of a stack of square matrices of ``shape``."""
    if len(shape) < 2:
        raise ShapeError(f"{what} must have at least two dimensions, got shape {shape}")
    if shape[-1] != shape[-2]:
        raise ShapeError(f"{what} must be square in its last two dimensions, got {shape}")
    return shape[:-2]


def _static_matrix(x, purpose):
    if not static_shape(x.shape[-2:]):
        raise ShapeError(f"matrices of static size are needed for {purpose}, got shape "
                         f"{x.shape}")


def _leading(g, out):
    return g.ndim - out.ndim


def _scaled(g, matrix):
    """A cotangent ``g`` of one number per matrix times ``matrix``, broadcast over the matrices."""
    return expand_dims(g, (-2, -1)) * matrix


# -- which entries each result entry depends on (Op.sparsity) ------------------------------------------

# Past this many (result entry, operand entry) pairs, a stack of matrices is taken as dense
MATRIX_PAIRS_LIMIT = 10**7


def _block_pairs(row_starts, row_offsets, column_starts, column_offsets):
    """(rows, columns): every row of each block with every column of it, block k holding rows
    row_starts[k] + row_offsets and columns column_starts[k] + column_offsets."""
    rows = row_starts[:, None, None] + row_offsets[None, :, None]
    columns = column_starts[:, None, None] + column_offsets[None, None, :]
    rows, columns = np.broadcast_arrays(rows, columns)
    return rows.ravel(), columns.ravel()


def per_matrix_sparsity(shapes, out_shape, values, **attrs):
    """A function of each matrix of a stack (the last two axes): each entry of a matrix's result
    depends on every entry of that matrix, and on no other matrix's."""
    shape = shapes[0]
    batch = math.prod(shape[:-2])
    out_core, in_core = math.prod(out_shape[len(shape) - 2:]), math.prod(shape[-2:])
    if batch * out_core * in_core > MATRIX_PAIRS_LIMIT:
        return ["dense"]
    return [_block_pairs(np.arange(batch) * out_core, np.arange(out_core),
                         np.arange(batch) * in_core, np.arange(in_core))]


def _solve_sparsity(shapes, out_shape, values, **attrs):
    """X = A^-1 B over broadcast stacks: each column of X depends on all of its A and on the
    same column of its B."""
    a, b = shapes
    n, k = b[-2], b[-1]
    batch = out_shape[:-2]
    count = math.prod(batch)
    if count * n * k * max(n * n, n) > MATRIX_PAIRS_LIMIT:
        return ["dense", "dense"]

    def stack_of(shape):
        # out stack entry -> the operand's matrix, broadcast
        own = tuple(shape[:-2])
        return np.broadcast_to(np.arange(math.prod(own)).reshape(own), batch).ravel()
    through_a = _block_pairs(np.arange(count) * (n * k), np.arange(n * k),
                             stack_of(a) * (n * n), np.arange(n * n))
    column = np.arange(k)[None, :]
    through_b = _block_pairs((np.arange(count)[:, None] * (n * k) + column).ravel(),
                             np.arange(n) * k,
                             (stack_of(b)[:, None] * (n * k) + column).ravel(), np.arange(n) * k)
    return [through_a, through_b]


# -- solving and inverting -----------------------------------------------------------------------------


def _solve_shape(shapes, **_):
    a, b = shapes
    batch = _square(a)
    if len(b) < 2:
        raise ShapeError(f"b must have at least two dimensions, got shape {b}")
    if b[-2] != a[-1]:
        raise ShapeError(f"a has {a[-1]} columns but b has {b[-2]} rows")
    return broadcast_shapes(batch, b[:-2]) + b[-2:]


def _solve_vjp(g, out, a, b):
    # X = A^-1 B: dX = A^-1 (dB - dA X), so B's cotangent is one more solve with the transpose
    # and A's is minus it times X^T; never an inverse
    grad_b = apply("solve", swap_last_axes(a), g)
    grad_a = -(grad_b @ swap_last_axes(out))
    leading = _leading(g, out)
    return [unbroadcast(grad_a, a.shape, leading), unbroadcast(grad_b, b.shape, leading)]


defop("solve", 2, _solve_shape, "np.linalg.solve({0}, {1})", _solve_vjp, loop=None,
      sparsity=_solve_sparsity)


def _as_matrices(b, what="b"):
    """``b`` and whether it was one vector: NumPy 2 takes b as a vector only when it is 1-D, and
    as a stack of matrices (..., n, k) otherwise."""
    if b.ndim == 0:
        raise ShapeError(f"{what} must have at least one dimension")
    return (expand_dims(b, -1), True) if b.ndim == 1 else (b, False)


def _lifted(*operands):
    graph = graph_of(*operands)
    hint = next((o.dtype.name for o in operands if isinstance(o, Expr) and o.dtype != "bool"),
                "float64")
    return [lift(o, graph, hint) for o in operands]


@public("solve")
@op_function("solve", operands=2)
def solve(a, b):
    """The solution ``x`` of ``a @ x = b``, as ``np.linalg.solve`` (NumPy 2): ``b`` is one vector
    when it is 1-D, otherwise a stack of matrices of right-hand sides; batch axes broadcast.
    Its gradient is one more solve with ``a``'s transpose, never an inverse.

    >>> from symgrad import var
    >>> solve(var("A", shape=("n", 3, 3)), var("b", shape=(3,))).shape
    ('n', 3)
    """
    a, b = _lifted(a, b)
    _square(a.shape)
    matrices, vector = _as_matrices(b)
    x = apply("solve", a, matrices)
    return squeeze(x, -1) if vector else x


def _inv_vjp(g, out, a):
    # d(A^-1) = -A^-1 dA A^-1, whose adjoint is -A^-T g A^-T
    inverse_t = swap_last_axes(out)
    return [-(inverse_t @ g @ inverse_t)]


defop("inv", 1, lambda shapes: _square(shapes[0]) + shapes[0][-2:],
      "np.linalg.inv({0})", _inv_vjp, loop=None, sparsity=per_matrix_sparsity)


@public("inv")
def inv(a):
    """The inverse of each square matrix of ``a``, as ``np.linalg.inv``.

    >>> from symgrad import var
    >>> inv(var("A", shape=(3, 3))).shape
    (3, 3)
    """
    return apply("inv", a)


# -- determinants ---------------------------------------------------------------------------------------


def _det_vjp(g, out, a):
    # d det A = det A tr(A^-1 dA). At a singular A the inverse does not exist and NumPy raises
    # LinAlgError when the gradient is computed, although the derivative (the adjugate's
    # transpose) does: JAX's rule reaches it through an LU with cofactors, ours does not
    return [_scaled(g * out, swap_last_axes(apply("inv", a)))]


defop("det", 1, lambda shapes: _square(shapes[0]), "np.linalg.det({0})", _det_vjp, loop=None,
      sparsity=per_matrix_sparsity)


@public("det")
def det(a):
    """The determinant of each square matrix of ``a``, as ``np.linalg.det``. Its gradient is
    ``det(a) inv(a)^T`` (Giles 2008): it needs ``a`` invertible, and computing it at a singular
    ``a`` raises NumPy's LinAlgError, where JAX gives the adjugate's transpose.

    >>> from symgrad import var
    >>> det(var("A", shape=("n", 3, 3))).shape
    ('n',)
    """
    return apply("det", a)


def _emit_slogdet(ctx):
    return f"np.stack(np.linalg.slogdet({ctx.args[0]}), axis=-1)"


def _slogdet_vjp(g, out, a):
    # the sign is piecewise constant: only log|det A| has a derivative, tr(A^-1 dA)
    return [_scaled(getitem(g, (Ellipsis, 1)), swap_last_axes(apply("inv", a)))]


defop("slogdet", 1, lambda shapes: _square(shapes[0]) + (2,), _emit_slogdet, _slogdet_vjp,
      loop=None, sparsity=per_matrix_sparsity)

SlogdetResult = collections.namedtuple("SlogdetResult", ["sign", "logabsdet"])


@public("slogdet")
def slogdet(a):
    """``(sign, logabsdet)`` of the determinant of each square matrix of ``a``, as
    ``np.linalg.slogdet``: two expressions, slices of one op's result (the pair packed along a
    last axis). The sign has no gradient; ``d logabsdet = tr(a^-1 da)``.

    >>> from symgrad import var
    >>> sign, logdet = slogdet(var("A", shape=(3, 3)))
    >>> logdet.shape
    ()
    """
    packed = apply("slogdet", a)
    return SlogdetResult(getitem(packed, (Ellipsis, 0)), getitem(packed, (Ellipsis, 1)))


# -- the Cholesky factor --------------------------------------------------------------------------------


def _symmetric(x):
    return 0.5 * (x + swap_last_axes(x))


def _cholesky_vjp(g, out, a):
    # Murray 2016: with Phi(X) the lower triangle of X with its diagonal halved, the gradient is
    # L^-T Phi(L^T g) L^-1 taken over symmetric perturbations of A, so symmetrised, as JAX,
    # PyTorch and autograd give it. The two solves with L^T go through solve, which every
    # backend has (a triangular solve needs SciPy)
    size = out.shape[-1]
    halved = np.tril(np.ones((size, size))) - 0.5 * np.eye(size)
    phi = (swap_last_axes(out) @ g) * const(halved.astype(out.dtype), out.graph)
    transposed = swap_last_axes(out)
    right = apply("solve", transposed, phi)
    return [_symmetric(apply("solve", transposed, swap_last_axes(right)))]


defop("cholesky", 1, lambda shapes: _square(shapes[0]) + shapes[0][-2:],
      "np.linalg.cholesky({0})", _cholesky_vjp, loop=None, sparsity=per_matrix_sparsity)


@public("cholesky", static=("upper",))
@op_function("cholesky")
def cholesky(a, upper=False):
    """The lower Cholesky factor ``L`` of each symmetric positive-definite matrix of ``a``
    (``a = L L^T``), or its transpose with ``upper=True``, as ``np.linalg.cholesky``, which reads
    only the lower triangle of ``a``. The gradient is symmetric, as in JAX, PyTorch and autograd:
    it is the derivative along symmetric perturbations of ``a`` (Murray 2016), so it is the
    gradient of a function of a symmetric ``a``, not of ``a``'s lower triangle alone.

    >>> from symgrad import var
    >>> cholesky(var("K", shape=(3, 3))).shape
    (3, 3)
    """
    (a,) = _lifted(a)
    _square(a.shape)
    _static_matrix(a, "the derivative")
    factor = apply("cholesky", a)
    return swap_last_axes(factor) if upper else factor


# -- triangular solves (SciPy's) ---------------------------------------------------------------------


def _emit_solve_triangular(ctx):
    flags = "".join([", trans=1" if ctx.attrs["trans"] else "",
                     ", lower=True" if ctx.attrs["lower"] else "",
                     ", unit_diagonal=True" if ctx.attrs["unit_diagonal"] else ""])
    return f"{ctx.library('linalg')}.solve_triangular({ctx.args[0]}, {ctx.args[1]}{flags})"


def _kept_triangle(x, lower, unit_diagonal):
    """The entries of ``x`` SciPy reads of a triangular matrix: its triangle, less the diagonal
    when the diagonal is taken to be ones."""
    k = -1 if unit_diagonal else 0
    return tril(x, k) if lower else triu(x, -k)


def _solve_triangular_vjp(g, out, a, b, trans, lower, unit_diagonal):
    # op(A) X = B with op(A) = A or A^T: B's cotangent solves with op(A)^T, the same triangle;
    # A's is -B_bar X^T (or -X B_bar^T for A^T), kept to the triangle SciPy reads
    grad_b = apply("solve_triangular", a, g, trans=1 - trans, lower=lower,
                   unit_diagonal=unit_diagonal)
    grad_a = -(out @ swap_last_axes(grad_b)) if trans else -(grad_b @ swap_last_axes(out))
    leading = _leading(g, out)
    return [unbroadcast(_kept_triangle(grad_a, lower, unit_diagonal), a.shape, leading),
            unbroadcast(grad_b, b.shape, leading)]


defop("solve_triangular", 2, _solve_shape, _emit_solve_triangular, _solve_triangular_vjp,
      loop=None, sparsity=_solve_sparsity)

_TRANS = {0: 0, 1: 1, 2: 1, "N": 0, "T": 1, "C": 1}


@public("solve_triangular", static=("trans", "lower", "unit_diagonal"))
@op_function("solve_triangular", operands=2)
def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False):
    """The solution ``x`` of ``a x = b`` (``trans=1``: ``a^T x = b``) for triangular ``a``, as
    ``scipy.linalg.solve_triangular``: only the lower (``lower=True``) or upper triangle of ``a``
    is read, less the diagonal with ``unit_diagonal=True``, and ``a``'s gradient lies in that
    triangle. ``b`` is one vector when 1-D; batch axes broadcast. Its NumPy form calls SciPy,
    which the array-API backend refuses.

    >>> from symgrad import var
    >>> solve_triangular(var("L", shape=(3, 3)), var("b", shape=(3, 2)), lower=True).shape
    (3, 2)
    """
    if isinstance(trans, bool) or trans not in _TRANS:
        raise ArgumentError(f"solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', "
                            f"got {trans!r}")
    a, b = _lifted(a, b)
    _square(a.shape)
    _static_matrix(a, "the derivative")
    matrices, vector = _as_matrices(b)
    x = apply("solve_triangular", a, matrices, trans=_TRANS[trans], lower=bool(lower),
              unit_diagonal=bool(unit_diagonal))
    return squeeze(x, -1) if vector else x


def cho_solve(c_and_lower, b):
    """SciPy's ``cho_solve((c, lower), b)``: the solution of ``A x = b`` given ``A``'s Cholesky
    factor ``c``, lower or upper as ``lower`` says: two triangular solves."""
    try:
        c, lower = c_and_lower
    except (TypeError, ValueError, SymgradError):      # an expression is not iterable
        raise ArgumentError("cho_solve takes (c, lower) as its first argument") from None
    first = solve_triangular(c, b, trans=0 if lower else 1, lower=lower)
    return solve_triangular(c, first, trans=1 if lower else 0, lower=lower)


# -- the pseudo-inverse and least squares ----------------------------------------------------------


def _pinv_shape(shapes):
    (a,) = shapes
    if len(a) < 2:
        raise ShapeError(f"a must have at least two dimensions, got shape {a}")
    return a[:-2] + (a[-1], a[-2])


def _pinv_vjp(g, out, a):
    # Golub and Pereyra 1973: where A's rank is constant, dP = -P dA P + P P^T dA^T (I - A P)
    # + (I - P A) dA^T P^T P for P = A^+; its adjoint, term by term, without identity matrices
    p, p_t, g_t = out, swap_last_axes(out), swap_last_axes(g)
    left = g_t @ (p @ p_t)
    right = (p_t @ p) @ g_t
    return [-(p_t @ g @ p_t) + left - a @ (p @ left) + right - (right @ p) @ a]


defop("pinv", 1, _pinv_shape, "np.linalg.pinv({0})", _pinv_vjp, loop=None,
      sparsity=per_matrix_sparsity)


@public("pinv")
def pinv(a):
    """The Moore-Penrose pseudo-inverse of each matrix of ``a``, as ``np.linalg.pinv`` (its
    default cut-off of small singular values). Its derivative (Golub and Pereyra 1973) exists
    only where ``a``'s rank is constant around the point: at full rank, or where the singular
    values cut off stay exactly zero; where a singular value crosses the cut-off the
    pseudo-inverse jumps and the derivative given is that of the rank on one side.

    >>> from symgrad import var
    >>> pinv(var("A", shape=(4, 3))).shape
    (3, 4)
    """
    return apply("pinv", a)


def _emit_singular_values(ctx):
    return f"np.linalg.svdvals({ctx.args[0]})"


defop("lstsq_singular_values", 1, lambda shapes: shapes[0][:-2] + (min(shapes[0][-2:]),),
      _emit_singular_values, lambda g, out, a: [None], nondifferentiable=(0,), loop=None)


@public("lstsq")
@op_function("lstsq", operands=2)
def lstsq(a, b):
    """``(x, residuals, rank, s)`` of the least-squares solution of ``a x = b``, as
    ``np.linalg.lstsq`` with its default ``rcond``: ``x = pinv(a) @ b`` and its derivative,
    pinv's (constant rank). ``residuals``, the squared norms of ``b - a x``, has shape (k,) (or
    (1,) for a vector ``b``) where ``a`` has more rows than columns and (0,) otherwise: its
    shape is decided when the expression is built, which agrees with NumPy at full column rank.
    ``rank`` and ``s`` (the singular values of ``a``) carry no gradient; ``rank`` is a floating
    count.

    >>> from symgrad import var
    >>> x, residuals, rank, s = lstsq(var("A", shape=(5, 3)), var("b", shape=(5,)))
    >>> x.shape, residuals.shape
    ((3,), (1,))
    """
    a, b = _lifted(a, b)
    if a.ndim != 2 or b.ndim not in (1, 2):
        raise ShapeError(f"a must be a matrix and b a vector or a matrix, got shapes "
                         f"{a.shape} and {b.shape}")
    if not static_shape(a.shape):
        raise ShapeError(f"a must be a matrix of static size, got shape {a.shape}")
    if b.shape[0] != a.shape[0]:
        raise ShapeError(f"a has {a.shape[0]} rows but b has {b.shape[0]}")
    x = matmul(apply("pinv", a), b)
    rows, columns = a.shape
    if rows > columns:
        misfit = matmul(a, x) - b
        residuals = reduce_sum(misfit * misfit, axis=0)
        residuals = reshape(residuals, (1,)) if b.ndim == 1 else residuals
    else:
        residuals = const(np.zeros((0,), dtype=a.dtype), a.graph)
    s = apply("lstsq_singular_values", a)
    # NumPy's default cut-off: eps times the larger dimension, relative to the largest value
    cutoff = reduce_max(s, axis=-1, keepdims=True) * (np.finfo(a.dtype).eps * max(rows, columns))
    rank = reduce_sum(apply("greater", s, cutoff))
    return x, residuals, rank, s


# -- products of matrices -------------------------------------------------------------------------


@public("matrix_power", static=("n",))
@op_function("matrix_power")
def matrix_power(a, n):
    """``a`` raised to the integer power ``n`` by repeated squaring, as ``np.linalg.matrix_power``:
    the identity for ``n = 0``, powers of the inverse for negative ``n``. Built of matmul and
    inv, whose rules give its derivatives.

    >>> from symgrad import var
    >>> matrix_power(var("A", shape=(3, 3)), -2).shape
    (3, 3)
    """
    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        raise ArgumentError(f"matrix_power: n must be an int, got {n!r}")
    (a,) = _lifted(a)
    _square(a.shape)
    if n == 0:
        _static_matrix(a, "the identity of power 0")
        identity = const(np.eye(a.shape[-1], dtype=a.dtype), a.graph)
        return broadcast_to_like(identity, a)
    base = apply("inv", a) if n < 0 else a
    power, result = abs(int(n)), None
    while power:
        if power & 1:
            result = base if result is None else result @ base
        power >>= 1
        if power:
            base = base @ base
    return result


def _chain_order(dims):
    """NumPy's multi_dot order: split[i][j] is where the optimal product of matrices i..j
    splits, for matrices of shapes (dims[i], dims[i + 1])."""
    count = len(dims) - 1
    cost = [[0] * count for _ in range(count)]
    split = [[0] * count for _ in range(count)]
    for length in range(1, count):
        for i in range(count - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                trial = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or trial < cost[i][j]:
                    cost[i][j], split[i][j] = trial, k
    return split


def _chained(arrays, split, i, j):
    # the recursion is as deep as the chain is long: a handful of matrices
    if i == j:
        return arrays[i]
    k = split[i][j]
    return _chained(arrays, split, i, k) @ _chained(arrays, split, k + 1, j)


@public("multi_dot")
@op_function("multi_dot", operands="list")
def multi_dot(arrays):
    """The product of a list of matrices, in the order of fewest multiplications, as
    ``np.linalg.multi_dot``: the first may be a vector (a row) and the last a vector (a
    column).

    >>> from symgrad import var
    >>> multi_dot([var("u", shape=(3,)), var("A", shape=(3, 4)), var("B", shape=(4, 2))]).shape
    (2,)
    """
    arrays = _lifted(*arrays)
    if len(arrays) < 2:
        raise ShapeError("needs at least two arrays")
    first, last = arrays[0], arrays[-1]
    matrices = [expand_dims(first, 0) if first.ndim == 1 else first, *arrays[1:-1],
                expand_dims(last, -1) if last.ndim == 1 else last]
    if any(m.ndim != 2 for m in matrices):
        raise ShapeError(f"takes matrices (a vector first or last), got shapes "
                         f"{[e.shape for e in arrays]}")
    dims = [matrices[0].shape[0]] + [m.shape[1] for m in matrices]
    if not static_shape(dims):
        result = matrices[0]
        for m in matrices[1:]:
            result = result @ m
    else:
        result = _chained(matrices, _chain_order(dims), 0, len(matrices) - 1)
    if last.ndim == 1:
        result = squeeze(result, -1)
    if first.ndim == 1:
        result = squeeze(result, 0)
    return result


__all__ = ["cho_solve", "cholesky", "det", "inv", "lstsq", "matrix_power", "multi_dot", "pinv",
           "slogdet", "solve", "solve_triangular"]
