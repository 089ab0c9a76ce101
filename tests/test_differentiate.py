"""Symbol-to-symbol derivatives, checked against textbook values, SymPy and finite differences."""

import warnings

import numpy as np
import pytest
import sympy

import symgrad as sg

RNG = np.random.default_rng(11)


def evaluate(outputs, inputs, *values):
    return sg.compile(outputs, inputs=inputs)(*values)


# -- textbook values -------------------------------------------------------------------------------


def test_sum_times_variable():
    x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
    f = (x + y) * z
    value, *grads = evaluate([f, *sg.grad(f, [x, y, z])], [x, y, z], -2.0, 5.0, -4.0)
    assert value == -12.0
    assert grads == [-4.0, -4.0, 3.0]


def test_sum_times_max():
    x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
    f = (x + y) * sg.maximum(y, z)
    value, *grads = evaluate([f, *sg.grad(f, [x, y, z])], [x, y, z], -2.0, 5.0, -4.0)
    assert value == 15.0
    assert grads == [5.0, 8.0, 0.0]


def test_third_derivative_by_repeated_grad():
    x = sg.var("x")
    d = x ** 5
    for _ in range(3):
        d = sg.grad(d, x)
    assert evaluate(d, [x], 2.0) == pytest.approx(240.0)      # 60 x**2
    fourth = sg.grad(d, x)
    assert evaluate(fourth, [x], 2.0) == pytest.approx(240.0)  # 120 x


def test_single_wrt_gives_one_expression_and_a_list_gives_a_list():
    x, v = sg.var("x"), sg.var("v", (3,))
    f = sg.sum(v * x)
    assert isinstance(sg.grad(f, x), sg.Expr)
    assert sg.grad(f, v).shape == (3,)
    both = sg.grad(f, (v, x))
    assert isinstance(both, list) and [g.shape for g in both] == [(3,), ()]


# -- one graph -------------------------------------------------------------------------------------


def test_derivatives_are_appended_to_the_same_graph():
    x, y = sg.var("x"), sg.var("y")
    f = sg.sin(x) * sg.exp(x * y)
    graph = f.graph
    before = graph.number_of_nodes()
    g = sg.grad(f, x)
    assert g.graph is f.graph
    assert graph.number_of_nodes() > before
    assert g.is_derivative
    assert not f.is_derivative
    # the derivative nodes are new (besides the seed constant); the forward nodes are not touched
    new = [n for n in graph.nodes if n >= before and graph.nodes[n]["op"] != "const"]
    assert new and all(graph.nodes[n]["derivative"] for n in new)
    assert not any(graph.nodes[n]["derivative"] for n in graph.nodes if n < before)


def test_a_derivative_is_an_expression_that_can_be_differentiated_again():
    x, y = sg.var("x"), sg.var("y")
    f = x ** 3 * y ** 2
    fx = sg.grad(f, x)
    fxy = sg.grad(fx, y)
    fxyy = sg.grad(fxy, y)
    assert evaluate([fx, fxy, fxyy], [x, y], 2.0, 3.0) == pytest.approx((108.0, 72.0, 24.0))


def test_grad_of_the_same_function_twice_adds_nothing_the_second_time():
    x = sg.var("x")
    f = sg.tanh(x) * x
    first = sg.grad(f, x)
    count = f.graph.number_of_nodes()
    assert sg.grad(f, x).node == first.node
    assert f.graph.number_of_nodes() == count


# A 100,000-node graph (and a deep hvp) differentiated and compiled: tests/test_reliability.py.


# -- Jacobians and Hessians against SymPy ----------------------------------------------------------

SX, SY, SZ = sympy.symbols("x y z")
SCALAR_FUNCTIONS = [
    "x**2*y + sin(x*z) - exp(y)/(1 + z**2)",
    "log(1 + x**2) * cos(y) + tanh(z*x)",
    "sqrt(x**2 + y**2 + 1) * z",
    "x*y*z + x**3 - y**2*z",
    "exp(-(x**2 + y**2)) * sin(z)",
]


def random_point():
    return [float(v) for v in RNG.uniform(-1.5, 1.5, size=3)]


@pytest.mark.parametrize("text", SCALAR_FUNCTIONS)
def test_gradient_and_hessian_of_scalar_functions_match_sympy(text):
    symbolic = sympy.sympify(text)
    symbols = [SX, SY, SZ]
    f = sg.parse(text)
    x, y, z = (sg.var(n) for n in "xyz")
    gradient = sg.grad(f, [x, y, z])
    blocks = sg.hessian(f, [x, y, z])
    assert len(blocks) == 3 and all(len(row) == 3 for row in blocks)
    fn = sg.compile([*gradient, *[b for row in blocks for b in row]], inputs=[x, y, z])
    reference_gradient = sympy.lambdify(symbols, [sympy.diff(symbolic, s) for s in symbols])
    reference_hessian = sympy.lambdify(symbols, sympy.hessian(symbolic, symbols))
    for _ in range(4):
        point = random_point()
        values = fn(*point)
        np.testing.assert_allclose(values[:3], reference_gradient(*point), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.reshape(values[3:], (3, 3)), reference_hessian(*point),
                                   rtol=1e-10, atol=1e-12)


def vector_symbols(name, n):
    return sympy.Matrix(sympy.symbols(f"{name}0:{n}"))


def test_jacobian_of_a_vector_function_matches_sympy():
    v = sg.var("v", (3,))
    y = sg.sin(v) * sg.sum(v ** 2) + sg.exp(v[0]) * v[::-1]
    J = sg.jacobian(y, v)
    assert J.shape == (3, 3)
    s = vector_symbols("v", 3)
    norm = sum(si ** 2 for si in s)
    symbolic = sympy.Matrix([sympy.sin(s[i]) * norm + sympy.exp(s[0]) * s[2 - i] for i in range(3)])
    reference = sympy.lambdify(list(s), symbolic.jacobian(s))
    fn = sg.compile(J, inputs=[v])
    for _ in range(4):
        point = RNG.normal(size=3)
        np.testing.assert_allclose(fn(point), reference(*point), rtol=1e-10, atol=1e-12)


def test_jacobian_with_respect_to_a_matrix_matches_sympy():
    W, v = sg.var("W", (2, 3)), sg.var("v", (3,))
    y = sg.tanh(W @ v)
    JW, Jv = sg.jacobian(y, [W, v])
    assert JW.shape == (2, 2, 3) and Jv.shape == (2, 3)
    Ws = sympy.Matrix(2, 3, sympy.symbols("w0:6"))
    vs = vector_symbols("v", 3)
    symbolic = (Ws * vs).applyfunc(sympy.tanh)
    flat = list(Ws) + list(vs)
    derivatives = [[[sympy.diff(symbolic[i], Ws[j, k]) for k in range(3)] for j in range(2)]
                   for i in range(2)]
    reference_W = sympy.lambdify(flat, sympy.Array(derivatives))
    reference_v = sympy.lambdify(flat, symbolic.jacobian(vs))
    fn = sg.compile([JW, Jv], inputs=[W, v])
    for _ in range(3):
        Wn, vn = RNG.normal(size=(2, 3)), RNG.normal(size=3)
        got_W, got_v = fn(Wn, vn)
        args = list(Wn.ravel()) + list(vn)
        np.testing.assert_allclose(got_W, np.array(reference_W(*args), dtype=float), rtol=1e-10,
                                   atol=1e-12)
        np.testing.assert_allclose(got_v, reference_v(*args), rtol=1e-10, atol=1e-12)


def test_hessian_of_a_vector_variable_matches_sympy():
    v = sg.var("v", (3,))
    f = sg.sum(sg.exp(v) * v[::-1]) + sg.log(1.0 + sg.sum(v ** 2))
    H = sg.hessian(f, v)
    assert H.shape == (3, 3)
    s = vector_symbols("v", 3)
    symbolic = (sum(sympy.exp(s[i]) * s[2 - i] for i in range(3))
                + sympy.log(1 + sum(si ** 2 for si in s)))
    reference = sympy.lambdify(list(s), sympy.hessian(symbolic, list(s)))
    fn = sg.compile(H, inputs=[v])
    for _ in range(4):
        point = RNG.normal(size=3)
        got = fn(point)
        np.testing.assert_allclose(got, reference(*point), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got, got.T, rtol=1e-12)


def test_hessian_blocks_of_two_variables_have_the_documented_shapes():
    W, v = sg.var("W", (2, 3)), sg.var("v", (3,))
    f = sg.sum(sg.tanh(W @ v)) * sg.sum(v)
    blocks = sg.hessian(f, [W, v])
    assert [[b.shape for b in row] for row in blocks] == [[(2, 3, 2, 3), (2, 3, 3)],
                                                          [(3, 2, 3), (3, 3)]]
    fn = sg.compile([b for row in blocks for b in row], inputs=[W, v])
    Wn, vn = RNG.normal(size=(2, 3)), RNG.normal(size=3)
    hWW, hWv, hvW, hvv = fn(Wn, vn)
    # the full Hessian over the flattened (W, v) is symmetric
    full = np.block([[hWW.reshape(6, 6), hWv.reshape(6, 3)], [hvW.reshape(3, 6), hvv]])
    np.testing.assert_allclose(full, full.T, rtol=1e-10, atol=1e-12)


# -- hvp, vjp, jvp ---------------------------------------------------------------------------------


@pytest.fixture
def network():
    W, v = sg.var("W", (2, 3)), sg.var("v", (3,))
    return W, v


def test_hvp_is_the_dense_hessian_times_the_direction(network):
    W, v = network
    f = sg.sum(sg.tanh(W @ v)) * sg.sum(v ** 2)
    t = sg.var("t", (3,))
    H = sg.hessian(f, v)
    Ht = sg.hvp(f, v, t)
    assert Ht.shape == (3,)
    fn = sg.compile([H, Ht], inputs=[W, v, t])
    for _ in range(3):
        Wn, vn, tn = RNG.normal(size=(2, 3)), RNG.normal(size=3), RNG.normal(size=3)
        dense, product = fn(Wn, vn, tn)
        np.testing.assert_allclose(product, dense @ tn, rtol=1e-10, atol=1e-12)


def test_hvp_with_a_constant_direction_and_several_variables(network):
    W, v = network
    f = sg.sum(sg.tanh(W @ v) ** 2)
    dW, dv = RNG.normal(size=(2, 3)), RNG.normal(size=3)
    hW, hv = sg.hvp(f, [W, v], [dW, dv])
    blocks = sg.hessian(f, [W, v])
    fn = sg.compile([hW, hv, *[b for row in blocks for b in row]], inputs=[W, v])
    got_W, got_v, hWW, hWv, hvW, hvv = fn(RNG.normal(size=(2, 3)), RNG.normal(size=3))
    np.testing.assert_allclose(got_W, np.tensordot(hWW, dW, 2) + np.tensordot(hWv, dv, 1),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_v, np.tensordot(hvW, dW, 2) + hvv @ dv, rtol=1e-10, atol=1e-12)


def test_hvp_never_forms_the_hessian():
    n = 200
    v = sg.var("v", (n,))
    f = sg.sum(sg.sin(v) * v)
    Ht = sg.hvp(f, v, np.ones(n))
    shapes = [f.graph.nodes[k]["shape"] for k in f.graph.ancestors_in_order([Ht.node])]
    assert all(int(np.prod(s)) <= n for s in shapes)
    point = RNG.normal(size=n)
    # d2/dv2 of sin(v) v is 2 cos(v) - v sin(v), diagonal
    np.testing.assert_allclose(sg.compile(Ht)(point), 2 * np.cos(point) - point * np.sin(point),
                               rtol=1e-12)


def test_vjp_and_jvp_agree_with_the_jacobian(network):
    W, v = network
    y = sg.tanh(W @ v) * sg.sum(v ** 2)
    u, t = sg.var("u", (2,)), sg.var("t", (3,))
    J = sg.jacobian(y, v)
    JW = sg.jacobian(y, W)
    pulled = sg.vjp(y, v, u)
    pulled_W = sg.vjp(y, W, u)
    pushed = sg.jvp(y, v, t)
    assert (pulled.shape, pulled_W.shape, pushed.shape) == ((3,), (2, 3), (2,))
    fn = sg.compile([J, JW, pulled, pulled_W, pushed], inputs=[W, v, u, t])
    for _ in range(3):
        Wn, vn, un, tn = (RNG.normal(size=s) for s in [(2, 3), (3,), (2,), (3,)])
        Jn, JWn, a, aW, b = fn(Wn, vn, un, tn)
        np.testing.assert_allclose(a, un @ Jn, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(aW, np.tensordot(un, JWn, 1), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, Jn @ tn, rtol=1e-10, atol=1e-12)


def test_jvp_matches_a_finite_difference(network):
    W, v = network
    y = sg.softmax(W @ v)
    tangent = RNG.normal(size=3)
    fn = sg.compile([y, sg.jvp(y, v, tangent)], inputs=[W, v])
    Wn, vn = RNG.normal(size=(2, 3)), RNG.normal(size=3)
    h = 1e-6
    finite = (fn(Wn, vn + h * tangent)[0] - fn(Wn, vn - h * tangent)[0]) / (2 * h)
    np.testing.assert_allclose(fn(Wn, vn)[1], finite, rtol=1e-6, atol=1e-9)


def test_jvp_with_several_variables_sums_the_directions(network):
    W, v = network
    y = sg.tanh(W @ v)
    dW, dv = RNG.normal(size=(2, 3)), RNG.normal(size=3)
    both = sg.jvp(y, [W, v], [dW, dv])
    separate = sg.jvp(y, W, dW) + sg.jvp(y, v, dv)
    fn = sg.compile([both, separate], inputs=[W, v])
    a, b = fn(RNG.normal(size=(2, 3)), RNG.normal(size=3))
    np.testing.assert_allclose(a, b, rtol=1e-12)


# -- stop_gradient and disconnected variables ------------------------------------------------------


def test_stop_gradient_keeps_the_value_and_blocks_the_derivative():
    x, y = sg.var("x"), sg.var("y")
    f = x * sg.stop_gradient(x * y)
    value, gx = evaluate([f, sg.grad(f, x)], [x, y], 2.0, 3.0)
    assert value == 12.0
    assert gx == 6.0                                        # only the outer x
    with pytest.raises(sg.UndefinedGradientError):
        sg.grad(f, y)
    assert evaluate(sg.grad(f, y, disconnected="zero"), [x, y], 2.0, 3.0) == 0.0


def test_stop_gradient_in_second_derivatives():
    x = sg.var("x")
    f = x ** 2 * sg.stop_gradient(x)
    d1 = sg.grad(f, x)
    d2 = sg.grad(d1, x)
    assert evaluate([d1, d2], [x], 3.0) == pytest.approx((2 * 3.0 * 3.0, 2 * 3.0))


@pytest.fixture
def disconnected():
    x, y = sg.var("x"), sg.var("y")
    W = sg.var("W", (2, 3))
    return x, y, W, x ** 2


def test_disconnected_raise(disconnected):
    x, y, W, f = disconnected
    with pytest.raises(sg.UndefinedGradientError, match="'y'"):
        sg.grad(f, [x, y])
    with pytest.raises(sg.UndefinedGradientError):
        sg.grad(f, W, disconnected="raise")


def test_disconnected_warn_gives_a_warning_and_zeros(disconnected):
    x, y, W, f = disconnected
    with pytest.warns(sg.DisconnectedWarning, match="'y'"):
        gx, gy = sg.grad(f, [x, y], disconnected="warn")
    with pytest.warns(sg.DisconnectedWarning):
        gW = sg.grad(f, W, disconnected="warn")
    assert gW.shape == (2, 3)
    values = evaluate([gx, gy, gW], [x, y, W], 3.0, 4.0, np.ones((2, 3)))
    assert values[0] == 6.0 and values[1] == 0.0
    np.testing.assert_array_equal(values[2], np.zeros((2, 3)))


def test_disconnected_zero_gives_zeros_shaped_like_wrt_silently(disconnected):
    x, y, W, f = disconnected
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gx, gy, gW = sg.grad(f, [x, y, W], disconnected="zero")
    assert (gx.shape, gy.shape, gW.shape) == ((), (), (2, 3))
    values = evaluate([gx, gy, gW], [x, y, W], 3.0, 4.0, np.ones((2, 3)))
    assert values[0] == 6.0 and values[1] == 0.0
    assert np.shape(values[2]) == (2, 3) and not np.any(values[2])


@pytest.mark.parametrize("transform", ["jacobian", "hessian", "hvp", "jvp", "vjp"])
def test_every_transformation_applies_the_policy(transform, disconnected):
    x, y, W, f = disconnected
    v = sg.var("v", (3,))
    out = sg.sin(v) * x                               # does not depend on W
    calls = {
        "jacobian": (lambda p: sg.jacobian(out, W, disconnected=p), (3, 2, 3)),
        "hessian": (lambda p: sg.hessian(sg.sum(out), W, disconnected=p), (2, 3, 2, 3)),
        "hvp": (lambda p: sg.hvp(sg.sum(out), W, np.ones((2, 3)), disconnected=p), (2, 3)),
        "jvp": (lambda p: sg.jvp(out, W, np.ones((2, 3)), disconnected=p), (3,)),
        "vjp": (lambda p: sg.vjp(out, W, np.ones(3), disconnected=p), (2, 3)),
    }
    call, shape = calls[transform]
    with pytest.raises(sg.UndefinedGradientError):
        call("raise")
    with pytest.warns(sg.DisconnectedWarning):
        call("warn")
    zero = call("zero")
    assert zero.shape == shape
    value = sg.compile(zero, inputs=[W, v, x])(np.ones((2, 3)), np.ones(3), 2.0)
    assert np.shape(value) == shape and not np.any(value)


def test_an_unknown_policy_is_refused(disconnected):
    x, y, W, f = disconnected
    with pytest.raises(sg.SymgradError):
        sg.grad(f, x, disconnected="ignore")


# -- errors ----------------------------------------------------------------------------------------


def test_grad_of_a_non_scalar_is_a_shape_error():
    v = sg.var("v", (3,))
    with pytest.raises(sg.ShapeError):
        sg.grad(v * 2.0, v)
    with pytest.raises(sg.ShapeError):
        sg.hessian(sg.exp(v), v)


def test_wrt_must_be_expressions():
    x = sg.var("x")
    with pytest.raises(sg.SymgradError):
        sg.grad(x * x, "x")
    with pytest.raises(sg.SymgradError):
        sg.grad(x * x, [])


def test_directions_must_match_the_variables():
    x, v = sg.var("x"), sg.var("v", (3,))
    f = sg.sum(v) * x
    with pytest.raises(sg.ShapeError):
        sg.hvp(f, v, np.ones(2))
    with pytest.raises(sg.SymgradError):
        sg.hvp(f, [v, x], [np.ones(3)])
    with pytest.raises(sg.ShapeError):
        sg.jvp(v * x, v, np.ones(4))
    with pytest.raises(sg.ShapeError):
        sg.vjp(v * x, v, np.ones(4))


# -- ties split the gradient evenly ----------------------------------------------------------------


def test_ties_split_the_gradient_evenly():
    x, y = sg.var("x"), sg.var("y")
    assert evaluate(sg.grad(sg.maximum(x, y), [x, y]), [x, y], 1.0, 1.0) == (0.5, 0.5)
    assert evaluate(sg.grad(sg.minimum(x, y), [x, y]), [x, y], 2.0, 2.0) == (0.5, 0.5)
    # relu is not maximum(x, 0) at 0: it takes PyTorch's and JAX's derivative there
    assert evaluate(sg.grad(sg.relu(x), x), [x], 0.0) == 0.0
    v = sg.var("v", (4,))
    tied = evaluate(sg.grad(sg.max(v), v), [v], np.array([1.0, 3.0, 3.0, 0.0]))
    np.testing.assert_array_equal(tied, [0.0, 0.5, 0.5, 0.0])


def test_power_exponent_derivative_is_zero_at_a_zero_base():
    x, y = sg.var("x"), sg.var("y")
    fn = sg.compile(sg.grad(x ** y, y), inputs=[x, y])
    assert fn(0.0, 2.0) == 0.0                      # the limit of x**y log x, not nan
    np.testing.assert_allclose(fn(3.0, 2.0), 9.0 * np.log(3.0))


# Threads sharing one graph: tests/test_reliability.py.


def test_a_contribution_that_comes_twice_is_added_once_as_twice_it():
    # d(a * a) gives g a through both operands: one node 2 (g a), not (g a) + (g a)
    x = sg.var("x", shape=(4,))
    a = sg.sin(x)
    gradient = sg.grad(sg.sum(sg.exp(a * a)), x)
    graph = gradient.graph
    derivative_adds = [n for n, d in graph.nodes(data=True)
                       if d["derivative"] and d["op"] == "add" and len(set(d["inputs"])) == 1]
    assert derivative_adds == []
    x0 = np.array([0.1, -0.7, 1.3, 2.0])
    expected = np.exp(np.sin(x0) ** 2) * 2 * np.sin(x0) * np.cos(x0)
    np.testing.assert_allclose(sg.compile(gradient, inputs=[x], optimize=False)(x0), expected,
                               rtol=1e-14)


def test_a_dense_jacobian_or_hessian_too_large_to_hold_is_refused_before_building():
    x = sg.var("x", shape=(10**9,))
    f, doubled, y = sg.sum(x * x), x * 2.0, sg.var("y", shape=(10**4, 10**4 + 1))
    nodes = f.graph.number_of_nodes()
    with pytest.raises(sg.ShapeError, match="hessian: a dense result of shape "
                                            r"\(1000000000, 1000000000\)"):
        sg.hessian(f, x)
    with pytest.raises(sg.ShapeError, match="jacobian: .* more than the 100,000,000"):
        sg.jacobian(doubled, x)
    with pytest.raises(sg.ShapeError, match="jacobian"):
        sg.jacobian(sg.sum(y), y)
    assert f.graph.number_of_nodes() == nodes + 1           # sum(y), and nothing else
    assert sg.hvp(f, x, sg.const(np.ones(3))[0] * x).shape == (10**9,)   # never formed
