"""``scipy.linalg``'s functions on expressions, with SciPy's names, signatures and defaults
(``cholesky`` gives the upper factor unless ``lower=True``): each builds the ops of
symgrad.ops.matrix (expm: of symgrad.ops.decompositions), differentiable to any order.
Imports errors and ops only.
"""

from ..errors import ArgumentError
from ..ops import matrix
from ..ops.arrays import tril, triu
from ..ops.decompositions import expm
from ..ops.matrix import cho_solve, det, inv, solve_triangular
from ..ops.shape import swap_last_axes


def cholesky(a, lower=False):
    """SciPy's ``cholesky``: the upper factor ``U`` (``a = U^T U``) by default, the lower with
    ``lower=True``; its gradient is symmetric, as np.linalg.cholesky's
    (symgrad.ops.matrix.cholesky)."""
    return matrix.cholesky(a, upper=not lower)


def cho_factor(a, lower=False):
    """SciPy's ``cho_factor``: ``(c, lower)`` for cho_solve. ``c`` is the factor with zeros in
    its other triangle, where SciPy leaves whatever was there."""
    return cholesky(a, lower=lower), bool(lower)


def _symmetric_from_triangle(a, lower):
    """The symmetric matrix whose lower (or upper) triangle is ``a``'s: what LAPACK's symmetric
    solvers read of ``a``."""
    if lower:
        return tril(a) + swap_last_axes(tril(a, -1))
    return triu(a) + swap_last_axes(triu(a, 1))


_ASSUMED = ("gen", "general", "sym", "symmetric", "pos", "positive definite")


def solve(a, b, lower=False, assume_a=None):
    """SciPy's ``solve`` for ``assume_a`` in 'gen' (the default), 'sym' and 'pos': with 'sym' and
    'pos' only the upper triangle of ``a`` is read (the lower with ``lower=True``), as LAPACK's
    solvers read it, so ``a``'s gradient lies in that triangle; 'pos' solves through the
    Cholesky factor. ``b`` is one vector when 1-D."""
    if assume_a is None or assume_a in ("gen", "general"):
        return matrix.solve(a, b)
    if assume_a not in _ASSUMED:
        raise ArgumentError(f"scipy.linalg.solve: assume_a must be one of {', '.join(_ASSUMED)}, "
                            f"got {assume_a!r}")
    full = _symmetric_from_triangle(a, lower)
    if assume_a in ("sym", "symmetric"):
        return matrix.solve(full, b)
    return cho_solve((matrix.cholesky(full), True), b)


__all__ = ["cho_factor", "cho_solve", "cholesky", "det", "expm", "inv", "solve",
           "solve_triangular"]
