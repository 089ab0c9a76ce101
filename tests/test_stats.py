"""symgrad.scipy.stats: each density and distribution function against scipy.stats (tails
included), its gradients against central differences and, on scalars, SymPy; and two Laplace
approximations (a Bayesian Poisson GLM with gammaln in its likelihood, a Bayesian logistic GLM,
both with normal priors) whose mode and Hessian match a Newton iteration written in NumPy with
hand-derived gradients and Hessians."""

import mpmath
import numpy as np
import pytest
import scipy.stats
import sympy

import symgrad as sg
import symgrad.scipy.stats as stats
from finite_differences import central_gradient

RNG = np.random.default_rng(19)
X4 = np.array([-1.3, 0.2, 0.9, 2.4])
POSITIVE4 = np.array([0.4, 1.1, 2.5, 7.0])
UNIT4 = np.array([0.05, 0.3, 0.62, 0.97])

# (label, function name, symgrad's and SciPy's distribution, arguments: the first is differentiated
# with the others wherever they are arrays, and the distribution functions' shape parameters are
# constants)
CASES = [
    ("norm-logpdf", "logpdf", stats.norm, scipy.stats.norm, (X4, X4[::-1] * 0.3, POSITIVE4)),
    ("norm-pdf", "pdf", stats.norm, scipy.stats.norm, (X4, 0.5, POSITIVE4)),
    ("norm-cdf", "cdf", stats.norm, scipy.stats.norm, (X4, X4[::-1] * 0.3, POSITIVE4)),
    ("norm-logcdf", "logcdf", stats.norm, scipy.stats.norm, (X4 * 5, 0.5, POSITIVE4)),
    ("norm-sf", "sf", stats.norm, scipy.stats.norm, (X4, -0.2, POSITIVE4)),
    ("norm-logsf", "logsf", stats.norm, scipy.stats.norm, (X4 * 5, 0.5, POSITIVE4)),
    ("t-logpdf", "logpdf", stats.t, scipy.stats.t, (X4, POSITIVE4 + 1.0, X4 * 0.1, POSITIVE4)),
    ("t-pdf", "pdf", stats.t, scipy.stats.t, (X4, POSITIVE4 + 1.0, 0.3, POSITIVE4)),
    ("t-cdf", "cdf", stats.t, scipy.stats.t, (X4, 3.5, X4 * 0.1, POSITIVE4)),
    ("t-logcdf", "logcdf", stats.t, scipy.stats.t, (X4 * 3, 2.5, 0.2, POSITIVE4)),
    ("gamma-logpdf", "logpdf", stats.gamma, scipy.stats.gamma,
     (POSITIVE4 + 0.5, POSITIVE4, -0.3, POSITIVE4[::-1])),
    ("gamma-pdf", "pdf", stats.gamma, scipy.stats.gamma, (POSITIVE4, POSITIVE4[::-1])),
    ("gamma-cdf", "cdf", stats.gamma, scipy.stats.gamma, (POSITIVE4, 2.5, 0.1, POSITIVE4)),
    ("beta-logpdf", "logpdf", stats.beta, scipy.stats.beta, (UNIT4, POSITIVE4, POSITIVE4[::-1])),
    ("beta-pdf", "pdf", stats.beta, scipy.stats.beta, (UNIT4, POSITIVE4, POSITIVE4[::-1])),
    ("beta-cdf", "cdf", stats.beta, scipy.stats.beta, (UNIT4, 2.0, 0.7)),
    ("chi2-logpdf", "logpdf", stats.chi2, scipy.stats.chi2, (POSITIVE4, POSITIVE4[::-1] * 2)),
    ("chi2-pdf", "pdf", stats.chi2, scipy.stats.chi2, (POSITIVE4, 3.0)),
    ("chi2-cdf", "cdf", stats.chi2, scipy.stats.chi2, (POSITIVE4, 3.0)),
    ("poisson-logpmf", "logpmf", stats.poisson, scipy.stats.poisson,
     (POSITIVE4 * 4, np.array([0.0, 2.0, 3.0, 25.0]))),
    ("poisson-pmf", "pmf", stats.poisson, scipy.stats.poisson,
     (POSITIVE4 * 2, np.array([0.0, 2.0, 3.0, 14.0]))),
    ("poisson-cdf", "cdf", stats.poisson, scipy.stats.poisson,
     (POSITIVE4 * 4, np.array([0.0, 2.0, 3.5, 25.0]))),
    ("binom-logpmf", "logpmf", stats.binom, scipy.stats.binom,
     (UNIT4, np.array([0.0, 3.0, 7.0, 12.0]), np.array([10.0, 10.0, 12.0, 12.0]))),
    ("binom-pmf", "pmf", stats.binom, scipy.stats.binom,
     (UNIT4, np.array([0.0, 3.0, 7.0, 12.0]), 12.0)),
]

# the parameter listed first in each case is differentiated, in SciPy's argument position
ORDER = {"poisson": (1, 0), "binom": (2, 0, 1)}


def _call(distribution, function, first, others, order):
    """distribution.function with ``first`` at its SciPy position among ``others``."""
    arguments = list(others)
    arguments.insert(order[0], first)
    return getattr(distribution, function)(*arguments)


@pytest.mark.parametrize("label, function, ours, theirs, arguments", CASES,
                         ids=[case[0] for case in CASES])
def test_values_and_gradient_against_scipy(label, function, ours, theirs, arguments):
    order = ORDER.get(ours.name, (0,))
    first, others = arguments[0], arguments[1:]
    v = sg.var("v", shape=first.shape)
    value = _call(ours, function, v, others, order)
    fn = sg.compile([value, sg.grad(sg.sum(value), v)], inputs=[v])
    got, gradient = fn(first)
    want = _call(theirs, function, first, others, order)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(gradient, central_gradient(
        lambda a: np.sum(_call(theirs, function, a, others, order)), first),
        rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("position", [1, 2])
def test_norm_and_t_differentiate_in_loc_and_scale(position):
    arguments = [X4, X4[::-1] * 0.3, POSITIVE4]
    for name in ("logpdf", "logcdf", "logsf"):
        v = sg.var("v", shape=(4,))
        ours = list(arguments)
        ours[position] = v
        value = sg.sum(getattr(stats.norm, name)(*ours))
        got = sg.compile(sg.grad(value, v), inputs=[v])(arguments[position])

        def reference(a, name=name):
            theirs = list(arguments)
            theirs[position] = a
            return np.sum(getattr(scipy.stats.norm, name)(*theirs))
        np.testing.assert_allclose(got, central_gradient(reference, arguments[position]),
                                   rtol=1e-6, atol=1e-9)
    v = sg.var("v", shape=(4,))
    t_arguments = [X4, 3.5, X4[::-1] * 0.3, POSITIVE4]
    ours = list(t_arguments)
    ours[position + 1] = v
    got = sg.compile(sg.grad(sg.sum(stats.t.cdf(*ours)), v), inputs=[v])(t_arguments[position + 1])

    def t_reference(a):
        theirs = list(t_arguments)
        theirs[position + 1] = a
        return np.sum(scipy.stats.t.cdf(*theirs))
    np.testing.assert_allclose(got, central_gradient(t_reference, t_arguments[position + 1]),
                               rtol=1e-6, atol=1e-9)


def test_norm_logcdf_is_log_ndtr_in_the_tails():
    x = sg.var("x", shape=(4,))
    tails = np.array([-40.0, -1e3, 38.0, 1e3])
    logcdf, logsf = stats.norm.logcdf(x), stats.norm.logsf(x)
    fn = sg.compile([logcdf, logsf, sg.grad(sg.sum(logcdf), x), sg.grad(sg.sum(logsf), x)],
                    inputs=[x])
    value_cdf, value_sf, slope_cdf, slope_sf = fn(tails)
    np.testing.assert_allclose(value_cdf, scipy.stats.norm.logcdf(tails), rtol=1e-14)
    np.testing.assert_allclose(value_sf, scipy.stats.norm.logsf(tails), rtol=1e-14)
    # about -x on the far left (the inverse Mills ratio), the density on the right
    assert np.all(np.isfinite(slope_cdf)) and np.all(np.isfinite(slope_sf))
    with mpmath.workdps(50):
        mills = [float(mpmath.npdf(a) / mpmath.ncdf(a)) for a in (-40.0, -1e3, -38.0, -1e3)]
    np.testing.assert_allclose(slope_cdf[:2], mills[:2], rtol=1e-14)
    np.testing.assert_allclose(slope_sf[2:], [-m for m in mills[2:]], rtol=1e-14)


def test_shape_parameters_of_distribution_functions_are_refused_by_name():
    a = sg.var("a")
    with pytest.raises(sg.UndefinedGradientError, match="gammainc: no derivative with respect"):
        sg.grad(stats.gamma.cdf(2.0, a), a)
    with pytest.raises(sg.UndefinedGradientError, match="stdtr: no derivative with respect to df"):
        sg.grad(stats.t.cdf(0.5, a), a)
    # the densities are differentiable in every parameter
    f = stats.gamma.logpdf(2.0, a)
    got = sg.compile(sg.grad(f, a), inputs=[a])(1.7)
    assert got == pytest.approx(np.log(2.0) - float(scipy.special.digamma(1.7)), rel=1e-13)


def test_scalar_densities_match_sympys_derivatives():
    x, m, s = sg.var("x"), sg.var("m"), sg.var("s")
    X, M, S = sympy.symbols("x m s", real=True)
    ours = [stats.norm.logpdf(x, m, s), stats.gamma.logpdf(x, m, 0.0, s),
            stats.t.logpdf(x, m, 0.1, s)]
    theirs = [sympy.log(sympy.exp(-((X - M) / S) ** 2 / 2) / (sympy.sqrt(2 * sympy.pi) * S)),
              sympy.log((X / S) ** (M - 1) * sympy.exp(-X / S) / (sympy.gamma(M) * S)),
              sympy.log(sympy.gamma((M + 1) / 2) / (sympy.sqrt(M * sympy.pi) * sympy.gamma(M / 2))
                        * (1 + ((X - sympy.Rational(1, 10)) / S) ** 2 / M) ** (-(M + 1) / 2) / S)]
    point = {X: 1.7, M: 2.3, S: 0.8}
    for f, reference in zip(ours, theirs):
        outputs = [f, *sg.grad(f, [x, m, s])]
        outputs += [h for row in sg.hessian(f, [x, m, s]) for h in row]
        got = sg.compile(outputs, inputs=[x, m, s])(1.7, 2.3, 0.8)
        symbols = [X, M, S]
        want = [reference, *(sympy.diff(reference, a) for a in symbols),
                *(sympy.diff(reference, a, b) for a in symbols for b in symbols)]
        np.testing.assert_allclose(np.array(got, dtype=float),
                                   [float(w.subs(point).evalf(30)) for w in want],
                                   rtol=1e-11, atol=1e-13)


def test_dirichlet_against_scipy():
    alpha = np.array([0.7, 2.0, 3.5])
    points = np.array([[0.2, 0.5], [0.3, 0.1], [0.5, 0.4]])       # components along axis 0
    x = sg.var("x", shape=(3, 2))
    a = sg.var("a", shape=(3,))
    f = stats.dirichlet.logpdf(x, a)
    fn = sg.compile([f, sg.grad(sg.sum(f), a), stats.dirichlet.pdf(x[:, 0], a)], inputs=[x, a])
    value, gradient, density = fn(points, alpha)
    np.testing.assert_allclose(value, scipy.stats.dirichlet.logpdf(points, alpha), rtol=1e-13)
    np.testing.assert_allclose(density, scipy.stats.dirichlet.pdf(points[:, 0], alpha),
                               rtol=1e-13)
    np.testing.assert_allclose(gradient, central_gradient(
        lambda c: np.sum(scipy.stats.dirichlet.logpdf(points, c)), alpha), rtol=1e-7)


# -- Laplace approximations of Bayesian GLMs -------------------------------------------------------


def _newton(gradient, hessian, start, steps=50):
    beta = start
    for _ in range(steps):
        step = np.linalg.solve(hessian(beta), gradient(beta))
        beta = beta - step
        if np.max(np.abs(step)) < 1e-13:
            break
    return beta


def _laplace(log_posterior_of, design, start):
    """The mode and the Hessian of the log posterior there, by Newton's method on symgrad's
    gradient and Hessian."""
    beta = sg.var("beta", shape=(design.shape[1],))
    f = log_posterior_of(beta)
    gradient = sg.compile(sg.grad(f, beta), inputs=[beta])
    hessian = sg.compile(sg.hessian(f, beta), inputs=[beta])
    value = sg.compile(f, inputs=[beta])
    mode = _newton(gradient, hessian, start)
    return mode, hessian(mode), value(mode), gradient(mode)


PRIOR_SCALE = 2.0


def _glm_data(link_inverse):
    design = np.column_stack([np.ones(40), RNG.standard_normal((40, 2))])
    truth = np.array([0.3, -0.7, 0.5])
    return design, link_inverse(design @ truth)


def test_laplace_approximation_of_a_bayesian_poisson_glm():
    design, rates = _glm_data(np.exp)
    counts = RNG.poisson(rates).astype(float)

    def log_posterior(beta):
        eta = design @ beta
        return (sg.sum(stats.poisson.logpmf(counts, sg.exp(eta)))
                + sg.sum(stats.norm.logpdf(beta, 0.0, PRIOR_SCALE)))
    mode, hessian, value, gradient = _laplace(log_posterior, design, np.zeros(3))

    # by hand: ∇ = Xᵀ(y - μ) - β/σ², ∇² = -Xᵀ diag(μ) X - I/σ²
    def hand_gradient(b):
        return design.T @ (counts - np.exp(design @ b)) - b / PRIOR_SCALE ** 2

    def hand_hessian(b):
        mu = np.exp(design @ b)
        return -(design.T * mu) @ design - np.eye(3) / PRIOR_SCALE ** 2
    want_mode = _newton(hand_gradient, hand_hessian, np.zeros(3))
    np.testing.assert_allclose(mode, want_mode, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hessian, hand_hessian(want_mode), rtol=1e-12)
    np.testing.assert_allclose(gradient, 0.0, atol=1e-10)
    mu = np.exp(design @ want_mode)
    assert value == pytest.approx(np.sum(scipy.stats.poisson.logpmf(counts, mu))
                                  + np.sum(scipy.stats.norm.logpdf(want_mode, 0.0, PRIOR_SCALE)),
                                  rel=1e-13)


def test_laplace_approximation_of_a_bayesian_logistic_glm():
    design, probabilities = _glm_data(scipy.special.expit)
    labels = (RNG.uniform(size=40) < probabilities).astype(float)

    def log_posterior(beta):
        p = sg.expit(design @ beta)
        return (sg.sum(stats.binom.logpmf(labels, 1.0, p))
                + sg.sum(stats.norm.logpdf(beta, 0.0, PRIOR_SCALE)))
    mode, hessian, value, gradient = _laplace(log_posterior, design, np.zeros(3))

    # by hand: ∇ = Xᵀ(y - p) - β/σ², ∇² = -Xᵀ diag(p (1 - p)) X - I/σ²
    def hand_gradient(b):
        return design.T @ (labels - scipy.special.expit(design @ b)) - b / PRIOR_SCALE ** 2

    def hand_hessian(b):
        p = scipy.special.expit(design @ b)
        return -(design.T * (p * (1 - p))) @ design - np.eye(3) / PRIOR_SCALE ** 2
    want_mode = _newton(hand_gradient, hand_hessian, np.zeros(3))
    np.testing.assert_allclose(mode, want_mode, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hessian, hand_hessian(want_mode), rtol=1e-11)
    np.testing.assert_allclose(gradient, 0.0, atol=1e-10)
    p = scipy.special.expit(design @ want_mode)
    assert value == pytest.approx(np.sum(scipy.stats.binom.logpmf(labels, 1, p))
                                  + np.sum(scipy.stats.norm.logpdf(want_mode, 0.0, PRIOR_SCALE)),
                                  rel=1e-13)


def test_multivariate_normal_logpdf_through_a_cholesky_factor_matches_scipy():
    rng = np.random.default_rng(7)
    factor = rng.normal(size=(3, 3))
    cov, mean, points = factor @ factor.T + 3.0 * np.eye(3), rng.normal(size=3), \
        rng.normal(size=(5, 3))
    with sg.use_graph():
        x, mu, S = sg.var("x", shape=(5, 3)), sg.var("mu", shape=(3,)), sg.var("S", shape=(3, 3))
        logpdf = stats.multivariate_normal.logpdf(x, mu, S)
        fn = sg.compile([logpdf, *sg.grad(sg.sum(logpdf), [x, mu, S])], inputs=[x, mu, S])
        one = sg.var("one", shape=(3,))
        single = sg.compile([stats.multivariate_normal.logpdf(one, mu, S),
                             stats.multivariate_normal.pdf(one, np.zeros(3), cov=2.0)],
                            inputs=[one, mu, S])
    value, d_x, d_mean, d_cov = fn(points, mean, cov)
    np.testing.assert_allclose(value, scipy.stats.multivariate_normal.logpdf(points, mean, cov),
                               rtol=1e-13)
    got_one, got_pdf = single(points[0], mean, cov)
    np.testing.assert_allclose(
        got_one, scipy.stats.multivariate_normal.logpdf(points[0], mean, cov), rtol=1e-13)
    np.testing.assert_allclose(
        got_pdf, scipy.stats.multivariate_normal.pdf(points[0], np.zeros(3), cov=2.0), rtol=1e-13)

    def total(x=points, m=mean, c=cov):
        return scipy.stats.multivariate_normal.logpdf(x, m, c).sum()

    np.testing.assert_allclose(d_x, central_gradient(lambda p: total(x=p), points), rtol=1e-6)
    np.testing.assert_allclose(d_mean, central_gradient(lambda p: total(m=p), mean), rtol=1e-6)
    # cov's gradient is symmetric (cholesky's convention): along a symmetric direction E it gives
    # the derivative of the density whatever triangle a library reads
    assert np.array_equal(d_cov, d_cov.T)
    for i, j in [(0, 0), (1, 0), (2, 1)]:
        direction = np.zeros((3, 3))
        direction[i, j] = direction[j, i] = 1.0
        step = 1e-6
        expected = (total(c=cov + step * direction) - total(c=cov - step * direction)) / (2 * step)
        assert np.sum(d_cov * direction) == pytest.approx(expected, rel=1e-6)


def test_multivariate_normal_entropy_matches_scipy_and_its_gradient_differences():
    rng = np.random.default_rng(8)
    factor = rng.normal(size=(3, 3))
    cov = factor @ factor.T + np.eye(3)
    with sg.use_graph():
        S = sg.var("S", shape=(3, 3))
        entropy = stats.multivariate_normal.entropy(np.zeros(3), S)
        value, gradient = sg.compile([entropy, sg.grad(entropy, S)], inputs=[S])(cov)
    assert value == pytest.approx(scipy.stats.multivariate_normal.entropy(np.zeros(3), cov),
                                  rel=1e-14)
    # d/dcov of log det(cov) / 2 is cov⁻¹ / 2, symmetric
    np.testing.assert_allclose(gradient, 0.5 * np.linalg.inv(cov), rtol=1e-12)


@pytest.mark.parametrize("k", [0.0, 3.0, 9.0])
def test_binomial_cdf_and_logcdf_match_scipy_and_differentiate_in_p(k):
    with sg.use_graph():
        p = sg.var("p")
        cdf = stats.binom.cdf(k, 10.0, p)
        fn = sg.compile([cdf, stats.binom.logcdf(k, 10.0, p), sg.grad(cdf, p)], inputs=[p])
    for at in (0.05, 0.37, 0.9):
        value, log_value, slope = fn(at)
        assert value == pytest.approx(scipy.stats.binom.cdf(k, 10, at), rel=1e-13)
        assert log_value == pytest.approx(scipy.stats.binom.logcdf(k, 10, at), rel=1e-13)
        step = 1e-6
        expected = (scipy.stats.binom.cdf(k, 10, at + step)
                    - scipy.stats.binom.cdf(k, 10, at - step)) / (2 * step)
        assert slope == pytest.approx(expected, rel=1e-6, abs=1e-10)


@pytest.mark.parametrize("name, shapes", [("gamma", (2.5,)), ("beta", (2.0, 3.0)),
                                          ("chi2", (4.0,))])
def test_logcdf_of_the_incomplete_gamma_and_beta_distributions_matches_scipy(name, shapes):
    with sg.use_graph():
        x = sg.var("x")
        logcdf = getattr(stats, name).logcdf(x, *shapes)
        fn = sg.compile([logcdf, sg.grad(logcdf, x)], inputs=[x])
    for at in (1e-6, 0.3, 0.9):
        value, slope = fn(at)
        assert value == pytest.approx(getattr(scipy.stats, name).logcdf(at, *shapes), rel=1e-12)
        # d log F = f / F
        pdf, cdf = (getattr(scipy.stats, name).pdf(at, *shapes),
                    getattr(scipy.stats, name).cdf(at, *shapes))
        assert slope == pytest.approx(pdf / cdf, rel=1e-10)
