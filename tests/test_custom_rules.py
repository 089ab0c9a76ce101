"""User-supplied derivative rules: new primitives with sg.defop, and sg.custom_gradient.

References are SymPy, closed forms derived by hand in the test and central finite differences.
Every op registered here is removed from sg.OPS by its fixture (tests/test_ops.py checks that every
op in sg.OPS has a table entry).
"""

import contextlib

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.ops import expand_dims


def relative_error(got, expected):
    """Worst absolute difference, relative to the largest entry of the reference (at least 1)."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    assert got.shape == expected.shape, f"shape {got.shape}, expected {expected.shape}"
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    return float(np.max(np.abs(got - expected), initial=0.0)) / scale


def central_difference(function, x, step=1e-6):
    """d function / d x for a function of one float (or, elementwise, of an array)."""
    return (function(x + step) - function(x - step)) / (2 * step)


def registered(name, *args, **kwargs):
    """Register ``name`` with sg.defop for the duration of a fixture; always unregister it."""
    try:
        yield sg.defop(name, *args, **kwargs)
    finally:
        sg.OPS.pop(name, None)


@pytest.fixture
def log1pexp():
    """log(1 + exp(x)) without overflow, with its own rule: the derivative is sigmoid(x)."""
    yield from registered("log1pexp", 1, lambda shapes: shapes[0], "np.logaddexp(0.0, {0})",
                          vjp=lambda g, out, x: [g * sg.sigmoid(x)])


@pytest.fixture
def cube():
    yield from registered("cube", 1, lambda shapes: shapes[0], "{0} ** 3",
                          vjp=lambda g, out, x: [g * 3.0 * x ** 2])


@pytest.fixture
def power_k():
    """x ** k with the exponent an attribute, written into the template by name."""
    yield from registered("power_k", 1, lambda shapes, k: shapes[0], "{0} ** {k}",
                          vjp=lambda g, out, x, k: [g * k * x ** (k - 1.0)])


def _sum_of_squares(rule):
    """A reduction over the last axis: the rule must address the op's axes from the right."""
    yield from registered("sum_of_squares", 1, lambda shapes: shapes[0][:-1],
                          "np.sum({0} ** 2, axis=-1)", vjp=rule)


@pytest.fixture
def sum_of_squares():
    yield from _sum_of_squares(lambda g, out, x: [expand_dims(g, -1) * 2.0 * x])


@pytest.fixture
def sum_of_squares_indexed():
    """The same rule written with indexing, g[..., None], as the defop docstring suggests."""
    yield from _sum_of_squares(lambda g, out, x: [g[..., None] * 2.0 * x])


def test_fixtures_register_their_ops(log1pexp, cube, power_k, sum_of_squares):
    assert {"log1pexp", "cube", "power_k", "sum_of_squares"} <= set(sg.OPS)


def test_registered_ops_are_gone_after_their_fixtures():
    assert not {"log1pexp", "cube", "power_k", "sum_of_squares"} & set(sg.OPS)


# -- sg.defop: a primitive with its own rule -------------------------------------------------------


def test_defop_value_and_derivatives_to_third_order_match_sympy(log1pexp):
    x = sg.var("x", shape=(201,))
    d1 = sg.grad(sg.sum(log1pexp(x)), x)
    d2 = sg.grad(sg.sum(d1), x)
    d3 = sg.grad(sg.sum(d2), x)
    fn = sg.compile([log1pexp(x), d1, d2, d3], inputs=[x])
    points = np.linspace(-6.0, 6.0, 201)
    results = fn(points)
    symbol = sympy.Symbol("x")
    exact = sympy.log(1 + sympy.exp(symbol))
    for order, result in enumerate(results):
        reference = sympy.lambdify(symbol, sympy.diff(exact, symbol, order), "numpy")(points)
        assert relative_error(result, reference) < 1e-13, order
    # and the first derivative against central differences of the compiled value
    value = sg.compile(log1pexp(x), inputs=[x])
    assert relative_error(results[1], central_difference(value, points)) < 1e-8


def test_defop_is_numerically_stable_where_the_naive_formula_overflows(log1pexp):
    x = sg.var("x", shape=(4,))
    fn = sg.compile([log1pexp(x), sg.grad(sg.sum(log1pexp(x)), x)], inputs=[x])
    points = np.array([-800.0, -40.0, 40.0, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # underflow is fine
        value, gradient = fn(points)
    np.testing.assert_allclose(value, [0.0, np.exp(-40.0), 40.0, 800.0], rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(gradient, [0.0, np.exp(-40.0), 1.0, 1.0], rtol=1e-14, atol=1e-300)


def test_defop_inside_larger_expressions_matches_sympy(log1pexp, cube):
    x, y = sg.var("x"), sg.var("y")
    f = log1pexp(x * y) * sg.sin(x) + cube(y - x) / (1.0 + x ** 2)
    gradient = sg.grad(f, [x, y])
    hessian = sg.hessian(f, [x, y])
    fn = sg.compile([f, *gradient, *(h for row in hessian for h in row)], inputs=[x, y])
    X, Y = sympy.symbols("x y")
    exact = sympy.log(1 + sympy.exp(X * Y)) * sympy.sin(X) + (Y - X) ** 3 / (1 + X ** 2)
    references = [exact, sympy.diff(exact, X), sympy.diff(exact, Y),
                  sympy.diff(exact, X, X), sympy.diff(exact, X, Y),
                  sympy.diff(exact, Y, X), sympy.diff(exact, Y, Y)]
    lambdas = [sympy.lambdify((X, Y), r, "numpy") for r in references]
    for x0, y0 in [(0.3, -1.2), (1.7, 0.4), (-2.0, 2.5), (0.0, 0.0)]:
        for got, reference in zip(fn(x0, y0), lambdas):
            assert relative_error(got, reference(x0, y0)) < 1e-12


def test_defop_appears_in_the_source_through_its_template(log1pexp, cube, power_k):
    x = sg.var("x", shape=(3,))
    f = sg.sum(log1pexp(2.0 * x) + cube(x) + power_k(x, k=5.0))
    fn = sg.compile([f, sg.grad(f, x)], inputs=[x])
    assert "np.logaddexp(0.0, " in fn.source
    assert "** 3" in fn.source
    assert "** 5.0" in fn.source
    assert "log1pexp" in sg.show_graph(f)
    x0 = np.array([0.5, -1.0, 2.0])
    value, gradient = fn(x0)
    assert relative_error(value, np.sum(np.log1p(np.exp(2 * x0)) + x0 ** 3 + x0 ** 5)) < 1e-14
    expected = 2.0 / (1.0 + np.exp(-2 * x0)) + 3 * x0 ** 2 + 5 * x0 ** 4
    assert relative_error(gradient, expected) < 1e-14


def test_defop_with_an_attribute_differentiates_to_second_order(power_k):
    x = sg.var("x", shape=(3,))
    f = sg.sum(power_k(x, k=3.0)) + sg.sum(power_k(x, k=0.5))
    fn = sg.compile([sg.grad(f, x), sg.hessian(f, x)], inputs=[x])
    x0 = np.array([0.25, 1.0, 4.0])
    gradient, hessian = fn(x0)
    assert relative_error(gradient, 3 * x0 ** 2 + 0.5 * x0 ** -0.5) < 1e-14
    assert relative_error(hessian, np.diag(6 * x0 - 0.25 * x0 ** -1.5)) < 1e-14


W0 = np.random.default_rng(0).standard_normal((3, 4))


def test_jacobian_jvp_and_hvp_through_a_defop(log1pexp):
    """The Jacobian hands the rule a batched cotangent (leading identity axes)."""
    x = sg.var("x", shape=(4,))
    t = sg.var("t", shape=(4,))
    z = sg.const(W0) @ x
    y = log1pexp(z) * x[:3]                                  # shape (3,)
    f = sg.sum(log1pexp(z))
    fn = sg.compile([sg.jacobian(y, x), sg.jvp(y, x, t), sg.hessian(f, x), sg.hvp(f, x, t)],
                    inputs=[x, t])
    rng = np.random.default_rng(1)
    x0, t0 = rng.standard_normal(4), rng.standard_normal(4)
    z0 = W0 @ x0
    s = 1.0 / (1.0 + np.exp(-z0))
    J = (s * x0[:3])[:, None] * W0                           # derived by hand
    J[np.arange(3), np.arange(3)] += np.log1p(np.exp(z0))
    H = W0.T @ np.diag(s * (1.0 - s)) @ W0
    jacobian, forward, hessian, product = fn(x0, t0)
    assert relative_error(jacobian, J) < 1e-13
    assert relative_error(forward, J @ t0) < 1e-13
    assert relative_error(hessian, H) < 1e-13
    assert relative_error(product, H @ t0) < 1e-13


def test_a_reduction_defop_with_a_batched_rule(sum_of_squares):
    x = sg.var("x", shape=(3,))
    s = sum_of_squares(x)
    assert s.shape == ()
    y = s * x
    fn = sg.compile([sg.grad(s, x), sg.hessian(s, x), sg.jacobian(y, x),
                     sg.jvp(y, x, np.ones(3)), sg.hvp(s ** 2, x, np.ones(3))], inputs=[x])
    x0 = np.array([1.0, -2.0, 0.5])
    norm2 = x0 @ x0
    gradient, hessian, jacobian, forward, product = fn(x0)
    J = 2.0 * np.outer(x0, x0) + norm2 * np.eye(3)
    assert relative_error(gradient, 2.0 * x0) < 1e-15
    assert relative_error(hessian, 2.0 * np.eye(3)) < 1e-15
    assert relative_error(jacobian, J) < 1e-15
    assert relative_error(forward, J @ np.ones(3)) < 1e-15
    assert relative_error(product, (4 * norm2 * np.eye(3) + 8 * np.outer(x0, x0)) @ np.ones(3)) \
        < 1e-15


def test_a_reduction_defop_with_an_indexed_batched_rule_jacobian(sum_of_squares_indexed):
    # with a batched (array) cotangent, g[..., None] indexes an array and works
    x = sg.var("x", shape=(3,))
    y = sum_of_squares_indexed(x) * x
    x0 = np.array([1.0, -2.0, 0.5])
    jacobian = sg.compile(sg.jacobian(y, x), inputs=[x])(x0)
    assert relative_error(jacobian, 2.0 * np.outer(x0, x0) + (x0 @ x0) * np.eye(3)) < 1e-15


def test_a_reduction_defop_with_an_indexed_rule_gradient(sum_of_squares_indexed):
    x = sg.var("x", shape=(3,))
    x0 = np.array([1.0, -2.0, 0.5])
    gradient = sg.compile(sg.grad(sum_of_squares_indexed(x), x), inputs=[x])(x0)
    assert relative_error(gradient, 2.0 * x0) < 1e-15


def test_a_wrong_defop_rule_is_caught_by_check_grad():
    bad = sg.defop("bad_cube", 1, lambda shapes: shapes[0], "{0} ** 3",
                   vjp=lambda g, out, x: [g * 2.0 * x ** 2])
    try:
        x = sg.var("x", shape=(3,))
        report = sg.check_grad(sg.sum(bad(x)), {"x": np.array([1.0, -2.0, 0.5])})
        assert report["x"] == pytest.approx(1.0 / 3.0, rel=1e-6)   # |2 - 3| / 3
    finally:
        sg.OPS.pop("bad_cube", None)


def test_check_grad_accepts_a_correct_defop(log1pexp, cube):
    x = sg.var("x", shape=(3,))
    report = sg.check_grad(sg.sum(log1pexp(x) * cube(x)), {"x": np.array([1.0, -2.0, 0.5])})
    assert report["x"] < 1e-8


# -- sg.defop: errors ------------------------------------------------------------------------------


def _shape(shapes):
    return shapes[0]


def _rule(g, out, x):
    return [g]


@pytest.mark.parametrize("name", ["sin", "add", "custom_gradient", "var", "const"])
def test_defop_refuses_an_existing_name(name):
    before = sg.OPS[name]
    with pytest.raises(sg.SymgradError, match="already exists"):
        sg.defop(name, 1, _shape, "{0}", vjp=_rule)
    assert sg.OPS[name] is before


def test_defop_refuses_a_name_it_registered_itself(cube):
    with pytest.raises(sg.SymgradError, match="already exists"):
        sg.defop("cube", 1, _shape, "{0} ** 3", vjp=_rule)


@pytest.mark.parametrize("name", ["1cube", "my-op", "my op", "", "cubé", None, 3])
def test_defop_refuses_a_bad_name(name):
    before = set(sg.OPS)
    with pytest.raises(sg.SymgradError, match="identifier"):
        sg.defop(name, 1, _shape, "{0}", vjp=_rule)
    assert set(sg.OPS) == before


@pytest.mark.parametrize("shape, numpy, vjp", [
    (None, "{0}", _rule),
    (_shape, 3, _rule),
    (_shape, "{0}", None),
    (_shape, "{0}", "g"),
], ids=["shape", "template", "no-vjp", "vjp-not-callable"])
def test_defop_refuses_missing_pieces(shape, numpy, vjp):
    with pytest.raises(sg.SymgradError):
        sg.defop("incomplete_op", 1, shape, numpy, vjp=vjp)
    assert "incomplete_op" not in sg.OPS


def test_a_defop_checks_its_arity(cube):
    x = sg.var("x", shape=(3,))
    with pytest.raises(sg.SymgradError, match="1 operand"):
        cube(x, x)


# -- sg.custom_gradient ----------------------------------------------------------------------------


def test_gradient_clipping_in_the_backward_pass_only():
    x = sg.var("x", shape=(4,))
    weights = np.array([5.0, -3.0, 0.5, 0.0])
    clipped = sg.custom_gradient(x, [x], lambda g, out, x: [sg.clip(g, -1.0, 1.0)])
    f = sg.sum(clipped * sg.const(weights))
    fn = sg.compile([clipped, f, sg.grad(f, x)], inputs=[x])
    x0 = np.array([2.0, -1.0, 0.3, 7.0])
    value, total, gradient = fn(x0)
    np.testing.assert_array_equal(value, x0)                  # the forward value is unchanged
    assert total == pytest.approx(weights @ x0, rel=1e-15)
    np.testing.assert_array_equal(gradient, [1.0, -1.0, 0.5, 0.0])


def test_gradient_clipping_of_a_computed_derivative():
    x = sg.var("x", shape=(4,))
    cubed = sg.custom_gradient(x ** 3, [x], lambda g, out, x: [sg.clip(g * 3.0 * x ** 2, -1, 1)])
    fn = sg.compile([cubed, sg.grad(sg.sum(cubed), x), sg.jacobian(2.0 * cubed, x)], inputs=[x])
    x0 = np.array([-2.0, -0.3, 0.1, 1.5])
    value, gradient, jacobian = fn(x0)
    np.testing.assert_allclose(value, x0 ** 3, rtol=1e-15)
    np.testing.assert_allclose(gradient, np.clip(3 * x0 ** 2, -1, 1), rtol=1e-15)
    # the Jacobian pulls back the rows of 2 I through the rule: each row is clipped on its own
    np.testing.assert_allclose(jacobian, np.diag(np.clip(6 * x0 ** 2, -1, 1)), rtol=1e-15)


def test_straight_through_estimator():
    x = sg.var("x", shape=(5,))
    c = np.array([1.0, 2.0, -3.0, 0.5, 4.0])
    binary = sg.custom_gradient(sg.sign(x), [x], lambda g, out, x: [g])
    f = sg.sum(binary * sg.const(c)) + sg.sum(binary * x)
    fn = sg.compile([binary, sg.grad(f, x)], inputs=[x])
    x0 = np.array([-2.0, -0.3, 0.1, 1.5, 0.0])
    value, gradient = fn(x0)
    np.testing.assert_array_equal(value, np.sign(x0))         # forward: sign
    # backward: identity, so d/dx [c . s(x) + x . s(x)] = c + s(x) + x
    np.testing.assert_array_equal(gradient, c + np.sign(x0) + x0)
    # without the custom rule the gradient through sign is its true derivative, 0
    plain = sg.grad(sg.sum(sg.sign(x) * sg.const(c)), x, disconnected="zero")
    np.testing.assert_array_equal(sg.compile(plain, inputs=[x])(x0), np.zeros(5))


def test_a_custom_rule_with_several_inputs():
    a, b = sg.var("a", shape=(3,)), sg.var("b", shape=(3,))
    hypot = sg.custom_gradient(sg.sqrt(a ** 2 + b ** 2), [a, b],
                               lambda g, out, a, b: [g * a / out, g * b / out])
    f = sg.sum(hypot * sg.sin(a))
    ga, gb = sg.grad(f, [a, b])
    ja, jb = sg.jacobian(hypot, [a, b])
    fn = sg.compile([hypot, ga, gb, ja, jb], inputs=[a, b])
    a0, b0 = np.array([3.0, 1.0, -2.0]), np.array([4.0, -0.5, 0.7])
    r = np.hypot(a0, b0)
    value, grad_a, grad_b, jac_a, jac_b = fn(a0, b0)
    assert relative_error(value, r) < 1e-15
    assert relative_error(grad_a, a0 / r * np.sin(a0) + r * np.cos(a0)) < 1e-14
    assert relative_error(grad_b, b0 / r * np.sin(a0)) < 1e-14
    assert relative_error(jac_a, np.diag(a0 / r)) < 1e-15
    assert relative_error(jac_b, np.diag(b0 / r)) < 1e-15
    report = sg.check_grad(f, {"a": a0, "b": b0})
    assert report["a"] < 1e-7 and report["b"] < 1e-7


def test_second_and_third_order_through_a_custom_rule_built_from_ops():
    z = sg.var("z")
    square = sg.custom_gradient(z * z, [z], lambda g, out, z: [g * 2.0 * z])
    e = sg.exp(square)
    d1 = sg.grad(e, z)
    d2 = sg.grad(d1, z)
    d3 = sg.grad(d2, z)
    fn = sg.compile([e, d1, d2, d3], inputs=[z])
    Z = sympy.Symbol("z")
    references = [sympy.lambdify(Z, sympy.diff(sympy.exp(Z ** 2), Z, k)) for k in range(4)]
    for z0 in (-1.3, 0.0, 0.7, 2.0):
        for got, reference in zip(fn(z0), references):
            assert relative_error(got, reference(z0)) < 1e-13


def test_hessian_through_a_custom_rule_uses_the_rule_not_the_forward_expression():
    # the forward value is x ** 2 but the rule claims the derivative is 3 x ** 2 (as for x ** 3):
    # every order of differentiation must follow the rule
    x = sg.var("x", shape=(3,))
    fake = sg.custom_gradient(x ** 2, [x], lambda g, out, x: [g * 3.0 * x ** 2])
    f = sg.sum(fake)
    fn = sg.compile([f, sg.grad(f, x), sg.hessian(f, x)], inputs=[x])
    x0 = np.array([0.5, -1.0, 2.0])
    value, gradient, hessian = fn(x0)
    assert value == pytest.approx(np.sum(x0 ** 2), rel=1e-15)
    np.testing.assert_allclose(gradient, 3 * x0 ** 2, rtol=1e-15)
    np.testing.assert_allclose(hessian, np.diag(6 * x0), rtol=1e-15)


def test_a_rule_returning_none_gives_that_input_a_zero_gradient():
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
    product = sg.custom_gradient(x * y, [x, y], lambda g, out, x, y: [g * y, None])
    gx, gy = sg.grad(sg.sum(product), [x, y], disconnected="zero")
    rx, ry = sg.compile([gx, gy], inputs=[x, y])(np.ones(3), np.array([2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(rx, [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(ry, np.zeros(3))


def test_a_rule_with_the_wrong_number_of_gradients_is_an_error():
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
    product = sg.custom_gradient(x * y, [x, y], lambda g, out, x, y: [g * y])
    with pytest.raises(sg.SymgradError, match="1 gradients for 2 inputs"):
        sg.grad(sg.sum(product), x)


def test_custom_gradient_needs_a_callable_rule():
    x = sg.var("x")
    with pytest.raises(sg.SymgradError, match="callable"):
        sg.custom_gradient(x, [x], None)


def test_a_users_op_with_a_sympy_form_converts_both_ways():
    # sg.defop(..., sympy=) puts the op's SymPy form on its record, as symgrad's own ops have it
    with contextlib.contextmanager(registered)(
            "sinh_example", 1, lambda shapes: shapes[0], "np.sinh({0})",
            vjp=lambda g, out, x: [g * (sg.exp(x) + sg.exp(-x)) * 0.5], sympy="sinh") as sinh:
        x = sg.var("x")
        y = sinh(x) * x
        converted = sg.to_sympy(y)
        s = sympy.Symbol("x")
        assert sympy.simplify(converted - sympy.sinh(s) * s) == 0
        back = sg.from_sympy(sympy.sinh(s))
        assert back.op == "sinh_example"
        fn = sg.compile(sg.grad(y, x), inputs=[x])
        want = sympy.lambdify(s, sympy.diff(sympy.sinh(s) * s, s))(0.7)
        assert fn(0.7) == pytest.approx(want, rel=1e-14)
    with pytest.raises(sg.SymgradError, match="sympy must be"):
        sg.defop("bad_sympy_example", 1, lambda shapes: shapes[0], "{0}",
                 vjp=lambda g, out, x: [g], sympy="not a name")
    assert "bad_sympy_example" not in sg.OPS
