"""Order statistics beyond the table of tests/test_ops.py (ORDER_STATISTICS): the derivatives at
ties by closed form (sort and the quantiles follow the stable sort's permutation, as JAX; max and
min split evenly, over axis tuples too), third derivatives against central differences, int64
outputs of argsort and argmax on every backend and as indices, NumPy's values where entries are
infinite or nan, partition against np.partition, the NumPy protocol and the methods, and what
is refused."""

import numpy as np
import pytest

import symgrad as sg
import symgrad.numpy as snp
from finite_differences import central_gradient
from symgrad import api

compat = pytest.importorskip("array_api_compat")
xs = pytest.importorskip("array_api_strict")
da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

BACKENDS = ["numpy", "array_api"] + (["numba"] if "numba" in api.BACKENDS else [])


def compiled(outputs, inputs, backend="numpy"):
    return sg.compile(outputs, inputs=inputs, backend=backend)


def gradient_at(build, value):
    """d sum(build(x)) / dx at ``value``, compiled."""
    value = np.asarray(value, dtype=np.float64)
    with sg.use_graph():
        x = sg.var("x", shape=value.shape)
        return compiled(sg.grad(sg.sum(build(x)), x), [x])(value)


def _call(fn, backend, library, *arrays):
    if backend != "array_api" or library == "numpy":
        results = fn(*arrays)
    elif library == "strict":
        results = fn(*(xs.asarray(a) for a in arrays))
    else:
        results = dask.compute(*fn(*(da.from_array(a, chunks=2) for a in arrays)))
    return [np.asarray(r) for r in results]


CALLS = [(backend, "numpy") for backend in BACKENDS] + [("array_api", "strict"),
                                                         ("array_api", "dask")]


# -- ties: the stable sort's permutation (sort, quantiles), an even split (max, min) -------------


def test_sort_sends_each_cotangent_to_where_its_entry_came_from_ties_in_stable_order():
    # the stable order of [1, 3, 1, 2] takes x0, x2, x3, x1: weights w0..w3 go back there
    weights = np.array([1.0, 10.0, 100.0, 1000.0])
    got = gradient_at(lambda x: sg.sort(x) * weights, [1.0, 3.0, 1.0, 2.0])
    np.testing.assert_array_equal(got, [1.0, 1000.0, 10.0, 100.0])
    # all equal: the identity permutation
    got = gradient_at(lambda x: sg.sort(x) * weights, [2.0, 2.0, 2.0, 2.0])
    np.testing.assert_array_equal(got, weights)


@pytest.mark.parametrize("backend, library", CALLS)
def test_long_rows_of_ties_sort_and_argsort_in_the_stable_order(backend, library):
    # past NumPy's insertion-sort length its default argsort is not stable: many ties here
    z = np.random.default_rng(0).integers(0, 3, (2, 200)).astype(np.float64)
    stable = np.argsort(z, axis=1, kind="stable")
    with sg.use_graph():
        x = sg.var("x", shape=z.shape)
        f = sg.sum(sg.sort(x) * np.arange(200.0))
        fn = compiled([np.argsort(x), sg.grad(f, x)], [x], backend)
    order, gradient = _call(fn, backend, library, z)
    np.testing.assert_array_equal(order, stable)
    # each entry's gradient is its place in the stable order: the inverse permutation
    places = np.empty_like(stable)
    np.put_along_axis(places, stable, np.arange(200), axis=1)
    np.testing.assert_array_equal(gradient, places)


def test_sort_along_an_axis_with_ties_permutes_each_row_by_its_own_stable_order():
    z = np.array([[0.5, -1.0, 0.5], [2.0, 2.0, -3.0]])
    weights = np.array([1.0, 10.0, 100.0])
    got = gradient_at(lambda x: sg.sort(x, axis=1) * weights, z)
    np.testing.assert_array_equal(got, [[10.0, 1.0, 100.0], [10.0, 100.0, 1.0]])
    # along axis 0, each column on its own
    got = gradient_at(lambda x: sg.sort(x, axis=0) * np.array([[1.0], [10.0]]), z)
    np.testing.assert_array_equal(got, [[1.0, 1.0, 10.0], [10.0, 10.0, 1.0]])


def test_the_second_derivative_of_a_sort_keeps_the_permutation():
    # f = sum(w * sort(x)^3): d2f/dx_i2 = 6 w_p(i) x_i where p(i) is x_i's place in the sort
    z = np.array([0.5, -2.0, 0.5, 1.5])
    weights = np.array([1.0, 2.0, 3.0, 4.0])
    with sg.use_graph():
        x = sg.var("x", shape=(4,))
        f = sg.sum(sg.sort(x) ** 3 * weights)
        hessian = compiled(sg.hessian(f, x), [x])(z)
    places = np.array([1, 0, 2, 3])          # -2.0 first, then the two 0.5 in order, then 1.5
    np.testing.assert_allclose(hessian, np.diag(6.0 * weights[places] * z), rtol=1e-15)


def test_median_of_ties_takes_the_stable_sorts_middle_entries():
    # odd: [2, 2, 2] sorted keeps its order, the middle is x1
    np.testing.assert_array_equal(gradient_at(sg.median, [2.0, 2.0, 2.0]), [0.0, 1.0, 0.0])
    # even: [1, 5, 1, 5] sorts as x0, x2, x1, x3; the median is (x2 + x1) / 2
    np.testing.assert_array_equal(gradient_at(sg.median, [1.0, 5.0, 1.0, 5.0]),
                                  [0.0, 0.5, 0.5, 0.0])


def test_quantile_gradient_is_the_lerp_weights_at_the_sorted_neighbours():
    # n = 5, q = 0.3: virtual index 1.2, 0.8 of the second smallest and 0.2 of the third
    z = np.array([4.0, -1.0, 3.0, 0.0, 7.0])
    np.testing.assert_allclose(gradient_at(lambda x: sg.quantile(x, 0.3), z),
                               [0.0, 0.0, 0.2, 0.8, 0.0], rtol=1e-15, atol=1e-16)
    # tied neighbours: the weights go to the tied entries in their stable order
    z = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(gradient_at(lambda x: sg.quantile(x, 0.3), z),
                               [0.0, 0.8, 0.2, 0.0, 0.0], rtol=1e-15, atol=1e-16)
    # q = 1: the largest entry alone
    np.testing.assert_array_equal(gradient_at(lambda x: sg.percentile(x, 100), [3.0, 9.0, 1.0]),
                                  [0.0, 1.0, 0.0])


@pytest.mark.parametrize("function", [np.max, np.amax, np.min, np.amin])
def test_max_and_min_over_axis_tuples_split_ties_evenly(function):
    # over axes 0 and 2 each slice along axis 1: slice 0 has its extreme twice, slice 1 thrice
    z = np.array([[[1.0, 1.0], [2.0, 2.0]], [[-1.0, 1.0], [2.0, -5.0]]])
    if function in (np.min, np.amin):
        z = -z
    for keepdims in (False, True):
        with sg.use_graph():
            x = sg.var("x", shape=z.shape)
            out = function(x, axis=(0, 2), keepdims=keepdims)
            weights = np.array([3.0, 6.0]).reshape(out.shape)
            f = sg.sum(out * weights)
            value, gradient = compiled([out, sg.grad(f, x)], [x])(z)
        np.testing.assert_array_equal(value, function(z, axis=(0, 2), keepdims=keepdims))
        expected = np.zeros(z.shape)
        expected[[0, 0, 1], 0, [0, 1, 1]] = 3.0 / 3.0
        expected[[0, 0, 1], 1, [0, 1, 0]] = 6.0 / 3.0
        np.testing.assert_array_equal(gradient, expected)


def test_max_over_every_axis_with_ties_splits_and_its_hessian_is_zero():
    z = np.array([[4.0, 1.0], [4.0, 4.0]])
    with sg.use_graph():
        x = sg.var("x", shape=(2, 2))
        f = x.max() * 3.0
        gradient, hessian = compiled([sg.grad(f, x), sg.hessian(f, x)], [x])(z)
    np.testing.assert_array_equal(gradient, [[1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(hessian, np.zeros((2, 2, 2, 2)))


def test_expr_max_and_min_take_ndarrays_positional_order():
    with sg.use_graph():
        x = sg.var("x", shape=(2, 3, 4))
        assert x.max((0, 2), None, True).node == sg.max(x, (0, 2), keepdims=True).node
        assert x.min(1).node == sg.min(x, 1).node
        assert np.maximum.reduce(x, axis=(0, 1)).node == sg.max(x, (0, 1)).node
        with pytest.raises(sg.SymgradError, match="numpy.max: the argument initial="):
            x.max(initial=0.0)


# -- higher orders against central differences (points without ties) ----------------------------


def test_third_derivative_through_sort_and_quantile_matches_central_differences():
    rng = np.random.default_rng(7)
    z = rng.permutation(np.linspace(-1.5, 2.0, 8)).reshape(2, 4)
    v_value = rng.standard_normal((2, 4))
    with sg.use_graph():
        x, v = sg.var("x", shape=(2, 4)), sg.var("v", shape=(2, 4))
        f = (sg.sum(sg.sort(x, axis=None) ** 4 * np.arange(1.0, 9.0))
             + sg.sum(sg.quantile(x, [0.2, 0.9], axis=1) ** 3)
             + sg.median(sg.exp(x), axis=0) @ np.array([1.0, -2.0, 0.5, 3.0]))
        product = sg.hvp(f, x, v)
        third = sg.grad(sg.sum(product * v), x)       # d/dx of v' H(x) v
        hvp_fn = compiled(product, [x, v])
        got = compiled(third, [x, v])(z, v_value)
    expected = central_gradient(lambda a: np.sum(hvp_fn(a, v_value) * v_value), z)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)


def test_gradient_of_a_sorted_loss_matches_central_differences_over_a_named_dimension():
    z = np.array([[0.3, -1.2, 2.5], [1.1, 0.4, -0.6], [-2.0, 0.9, 1.7], [0.0, 3.1, -0.2]])
    weights = np.array([0.5, -1.0, 2.0])
    with sg.use_graph():
        X = sg.var("X", shape=("n", 3))
        f = sg.sum(sg.sort(X, axis=0) ** 2 * weights) + sg.sum(sg.median(X, axis=1) ** 3)
        value, gradient = compiled([f, sg.grad(f, X)], [X])(z)
        f_fn = compiled(f, [X])
    assert value == pytest.approx(np.sum(np.sort(z, axis=0) ** 2 * weights)
                                  + np.sum(np.median(z, axis=1) ** 3), rel=1e-14)
    np.testing.assert_allclose(gradient, central_gradient(f_fn, z), rtol=1e-6, atol=1e-7)


# -- int64 outputs on every backend, and as indices ------------------------------------------------


@pytest.mark.parametrize("backend, library", CALLS)
def test_int64_indices_compile_as_outputs_and_feed_gathers_on_every_backend(backend, library):
    # ties in every row: argsort keeps their order, argmax and argmin take the first
    z = np.array([[1.0, 3.0, 1.0, 3.0], [0.0, 0.0, -2.0, 5.0], [2.0, 2.0, 2.0, 2.0]])
    w = np.arange(12.0).reshape(3, 4) / 7.0
    with sg.use_graph():
        x, y = sg.var("x", shape=(3, 4)), sg.var("y", shape=(3, 4))
        order = np.argsort(x, axis=1)
        best = np.argmax(x, axis=1)
        gathered = np.take_along_axis(y, order, axis=1)
        picked = y[np.arange(3), best]
        f = sg.sum(gathered * np.arange(4.0)) + sg.sum(picked ** 2) + y.ravel()[np.argmin(x)]
        outputs = [order, best, np.argmin(x, axis=0, keepdims=True), np.argmax(x), x.argsort(0),
                   gathered, picked, f, sg.grad(f, y)]
        fn = compiled(outputs, [x, y], backend)
    got = _call(fn, backend, library, z, w)
    order_np = np.argsort(z, axis=1, kind="stable")
    best_np = np.argmax(z, axis=1)
    gradient = np.zeros((3, 4))
    np.put_along_axis(gradient, order_np, np.arange(4.0), axis=1)
    gradient[np.arange(3), best_np] += 2 * w[np.arange(3), best_np]
    gradient.ravel()[np.argmin(z)] += 1.0
    expected = [order_np, best_np, np.argmin(z, axis=0, keepdims=True), np.argmax(z),
                np.argsort(z, axis=0, kind="stable"), np.take_along_axis(w, order_np, axis=1),
                w[np.arange(3), best_np],
                np.sum(np.take_along_axis(w, order_np, axis=1) * np.arange(4.0))
                + np.sum(w[np.arange(3), best_np] ** 2) + w.ravel()[np.argmin(z)], gradient]
    for position, (g, e) in enumerate(zip(got, expected)):
        e = np.asarray(e)
        assert g.dtype == e.dtype and g.shape == e.shape, position
        np.testing.assert_allclose(g, e, rtol=1e-14, err_msg=f"output {position}")
    for position in range(5):
        assert outputs[position].dtype == np.dtype("int64")


@pytest.mark.parametrize("backend", BACKENDS)
def test_sort_and_quantiles_over_a_named_dimension_on_every_backend(backend):
    z = np.array([[0.3, -1.2, 2.5], [1.1, 0.4, -0.6], [-2.0, 0.9, 1.7], [0.0, 3.1, -0.2],
                  [0.8, -0.5, 0.1]])
    with sg.use_graph():
        X = sg.var("X", shape=("n", 3))
        outputs = [np.sort(X, axis=0), np.argsort(X, axis=0), np.quantile(X, [0.1, 0.6], axis=1),
                   np.median(X, axis=-1, keepdims=True), np.argmax(X, axis=0)]
        got = compiled(outputs, [X], backend)(z)
    expected = [np.sort(z, axis=0), np.argsort(z, axis=0), np.quantile(z, [0.1, 0.6], axis=1),
                np.median(z, axis=-1, keepdims=True), np.argmax(z, axis=0)]
    for g, e in zip(got, expected):
        assert np.asarray(g).dtype == e.dtype
        np.testing.assert_array_equal(g, e)


def test_no_gradient_flows_through_indices():
    with sg.use_graph():
        x = sg.var("x", shape=(3, 4))
        positions = sg.argmax(x, axis=1) * 1.0 + sg.argsort(x)[:, 0]
        with pytest.raises(sg.UndefinedGradientError, match="only through operations no "
                                                            "gradient flows through"):
            sg.grad(sg.sum(positions), x)
        with pytest.raises(sg.UndefinedGradientError):
            sg.vjp(sg.argsort(x), x, sg.var("u", shape=(3, 4)))
        zero = sg.grad(sg.sum(positions), x, disconnected="zero")
        np.testing.assert_array_equal(compiled(zero, [x])(np.ones((3, 4))), np.zeros((3, 4)))
        labels = sg.argmin(x, axis=0)
        with pytest.raises(sg.UndefinedGradientError, match="no gradient flows into an integer"):
            sg.grad(sg.sum(x), sg.var("k", shape=(4,), dtype="int64"))
        assert labels.dtype == np.dtype("int64")


# -- NumPy's values --------------------------------------------------------------------------------


SPECIAL_ROWS = np.array([[1.0, np.inf, -2.0, 0.5, 3.0], [np.nan, 1.0, 2.0, 0.0, -1.0],
                         [-np.inf, -np.inf, 4.0, 4.0, 1.0], [np.inf, np.inf, np.inf, 1.0, 2.0],
                         [0.0, -0.0, 0.0, -0.0, 1.0]])


def numpys_quantile_on_entries(a, q):
    """np.quantile(a, q, axis=1), except that a level whose virtual index falls on an entry
    is that entry (or nan in a row with a nan), where NumPy's lerp with an infinite
    neighbour gives nan (np.median gives the entry)."""
    expected = np.quantile(a, q, axis=1)
    ordered = np.sort(a, axis=1)
    for k, level in np.ndenumerate(np.asarray(q)):
        position = (a.shape[1] - 1) * level
        if position == int(position):
            entry = np.where(np.isnan(ordered[:, -1]), np.nan, ordered[:, int(position)])
            expected[k] = entry
    return expected


@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.8, 1.0, [0.0, 0.33, 0.5, 0.99, 1.0]])
def test_quantiles_and_medians_of_infinite_and_nan_entries_are_numpys(q):
    with sg.use_graph(), np.errstate(invalid="ignore"):
        x = sg.var("x", shape=SPECIAL_ROWS.shape)
        outputs = [sg.quantile(x, q, axis=1), sg.median(x, axis=1),
                   sg.percentile(x, np.multiply(q, 100), axis=1)]
        optimized = compiled(outputs, [x])(SPECIAL_ROWS)
        plain = sg.compile(outputs, inputs=[x], optimize=False)(SPECIAL_ROWS)
        expected = numpys_quantile_on_entries(SPECIAL_ROWS, q)
        for quantiles, medians, percentiles in (optimized, plain):
            np.testing.assert_array_equal(quantiles, expected)
            np.testing.assert_array_equal(medians, np.median(SPECIAL_ROWS, axis=1))
            np.testing.assert_array_equal(percentiles, expected)
        # where NumPy's quantile and median part
        assert np.isnan(np.quantile([1.0, 2.0, np.inf], 0.5))
        assert np.median([1.0, 2.0, np.inf]) == 2.0


@pytest.mark.parametrize("shape, axis", [((7,), None), ((4, 6), 1), ((4, 6), 0), ((3, 4, 5), (0, 2)),
                                         ((3, 4, 5), None), ((2, 3, 4), (-1, 0, 1))])
def test_median_and_quantile_are_numpys_bit_for_bit(shape, axis):
    z = np.random.default_rng(3).standard_normal(shape)
    q = np.array([[0.05, 0.5], [0.625, 0.97]])
    for keepdims in (False, True):
        with sg.use_graph():
            x = sg.var("x", shape=shape)
            got = compiled([np.median(x, axis=axis, keepdims=keepdims),
                            np.quantile(x, q, axis=axis, keepdims=keepdims),
                            np.percentile(x, 42.0, axis, None, False, "linear", keepdims)],
                           [x])(z)
        for g, e in zip(got, [np.median(z, axis=axis, keepdims=keepdims),
                              np.quantile(z, q, axis=axis, keepdims=keepdims),
                              np.percentile(z, 42.0, axis=axis, keepdims=keepdims)]):
            assert np.shape(g) == np.shape(e)
            np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("kth", [0, 3, -1, [1, 4], (0, 2, 5)])
def test_partition_puts_numpys_kth_entries_in_place_with_smaller_before_and_larger_after(kth):
    z = np.random.default_rng(5).standard_normal((3, 6))
    with sg.use_graph():
        x = sg.var("x", shape=(3, 6))
        parted, indices = compiled([np.partition(x, kth), np.argpartition(x, kth)], [x])(z)
    expected = np.partition(z, kth)
    for k in np.atleast_1d(kth):
        np.testing.assert_array_equal(parted[:, k], expected[:, k])
        assert np.all(parted[:, :k % 6] <= parted[:, [k]]) and np.all(parted[:, k:] >= parted[:, [k]])
    np.testing.assert_array_equal(np.take_along_axis(z, indices, axis=1), parted)
    assert indices.dtype == np.argpartition(z, kth).dtype


def test_sort_flattens_with_axis_none_and_accepts_numpys_kinds():
    z = np.array([[3.0, -1.0], [0.5, 2.0]])
    with sg.use_graph():
        x = sg.var("x", shape=(2, 2))
        outputs = [np.sort(x, axis=None), np.sort(x, kind="mergesort"), np.sort(x, stable=True),
                   np.argsort(x, axis=None), snp.sort(x, 0, "heapsort"), x.argsort(axis=None),
                   sg.sort(3.0 * np.ones(2) - 1.0)]
        got = compiled(outputs, [x])(z)
    expected = [np.sort(z, axis=None), np.sort(z), np.sort(z), np.argsort(z, axis=None),
                np.sort(z, 0), np.argsort(z, axis=None), np.array([2.0, 2.0])]
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_the_numpy_functions_build_the_same_nodes_as_symgrads():
    with sg.use_graph():
        x = sg.var("x", shape=(3, 4))
        pairs = [(np.sort(x, 0), sg.sort(x, axis=0)), (np.argsort(x), sg.argsort(x)),
                 (np.argmax(x, axis=1), sg.argmax(x, 1)), (x.argmax(1), sg.argmax(x, 1)),
                 (x.argmin(None, None, keepdims=True), sg.argmin(x, keepdims=True)),
                 (snp.argmin(x, 0), sg.argmin(x, 0)), (np.partition(x, 2), sg.sort(x)),
                 (np.median(x, 1), sg.median(x, axis=1)),
                 (np.quantile(x, 0.5, 1), sg.quantile(x, 0.5, axis=1)),
                 (np.percentile(x, [50.0], axis=1), sg.quantile(x, [0.5], axis=1))]
        for ours, theirs in pairs:
            assert ours.node == theirs.node


def test_parsed_formulas_use_the_order_statistics():
    with sg.use_graph():
        f = sg.parse("sum(sort(v) * w) + median(v) + quantile(v, 0.25) + argmax(v) * 0.0",
                     shapes={"v": (5,), "w": (5,)})
        v = np.array([0.5, -1.0, 3.0, 2.0, 0.0])
        w = np.arange(5.0)
        value = compiled(f, [f.variables["v"], f.variables["w"]])(v, w)
    assert value == np.sum(np.sort(v) * w) + np.median(v) + np.quantile(v, 0.25)


# -- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("call, error, message", [
    (lambda x: x.sort(), sg.SymgradError, r"immutable.*np\.sort\(e\)"),
    (lambda x: np.sort(x, kind="quicksort", stable=True), sg.ArgumentError, "kind or stable"),
    (lambda x: np.sort(x, order="f"), sg.SymgradError, "numpy.sort: the argument order="),
    (lambda x: np.argmax(x, axis=(0, 1)), sg.ArgumentError, "argmax: axis must be an int"),
    (lambda x: np.argmax(x, out=np.empty(4, dtype=np.int64)), sg.SymgradError, "out="),
    (lambda x: np.partition(x, 4, axis=0), sg.ArgumentError, "partition: kth 4 is out of bounds"),
    (lambda x: np.partition(x, [0, 1.0]), sg.ArgumentError, "kth must be an int"),
    (lambda x: np.partition(x, 1, kind="quickselect"), sg.ArgumentError, "introselect"),
    (lambda x: np.quantile(x, -0.1), sg.ArgumentError, r"q must be in \[0, 1\]"),
    (lambda x: np.percentile(x, 101.0), sg.ArgumentError, r"q must be in \[0, 100\]"),
    (lambda x: np.quantile(x, x), sg.ArgumentError, "q must be a number"),
    (lambda x: np.quantile(x, 0.5, method="lower"), sg.ArgumentError, "method='linear'"),
    (lambda x: np.quantile(x, 0.5, weights=np.ones(4)), sg.SymgradError, "weights="),
    (lambda x: np.median(x[:, :0], axis=1), sg.ShapeError, "empty axis"),
    (lambda x: np.argmin(x[:0]), sg.ShapeError, "has length 0"),
    (lambda x: np.sort(x, axis=2), sg.ShapeError, "out of range"),
])
def test_what_symgrad_refuses_it_names_and_the_graph_stays_as_it_was(call, error, message):
    with sg.use_graph() as graph:
        x = sg.var("x", shape=(3, 4))
        x[:, :0], x[:0]                  # the slices some calls take, built beforehand
        nodes = len(graph)
        with pytest.raises(error, match=message):
            call(x)
        assert len(graph) == nodes


def test_a_quantile_over_a_named_dimension_says_why_it_needs_a_number():
    with sg.use_graph():
        X = sg.var("X", shape=("n", 3))
        with pytest.raises(sg.ShapeError, match=r"quantile: the length of the axes \(0,\) must be "
                                                r"a number"):
            sg.quantile(X, 0.5, axis=0)
        assert sg.quantile(X, 0.5, axis=1).shape == ("n",)
