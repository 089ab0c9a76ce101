"""symgrad.scipy.special: SciPy's names and semantics on expressions, and a plain program written
for arrays (a Gaussian mixture's log-likelihood through logsumexp) run on expressions."""

import numpy as np
import pytest
import scipy.special

import symgrad as sg
import symgrad.scipy.special as sg_special
from finite_differences import central_gradient


def gaussian_mixture_loglikelihood(x, means, log_weights, special):
    """The log-likelihood of unit-variance Gaussian mixtures, as written for NumPy arrays with
    ``special`` as scipy.special."""
    d = x[:, None] - means[None, :]
    log_components = -0.5 * d ** 2 - 0.5 * np.log(2 * np.pi) + log_weights
    return np.sum(special.logsumexp(log_components, axis=1))


def test_a_gaussian_mixture_written_for_arrays_runs_on_expressions():
    rng = np.random.default_rng(3)
    points, means = rng.standard_normal(7), np.array([-1.0, 0.5, 1.5])
    log_weights = np.log([0.2, 0.5, 0.3])
    with sg.use_graph():
        x, m, w = sg.var("x", shape=(7,)), sg.var("m", shape=(3,)), sg.var("w", shape=(3,))
        f = gaussian_mixture_loglikelihood(x, m, w, sg_special)
        fn = sg.compile([f, *sg.grad(f, [m, w])], inputs=[x, m, w])
    value, d_means, d_log_weights = fn(points, means, log_weights)
    want = gaussian_mixture_loglikelihood(points, means, log_weights, scipy.special)
    assert value == pytest.approx(want, rel=1e-14)
    np.testing.assert_allclose(d_means, central_gradient(
        lambda m_: gaussian_mixture_loglikelihood(points, m_, log_weights, scipy.special), means),
        rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(d_log_weights, central_gradient(
        lambda w_: gaussian_mixture_loglikelihood(points, means, w_, scipy.special), log_weights),
        rtol=1e-7, atol=1e-8)


def test_scipys_softmax_family_takes_every_axis_when_none():
    a = np.arange(6.0).reshape(2, 3) / 3
    weights = np.array([1.0, 0.0, 2.0])
    with sg.use_graph():
        X = sg.var("X", shape=(2, 3))
        built = [sg_special.softmax(X), sg_special.log_softmax(X), sg_special.softmax(X, axis=1),
                 sg_special.logsumexp(X, axis=1, b=weights), sg_special.logsumexp(X)]
        got = sg.compile(built, inputs=[X])(a)
    want = [scipy.special.softmax(a), scipy.special.log_softmax(a),
            scipy.special.softmax(a, axis=1), scipy.special.logsumexp(a, axis=1, b=weights),
            scipy.special.logsumexp(a)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-15)
    with pytest.raises(sg.SymgradError, match="return_sign"):
        sg_special.logsumexp(X, return_sign=True)
