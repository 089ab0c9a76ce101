"""The reductions, scans and order statistics of issue 18 beyond the table of tests/test_ops.py:
closed forms where entries are zero (products never divide), the conventions at kinks, what is
refused and why, and the methods Expr has for them."""

import itertools

import numpy as np
import pytest

import symgrad as sg
from finite_differences import central_gradient


def _others_product(x, *skipped):
    """The product of the entries of ``x`` but those at ``skipped`` (flat indices)."""
    return float(np.prod([v for k, v in enumerate(x.ravel()) if k not in skipped]))


@pytest.mark.parametrize("point", [[2.0, 0.0, 3.0, 4.0], [2.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 5.0],
                                   [1.5, -2.0, 3.0, 0.5]],
                         ids=["one-zero", "two-zeros", "three-zeros", "no-zero"])
def test_prod_gradient_and_hessian_with_zeros_are_the_products_of_the_other_entries(point):
    z = np.array(point)
    with sg.use_graph():
        x = sg.var("x", shape=(4,))
        f = sg.prod(x)
        value, gradient, hessian = sg.compile([f, sg.grad(f, x), sg.hessian(f, x)], inputs=[x])(z)
    assert value == np.prod(z)
    np.testing.assert_array_equal(gradient, [_others_product(z, j) for j in range(4)])
    expected = [[0.0 if i == j else _others_product(z, i, j) for j in range(4)] for i in range(4)]
    np.testing.assert_array_equal(hessian, expected)


def test_prod_over_two_axes_with_zeros_has_the_closed_form_gradient():
    # over axes 0 and 2, slice 0 holds one zero, slice 1 two, slice 2 none
    z = np.array([[[1.5, 0.0], [0.0, 3.0], [0.5, -1.0]], [[2.5, 2.0], [1.0, 0.0], [2.0, 2.0]]])
    with sg.use_graph():
        X = sg.var("X", shape=z.shape)
        f = sg.sum(sg.prod(X, axis=(0, 2)) * np.array([1.0, -2.0, 0.5]))
        gradient = sg.compile(sg.grad(f, X), inputs=[X])(z)
    expected = np.zeros(z.shape)
    for i, j, k in itertools.product(range(2), range(3), range(2)):
        others = [z[a, j, b] for a in range(2) for b in range(2) if (a, b) != (i, k)]
        expected[i, j, k] = [1.0, -2.0, 0.5][j] * np.prod(others)
    np.testing.assert_allclose(gradient, expected, rtol=1e-15)
    assert expected[0, 0, 1] != 0.0 and not expected[:, 1, :].any() and expected[:, 2, :].all()


def _cumprod_gradient(z, w):
    """d/dz_j of sum_i w_i prod_{k <= i} z_k, written out: sum over i >= j of w_i times the
    product of z_k for k <= i but j."""
    return np.array([sum(w[i] * np.prod([z[k] for k in range(i + 1) if k != j])
                         for i in range(j, len(z))) for j in range(len(z))])


@pytest.mark.parametrize("point", [[0.5, 2.0, 0.0, -1.5, 3.0, 0.7, 2.0],
                                   [0.0, 2.0, 1.0, 0.0, 3.0, 0.7, 2.0],
                                   [1.5, 2.0, 1.0, 0.5, 3.0, 0.7, 0.0],
                                   [1.5, -2.0, 1.0, 0.5, 3.0, 0.7, 1.1]],
                         ids=["one-zero", "two-zeros", "zero-last", "no-zero"])
def test_cumprod_gradient_with_zeros_has_the_closed_form(point):
    z = np.array(point)
    w = np.array([1.0, -0.5, 2.0, 0.25, -1.0, 3.0, 0.5])
    with sg.use_graph():
        x = sg.var("x", shape=(7,))
        f = sg.sum(sg.cumprod(x) * w)
        fn = sg.compile([sg.cumprod(x), sg.grad(f, x), sg.hessian(f, x)], inputs=[x])
        running, gradient, hessian = fn(z)
    np.testing.assert_array_equal(running, np.cumprod(z))
    np.testing.assert_allclose(gradient, _cumprod_gradient(z, w), rtol=1e-14, atol=1e-14)
    # the Hessian's column j is the gradient's derivative along z_j: central differences are
    # exact for a function linear in each entry
    step = 1e-3
    for j in range(7):
        e = np.eye(7)[j] * step
        column = (_cumprod_gradient(z + e, w) - _cumprod_gradient(z - e, w)) / (2 * step)
        np.testing.assert_allclose(hessian[:, j], column, rtol=1e-9, atol=1e-9)


def test_prod_and_cumprod_derivatives_along_a_named_dimension_are_refused():
    with sg.use_graph() as graph:
        x = sg.var("x", shape=("n", 3))
        for f in [sg.sum(sg.prod(x, axis=0)), sg.sum(sg.cumprod(x, axis=0))]:
            nodes = graph.number_of_nodes()
            with pytest.raises(sg.SymgradError, match="named dimension 'n': give it a number"):
                sg.grad(f, x)
            assert graph.number_of_nodes() == nodes
        # along a static axis with a named batch it differentiates
        f = sg.sum(sg.prod(x, axis=1)) + sg.sum(sg.cumprod(x, axis=1))
        z = np.array([[1.0, 0.0, 2.0], [3.0, 4.0, 0.0]])
        gradient = sg.compile(sg.grad(f, x), inputs=[x])(z)
    np.testing.assert_array_equal(gradient, [[0.0, 2.0, 0.0], [0.0, 0.0, 12.0]]
                                  + np.array([[1.0 + 0.0 + 0.0, 1.0 + 2.0, 0.0],
                                              [1.0 + 4.0, 3.0, 12.0]]))


def test_std_of_a_constant_slice_has_a_nan_derivative_as_sqrt_at_zero():
    with sg.use_graph():
        x = sg.var("x", shape=(3,))
        fn = sg.compile(sg.grad(sg.std(x), x), inputs=[x])
        with np.errstate(invalid="ignore"):
            assert np.all(np.isnan(fn(np.full(3, 2.0))))
        np.testing.assert_allclose(fn(np.array([1.0, 2.0, 4.0])),
                                   (np.array([1.0, 2.0, 4.0]) - 7 / 3) / (3 * np.std([1, 2, 4.0])))


def test_expr_methods_build_the_reductions_and_scans():
    # ndarray's signatures: std(axis, dtype, out, ddof, keepdims), so ddof and keepdims by name
    z = np.random.default_rng(0).standard_normal((3, 4))
    with sg.use_graph():
        X = sg.var("X", shape=(3, 4))
        built = [X.prod(axis=0), X.var(), X.var(axis=1, ddof=1), X.std(0, ddof=1, keepdims=True), X.cumsum(),
                 X.cumsum(axis=0), X.cumprod(axis=1)]
        assert [e.op for e in built] == ["prod", "variance", "variance", "std", "cumsum",
                                         "cumsum", "cumprod"]
        got = sg.compile(built, inputs=[X])(z)
    expected = [z.prod(axis=0), z.var(), z.var(axis=1, ddof=1), z.std(0, ddof=1, keepdims=True),
                z.cumsum(), z.cumsum(axis=0), z.cumprod(axis=1)]
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-13)


def test_variance_is_not_sg_var_which_makes_variables():
    assert sg.var is sg.api.var
    assert "variance" not in sg.PUBLIC and "var" not in sg.PUBLIC
    with sg.use_graph():
        assert sg.ops.variance(sg.var("x", shape=(3,))).op == "variance"


def test_a_mask_is_counted_in_floats_by_prod_and_cumsum():
    with sg.use_graph():
        x = sg.var("x", shape=(4,))
        built = [sg.prod(x > 0), sg.cumsum(x > 0)]
        assert [e.dtype for e in built] == ["float64", "float64"]
        got = sg.compile(built, inputs=[x])(np.array([1.0, -1.0, 2.0, 3.0]))
    assert got[0] == 0.0 and got[0].dtype == np.float64
    np.testing.assert_array_equal(got[1], [1.0, 1.0, 2.0, 3.0])


# -- NumPy's functions built of the ops: value, gradient and Hessian-vector products -----------------

EPS = 1e-6
WEIGHTS = np.array([0.5, 2.0, 1.0, 1.5])
COMPOSITES = {
    "average-weights-1d": (lambda X: sg.average(X, axis=1, weights=WEIGHTS),
                           lambda z: np.average(z, axis=1, weights=WEIGHTS)),
    "average-weights-full": (lambda X: sg.average(X, axis=0, weights=np.abs(WEIGHTS) + np.ones((3, 1)),
                                                  keepdims=True),
                             lambda z: np.average(z, axis=0, weights=np.abs(WEIGHTS) + np.ones((3, 1)),
                                                  keepdims=True)),
    "average-unweighted": (lambda X: sg.average(X), np.average),
    "ptp-all": (sg.ptp, np.ptp),
    "ptp-axis0-keepdims": (lambda X: sg.ptp(X, axis=0, keepdims=True),
                           lambda z: np.ptp(z, axis=0, keepdims=True)),
    "diff": (sg.diff, np.diff),
    "diff-n2-axis0": (lambda X: sg.diff(X, n=2, axis=0), lambda z: np.diff(z, n=2, axis=0)),
    "diff-n0": (lambda X: sg.diff(X, n=0), lambda z: np.diff(z, n=0)),
    **{f"norm-vector-{order}": (lambda X, order=order: sg.norm(X, ord=order, axis=1),
                                lambda z, order=order: np.linalg.norm(z, ord=order, axis=1))
       for order in [1, 2, np.inf, -np.inf, 3, 0.5, -1.5]},
    **{f"norm-matrix-{order}": (lambda X, order=order: sg.norm(X, ord=order),
                                lambda z, order=order: np.linalg.norm(z, ord=order))
       for order in [1, -1, np.inf, -np.inf, "fro"]},
    "norm-matrix-axes-swapped": (lambda X: sg.norm(X, ord=1, axis=(1, 0), keepdims=True),
                                 lambda z: np.linalg.norm(z, ord=1, axis=(1, 0), keepdims=True)),
    "logsumexp-b": (lambda X: sg.logsumexp(X, axis=0, b=WEIGHTS),
                    lambda z: __import__("scipy.special").special.logsumexp(z, axis=0, b=WEIGHTS)),
}


@pytest.mark.parametrize("name", COMPOSITES)
def test_numpys_functions_match_numpy_in_value_gradient_and_hessian(name):
    build, reference = COMPOSITES[name]
    # distinct magnitudes, away from zero: no ties for max, min and abs to meet
    z = (np.arange(12.0).reshape(3, 4) + 1.0) * np.where(np.arange(12) % 3 == 1, -1, 1).reshape(3, 4)
    z = z[np.random.default_rng(0).permutation(3)][:, np.random.default_rng(1).permutation(4)] / 4
    with sg.use_graph():
        X = sg.var("X", shape=(3, 4))
        out = build(X)
        u_value = np.random.default_rng(2).standard_normal(out.shape)
        v_value = np.random.default_rng(3).standard_normal(z.shape)
        scalar = sg.sum(out * u_value)
        V = sg.var("V", shape=(3, 4))
        fn = sg.compile([out, sg.grad(scalar, X), sg.hvp(scalar, X, V)], inputs=[X, V])
        value, gradient, hvp = fn(z, v_value)
    expected = np.asarray(reference(z))
    assert np.shape(value) == expected.shape
    np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-12)

    def objective(a):
        return float(np.sum(np.asarray(reference(a)) * u_value))
    np.testing.assert_allclose(gradient, central_gradient(objective, z), rtol=1e-6, atol=1e-6)
    with sg.use_graph():
        X = sg.var("X", shape=(3, 4))
        grad_fn = sg.compile(sg.grad(sg.sum(build(X) * u_value), X), inputs=[X])
    along = (grad_fn(z + EPS * v_value) - grad_fn(z - EPS * v_value)) / (2 * EPS)
    np.testing.assert_allclose(hvp, along, rtol=1e-6, atol=1e-6)


def test_norm_at_zero_has_a_zero_gradient():
    with sg.use_graph():
        x = sg.var("x", shape=(3,))
        M = sg.var("M", shape=(2, 3))
        outputs = [sg.grad(sg.norm(x), x), sg.grad(sg.sum(sg.norm(M, axis=1)), M)]
        for backend in [b for b in ("numpy", "numba", "array_api") if b in sg.api.BACKENDS]:
            got = sg.compile(outputs, inputs=[x, M], backend=backend)(
                np.zeros(3), np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 4.0]]))
            np.testing.assert_array_equal(np.asarray(got[0]), np.zeros(3))
            np.testing.assert_array_equal(np.asarray(got[1]), [[0.0, 0.0, 0.0], [0.6, 0.0, 0.8]])


@pytest.mark.parametrize("order", [2, -2, "nuc"])
def test_matrix_norms_of_singular_values_are_numpys(order):
    # computed from the singular values (ops/decompositions.py, whose tests check the gradients)
    m = np.random.default_rng(5).standard_normal((3, 4))
    with sg.use_graph():
        M = sg.var("M", shape=(3, 4))
        got = sg.compile(sg.norm(M, ord=order), inputs=[M])(m)
    np.testing.assert_allclose(got, np.linalg.norm(m, ord=order), rtol=1e-13)


def test_logsumexp_weights_have_a_finite_gradient_where_they_are_zero():
    # d/db_i log(sum b exp(x)) = exp(x_i - out): finite at b_i = 0, where log(b) would give nan
    z, w = np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.0, 2.0])
    with sg.use_graph():
        x, b = sg.var("x", shape=(3,)), sg.var("b", shape=(3,))
        f = sg.logsumexp(x, b=b)
        value, gx, gb = sg.compile([f, *sg.grad(f, [x, b])], inputs=[x, b])(z, w)
    total = np.sum(w * np.exp(z))
    np.testing.assert_allclose(value, np.log(total), rtol=1e-15)
    np.testing.assert_allclose(gb, np.exp(z) / total, rtol=1e-15)
    np.testing.assert_allclose(gx, w * np.exp(z) / total, rtol=1e-15)


def test_weights_of_another_shape_are_refused():
    with sg.use_graph() as graph:
        X = sg.var("X", shape=(3, 4))
        nodes = graph.number_of_nodes()
        with pytest.raises(sg.ShapeError, match="weights"):
            sg.average(X, axis=1, weights=np.ones(3))
        with pytest.raises(sg.ShapeError, match="weights"):
            sg.logsumexp(X, axis=1, b=np.ones(3))
        assert graph.number_of_nodes() == nodes


def test_select_takes_the_first_condition_that_holds_and_its_gradient_flows_there():
    z = np.array([-2.0, -0.5, 0.5, 2.0, 3.0])
    with sg.use_graph():
        x = sg.var("x", shape=(5,))
        out = sg.select([x < -1.0, x > 1.0, x > 2.5], [-x, x ** 2, x * 100.0], default=x * 3.0)
        value, gradient = sg.compile([out, sg.grad(sg.sum(out), x)], inputs=[x])(z)
    np.testing.assert_array_equal(
        value, np.select([z < -1.0, z > 1.0, z > 2.5], [-z, z ** 2, z * 100.0], default=z * 3.0))
    np.testing.assert_array_equal(gradient, [-1.0, 3.0, 3.0, 4.0, 6.0])
    with pytest.raises(sg.ArgumentError, match="2 conditions for 1 choices"):
        sg.select([x < 0.0, x > 0.0], [x])


def test_formulas_call_the_new_functions_and_leave_out_operands_with_defaults():
    z = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])
    w = np.array([1.0, 0.5, 2.0])
    with sg.use_graph():
        shapes = {"A": (2, 3), "w": (3,)}
        formulas = {"logsumexp(A, axis=1)": lambda: np.log(np.sum(np.exp(z), axis=1)),
                    "logsumexp(A, axis=1, b=w)": lambda: np.log(np.sum(w * np.exp(z), axis=1)),
                    "average(A, axis=1, weights=w)": lambda: np.average(z, axis=1, weights=w),
                    "average(A)": lambda: np.average(z),
                    "prod(A, axis=0)": lambda: np.prod(z, axis=0),
                    "std(A, axis=1, ddof=1)": lambda: np.std(z, axis=1, ddof=1),
                    "cumsum(A, axis=1)": lambda: np.cumsum(z, axis=1),
                    "norm(A, ord=1)": lambda: np.linalg.norm(z, ord=1),
                    "diff(A, n=1, axis=0)": lambda: np.diff(z, axis=0)}
        for text, expected in formulas.items():
            e = sg.parse(text, shapes=shapes)
            inputs = [v for name, v in e.variables.items()]
            got = sg.compile(e, inputs=inputs)(*[{"A": z, "w": w}[v.name] for v in inputs])
            np.testing.assert_allclose(got, expected(), rtol=1e-13, err_msg=text)
        with pytest.raises(sg.ParseError, match="missing x"):
            sg.parse("logsumexp(axis=1)", shapes=shapes)
