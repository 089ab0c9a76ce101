"""``scipy.stats``' densities on expressions, as SciPy's distributions are called without freezing
them: ``norm.logpdf(x, loc=0, scale=1)``, ``poisson.logpmf(k, mu)``. Each is a composition of
symgrad's ops, differentiable to any order, and as stable in the tails as SciPy's own
(``norm.logcdf`` is ``log_ndtr``, never the logarithm of ``ndtr``). A distribution function's
derivative with respect to a shape parameter (gamma's ``a``, t's ``df``...) has no closed form in
SciPy's functions and is refused (UndefinedGradientError); with respect to x, loc and scale it
is offered. Arguments are taken inside the support: outside it, where SciPy answers -inf or 0,
the formulas may give nan.
Imports errors and ops only.
"""

import math

import numpy as np

from ..ops import Expr, exp, log, log1p, sum
from ..ops.arrays import diag, diagonal
from ..ops.elementwise import floor
from ..ops.matrix import cholesky, solve_triangular
from ..ops.shape import expand_dims
from ..ops.special import (betainc, betaln, gammainc, gammaincc, gammaln, log_ndtr, ndtr, stdtr,
                           xlog1py, xlogy)

_LOG_SQRT_TWO_PI = 0.5 * math.log(2.0 * math.pi)
_LOG_TWO = math.log(2.0)


def _standardized(x, loc, scale):
    return (x - loc) / scale


class _Distribution:
    """A SciPy distribution's functions, whose ``pdf`` and ``pmf`` are the exponentials of their
    logarithms (each distribution defines ``logpdf`` or ``logpmf``)."""

    name = None

    def pdf(self, x, *args, **kwargs):
        return exp(self.logpdf(x, *args, **kwargs))

    def pmf(self, k, *args, **kwargs):
        return exp(self.logpmf(k, *args, **kwargs))

    def logcdf(self, x, *args, **kwargs):
        # SciPy's own, for the distributions whose cdf is an incomplete gamma or beta function:
        # those keep their relative accuracy in the lower tail, so their logarithm does too
        return log(self.cdf(x, *args, **kwargs))

    def __repr__(self):
        return f"symgrad.scipy.stats.{self.name}"


class _Norm(_Distribution):
    """The normal distribution: ``norm.logpdf(x, loc=0, scale=1)`` and its pdf, cdf, logcdf, sf,
    logsf; the logarithms of the distribution functions are log_ndtr, accurate in both tails."""

    name = "norm"

    def logpdf(self, x, loc=0.0, scale=1.0):
        z = _standardized(x, loc, scale)
        return -0.5 * (z * z) - _LOG_SQRT_TWO_PI - log(scale)

    def cdf(self, x, loc=0.0, scale=1.0):
        return ndtr(_standardized(x, loc, scale))

    def logcdf(self, x, loc=0.0, scale=1.0):
        return log_ndtr(_standardized(x, loc, scale))

    def sf(self, x, loc=0.0, scale=1.0):
        return ndtr(-_standardized(x, loc, scale))

    def logsf(self, x, loc=0.0, scale=1.0):
        return log_ndtr(-_standardized(x, loc, scale))


class _T(_Distribution):
    """Student's t distribution of ``df`` degrees of freedom: logpdf, pdf, and cdf and logcdf
    (stdtr; differentiable in x, loc and scale, not in df)."""

    name = "t"

    def logpdf(self, x, df, loc=0.0, scale=1.0):
        z = _standardized(x, loc, scale)
        return (gammaln(0.5 * (df + 1.0)) - gammaln(0.5 * df) - 0.5 * log(df * math.pi)
                - 0.5 * (df + 1.0) * log1p(z * z / df) - log(scale))

    def cdf(self, x, df, loc=0.0, scale=1.0):
        return stdtr(df, _standardized(x, loc, scale))

    def logcdf(self, x, df, loc=0.0, scale=1.0):
        # the t's tails are polynomial: the distribution function stays a normal number far out
        return log(self.cdf(x, df, loc, scale))


class _Gamma(_Distribution):
    """The gamma distribution of shape ``a``: logpdf, pdf, and cdf (gammainc; not in a)."""

    name = "gamma"

    def logpdf(self, x, a, loc=0.0, scale=1.0):
        y = _standardized(x, loc, scale)
        return xlogy(a - 1.0, y) - y - gammaln(a) - log(scale)

    def cdf(self, x, a, loc=0.0, scale=1.0):
        return gammainc(a, _standardized(x, loc, scale))


class _Beta(_Distribution):
    """The beta distribution of shapes ``a`` and ``b``: logpdf, pdf, and cdf (betainc; not in
    the shapes)."""

    name = "beta"

    def logpdf(self, x, a, b, loc=0.0, scale=1.0):
        y = _standardized(x, loc, scale)
        return xlogy(a - 1.0, y) + xlog1py(b - 1.0, -y) - betaln(a, b) - log(scale)

    def cdf(self, x, a, b, loc=0.0, scale=1.0):
        return betainc(a, b, _standardized(x, loc, scale))


class _Chi2(_Distribution):
    """The chi-squared distribution of ``df`` degrees of freedom: logpdf, pdf, and cdf
    (gammainc(df/2, x/2); not in df)."""

    name = "chi2"

    def logpdf(self, x, df, loc=0.0, scale=1.0):
        y = _standardized(x, loc, scale)
        half = 0.5 * df
        return xlogy(half - 1.0, y) - 0.5 * y - gammaln(half) - _LOG_TWO * half - log(scale)

    def cdf(self, x, df, loc=0.0, scale=1.0):
        return gammainc(0.5 * df, 0.5 * _standardized(x, loc, scale))


class _Poisson(_Distribution):
    """The Poisson distribution of mean ``mu``: logpmf, pmf, and cdf (gammaincc(floor(k)+1, mu),
    differentiable in mu)."""

    name = "poisson"

    def logpmf(self, k, mu, loc=0.0):
        k = k - loc
        return xlogy(k, mu) - gammaln(k + 1.0) - mu

    def cdf(self, k, mu, loc=0.0):
        return gammaincc(floor(k - loc) + 1.0, mu)


class _Binom(_Distribution):
    """The binomial distribution of ``n`` trials of probability ``p``: logpmf and pmf, and cdf
    and logcdf (betainc(n - k, k + 1, 1 - p) for 0 <= k < n, differentiable in p)."""

    name = "binom"

    def logpmf(self, k, n, p, loc=0.0):
        k = k - loc
        combinations = gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)
        return combinations + xlogy(k, p) + xlog1py(n - k, -p)

    def cdf(self, k, n, p, loc=0.0):
        below = floor(k - loc)
        return betainc(n - below, below + 1.0, 1.0 - p)


class _Dirichlet(_Distribution):
    """The Dirichlet distribution of concentrations ``alpha`` (K entries): logpdf and pdf of x,
    whose first axis holds the K components (SciPy's layout; all K of them are given)."""

    name = "dirichlet"

    def logpdf(self, x, alpha):
        alpha = alpha if isinstance(alpha, Expr) else np.asarray(alpha, dtype=float)
        log_normalizer = sum(gammaln(alpha)) - gammaln(sum(alpha))
        # the components lead and further axes of x are points: alpha's K entries meet axis 0
        if np.ndim(x) > 1:
            alpha = alpha.reshape(alpha.shape + (1,) * (np.ndim(x) - 1))
        return sum(xlogy(alpha - 1.0, x), axis=0) - log_normalizer


norm = _Norm()
t = _T()
gamma = _Gamma()
beta = _Beta()
chi2 = _Chi2()
poisson = _Poisson()
binom = _Binom()
dirichlet = _Dirichlet()



class _MultivariateNormal(_Distribution):
    """The multivariate normal: ``multivariate_normal.logpdf(x, mean, cov)`` and its pdf, with
    points along x's last axis (one point when x is 1-D; SciPy reads the dimension from mean and
    cov, so with neither given it takes a 1-D x as points of one dimension). Through the Cholesky
    factor L of cov: -|L⁻¹(x - mean)|²/2 - Σ log diag(L) - k/2 log 2π, one triangular solve
    and never an inverse, so its derivatives in x, mean and cov nest (cov's is symmetric, as
    cholesky's)."""

    name = "multivariate_normal"

    def logpdf(self, x, mean=None, cov=1.0):
        centered = x if mean is None else x - mean
        k = centered.shape[-1]
        if np.ndim(cov) < 2:        # SciPy's scalar or diagonal covariance
            cov = diag(cov * np.ones(k)) if not isinstance(cov, Expr) or cov.ndim == 0 \
                else diag(cov)
        factor = cholesky(cov)
        whitened = solve_triangular(factor, expand_dims(centered, -1), lower=True)
        log_determinant_half = sum(log(diagonal(factor, axis1=-2, axis2=-1)), axis=-1)
        return (-0.5 * sum(whitened * whitened, axis=(-2, -1)) - log_determinant_half
                - k * _LOG_SQRT_TWO_PI)

    def entropy(self, mean=None, cov=1.0):
        """The differential entropy, k/2 (1 + log 2π) + log det(cov) / 2, through cov's Cholesky
        factor; ``mean`` gives the dimension only, as in SciPy."""
        if np.ndim(cov) < 2:
            k = 1 if mean is None else np.shape(mean)[-1]
            cov = diag(cov * np.ones(k)) if not isinstance(cov, Expr) or cov.ndim == 0 \
                else diag(cov)
        factor = cholesky(cov)
        k = factor.shape[-1]
        return (sum(log(diagonal(factor, axis1=-2, axis2=-1)), axis=-1)
                + k * (0.5 + _LOG_SQRT_TWO_PI))


multivariate_normal = _MultivariateNormal()

__all__ = ["beta", "binom", "chi2", "dirichlet", "gamma", "multivariate_normal", "norm", "poisson",
           "t"]
