"""The linear algebra of symgrad.ops.matrix beyond what tests/test_ops.py's table checks per op:
NumPy's and SciPy's names and signatures (np.linalg on expressions, symgrad.scipy.linalg), the
composites (matrix_power, multi_dot, lstsq, cho_solve, SciPy's solve), the symmetric convention
of the Cholesky gradient, and issue 19's acceptance check: a Gaussian process's negative log
marginal likelihood against scikit-learn's, its Hessian against central differences.
"""

import numpy as np
import pytest
import scipy.linalg

import symgrad as sg
import symgrad.scipy.linalg as sgl
from finite_differences import central_gradient

RNG = np.random.default_rng(19)


def spd(size, batch=()):
    x = RNG.standard_normal(batch + (size, size))
    return x @ np.swapaxes(x, -1, -2) / size + np.eye(size)


def invertible(size, batch=()):
    return RNG.uniform(-0.5, 0.5, batch + (size, size)) + 3.0 * np.eye(size)


def value_and_gradient(build, point, **shapes):
    """The compiled value of ``build(a)`` and the gradient of its sum weighted by a fixed
    cotangent, and the same two by NumPy's function ``reference`` through central differences."""
    a = sg.var("a", shape=point.shape)
    out = build(a)
    weights = RNG.standard_normal(out.shape)
    fn = sg.compile([out, sg.grad(sg.sum(out * weights), a)], inputs=[a])
    return fn(point), weights


def check_against(build, reference, point, rtol=1e-7, atol=1e-8):
    (value, gradient), weights = value_and_gradient(build, point)
    np.testing.assert_allclose(value, reference(point), rtol=1e-10, atol=1e-12)
    expected = central_gradient(lambda p: np.sum(reference(p) * weights), point)
    np.testing.assert_allclose(gradient, expected, rtol=rtol, atol=atol)


# -- NumPy's functions on expressions ---------------------------------------------------------------


def test_np_linalg_on_expressions_builds_symgrads_ops():
    A, b = sg.var("A", shape=(3, 3)), sg.var("b", shape=(3,))
    assert np.linalg.solve(A, b).op == "squeeze"
    assert np.linalg.inv(A).op == "inv"
    assert np.linalg.det(A).op == "det"
    assert np.linalg.cholesky(A).op == "cholesky"
    sign, logdet = np.linalg.slogdet(A)
    assert (sign.shape, logdet.shape) == ((), ())
    assert np.linalg.slogdet(A).logabsdet.op == "getitem"
    assert np.linalg.pinv(A).op == "pinv"
    fn = sg.compile([np.linalg.solve(A, b), np.linalg.matrix_power(A, 3),
                     np.linalg.multi_dot([b, A, A, b]), *np.linalg.lstsq(A, b)], inputs=[A, b])
    a_value, b_value = invertible(3), RNG.standard_normal(3)
    got = fn(a_value, b_value)
    np.testing.assert_allclose(got[0], np.linalg.solve(a_value, b_value), rtol=1e-12)
    np.testing.assert_allclose(got[1], np.linalg.matrix_power(a_value, 3), rtol=1e-12)
    np.testing.assert_allclose(got[2], np.linalg.multi_dot([b_value, a_value, a_value, b_value]),
                               rtol=1e-12)
    x, residuals, rank, s = np.linalg.lstsq(a_value, b_value)
    np.testing.assert_allclose(got[3], x, rtol=1e-10)
    assert got[4].shape == residuals.shape == (0,)
    assert got[5] == rank
    np.testing.assert_allclose(got[6], s, rtol=1e-12)


def test_np_linalg_refuses_what_symgrad_lacks_by_name():
    A = sg.var("A", shape=(3, 3))
    with pytest.raises(sg.SymgradError, match="rcond"):
        np.linalg.pinv(A, rcond=0.1)
    with pytest.raises(sg.SymgradError, match="numpy.linalg.eig "):
        np.linalg.eig(A)


@pytest.mark.parametrize("a_shape,b_shape", [((3, 3), (3,)), ((2, 3, 3), (3,)),
                                             ((2, 3, 3), (3, 4)), ((3, 3), (5, 3, 2)),
                                             ((2, 1, 3, 3), (4, 3, 1))])
def test_solve_takes_b_as_numpy_2_does(a_shape, b_shape):
    a_value, b_value = invertible(3, a_shape[:-2]), RNG.standard_normal(b_shape)
    A, b = sg.var("A", shape=a_shape), sg.var("b", shape=b_shape)
    got = sg.compile(sg.solve(A, b), inputs=[A, b])(a_value, b_value)
    expected = np.linalg.solve(a_value, b_value)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_a_stack_of_vectors_is_refused_as_numpy_2_refuses_it():
    A, b = sg.var("A", shape=(2, 3, 3)), sg.var("b", shape=(2, 3))
    with pytest.raises(ValueError):
        np.linalg.solve(invertible(3, (2,)), RNG.standard_normal((2, 3)))
    nodes = len(A.graph)
    with pytest.raises(sg.ShapeError, match="solve"):
        sg.solve(A, b)
    assert len(A.graph) == nodes


def test_the_gradient_of_solve_is_a_solve_with_the_transpose_never_an_inverse():
    A, b = sg.var("A", shape=(3, 3)), sg.var("b", shape=(3, 2))
    gradients = sg.grad(sg.sum(sg.solve(A, b) ** 2), [A, b])
    source = sg.compile(gradients, inputs=[A, b]).source
    assert "inv" not in source and source.count("np.linalg.solve") == 2


# -- derivatives of the composites, batched inputs ---------------------------------------------------


@pytest.mark.parametrize("n", [-3, -1, 1, 2, 5])
def test_matrix_power_and_its_gradient(n):
    check_against(lambda a: sg.matrix_power(a, n), lambda p: np.linalg.matrix_power(p, n),
                  invertible(3, (2,)))


def test_matrix_power_zero_is_the_identity_and_constant():
    a = sg.var("a", shape=(2, 3, 3))
    power = sg.matrix_power(a, 0)
    np.testing.assert_array_equal(sg.compile(power, inputs=[a])(invertible(3, (2,))),
                                  np.linalg.matrix_power(invertible(3, (2,)), 0))
    gradient = sg.grad(sg.sum(power), a, disconnected="zero")
    np.testing.assert_array_equal(sg.compile(gradient, inputs=[a])(invertible(3, (2,))), 0.0)


def test_multi_dot_with_vectors_at_both_ends():
    u, B, v = RNG.standard_normal(4), RNG.standard_normal((4, 2)), RNG.standard_normal(3)
    check_against(lambda a: sg.multi_dot([u, a, B, a[:2, :3], v]),
                  lambda p: np.linalg.multi_dot([u, p, B, p[:2, :3], v]), invertible(4))


def test_lstsq_solution_and_residuals_and_their_gradients():
    b = RNG.standard_normal((5, 2))
    point = RNG.standard_normal((5, 3))
    check_against(lambda a: sg.lstsq(a, b)[0], lambda p: np.linalg.lstsq(p, b)[0], point)
    check_against(lambda a: sg.lstsq(a, b)[1], lambda p: np.linalg.lstsq(p, b)[1], point)
    check_against(lambda a: sg.lstsq(a, b[:, 0])[1], lambda p: np.linalg.lstsq(p, b[:, 0])[1],
                  point)


def test_pinv_of_a_batch_of_wide_matrices():
    check_against(sg.pinv, np.linalg.pinv, RNG.standard_normal((2, 2, 4)))


def test_det_and_slogdet_of_a_batch_with_negative_determinants():
    point = invertible(3, (4,))
    point[::2] = point[::2, ::-1]           # swapped rows: determinants of both signs
    check_against(sg.det, np.linalg.det, point)
    check_against(lambda a: sg.slogdet(a)[1], lambda p: np.linalg.slogdet(p)[1], point)
    sign = sg.compile(sg.slogdet(sg.var("a", shape=(4, 3, 3)))[0])(point)
    np.testing.assert_array_equal(sign, np.linalg.slogdet(point)[0])


def test_cholesky_gradient_is_symmetric_and_is_the_derivative_along_symmetric_perturbations():
    point = spd(4)
    (value, gradient), weights = value_and_gradient(sg.cholesky, point)
    np.testing.assert_allclose(value, np.linalg.cholesky(point), rtol=1e-12)
    np.testing.assert_array_equal(gradient, gradient.T)
    # JAX's, PyTorch's and autograd's convention: the gradient of L(sym(A))
    expected = central_gradient(
        lambda p: np.sum(np.linalg.cholesky(0.5 * (p + p.T)) * weights), point)
    np.testing.assert_allclose(gradient, expected, rtol=1e-7, atol=1e-8)


def test_second_derivatives_of_cholesky_and_inv_against_differences_of_the_gradient():
    # along a symmetric direction: cholesky's gradient is that of a function of a symmetric a
    point, direction = spd(3, (2,)), spd(3, (2,))
    a, v = sg.var("a", shape=point.shape), sg.var("v", shape=point.shape)
    f = sg.sum(sg.cholesky(a) ** 3) + sg.sum(sg.sin(sg.inv(a)))
    gradient = sg.compile(sg.grad(f, a), inputs=[a])
    hvp = sg.compile(sg.hvp(f, a, v), inputs=[a, v])(point, direction)
    step = 1e-6
    expected = (gradient(point + step * direction) - gradient(point - step * direction)) / (2 * step)
    np.testing.assert_allclose(hvp, expected, rtol=1e-6, atol=1e-7)


# -- SciPy's functions ----------------------------------------------------------------------------------


def test_scipy_cholesky_is_upper_by_default_as_scipys():
    point = spd(4)
    K = sg.var("K", shape=(4, 4))
    upper, lower = sg.compile([sgl.cholesky(K), sgl.cholesky(K, lower=True)], inputs=[K])(point)
    np.testing.assert_allclose(upper, scipy.linalg.cholesky(point), rtol=1e-12)
    np.testing.assert_allclose(lower, scipy.linalg.cholesky(point, lower=True), rtol=1e-12)


@pytest.mark.parametrize("lower", [True, False])
def test_cho_factor_and_cho_solve_against_scipy(lower):
    b = RNG.standard_normal((4, 2))

    def ours(a):
        return sgl.cho_solve(sgl.cho_factor(0.5 * (a + a.T), lower=lower), b)

    def scipys(p):
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(0.5 * (p + p.T), lower=lower), b)
    check_against(ours, scipys, spd(4))


def test_cho_solve_of_a_vector_gives_a_vector_and_refuses_a_bare_factor():
    L, b = sg.var("L", shape=(3, 3)), sg.var("b", shape=(3,))
    assert sgl.cho_solve((L, True), b).shape == (3,)
    with pytest.raises(sg.ArgumentError, match="cho_solve"):
        sgl.cho_solve(L, b)


@pytest.mark.parametrize("assume_a,lower", [("gen", False), ("sym", False), ("sym", True),
                                            ("pos", False), ("pos", True)])
def test_scipy_solve_reads_the_triangle_scipy_reads(assume_a, lower):
    point = spd(4)
    point += np.triu(RNG.standard_normal((4, 4)), 1) * 0.1 if lower else 0.0   # unread: noise
    if not lower and assume_a != "gen":
        point += np.tril(RNG.standard_normal((4, 4)), -1) * 0.1
    b = RNG.standard_normal(4)
    check_against(lambda a: sgl.solve(a, b, lower=lower, assume_a=assume_a),
                  lambda p: scipy.linalg.solve(p, b, lower=lower, assume_a=assume_a), point)


def test_scipy_solve_refuses_an_unknown_assumption():
    with pytest.raises(sg.ArgumentError, match="assume_a"):
        sgl.solve(sg.var("A", shape=(2, 2)), sg.var("b", shape=(2,)), assume_a="banded")


@pytest.mark.parametrize("trans", [0, 1, "T", "C"])
def test_solve_triangular_of_a_vector_against_scipy(trans):
    b = RNG.standard_normal(3)
    check_against(lambda a: sg.solve_triangular(a, b, trans=trans, lower=True),
                  lambda p: scipy.linalg.solve_triangular(p, b, trans=trans, lower=True),
                  invertible(3))


def test_solve_triangular_refuses_an_unknown_trans_and_the_array_api_backend():
    L, b = sg.var("L", shape=(3, 3)), sg.var("b", shape=(3,))
    with pytest.raises(sg.ArgumentError, match="trans"):
        sg.solve_triangular(L, b, trans=3)
    with pytest.raises(sg.SymgradError, match="solve_triangular"):
        sg.compile(sg.solve_triangular(L, b), inputs=[L, b], backend="array_api")


def test_the_array_api_backend_runs_the_linalg_extension():
    strict = pytest.importorskip("array_api_strict")
    A, b = sg.var("A", shape=(2, 3, 3)), sg.var("b", shape=(3,))
    f = sg.sum(sg.solve(A, b)) + sg.sum(sg.slogdet(A)[1]) + sg.sum(sg.cholesky(A @ sg.swapaxes(A, -1, -2)))
    outputs = [f, *sg.grad(f, [A, b])]
    a_value, b_value = invertible(3, (2,)), RNG.standard_normal(3)
    want = sg.compile(outputs, inputs=[A, b])(a_value, b_value)
    got = sg.compile(outputs, inputs=[A, b], backend="array_api")(
        strict.asarray(a_value), strict.asarray(b_value))
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-10)


# -- issue 19's acceptance check: a Gaussian process's likelihood -----------------------------------


def gp_problem():
    rng = np.random.default_rng(7)
    X = rng.uniform(-3.0, 3.0, (12, 2))
    y = np.sin(X[:, 0]) + 0.5 * np.cos(2.0 * X[:, 1]) + 0.1 * rng.standard_normal(12)
    return X, y


def gp_negative_log_marginal_likelihood(theta, X, y):
    """A plain NumPy/SciPy program: theta = (log signal variance, log length-scale, log noise)
    of the kernel ConstantKernel * RBF + WhiteKernel, as scikit-learn orders them."""
    import symgrad.numpy as snp   # noqa: F401 (np's functions dispatch to it on expressions)
    squared = np.sum((X[:, None, :] - X[None, :, :]) ** 2, axis=-1)
    signal, length, noise = np.exp(theta[0]), np.exp(theta[1]), np.exp(theta[2])
    K = signal * np.exp(-0.5 * squared / length ** 2) + noise * np.eye(len(y))
    L = np.linalg.cholesky(K)
    alpha = sgl.cho_solve((L, True), y)
    _, logdet = np.linalg.slogdet(K)
    return 0.5 * (y @ alpha) + 0.5 * logdet + 0.5 * len(y) * np.log(2.0 * np.pi)


def test_gaussian_process_likelihood_and_gradient_match_scikit_learn():
    gaussian_process = pytest.importorskip("sklearn.gaussian_process")
    kernels = pytest.importorskip("sklearn.gaussian_process.kernels")
    X, y = gp_problem()
    kernel = kernels.ConstantKernel(1.0) * kernels.RBF(1.0) + kernels.WhiteKernel(0.1)
    regressor = gaussian_process.GaussianProcessRegressor(kernel, alpha=0.0, optimizer=None)
    regressor.fit(X, y)
    theta = sg.var("theta", shape=(3,))
    nll = gp_negative_log_marginal_likelihood(theta, X, y)
    fn = sg.compile([nll, sg.grad(nll, theta)], inputs=[theta])
    for point in [np.log([1.0, 1.0, 0.1]), np.array([0.3, -0.4, -3.0]),
                  np.array([-0.5, 0.8, -1.2])]:
        value, gradient = fn(point)
        lml, lml_gradient = regressor.log_marginal_likelihood(point, eval_gradient=True)
        np.testing.assert_allclose(value, -lml, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(gradient, -lml_gradient, rtol=1e-8, atol=1e-8)


def test_gaussian_process_hessian_matches_differences_of_the_gradient():
    X, y = gp_problem()
    theta = sg.var("theta", shape=(3,))
    nll = gp_negative_log_marginal_likelihood(theta, X, y)
    gradient = sg.compile(sg.grad(nll, theta), inputs=[theta])
    hessian = sg.compile(sg.hessian(nll, theta), inputs=[theta])
    point = np.array([0.3, -0.4, -2.0])
    got = hessian(point)
    step = 1e-5
    expected = np.stack([(gradient(point + step * e) - gradient(point - step * e)) / (2 * step)
                         for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(got, got.T, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
