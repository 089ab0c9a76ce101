"""Higher-order derivatives and the transformations of issue 3, against independent references.

Every expected value comes from SciPy (the Rosenbrock closed forms), SymPy (n-th derivatives), a
closed form derived by hand in the test, or central finite differences: never from symgrad itself.
"""

import warnings

import numpy as np
import pytest
import sympy
from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod

import symgrad as sg
from symgrad.ops.core import apply, same_shape
from symgrad.ops.core import defop as register_primitive


def relative_error(got, expected):
    """Worst absolute difference, relative to the largest entry of the reference (at least 1)."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    assert got.shape == expected.shape, f"shape {got.shape}, expected {expected.shape}"
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    return float(np.max(np.abs(got - expected), initial=0.0)) / scale


def rosenbrock(n):
    x = sg.var("x", shape=(n,))
    return x, sg.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def finite_difference_jacobian(function, x, step=1e-6):
    columns = []
    for i in range(x.size):
        shift = np.zeros_like(x)
        shift[i] = step
        columns.append((function(x + shift) - function(x - shift)) / (2 * step))
    return np.stack(columns, axis=-1)


def softmax(z):
    e = np.exp(z - np.max(z))
    return e / e.sum()


# -- Rosenbrock against SciPy ----------------------------------------------------------------------


def test_rosenbrock_value_grad_hvp_hessian_match_scipy():
    n = 50
    x, f = rosenbrock(n)
    v = sg.var("v", shape=(n,))
    gradient, product, hessian = sg.grad(f, x), sg.hvp(f, x, v), sg.hessian(f, x)
    assert gradient.shape == (n,) and product.shape == (n,) and hessian.shape == (n, n)
    fn = sg.compile([f, gradient, product, hessian], inputs=[x, v])
    rng = np.random.default_rng(0)
    points = [rng.uniform(-2.0, 2.0, n) for _ in range(3)] + [np.tile([-1.2, 1.0], n // 2),
                                                              np.ones(n)]
    for x0 in points:
        v0 = rng.standard_normal(n)
        value, g, hv, h = fn(x0, v0)
        assert np.ndim(value) == 0
        assert relative_error(value, rosen(x0)) < 1e-10
        assert relative_error(g, rosen_der(x0)) < 1e-10
        assert relative_error(hv, rosen_hess_prod(x0, v0)) < 1e-10
        assert relative_error(h, rosen_hess(x0)) < 1e-10


def test_rosenbrock_hvp_at_two_hundred_thousand_variables():
    n = 200_000
    x, f = rosenbrock(n)
    v = sg.var("v", shape=(n,))
    fn = sg.compile(sg.hvp(f, x, v), inputs=[x, v])
    rng = np.random.default_rng(1)
    x0, v0 = rng.uniform(-2.0, 2.0, n), rng.standard_normal(n)
    result = fn(x0, v0)
    assert result.shape == (n,)
    assert relative_error(result, rosen_hess_prod(x0, v0)) < 1e-10


def test_hvp_never_forms_a_matrix(fresh_graph):
    n = 50
    x, f = rosenbrock(n)
    v = sg.var("v", shape=(n,))
    before = fresh_graph.next_key
    sg.hvp(f, x, v)
    added = [fresh_graph.nodes[k]["shape"] for k in range(before, fresh_graph.next_key)
             if k in fresh_graph]
    assert added and all(len(shape) <= 1 for shape in added), added


def test_rosenbrock_hessian_of_a_thousand_variables_builds_compiles_and_matches():
    n = 1000
    x, f = rosenbrock(n)
    hessian = sg.hessian(f, x)
    assert hessian.shape == (n, n)
    fn = sg.compile(hessian, inputs=[x])
    x0 = np.random.default_rng(2).uniform(-2.0, 2.0, n)
    assert relative_error(fn(x0), rosen_hess(x0)) < 1e-10


def _nodes_added(build_output, transform, n):
    # a graph that keeps every node counts what was built: the default graph would also release
    # what the call built and no result refers to, when a constant is large enough to release
    with sg.use_graph(sg.Graph()) as graph:
        output, wrt = build_output(n)
        before = graph.number_of_nodes()
        transform(output, wrt)
        return graph.number_of_nodes() - before


@pytest.mark.parametrize("transform", ["jacobian", "hessian"])
def test_graph_added_by_jacobian_and_hessian_does_not_grow_with_the_outputs(transform):
    def vector_function(m):
        x = sg.var("x", shape=(5,))
        W = sg.const(np.random.default_rng(3).standard_normal((m, 5)))
        return sg.tanh(W @ x) * sg.sum(x ** 2), x

    def scalar_function(m):
        x, f = rosenbrock(m)
        return f, x

    if transform == "jacobian":
        small = _nodes_added(vector_function, sg.jacobian, 10)
        large = _nodes_added(vector_function, sg.jacobian, 200)
    else:
        small = _nodes_added(scalar_function, sg.hessian, 10)
        large = _nodes_added(scalar_function, sg.hessian, 200)
    # 20 times more outputs: the added graph is the same size, not 20 times larger
    assert small > 0
    assert abs(large - small) <= 2, (small, large)


def test_rosenbrock_hessian_node_count_is_a_small_multiple_of_the_gradient():
    with sg.use_graph() as graph:
        x, f = rosenbrock(300)
        before = graph.number_of_nodes()
        sg.grad(f, x)
        gradient_nodes = graph.number_of_nodes() - before
    with sg.use_graph() as graph:
        x, f = rosenbrock(300)
        before = graph.number_of_nodes()
        sg.hessian(f, x)
        hessian_nodes = graph.number_of_nodes() - before
    assert hessian_nodes < 10 * gradient_nodes


# -- Hessians and Jacobians with closed forms ------------------------------------------------------


def test_hessian_of_logsumexp_plus_half_squared_norm():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((7, 5))
    x = sg.var("x", shape=(5,))
    f = sg.logsumexp(sg.const(A) @ x) + 0.5 * sg.sum(x ** 2)
    fn = sg.compile([f, sg.grad(f, x), sg.hessian(f, x)], inputs=[x])
    for x0 in (rng.standard_normal(5), 3.0 * rng.standard_normal(5), np.zeros(5)):
        z = A @ x0
        p = softmax(z)
        value, g, h = fn(x0)
        assert relative_error(value, np.log(np.sum(np.exp(z))) + 0.5 * x0 @ x0) < 1e-12
        assert relative_error(g, A.T @ p + x0) < 1e-12
        expected = A.T @ (np.diag(p) - np.outer(p, p)) @ A + np.eye(5)
        assert relative_error(h, expected) < 1e-12
        assert np.allclose(h, h.T, rtol=0, atol=1e-14)


def test_jacobian_of_softmax():
    z = sg.var("z", shape=(6,))
    J = sg.jacobian(sg.softmax(z), z)
    assert J.shape == (6, 6)
    fn = sg.compile(J, inputs=[z])
    rng = np.random.default_rng(5)
    for z0 in (rng.standard_normal(6), 50.0 * rng.standard_normal(6)):
        p = softmax(z0)
        assert relative_error(fn(z0), np.diag(p) - np.outer(p, p)) < 1e-13


W0 = np.random.default_rng(6).standard_normal((3, 5))


def vector_function_numpy(x):
    return np.tanh(W0 @ x) * x[:3] + np.exp(0.3 * x[1:4]) * x[4]


def vector_function_jacobian(x):
    """Derived by hand: d/dx_j of tanh(W x)_i x_i + exp(0.3 x_{i+1}) x_4."""
    t = np.tanh(W0 @ x)
    J = (1.0 - t ** 2)[:, None] * W0 * x[:3, None]
    J[np.arange(3), np.arange(3)] += t
    e = np.exp(0.3 * x[1:4])
    J[np.arange(3), np.arange(1, 4)] += 0.3 * e * x[4]
    J[:, 4] += e
    return J


def test_jacobian_and_hessian_over_a_named_dimension_are_sized_at_run_time():
    # regression (property tests): a named dimension in the output used to be a ShapeError
    X, W = sg.var("X", shape=("n", 3)), sg.var("W", shape=(3, 2))
    y = sg.tanh(X @ W)
    f = sg.sum(sg.sin(X) ** 2)
    J, H = sg.jacobian(y, X), sg.hessian(f, X)
    assert (J.shape, H.shape) == (("n", 2, "n", 3), ("n", 3, "n", 3))
    fn = sg.compile([J, H], inputs=[X, W])
    rng = np.random.default_rng(11)
    W0 = rng.standard_normal((3, 2))
    for n in (1, 4):
        X0 = rng.standard_normal((n, 3))
        jacobian, hessian = fn(X0, W0)
        expected = finite_difference_jacobian(lambda x: np.tanh(x.reshape(n, 3) @ W0).ravel(),
                                              X0.ravel())
        assert relative_error(jacobian.reshape(n * 2, n * 3), expected) < 1e-6
        # d2/dx2 sin(x)^2 = 2 cos(2x), and entries never mix
        assert relative_error(hessian.reshape(n * 3, n * 3), np.diag(2 * np.cos(2 * X0.ravel()))) \
            < 1e-12


def test_jvp_vjp_and_jacobian_of_a_nonlinear_vector_function():
    x = sg.var("x", shape=(5,))
    t = sg.var("t", shape=(5,))
    u = sg.var("u", shape=(3,))
    U = sg.var("U", shape=(2, 3))
    y = sg.tanh(sg.const(W0) @ x) * x[:3] + sg.exp(0.3 * x[1:4]) * x[4]
    forward, backward, batched, jacobian = (sg.jvp(y, x, t), sg.vjp(y, x, u), sg.vjp(y, x, U),
                                            sg.jacobian(y, x))
    assert (forward.shape, backward.shape, batched.shape, jacobian.shape) == \
        ((3,), (5,), (2, 5), (3, 5))
    fn = sg.compile([y, forward, backward, batched, jacobian], inputs=[x, t, u, U])
    rng = np.random.default_rng(7)
    for _ in range(3):
        x0, t0, u0 = rng.standard_normal(5), rng.standard_normal(5), rng.standard_normal(3)
        U0 = rng.standard_normal((2, 3))
        J = vector_function_jacobian(x0)
        # the hand-derived Jacobian is itself checked against finite differences
        assert relative_error(finite_difference_jacobian(vector_function_numpy, x0), J) < 1e-8
        value, jv, vj, vjs, jac = fn(x0, t0, u0, U0)
        assert relative_error(value, vector_function_numpy(x0)) < 1e-14
        assert relative_error(jv, J @ t0) < 1e-12
        assert relative_error(vj, u0 @ J) < 1e-12
        assert relative_error(vjs, U0 @ J) < 1e-12
        assert relative_error(jac, J) < 1e-12


def test_jvp_and_vjp_with_several_variables():
    a = sg.var("a", shape=(3,))
    b = sg.var("b")
    y = sg.sin(a) * b ** 2 + sg.sum(a) * b            # shape (3,)
    ta, tb, u = sg.var("ta", shape=(3,)), sg.var("tb"), sg.var("u", shape=(3,))
    fn = sg.compile([sg.jvp(y, [a, b], [ta, tb]), *sg.vjp(y, [a, b], u)], inputs=[a, b, ta, tb, u])
    rng = np.random.default_rng(8)
    a0, b0, ta0, tb0, u0 = (rng.standard_normal(3), 0.7, rng.standard_normal(3), -1.3,
                            rng.standard_normal(3))
    Ja = np.diag(np.cos(a0)) * b0 ** 2 + b0          # dy_i/da_j
    Jb = 2 * b0 * np.sin(a0) + np.sum(a0)            # dy_i/db
    jv, va, vb = fn(a0, b0, ta0, tb0, u0)
    assert relative_error(jv, Ja @ ta0 + Jb * tb0) < 1e-12
    assert relative_error(va, u0 @ Ja) < 1e-12
    assert relative_error(vb, u0 @ Jb) < 1e-12


def test_jvp_with_a_tangent_computed_in_the_graph_is_J_times_its_value():
    x = sg.var("x", shape=(5,))
    y = sg.tanh(sg.const(W0) @ x) * x[:3] + sg.exp(0.3 * x[1:4]) * x[4]
    x0 = np.random.default_rng(9).standard_normal(5)
    result = sg.compile(sg.jvp(y, x, 2.0 * x), inputs=[x])(x0)
    assert relative_error(result, vector_function_jacobian(x0) @ (2.0 * x0)) < 1e-12


def test_hessian_with_a_list_of_variables_gives_blocks():
    a = sg.var("a", shape=(2,))
    b = sg.var("b")
    f = sg.sum(a ** 2) * b ** 3 + sg.sin(b) * a[0]
    blocks = sg.hessian(f, [a, b])
    assert [[block.shape for block in row] for row in blocks] == [[(2, 2), (2,)], [(2,), ()]]
    fn = sg.compile([blocks[0][0], blocks[0][1], blocks[1][0], blocks[1][1]], inputs=[a, b])
    a0, b0 = np.array([0.4, -1.1]), 0.8
    haa, hab, hba, hbb = fn(a0, b0)
    assert relative_error(haa, 2 * b0 ** 3 * np.eye(2)) < 1e-14
    expected_ab = 6 * b0 ** 2 * a0 + np.array([np.cos(b0), 0.0])
    assert relative_error(hab, expected_ab) < 1e-14
    assert relative_error(hba, expected_ab) < 1e-14
    assert relative_error(hbb, 6 * b0 * np.sum(a0 ** 2) - np.sin(b0) * a0[0]) < 1e-14


# -- n-th derivatives against SymPy ----------------------------------------------------------------


def test_nth_derivatives_of_tanh_match_sympy():
    points = np.linspace(-3.0, 3.0, 1000)
    x = sg.var("x", shape=(1000,))
    derivative, derivatives = sg.tanh(x), []
    for order in range(1, 7):
        # elementwise, the gradient of the sum is the vector of derivatives
        derivative = sg.grad(sg.sum(derivative), x, disconnected="raise" if order == 1 else "zero")
        assert derivative.shape == (1000,)
        derivatives.append(derivative)
    results = sg.compile(derivatives, inputs=[x])(points)
    symbol = sympy.Symbol("x")
    for order, result in enumerate(results, start=1):
        exact = sympy.lambdify(symbol, sympy.diff(sympy.tanh(symbol), symbol, order), "numpy")
        expected = np.broadcast_to(exact(points), points.shape)
        assert np.max(np.abs(result - expected)) < 1e-9, order


def test_fourth_order_mixed_partial_of_exp_xy_matches_sympy():
    x, y = sg.var("x"), sg.var("y")
    f = sg.exp(x * y)
    d_xyxy = sg.grad(sg.grad(sg.grad(sg.grad(f, x), y), x), y)
    d_yyxx = sg.grad(sg.grad(sg.grad(sg.grad(f, y), y), x), x)
    fn = sg.compile([d_xyxy, d_yyxx], inputs=[x, y])
    X, Y = sympy.symbols("x y")
    exact = sympy.lambdify((X, Y), sympy.diff(sympy.exp(X * Y), X, Y, X, Y), "numpy")
    # the same partial, derived by hand: (x^2 y^2 + 4 x y + 2) exp(x y)
    assert sympy.simplify(sympy.diff(sympy.exp(X * Y), X, Y, X, Y)
                          - (X**2 * Y**2 + 4 * X * Y + 2) * sympy.exp(X * Y)) == 0
    for x0, y0 in [(0.7, -1.3), (0.0, 0.0), (1.5, 0.9), (-2.0, 0.25)]:
        first, second = fn(x0, y0)
        reference = exact(x0, y0)
        assert relative_error(first, reference) < 1e-12
        assert relative_error(second, reference) < 1e-12


# -- hvp with a direction computed in the graph ----------------------------------------------------


def test_hvp_direction_computed_in_the_graph_is_a_constant():
    x = sg.var("x", shape=(4,))
    f = sg.sum(x ** 4) + sg.sum(sg.sin(x))
    product = sg.hvp(f, x, 2.0 * x)
    fn = sg.compile([product, sg.hessian(f, x)], inputs=[x])
    rng = np.random.default_rng(10)
    for x0 in (rng.standard_normal(4), rng.uniform(-3.0, 3.0, 4)):
        hv, h = fn(x0)
        closed_hessian = np.diag(12.0 * x0 ** 2 - np.sin(x0))
        assert relative_error(h, closed_hessian) < 1e-13
        assert relative_error(hv, h @ (2.0 * x0)) < 1e-13
        assert relative_error(hv, closed_hessian @ (2.0 * x0)) < 1e-13
        # what differentiating through v would give, H 2x + 2 grad f: clearly different here
        through_v = closed_hessian @ (2.0 * x0) + 2.0 * (4.0 * x0 ** 3 + np.cos(x0))
        assert relative_error(hv, through_v) > 1e-3


# -- gradient safety -------------------------------------------------------------------------------


SAFETY_POINT = np.array([0.0, 1.0, 4.0, -1.0, 0.25])


@pytest.mark.parametrize("branch, derivative", [
    (sg.sqrt, lambda x: 0.5 / np.sqrt(x)),
    (sg.log, lambda x: 1.0 / x),
], ids=["sqrt", "log"])
def test_where_does_not_leak_nan_from_the_branch_not_taken(branch, derivative):
    x = sg.var("x", shape=(5,))
    f = sg.sum(sg.where(x > 0, branch(x), 0.0))
    fn = sg.compile([sg.grad(f, x), sg.hessian(f, x)], inputs=[x])
    with np.errstate(all="ignore"):     # the untaken branch may be evaluated; it must not leak
        g, h = fn(SAFETY_POINT)
    positive = SAFETY_POINT > 0
    expected = np.zeros(5)
    expected[positive] = derivative(SAFETY_POINT[positive])
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(h))
    assert g[0] == 0.0 and g[3] == 0.0
    assert relative_error(g, expected) < 1e-15
    assert h[0, 0] == 0.0 and h[3, 3] == 0.0


def test_softplus_derivatives_at_zero():
    x = sg.var("x")
    first = sg.grad(sg.softplus(x), x)
    second = sg.grad(first, x)
    fn = sg.compile([first, second], inputs=[x])
    d1, d2 = fn(0.0)
    assert d1 == 0.5
    assert d2 == pytest.approx(0.25, abs=1e-15)
    assert np.isfinite(fn(800.0)).all() and np.isfinite(fn(-800.0)).all()


def test_second_derivative_of_sum_of_squares_keeps_the_shape_of_x():
    x = sg.var("x", shape=(5,))
    second = sg.grad(sg.sum(sg.grad(sg.sum(x ** 2), x)), x)
    hessian = sg.hessian(sg.sum(x ** 2), x)
    assert second.shape == (5,) and hessian.shape == (5, 5)
    s, h = sg.compile([second, hessian], inputs=[x])(SAFETY_POINT)
    assert isinstance(s, np.ndarray) and s.shape == (5,)
    np.testing.assert_array_equal(s, np.full(5, 2.0))
    np.testing.assert_array_equal(h, 2.0 * np.eye(5))


def test_constant_derivative_keeps_the_shape_of_x():
    x = sg.var("x", shape=(5,))
    M = sg.var("M", shape=(2, 3))
    gx, gm = sg.grad(sg.sum(3.0 * x), x), sg.grad(sg.sum(3.0 * M), M)
    assert gx.shape == (5,) and gm.shape == (2, 3)
    rx, rm = sg.compile([gx, gm], inputs=[x, M])(SAFETY_POINT, np.zeros((2, 3)))
    np.testing.assert_array_equal(rx, np.full(5, 3.0))
    np.testing.assert_array_equal(rm, np.full((2, 3), 3.0))
    # and with a named dimension, bound at call time
    n = sg.var("xn", shape=("n",))
    result = sg.compile(sg.grad(sg.sum(3.0 * n), n), inputs=[n])(np.arange(7.0))
    np.testing.assert_array_equal(result, np.full(7, 3.0))


def test_hessian_of_a_linear_function_is_zero_not_an_error():
    x = sg.var("x", shape=(3,))
    h = sg.compile(sg.hessian(sg.sum(3.0 * x), x), inputs=[x])(np.ones(3))
    np.testing.assert_array_equal(h, np.zeros((3, 3)))


# -- stop_gradient and the disconnected policies ---------------------------------------------------


def test_stop_gradient_is_a_constant_for_every_differentiation():
    x = sg.var("x", shape=(3,))
    f = sg.sum(x * sg.stop_gradient(x))
    x0 = np.array([0.5, -2.0, 3.0])
    value, g, h = sg.compile([f, sg.grad(f, x), sg.hessian(f, x)], inputs=[x])(x0)
    assert value == pytest.approx(x0 @ x0)
    np.testing.assert_array_equal(g, x0)          # not 2 x
    np.testing.assert_array_equal(h, np.zeros((3, 3)))
    with pytest.raises(sg.UndefinedGradientError, match="stop_gradient"):
        sg.grad(sg.sum(sg.stop_gradient(x)), x)


def _transformations():
    """name -> function(disconnected) differentiating outputs of x with respect to y."""
    def build(name, x, y, policy):
        if name == "grad":
            return sg.grad(sg.sum(x ** 2), y, disconnected=policy), (3,)
        if name == "hessian":
            return sg.hessian(sg.sum(x ** 2), y, disconnected=policy), (3, 3)
        if name == "jacobian":
            return sg.jacobian(x ** 2, y, disconnected=policy), (5, 3)
        if name == "hvp":
            return sg.hvp(sg.sum(x ** 2), y, np.ones(3), disconnected=policy), (3,)
        if name == "jvp":
            return sg.jvp(x ** 2, y, np.ones(3), disconnected=policy), (5,)
        if name == "vjp":
            return sg.vjp(x ** 2, y, np.ones(5), disconnected=policy), (3,)
        raise AssertionError(name)
    return build


TRANSFORMATIONS = ["grad", "hessian", "jacobian", "hvp", "jvp", "vjp"]


@pytest.mark.parametrize("name", TRANSFORMATIONS)
def test_disconnected_raise(name):
    x, y = sg.var("x", shape=(5,)), sg.var("y", shape=(3,))
    with pytest.raises(sg.UndefinedGradientError, match="does not depend on 'y'"):
        _transformations()(name, x, y, "raise")


@pytest.mark.parametrize("name", TRANSFORMATIONS)
def test_disconnected_raise_is_the_default(name):
    x, y = sg.var("x", shape=(5,)), sg.var("y", shape=(3,))
    assert issubclass(sg.UndefinedGradientError, sg.SymgradError)
    call = {"grad": lambda: sg.grad(sg.sum(x), y), "hessian": lambda: sg.hessian(sg.sum(x), y),
            "jacobian": lambda: sg.jacobian(x, y), "hvp": lambda: sg.hvp(sg.sum(x), y, np.ones(3)),
            "jvp": lambda: sg.jvp(x, y, np.ones(3)), "vjp": lambda: sg.vjp(x, y, np.ones(5))}[name]
    with pytest.raises(sg.UndefinedGradientError):
        call()


@pytest.mark.parametrize("policy", ["warn", "zero"])
@pytest.mark.parametrize("name", TRANSFORMATIONS)
def test_disconnected_warn_and_zero_give_zeros(name, policy):
    x, y = sg.var("x", shape=(5,)), sg.var("y", shape=(3,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result, shape = _transformations()(name, x, y, policy)
    disconnected = [w for w in caught if issubclass(w.category, sg.DisconnectedWarning)]
    if policy == "warn":
        assert disconnected, "no DisconnectedWarning"
        assert "'y'" in str(disconnected[0].message)
        assert issubclass(sg.DisconnectedWarning, UserWarning)
    else:
        assert not disconnected
    assert result.shape == shape
    value = sg.compile(result, inputs=[x, y])(np.arange(5.0), np.arange(3.0))
    np.testing.assert_array_equal(value, np.zeros(shape))


def test_disconnected_through_a_comparison_only():
    x = sg.var("x", shape=(3,))
    f = sg.sum(sg.where(x > 0, 1.0, -1.0) * 2.0)
    with pytest.raises(sg.UndefinedGradientError, match="only through"):
        sg.grad(f, x)
    g = sg.compile(sg.grad(f, x, disconnected="zero"), inputs=[x])(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(g, np.zeros(3))


def test_an_unknown_policy_is_rejected():
    x = sg.var("x", shape=(3,))
    with pytest.raises(sg.SymgradError, match="disconnected"):
        sg.hessian(sg.sum(x ** 2), x, disconnected="ignore")


@pytest.fixture
def primitive_without_rule():
    name = "cbrt_norule"
    register_primitive(name, 1, same_shape, "np.cbrt({0})", None)
    try:
        yield lambda x: apply(name, x)
    finally:
        del sg.OPS[name]


@pytest.mark.parametrize("name", TRANSFORMATIONS)
def test_undefined_gradient_names_the_op_and_the_path(primitive_without_rule, name):
    x = sg.var("x", shape=(3,))
    y = primitive_without_rule(sg.sin(x)) * 2.0          # shape (3,)
    # the value itself compiles and runs
    np.testing.assert_allclose(sg.compile(y, inputs=[x])(np.full(3, 0.5)),
                               2.0 * np.cbrt(np.sin(0.5)), rtol=1e-15)
    calls = {"grad": lambda d: sg.grad(sg.sum(y), x, disconnected=d),
             "hessian": lambda d: sg.hessian(sg.sum(y), x, disconnected=d),
             "jacobian": lambda d: sg.jacobian(y, x, disconnected=d),
             "hvp": lambda d: sg.hvp(sg.sum(y), x, np.ones(3), disconnected=d),
             "jvp": lambda d: sg.jvp(y, x, np.ones(3), disconnected=d),
             "vjp": lambda d: sg.vjp(y, x, np.ones(3), disconnected=d)}
    for policy in ("raise", "zero"):   # no policy turns a missing rule into zeros
        with pytest.raises(sg.UndefinedGradientError) as error:
            calls[name](policy)
        message = str(error.value)
        assert "'cbrt_norule'" in message
        assert "x -> sin -> cbrt_norule" in message


def test_failed_differentiation_adds_nothing_to_the_graph(primitive_without_rule, fresh_graph):
    x = sg.var("x", shape=(3,))
    y = sg.sum(primitive_without_rule(sg.sin(x)) * 2.0)
    before = fresh_graph.number_of_nodes()
    with pytest.raises(sg.UndefinedGradientError):
        sg.hessian(y, x)
    assert fresh_graph.number_of_nodes() == before


# -- check_grad ------------------------------------------------------------------------------------


def test_check_grad_is_small_for_correct_expressions():
    x = sg.var("x", shape=(4,))
    s = sg.var("s")
    f = sg.sum(sg.tanh(x) * s ** 2) + sg.logsumexp(x * s)
    report = sg.check_grad(f, {"x": np.array([0.3, -1.2, 2.0, 0.1]), "s": 0.8})
    assert set(report) == {"s", "x"}
    assert report["x"] < 1e-7 and report["s"] < 1e-7
    x_only = sg.check_grad(f, {"x": np.array([0.3, -1.2, 2.0, 0.1]), "s": 0.8}, wrt=x)
    assert set(x_only) == {"x"} and x_only["x"] < 1e-7


def test_check_grad_is_large_for_a_wrong_rule():
    x = sg.var("x", shape=(3,))
    wrong = sg.custom_gradient(sg.sin(x), [x], lambda g, out, x: [g * sg.sin(x)])  # not cos
    report = sg.check_grad(sg.sum(wrong), {"x": np.array([0.7, -0.4, 1.9])})
    # the worst entry compares sin(x) with cos(x): |sin 1.9 - cos 1.9| / sin 1.9 is about 1.34
    expected = np.max(np.abs(np.sin([0.7, -0.4, 1.9]) - np.cos([0.7, -0.4, 1.9]))
                      / np.maximum(np.abs(np.sin([0.7, -0.4, 1.9])),
                                   np.abs(np.cos([0.7, -0.4, 1.9]))))
    assert report["x"] == pytest.approx(expected, rel=1e-6)
    assert report["x"] > 0.5


def test_a_node_built_on_a_derivative_takes_its_order():
    """Summing a first derivative gives a first-order node; its gradient is second-order (the
    per-order sizes of graph_stats count it there)."""
    x = sg.var("x", shape=("n",))
    first = sg.grad(sg.sum(sg.tanh(x)), x)
    summed = sg.sum(first)
    second = sg.grad(summed, x)
    graph = second.graph
    # of order 1, but not a derivative node: derivative-only rewrites leave it alone
    assert graph.nodes[summed.node]["order"] == 1 and not graph.nodes[summed.node]["derivative"]
    assert graph.nodes[second.node]["order"] == 2
    # (the second derivative alone is one polynomial node in tanh(x): optimize.compaction)
    assert set(sg.graph_stats([first, second])) == {0, 1, 2}
    assert graph.nodes[sg.sum(sg.tanh(x) * 2.0).node]["order"] == 0     # forward stays forward


def test_repeated_derivatives_of_sums_are_named_by_their_order():
    x = sg.var("x", shape=(4,))
    derivatives, d = [], sg.tanh(x)
    for _ in range(3):
        d = sg.grad(sg.sum(d), x)
        derivatives.append(d)
    source = sg.compile(derivatives, inputs=[x]).source
    assert source.rstrip().endswith("return d_out_d_x, d2_out_d_x2, d3_out_d_x3"), source
