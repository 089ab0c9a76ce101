"""sinc and its derivatives at and near 0, casts between dtypes (astype), and boolean-mask
indexing, against references that share no code with symgrad's: SymPy's derivatives and limits
evaluated by mpmath at high precision, NumPy's own casts and indexing, central differences.
"""

import mpmath
import numpy as np
import pytest
import sympy

import symgrad as sg

BACKENDS = ["numpy", "numba", "array_api"]
ORDERS = [1, 2, 3, 4]
# 0 (each order's limit), where the closed form cancels (1e-8, 1e-4), either side of each order's
# switch between series and closed form, and away from 0 (zeros of sinc, a large argument)
POINTS = [0.0, 1e-8, -1e-8, 1e-4, -1e-4, 0.3, 0.5624, 0.5626, 0.74, 0.76, -0.9, 1.0, 2.5, -3.7,
          40.25]


def sinc_derivatives_by_sympy(order, points):
    """The order-th derivative of sin(pi x) / (pi x): SymPy's diff, its limit at 0, each
    evaluated by mpmath to 150 digits (at 1e-8 the closed form's terms cancel by 10^45)."""
    x = sympy.Symbol("x", real=True)
    derivative = sympy.diff(sympy.sin(sympy.pi * x) / (sympy.pi * x), x, order)
    at_zero = sympy.limit(derivative, x, 0)
    evaluate = sympy.lambdify(x, derivative, modules="mpmath")
    values = []
    with mpmath.workdps(150):
        for point in points:
            value = at_zero if point == 0.0 else evaluate(mpmath.mpf(point))
            values.append(float(value))
    return np.array(values)


def nested_derivatives(build, shape, orders):
    """sinc(x) and its derivatives of the given orders, each the gradient of the one before."""
    x = sg.var("x", shape=shape)
    outputs, current = [], build(x)
    for order in range(max(orders) + 1):
        if order in orders:
            outputs.append(current)
        current = sg.grad(sg.sum(current), x) if shape else sg.grad(current, x)
    return x, outputs


@pytest.mark.parametrize("backend", BACKENDS)
def test_sinc_derivatives_match_sympy_at_near_and_away_from_zero(backend):
    points = np.array(POINTS)
    with sg.use_graph():
        x, outputs = nested_derivatives(sg.sinc, (len(points),), [0, *ORDERS])
        got = sg.compile(outputs, inputs=[x], backend=backend)(points)
    np.testing.assert_allclose(got[0], np.sinc(points), rtol=1e-15, atol=0)
    for order, values in zip(ORDERS, got[1:]):
        expected = sinc_derivatives_by_sympy(order, POINTS)
        # relative to the size of the order's derivative near there: pi^k / (k + 1) near 0,
        # falling as 1 / |x| (where a derivative crosses 0, only absolute accuracy has meaning)
        scale = np.pi ** order / (order + 1) / (1.0 + np.abs(points))
        error = np.abs(values - expected) / np.maximum(np.abs(expected), scale)
        # 40.25: pi x rounds to 1 ulp of 126, which sin(pi x) feels as NumPy's sinc does
        assert np.all(np.isfinite(values)), (order, values)
        assert error.max() < 1e-13, (order, points[np.argmax(error)], error.max())


def test_sinc_derivatives_at_zero_are_the_maclaurin_coefficients():
    # JAX's values at 0: (-1)^(k/2) pi^k / (k + 1) for even k, 0 for odd k
    with sg.use_graph():
        x, outputs = nested_derivatives(sg.sinc, (), range(7))
        got = sg.compile(outputs, inputs=[x])(np.float64(0.0))
    expected = [0.0 if k % 2 else (-1) ** (k // 2) * np.pi ** k / (k + 1) for k in range(7)]
    np.testing.assert_allclose(np.array(got, dtype=float), expected, rtol=1e-14, atol=0)


def test_sinc_on_python_floats_is_numpys_answer():
    with sg.use_graph():
        x, outputs = nested_derivatives(sg.sinc, (), [0, 1, 2])
        fn = sg.compile(outputs, inputs=[x])
        numpy_fn = sg.compile(outputs, inputs=[x], backend="numpy")
    assert fn.scalar_source is not None and "math.sin" in fn.scalar_source
    for point in [0.0, -0.0, 1e-8, 0.3, 0.6, 3.0, -7.5]:
        on_floats = fn(point)
        assert all(type(v) is float for v in on_floats)
        np.testing.assert_allclose(on_floats, numpy_fn(np.array(point)), rtol=1e-15, atol=1e-300)
    assert fn(0.0) == (1.0, 0.0, -np.pi ** 2 / 3)


def test_sinc_hessian_and_hvp_match_central_differences_of_the_gradient():
    points = np.array([0.0, 1e-4, 0.4, -1.3])
    with sg.use_graph():
        v = sg.var("v", shape=(4,))
        f = sg.sum(sg.sinc(v) * sg.sinc(2.0 * v[::-1]))
        gradient = sg.compile(sg.grad(f, v), inputs=[v])
        hessian = sg.compile(sg.hessian(f, v), inputs=[v])(points)
    step = 1e-6
    columns = [(gradient(points + step * e) - gradient(points - step * e)) / (2 * step)
               for e in np.eye(4)]
    np.testing.assert_allclose(hessian, np.array(columns).T, rtol=1e-7, atol=1e-7)


def test_sinc_through_numpy_and_a_formula():
    with sg.use_graph():
        x = sg.var("x", shape=(3,))
        assert np.sinc(x).op == "sinc"
        parsed = sg.parse("sum(sinc(x))", shapes={"x": (3,)})
        assert sg.compile(parsed, inputs=[x])(np.array([0.0, 0.5, 1.0])) == pytest.approx(
            np.sum(np.sinc([0.0, 0.5, 1.0])), rel=1e-15)


# -- casts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_float32_cast_computes_in_float32_and_its_gradient_is_cast_back(backend):
    values = np.array([0.3, -1.7, 2.2])
    weights = np.array([1.0 / 3.0, 2.0, -0.1])
    with sg.use_graph():
        x = sg.var("x", shape=(3,))
        w = sg.var("w", shape=(3,))
        narrow = x.astype("float32")
        f = sg.sum(sg.sin(narrow).astype("float64") * w)
        assert narrow.dtype == np.float32 and f.dtype == np.float64
        gradient = sg.grad(f, x)
        second = sg.grad(sg.sum(gradient), x)
        got = sg.compile([f, gradient, second], inputs=[x, w], backend=backend)(values, weights)
    x32, w32 = values.astype(np.float32), weights.astype(np.float32)
    # the cotangent w is cast to float32 at the sin, cos runs in float32, the result cast back
    assert got[1].dtype == np.float64 and got[2].dtype == np.float64
    np.testing.assert_allclose(got[0], np.sum(np.sin(x32).astype(np.float64) * weights),
                               rtol=1e-15)
    np.testing.assert_allclose(got[1], (np.cos(x32) * w32).astype(np.float64), rtol=1e-6)
    np.testing.assert_allclose(got[2], (-np.sin(x32) * w32).astype(np.float64), rtol=1e-6)


def test_the_gradient_into_a_float32_variable_is_float32():
    with sg.use_graph():
        x = sg.var("x", shape=(2,), dtype="float32")
        f = sg.sum(x.astype(np.float64) ** 2)
        g = sg.grad(f, x)
        assert g.dtype == np.float32
        got = sg.compile(g, inputs=[x])(np.array([0.5, -3.0], dtype=np.float32))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array([1.0, -6.0], dtype=np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_casts_into_and_out_of_integers_and_booleans_are_numpys(backend):
    values = np.array([2.7, -1.5, 0.0, 3.0])
    labels = np.array([1, 0, 3, 2])
    with sg.use_graph():
        x = sg.var("x", shape=(4,))
        i = sg.var("i", shape=(4,), dtype="int64")
        outputs = [x.astype("int64"), x.astype(bool), np.astype(x, np.float32),
                   i.astype("float64") * x, (x > 0.0).astype("float32"), i.astype(bool)]
        got = sg.compile(outputs, inputs=[x, i], backend=backend)(values, labels)
    expected = [values.astype(np.int64), values.astype(bool), values.astype(np.float32),
                labels.astype(np.float64) * values, (values > 0).astype(np.float32),
                labels.astype(bool)]
    for have, want in zip(got, expected):
        have = np.asarray(have)
        assert have.dtype == want.dtype
        np.testing.assert_array_equal(have, want)


def test_no_gradient_flows_through_a_cast_to_an_integer_or_a_boolean():
    with sg.use_graph():
        x = sg.var("x", shape=(3,))
        i = sg.var("i", shape=(3,), dtype="int64")
        for cast in ["int64", "bool"]:
            truncated = sg.sum(x.astype(cast).astype("float64"))
            # as through a comparison: none by default, zero when asked for (JAX's convention)
            with pytest.raises(sg.UndefinedGradientError, match="no gradient flows through"):
                sg.grad(truncated, x)
            zero = sg.grad(truncated, x, disconnected="zero")
            assert np.all(sg.compile(zero, inputs=[x])(np.array([0.5, 1.5, -2.0])) == 0.0)
        # with a floating path beside it, the cast contributes nothing
        f = sg.sum(x.astype("int64").astype("float64") * x)
        got = sg.compile(sg.grad(f, x), inputs=[x])(np.array([0.5, 1.5, -2.7]))
        np.testing.assert_array_equal(got, [0.0, 1.0, -2.0])
        # an integer variable made floating: the gradient flows to the floating operand only
        g = sg.grad(sg.sum(i.astype("float64") * x), x)
        np.testing.assert_array_equal(
            sg.compile(g, inputs=[i, x])(np.array([4, 5, 6]), np.ones(3)), [4.0, 5.0, 6.0])
        with pytest.raises(sg.UndefinedGradientError):
            sg.grad(sg.sum(i.astype("float64") * x), i)


def test_astype_takes_numpys_arguments_and_refuses_other_dtypes():
    with sg.use_graph():
        x = sg.var("x", shape=(2,))
        assert x.astype("float64") is x and x.astype(np.float64, copy=False) is x
        assert x.astype(np.float32, copy=False).dtype == np.float32
        assert sg.astype(x, "float32").op == "astype"
        before = x.graph.number_of_nodes()
        for dtype in ["complex128", "int32", "float16", "not a dtype"]:
            with pytest.raises(sg.SymgradError, match="astype"):
                x.astype(dtype)
        with pytest.raises(sg.SymgradError, match="memory layout"):
            x.astype("float32", order="F")
        assert x.graph.number_of_nodes() == before


# -- boolean masks ---------------------------------------------------------------------------------

MASKS = {
    "rows": np.array([True, False, True, True]),
    "grid": np.array([[True, False, True], [False, False, False], [True, True, False],
                      [False, True, True]]),
    "none": np.zeros(4, dtype=bool),
    "list": [False, True, True, False],
}
INDEXES = {
    "rows": lambda m: m["rows"], "grid": lambda m: m["grid"], "none": lambda m: m["none"],
    "list": lambda m: m["list"], "columns": lambda m: (slice(None), m["rows"][:3]),
    "ellipsis": lambda m: (Ellipsis, m["rows"][1:]), "with-int": lambda m: (m["rows"], 2),
}


def numpy_index(index):
    return tuple(np.asarray(i) if isinstance(i, list) else i for i in index) \
        if isinstance(index, tuple) else np.asarray(index)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("label", sorted(INDEXES))
def test_a_constant_mask_selects_as_numpy_and_scatters_its_gradient_back(label, backend):
    rng = np.random.default_rng(7)
    values = rng.standard_normal((4, 3))
    index = INDEXES[label](MASKS)
    with sg.use_graph():
        x = sg.var("x", shape=(4, 3))
        selected = x[index]
        f = sg.sum(sg.sin(selected) * selected)
        gradient = sg.grad(f, x)
        outputs = [selected, gradient, sg.grad(sg.sum(gradient * gradient), x)]
        got = sg.compile(outputs, inputs=[x], backend=backend)(values)
    chosen = values[numpy_index(index)]
    np.testing.assert_array_equal(got[0], chosen)
    # the gradient is the local derivative at the selected entries and zero elsewhere; the
    # second-order term differentiates it once more, through the same scatter
    expected, second = np.zeros_like(values), np.zeros_like(values)
    local = np.cos(chosen) * chosen + np.sin(chosen)
    expected[numpy_index(index)] = local
    second[numpy_index(index)] = 2.0 * local * (2.0 * np.cos(chosen) - np.sin(chosen) * chosen)
    np.testing.assert_allclose(got[1], expected, rtol=1e-14)
    np.testing.assert_allclose(got[2], second, rtol=1e-13, atol=1e-300)


def test_a_masked_gradient_matches_central_differences():
    mask = MASKS["grid"]
    values = np.random.default_rng(3).standard_normal((4, 3))
    with sg.use_graph():
        x = sg.var("x", shape=(4, 3))
        f = sg.sum(sg.tanh(x[mask]) ** 3) + sg.sum(x[mask][:3] * x[mask][3:])
        fn = sg.compile(f, inputs=[x])
        got = sg.compile(sg.grad(f, x), inputs=[x])(values)
    step, expected = 1e-6, np.zeros_like(values)
    for entry in np.ndindex(values.shape):
        bump = np.zeros_like(values)
        bump[entry] = step
        expected[entry] = (fn(values + bump) - fn(values - bump)) / (2 * step)
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-8)


def test_masks_symgrad_cannot_size_are_refused_and_leave_the_graph_as_it_was():
    with sg.use_graph():
        x = sg.var("x", shape=(4, 3))
        batch = sg.var("b", shape=("n", 3))
        symbolic = sg.var("m", shape=(4,), dtype="bool")
        comparison = x[:, 0] > 0.0
        before = x.graph.number_of_nodes()
        with pytest.raises(sg.ShapeError, match=r"mask of shape \(3,\) does not match"):
            x[np.array([True, False, True])]
        with pytest.raises(sg.ShapeError, match=r"mask of shape \(2, 3\)"):
            x[np.ones((2, 3), dtype=bool)]
        with pytest.raises(sg.ShapeError, match="named dimensions"):
            batch[np.array([True, False])]
        for mask in [symbolic, comparison]:
            with pytest.raises(sg.SymgradError, match="symbolic boolean mask.*sg.where"):
                x[mask]
        assert x.graph.number_of_nodes() == before
