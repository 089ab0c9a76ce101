"""``scipy.special``'s functions on expressions, with SciPy's names and semantics: each builds
the op of symgrad.ops.special (or sigmoid's, for expit; logsumexp's and softmax's of
symgrad.ops.reduce), differentiable to any order.
Imports errors and ops only.
"""

from ..errors import SymgradError
from ..ops import reduce
from ..ops.special import erf, erfc, expit, logit, xlogy
from ..ops.special import (beta, betainc, betaln, digamma, erfcinv, erfcx, erfinv, gamma,
                           gammainc, gammaincc, gammaln, gammasgn, i0, i0e, i1, i1e, iv, ive, j0,
                           j1, jn, jv, log_ndtr, multigammaln, ndtr, ndtri, polygamma, psi,
                           rgamma, stdtr, xlog1py, y0, y1, yn)


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """SciPy's ``logsumexp`` (weights ``b``); the sign of a sum with negative weights is not
    offered (its logarithm's derivative would be undefined where the sum changes sign)."""
    if return_sign:
        raise SymgradError("scipy.special.logsumexp: return_sign=True is not supported by symgrad")
    return reduce.logsumexp(a, axis=axis, keepdims=keepdims, b=b)


def _every_axis_when_none(x, axis):
    return tuple(range(x.ndim)) if axis is None else axis


def softmax(x, axis=None):
    """SciPy's ``softmax``: over every axis when ``axis`` is None."""
    return reduce.softmax(x, axis=_every_axis_when_none(x, axis))


def log_softmax(x, axis=None):
    """SciPy's ``log_softmax``: over every axis when ``axis`` is None."""
    return reduce.log_softmax(x, axis=_every_axis_when_none(x, axis))


__all__ = ["erf", "erfc", "expit", "log_softmax", "logit", "logsumexp", "softmax", "xlogy"]
__all__ += ["beta", "betainc", "betaln", "digamma", "erfcinv", "erfcx", "erfinv", "gamma",
            "gammainc", "gammaincc", "gammaln", "gammasgn", "i0", "i0e", "i1", "i1e", "iv", "ive",
            "j0", "j1", "jn", "jv", "log_ndtr", "multigammaln", "ndtr", "ndtri", "polygamma", "psi",
            "rgamma", "stdtr", "xlog1py", "y0", "y1", "yn"]
