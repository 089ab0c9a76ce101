"""Matrix decompositions with NumPy's and SciPy's names and batch axes: eigh and eigvalsh, svd and
svdvals, qr (np.linalg's), expm (scipy.linalg's), and the matrix norms of singular values
(``norm``'s ord 2, -2 and "nuc"). Their derivative rules are written in ops, so they nest.

symgrad has no node of several results. A decomposition is one op whose result packs its factors
into one array, and its public function returns slices of it: the factors come from one LAPACK
call, the op's rule receives one cotangent (the slices' adjoints put each factor's cotangent in its
place), and every pass and backend handles it as any other op. The packed layouts:

    eigh  (..., n + 1, n)        row 0 the eigenvalues, rows 1.. the eigenvectors
    svd   (..., k, m + 1 + n)    per singular value: its column of U, the value, its row of Vh
    qr    (..., m + 2 n, n)      Q, then R, then R⁻¹ (which R's rule needs: m >= n)

The matrix axes must have static lengths (batch axes may be named): a packed length is a sum of
them.

Imports ops.core, ops.shape, ops.elementwise, ops.reduce and ops.arrays.
"""

import collections

import numpy as np

from ..errors import ArgumentError, ShapeError
from .arrays import moveaxis
from .core import Expr, apply, defop, graph_of, lift, literal, op_function, public
from .elementwise import where
from .matrix import per_matrix_sparsity
from .reduce import MATRIX_NORMS_OF_SINGULAR_VALUES, max as reduce_max, min as reduce_min
from .reduce import sum as reduce_sum
from .shape import (_FULL, broadcast_to_like, concatenate, expand_dims, swap_last_axes,
                    zeros_like)

# NumPy's result types: a tuple, whose factors are also named as NumPy names them
EighResult = collections.namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
SVDResult = collections.namedtuple("SVDResult", ["U", "S", "Vh"])
QRResult = collections.namedtuple("QRResult", ["Q", "R"])


def _matrix_lengths(shape):
    """The static (rows, columns) of the matrices of ``shape``."""
    if len(shape) < 2:
        raise ShapeError(f"needs matrices (at least two dimensions), got shape {shape}")
    rows, columns = shape[-2:]
    if not isinstance(rows, int) or not isinstance(columns, int):
        raise ShapeError(f"needs static lengths for the matrix axes, got {rows} x {columns} "
                         f"(the factors are packed into one array, whose length would be a sum "
                         f"of them)")
    return rows, columns


def _square_length(shape):
    rows, columns = _matrix_lengths(shape)
    if rows != columns:
        raise ShapeError(f"needs square matrices, got {rows} x {columns}")
    return rows


def _lifted(a):
    """An operand as an expression (a NumPy array becomes a constant)."""
    graph = graph_of(a)
    return lift(a, graph, a.dtype if isinstance(a, Expr) else "float64")


def _rows(x, start, stop=None):
    return x[..., start:stop, :]


def _columns(x, start, stop=None):
    return x[..., start:stop]


def _diagonal_matrix(v):
    """The matrices with the vectors ``v`` (..., n) on their diagonals."""
    n = v.shape[-1]
    return expand_dims(v, -1) * lift(np.eye(n, dtype=v.dtype), v.graph)


def _gap_reciprocals(values):
    """F[..., i, j] = 1 / (values_j - values_i) off the diagonal, 0 on it: inf where two values
    are equal (NumPy warns), where the derivative does not exist or the rule cannot give it."""
    n = values.shape[-1]
    off_diagonal = lift(~np.eye(n, dtype=bool), values.graph)
    gaps = expand_dims(values, -2) - expand_dims(values, -1)
    return where(off_diagonal, 1.0 / where(off_diagonal, gaps, 1.0), 0.0)


def _symmetric_part(m):
    return 0.5 * (m + swap_last_axes(m))


def _new_axis_before_last(ctx, source):
    return ctx.item(source, (Ellipsis, ("newaxis",), _FULL))


def _swapped_last(ctx, source, ndim):
    axes = list(range(ndim))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return f"np.transpose({source}, {literal(tuple(axes))})"


# -- eigh: symmetric eigendecomposition -------------------------------------------------------------


def _eigh_shape(shapes, UPLO):
    n = _square_length(shapes[0])
    return tuple(shapes[0][:-2]) + (n + 1, n)


def _emit_eigh(ctx):
    w, v = ctx.temp("w"), ctx.temp("v")
    return [f"{w}, {v} = np.linalg.eigh({ctx.args[0]}, UPLO={ctx.attrs['UPLO']!r})",
            f"{ctx.out} = np.concatenate(({_new_axis_before_last(ctx, w)}, {v}), axis=-2)",
            f"del {w}, {v}"]


def _eigh_vjp(g, out, a, UPLO):
    # Giles 2008, 3.1: Ā = V (diag(w̄) + F ∘ (Vᵀ V̄)) Vᵀ with F_ij = 1 / (w_j - w_i); its
    # symmetric part, because eigh reads a symmetric matrix (JAX's and PyTorch's convention)
    w, v = _rows(out, 0, 1)[..., 0, :], _rows(out, 1)
    w_bar, v_bar = _rows(g, 0, 1)[..., 0, :], _rows(g, 1)
    vt = swap_last_axes(v)
    inner = _diagonal_matrix(w_bar) + _gap_reciprocals(w) * (vt @ v_bar)
    return [_symmetric_part(v @ inner @ vt)]


defop("eigh", 1, _eigh_shape, _emit_eigh, _eigh_vjp, loop=None, sparsity=per_matrix_sparsity)


def _uplo(UPLO):
    if UPLO not in ("L", "U"):
        raise ArgumentError(f"eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    return UPLO


@public("eigh", static=("UPLO",))
@op_function("eigh")
def eigh(a, UPLO="L"):
    """The eigenvalues (ascending) and eigenvectors of the symmetric matrices ``a``, as
    ``np.linalg.eigh``: only the ``UPLO`` triangle is read.

    Derivatives (Giles 2008): the function is taken as one of symmetric matrices, so its
    gradient is the symmetric one, ``(Ā + Āᵀ) / 2``, as JAX's and PyTorch's; a perturbation
    of one triangle alone has another derivative. The eigenvalues' derivative exists
    everywhere (``V diag(w̄) Vᵀ``: take them from eigvalsh, whose rule is exact at repeated
    eigenvalues); the eigenvectors' only where the eigenvalues are distinct: it grows as
    ``1 / (w_j - w_i)`` as two approach each other, and where two are equal it is inf or nan,
    as JAX's, and NumPy warns (divide by zero). That includes the eigenvalues taken from eigh's
    result, second derivatives of eigenvalue functions and functions that have a derivative
    there (``V f(w) Vᵀ``), which the rule cannot give at an exact tie. An eigenvector's sign is
    LAPACK's choice: differentiate functions that do not depend on it.

    >>> from symgrad import var
    >>> w, v = eigh(var("A", shape=(3, 3)))
    >>> w.shape, v.shape
    ((3,), (3, 3))
    """
    packed = apply("eigh", _lifted(a), UPLO=_uplo(UPLO))
    return EighResult(_rows(packed, 0, 1)[..., 0, :], _rows(packed, 1))


# The eigenvalues alone are an op of their own, whose rule V diag(w̄) Vᵀ (eigenvectors from the
# eigh op of the same matrix) is exact at repeated eigenvalues: eigh's rule would meet there
# the reciprocal gaps, inf, times the eigenvectors' zero cotangent
def _eigvalsh_shape(shapes, UPLO):
    return tuple(shapes[0][:-2]) + (_square_length(shapes[0]),)


def _eigvalsh_vjp(g, out, a, UPLO):
    v = _rows(apply("eigh", a, UPLO=UPLO), 1)
    return [_symmetric_part((v * expand_dims(g, -2)) @ swap_last_axes(v))]


def _emit_eigvalsh(ctx):
    return f"np.linalg.eigvalsh({ctx.args[0]}, UPLO={ctx.attrs['UPLO']!r})"


defop("eigvalsh", 1, _eigvalsh_shape, _emit_eigvalsh, _eigvalsh_vjp, loop=None,
      sparsity=per_matrix_sparsity)


@public("eigvalsh", static=("UPLO",))
@op_function("eigvalsh")
def eigvalsh(a, UPLO="L"):
    """The eigenvalues of the symmetric matrices ``a``, ascending, as ``np.linalg.eigvalsh``;
    their derivative ``V diag(w̄) Vᵀ`` (symmetric, see eigh) holds at repeated eigenvalues too,
    where the eigenvalues taken from eigh's result have none (see eigh).

    >>> from symgrad import var
    >>> eigvalsh(var("A", shape=("b", 3, 3))).shape
    ('b', 3)
    """
    return apply("eigvalsh", _lifted(a), UPLO=_uplo(UPLO))


# -- svd: singular value decomposition --------------------------------------------------------------


def _svd_shape(shapes):
    m, n = _matrix_lengths(shapes[0])
    return tuple(shapes[0][:-2]) + (min(m, n), m + 1 + n)


def _emit_svd(ctx):
    u, s, vh = ctx.temp("u"), ctx.temp("s"), ctx.temp("vh")
    ndim = len(ctx.shapes[0])
    s_column = ctx.item(s, (Ellipsis, _FULL, ("newaxis",)))
    return [f"{u}, {s}, {vh} = np.linalg.svd({ctx.args[0]}, full_matrices=False)",
            f"{ctx.out} = np.concatenate(({_swapped_last(ctx, u, ndim)}, {s_column}, {vh}), "
            f"axis=-1)",
            f"del {u}, {s}, {vh}"]


def _svd_factors(packed, m):
    """(U, S, Vh) of a packed svd result or cotangent."""
    return (swap_last_axes(_columns(packed, 0, m)), _columns(packed, m, m + 1)[..., 0],
            _columns(packed, m + 1))


def _svd_vjp(g, out, a):
    # Townsend 2016, "Differentiating the Singular Value Decomposition", for the thin SVD:
    # Ā = U [(F ∘ (UᵀŪ - ŪᵀU)) S + diag(S̄) + S (F ∘ (VᵀV̄ - V̄ᵀV))] Vᵀ
    #     + (I - UUᵀ) Ū S⁻¹ Vᵀ + U S⁻¹ V̄ᵀ (I - VVᵀ),   F_ij = 1 / (s_j² - s_i²),
    # the last two terms only where U (or V) has fewer columns than rows
    m, n = a.shape[-2:]
    u, s, vh = _svd_factors(out, m)
    u_bar, s_bar, vh_bar = _svd_factors(g, m)
    ut, v = swap_last_axes(u), swap_last_axes(vh)
    f = _gap_reciprocals(s * s)
    ut_u_bar, vh_vh_bar = ut @ u_bar, vh @ swap_last_axes(vh_bar)     # UᵀŪ, VᵀV̄
    left = f * (ut_u_bar - swap_last_axes(ut_u_bar))
    right = f * (vh_vh_bar - swap_last_axes(vh_vh_bar))
    core = left * expand_dims(s, -2) + _diagonal_matrix(s_bar) + expand_dims(s, -1) * right
    grad = u @ core @ vh
    if m > n:
        grad = grad + ((u_bar - u @ ut_u_bar) / expand_dims(s, -2)) @ vh
    if n > m:
        grad = grad + u @ ((vh_bar - (vh_bar @ v) @ vh) / expand_dims(s, -1))
    return [grad]


defop("svd", 1, _svd_shape, _emit_svd, _svd_vjp, loop=None, sparsity=per_matrix_sparsity)


@public("svd", static=("full_matrices", "compute_uv", "hermitian"))
@op_function("svd")
def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """The singular value decomposition ``a = U diag(S) Vh`` of the matrices ``a``, as
    ``np.linalg.svd`` (``S`` descending); with ``compute_uv=False``, ``S`` alone.
    ``full_matrices=True`` (NumPy's default) is the thin decomposition for square matrices; for
    others the columns it adds to U (or rows to Vh) are any basis of a complement, which has no
    derivative: it is refused, pass ``full_matrices=False``. ``hermitian`` is accepted and
    changes nothing (the general algorithm serves).

    Derivatives (Townsend 2016): the singular values' derivative is ``U diag(S̄) Vh`` (at a zero
    singular value it is that of LAPACK's U and Vh: |x| has a kink there); U's and Vh's exist
    only for distinct singular values (and nonzero ones, for a matrix that is not square) and
    grow as ``1 / (s_j² - s_i²)`` as two approach; at exactly equal (or zero) values they are
    inf or nan and NumPy warns, as for eigh (svdvals, or compute_uv=False, is exact there). Signs
    of the singular vectors are LAPACK's: differentiate functions that do not depend on them
    (``U diag(S) Vh``, ``|U|``...).

    >>> from symgrad import var
    >>> [e.shape for e in svd(var("A", shape=(4, 3)), full_matrices=False)]
    [(4, 3), (3,), (3, 3)]
    """
    a = _lifted(a)
    if not compute_uv:
        return apply("svdvals", a)
    u, s, vh = _svd_factors(apply("svd", a), a.shape[-2])
    if full_matrices and a.shape[-2] != a.shape[-1]:
        raise ArgumentError(f"svd: full_matrices=True of {a.shape[-2]} x {a.shape[-1]} matrices "
                            f"adds an arbitrary basis of a complement to U or Vh, which has no "
                            f"derivative; pass full_matrices=False")
    return SVDResult(u, s, vh)


# The singular values alone are an op of their own, as the eigenvalues are (eigvalsh): their
# rule U diag(S̄) Vh is exact at repeated and zero singular values
def _svdvals_shape(shapes):
    return tuple(shapes[0][:-2]) + (min(_matrix_lengths(shapes[0])),)


def _svdvals_vjp(g, out, a):
    u, _, vh = _svd_factors(apply("svd", a), a.shape[-2])
    return [(u * expand_dims(g, -2)) @ vh]


defop("svdvals", 1, _svdvals_shape, "np.linalg.svd({0}, compute_uv=False)", _svdvals_vjp,
      loop=None, sparsity=per_matrix_sparsity)


@public("svdvals")
@op_function("svdvals")
def svdvals(x):
    """The singular values of the matrices ``x``, descending, as ``np.linalg.svdvals``; their
    derivative is ``U diag(S̄) Vh`` (see svd), at repeated or zero singular values too.

    >>> from symgrad import var
    >>> svdvals(var("A", shape=("b", 2, 3))).shape
    ('b', 2)
    """
    return apply("svdvals", _lifted(x))


def _singular_value_norm(reduce):
    def matrix_norm(x, rows, columns):
        """The norm over axes ``rows`` and ``columns`` of ``x``, both kept."""
        values = svdvals(moveaxis(x, (rows, columns), (-2, -1)))
        result = reduce(values, axis=-1, keepdims=True)
        return moveaxis(expand_dims(result, -1), (-2, -1), tuple(sorted((rows, columns))))
    return matrix_norm


# norm's ord 2 (the largest singular value), -2 (the smallest) and "nuc" (their sum)
MATRIX_NORMS_OF_SINGULAR_VALUES.update({2: _singular_value_norm(reduce_max),
                                        -2: _singular_value_norm(reduce_min),
                                        "nuc": _singular_value_norm(reduce_sum)})


# -- qr ---------------------------------------------------------------------------------------------


def _qr_shape(shapes):
    m, n = _matrix_lengths(shapes[0])
    if m < n:
        raise ShapeError(f"the packed QR op takes matrices with at least as many rows as "
                         f"columns, got {m} x {n}")
    return tuple(shapes[0][:-2]) + (m + 2 * n, n)


def _emit_qr(ctx):
    q, r = ctx.temp("q"), ctx.temp("r")
    return [f"{q}, {r} = np.linalg.qr({ctx.args[0]})",
            f"{ctx.out} = np.concatenate(({q}, {r}, np.linalg.inv({r})), axis=-2)",
            f"del {q}, {r}"]


def _qr_vjp(g, out, a):
    # With A = QR (m >= n), C = Qᵀ dA R⁻¹ = QᵀdQ + dR R⁻¹: a skew part (QᵀdQ, set by C's strict
    # lower triangle) plus an upper triangular one. Its adjoint: Ā = (Q̄ + Q N) R⁻ᵀ, N the
    # symmetric matrix whose upper triangle is M = R̄Rᵀ - QᵀQ̄ (the rule JAX and PyTorch use).
    # R⁻¹ is a third factor of the packed result, dR⁻¹ = -R⁻¹ dR R⁻¹: its cotangent joins R̄.
    m, n = a.shape[-2:]
    q, r, r_inverse = _rows(out, 0, m), _rows(out, m, m + n), _rows(out, m + n)
    q_bar, r_bar, r_inverse_bar = _rows(g, 0, m), _rows(g, m, m + n), _rows(g, m + n)
    r_inverse_t = swap_last_axes(r_inverse)
    r_bar = r_bar - r_inverse_t @ r_inverse_bar @ r_inverse_t
    m_matrix = r_bar @ swap_last_axes(r) - swap_last_axes(q) @ q_bar
    upper = lift(np.triu(np.ones((n, n), dtype=bool)), a.graph)
    n_matrix = where(upper, m_matrix, swap_last_axes(m_matrix))
    return [(q_bar + q @ n_matrix) @ r_inverse_t]


defop("qr", 1, _qr_shape, _emit_qr, _qr_vjp, loop=None, sparsity=per_matrix_sparsity)


@public("qr", static=("mode",))
@op_function("qr")
def qr(a, mode="reduced"):
    """The QR decomposition of the matrices ``a``, as ``np.linalg.qr``: ``mode="reduced"``
    gives Q (m x k) and R (k x n), k = min(m, n); ``"r"`` R alone; ``"complete"`` the same as
    reduced for m <= n, refused otherwise (Q's added columns are any basis of a complement,
    with no derivative). A wide matrix [X | Y] is factored as X = QU, R = [U | QᵀY], so the
    derivative (the rule for m >= n, Walter & Lehmann 2018) covers every shape. It needs R
    invertible: the matrices of full rank. Signs of Q's columns and R's rows are LAPACK's.

    >>> from symgrad import var
    >>> [e.shape for e in qr(var("A", shape=(4, 3)))]
    [(4, 3), (3, 3)]
    """
    if mode not in ("reduced", "complete", "r"):
        raise ArgumentError(f"qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    a = _lifted(a)
    m, n = _matrix_lengths(a.shape)
    if mode == "complete" and m > n:
        raise ArgumentError(f"qr: mode='complete' of {m} x {n} matrices adds an arbitrary basis "
                            f"of a complement to Q, which has no derivative; use "
                            f"mode='reduced'")
    if m >= n:
        packed = apply("qr", a)
        q, r = _rows(packed, 0, m), _rows(packed, m, m + n)
    else:
        packed = apply("qr", _columns(a, 0, m))
        q, u = _rows(packed, 0, m), _rows(packed, m, 2 * m)
        r = concatenate([u, swap_last_axes(q) @ _columns(a, m)], axis=-1)
    return r if mode == "r" else QRResult(q, r)


# -- expm: the matrix exponential -------------------------------------------------------------------


def _expm_shape(shapes):
    _square_length(shapes[0])
    return tuple(shapes[0])


def _emit_expm(ctx):
    return f"{ctx.library('linalg')}.expm({ctx.args[0]})"


def _expm_vjp(g, out, a):
    # The adjoint of the Fréchet derivative L(A, ·) is L(Aᵀ, ·), and L(X, E) is the upper right
    # block of expm([[X, E], [0, X]]) (Higham 2008, 3.2): made of expm, so it nests
    n = a.shape[-1]
    at = broadcast_to_like(swap_last_axes(a), g)
    block = concatenate([concatenate([at, g], axis=-1),
                         concatenate([zeros_like(at), at], axis=-1)], axis=-2)
    return [_columns(_rows(apply("expm", block), 0, n), n)]


defop("expm", 1, _expm_shape, _emit_expm, _expm_vjp, loop=None, sparsity=per_matrix_sparsity)


@public("expm")
@op_function("expm")
def expm(A):
    """The matrix exponential of the square matrices ``A``, as ``scipy.linalg.expm`` (batch axes
    in front). Its derivative is the Fréchet derivative, computed as a block of the exponential
    of a matrix twice the size (so it nests to any order).

    >>> from symgrad import var
    >>> expm(var("A", shape=(3, 3))).shape
    (3, 3)
    """
    return apply("expm", _lifted(A))


# the ops whose NumPy form calls SciPy (scipy.linalg)
USES_SCIPY = ("expm",)

__all__ = ["eigh", "eigvalsh", "svd", "svdvals", "qr", "expm", "EighResult", "SVDResult",
           "QRResult"]
