"""Integer and boolean variables, integer-array indexing (gather, its scatter-add gradient),
take, take_along_axis and one_hot: a program written as NumPy code on integer labels, compiled
with the labels an int64 input, on every backend."""

import numpy as np
import pytest

import symgrad as sg
from finite_differences import central_gradient

N, CLASSES = 5, 4
EPS = 1e-6


def np_log_softmax(a, axis=-1):
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def cross_entropy(logits, labels, log_softmax):
    """Softmax cross-entropy over integer labels, as written for NumPy arrays."""
    logp = log_softmax(logits, axis=-1)
    n = logits.shape[0]
    return -(logp[np.arange(n), labels]).mean()


@pytest.fixture
def point():
    rng = np.random.default_rng(18)
    return rng.standard_normal((N, CLASSES)), np.array([1, 0, 3, 3, 2])


def compiled_cross_entropy(backend="numpy"):
    logits = sg.var("logits", shape=(N, CLASSES))
    labels = sg.var("labels", shape=(N,), dtype="int64")
    loss = cross_entropy(logits, labels, sg.log_softmax)
    gradient = sg.grad(loss, logits)
    v = sg.var("v", shape=(N, CLASSES))
    return sg.compile([loss, gradient, sg.hvp(loss, logits, v)], inputs=[logits, labels, v],
                      backend=backend)


def test_cross_entropy_over_integer_labels_matches_numpy_and_differences(point):
    logits, labels = point
    v = np.random.default_rng(1).standard_normal(logits.shape)
    loss, gradient, hvp = compiled_cross_entropy()(logits, labels, v)
    np.testing.assert_allclose(loss, cross_entropy(logits, labels, np_log_softmax), rtol=1e-12)
    expected = central_gradient(lambda x: cross_entropy(x, labels, np_log_softmax), logits)
    np.testing.assert_allclose(gradient, expected, rtol=1e-6, atol=1e-8)
    # the textbook gradient: (softmax - one_hot) / n
    softmax = np.exp(np_log_softmax(logits))
    np.testing.assert_allclose(gradient, (softmax - np.eye(CLASSES)[labels]) / N, atol=1e-12)
    _, plus, _ = compiled_cross_entropy()(logits + EPS * v, labels, v)
    _, minus, _ = compiled_cross_entropy()(logits - EPS * v, labels, v)
    np.testing.assert_allclose(hvp, (plus - minus) / (2 * EPS), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", ["numba", "array_api"])
def test_cross_entropy_on_the_other_backends(point, backend):
    pytest.importorskip("numba" if backend == "numba" else "array_api_compat")
    logits, labels = point
    v = np.ones(logits.shape)
    expected = compiled_cross_entropy()(logits, labels, v)
    got = compiled_cross_entropy(backend)(logits, labels, v)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(np.asarray(g), e, rtol=1e-12, atol=1e-14)


def test_cross_entropy_on_array_api_strict(point):
    xp = pytest.importorskip("array_api_strict")
    logits, labels = point
    v = np.ones(logits.shape)
    expected = compiled_cross_entropy()(logits, labels, v)
    got = compiled_cross_entropy("array_api")(xp.asarray(logits), xp.asarray(labels),
                                              xp.asarray(v))
    for g, e in zip(got, expected):
        np.testing.assert_allclose(np.asarray(g), e, rtol=1e-12, atol=1e-14)


def test_labels_along_a_named_dimension_with_take_along_axis(point):
    logits, labels = point
    x = sg.var("logits", shape=("n", CLASSES))
    y = sg.var("labels", shape=("n",), dtype="int64")
    picked = sg.take_along_axis(sg.log_softmax(x, axis=-1), y[:, None], axis=1)
    loss = -sg.mean(picked)
    fn = sg.compile([loss, sg.grad(loss, x)], inputs=[x, y])
    for n in (5, 2):
        got_loss, got_gradient = fn(logits[:n], labels[:n])
        np.testing.assert_allclose(got_loss, cross_entropy(logits[:n], labels[:n],
                                                           np_log_softmax), rtol=1e-12)
        expected = central_gradient(
            lambda a: cross_entropy(a, labels[:n], np_log_softmax), logits[:n])
        np.testing.assert_allclose(got_gradient, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", ["numpy", "numba", "array_api"])
def test_repeated_indices_add_up_in_the_gradient(backend):
    x = sg.var("x", shape=(4,))
    idx = sg.var("idx", shape=(6,), dtype="int64")
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    fn = sg.compile(sg.grad(sg.sum(x[idx] * w), x), inputs=[x, idx], backend=backend)
    got = fn(np.zeros(4), np.array([0, 0, 3, 0, -1, 1]))
    np.testing.assert_array_equal(np.asarray(got), [1.0 + 2.0 + 4.0, 6.0, 0.0, 3.0 + 5.0])


def test_repeated_rows_and_columns_add_up():
    x = sg.var("x", shape=(3, 3))
    rows = np.array([[0, 0], [2, 0]])
    fn = sg.compile(sg.grad(sg.sum(x[rows, 1:]), x), inputs=[x])
    np.testing.assert_array_equal(fn(np.zeros((3, 3))), [[0, 3, 3], [0, 0, 0], [0, 1, 1]])


def test_gather_nests_to_any_order():
    """gather's adjoint is scatter_add and scatter_add's is gather: a third derivative of a
    gathered cubic is built and right."""
    x = sg.var("x", shape=(3,))
    f = sg.sum(x[np.array([2, 2, 0])] ** 3)
    third = sg.grad(sg.grad(sg.grad(f, x)[2], x)[2], x)
    ops = {d["op"] for _, d in f.graph.nodes(data=True)}
    assert {"gather", "scatter_add"} <= ops
    np.testing.assert_allclose(sg.compile(third, inputs=[x])(np.ones(3)), [0.0, 0.0, 12.0])


def test_take_and_one_hot():
    x = sg.var("x", shape=(3, 4))
    labels = sg.var("labels", shape=("n",), dtype="int64")
    value = np.arange(12.0).reshape(3, 4)
    fn = sg.compile(sg.take(x, np.array([5, 5, 11])), inputs=[x])
    np.testing.assert_array_equal(fn(value), [5.0, 5.0, 11.0])
    hot = sg.one_hot(labels, 4)
    assert hot.shape == ("n", 4) and hot.dtype == "float64"
    np.testing.assert_array_equal(sg.compile(hot, inputs=[labels])(np.array([2, 0, 2])),
                                  np.eye(4)[[2, 0, 2]])
    # one_hot picks the labels' entries of each row; no gradient flows into the labels
    rows = sg.var("rows", shape=("n", 4))
    loss = sg.sum(sg.one_hot(labels, 4) * rows)
    gradient = sg.compile(sg.grad(loss, rows), inputs=[rows, labels])
    np.testing.assert_array_equal(gradient(np.zeros((2, 4)), np.array([3, 1])),
                                  np.eye(4)[[3, 1]])
    with pytest.raises(sg.UndefinedGradientError, match="'labels' is of dtype int64"):
        sg.grad(loss, labels)


def test_integer_and_boolean_inputs_take_values_of_their_own_kind():
    x = sg.var("x", shape=(3,))
    idx = sg.var("idx", shape=(2,), dtype="int64")
    keep = sg.var("keep", shape=(3,), dtype="bool")
    fn = sg.compile(sg.sum(sg.where(keep, x, 0.0)) + sg.sum(x[idx]), inputs=[x, idx, keep])
    x_value = np.array([1.0, 2.0, 4.0])
    for indices in (np.array([2, 0]), [2, 0], np.array([2, 0], dtype=np.int32),
                    np.array([2, 0], dtype=np.uint8)):
        assert fn(x_value, indices, [True, False, True]) == 5.0 + 5.0
    for wrong in ([2.0, 0.0], np.array([2.5, 0.0]), [2, None]):
        with pytest.raises(sg.SymgradError, match="argument 'idx'"):
            fn(x_value, wrong, [True, False, True])
    with pytest.raises(sg.SymgradError, match="argument 'keep'"):
        fn(x_value, [2, 0], [1, 0, 1])
    with pytest.raises(sg.SymgradError, match="argument 'idx'"):
        fn(x_value, [2**70, 0], [True, False, True])
    # ints on the array-API backend follow the same rule
    pytest.importorskip("array_api_compat")
    on_arrays = sg.compile(sg.sum(x[idx]), inputs=[x, idx], backend="array_api")
    assert float(on_arrays(x_value, [2, 2])) == 8.0
    with pytest.raises(sg.SymgradError, match="argument 'idx'"):
        on_arrays(x_value, [2.0, 2.0])


def test_no_gradient_flows_into_an_integer_or_boolean_variable():
    x = sg.var("x", shape=(3,))
    idx = sg.var("idx", shape=(2,), dtype="int64")
    keep = sg.var("keep", shape=(3,), dtype="bool")
    f = sg.sum(x[idx]) + sg.sum(sg.where(keep, x, 0.0))
    before = f.graph.number_of_nodes()
    for wrt in (idx, keep, [x, idx]):
        with pytest.raises(sg.UndefinedGradientError, match="no gradient flows"):
            sg.grad(f, wrt)
    assert f.graph.number_of_nodes() == before


def test_arithmetic_mixing_integers_and_floats_promotes_as_numpy():
    labels = sg.var("labels", shape=(3,), dtype="int64")
    x32 = sg.var("x32", shape=(3,), dtype="float32")
    x = sg.var("x", shape=(3,))
    mixed = labels * x32
    assert mixed.dtype == str(np.result_type(np.int64, np.float32))     # float64, as NumPy
    assert (labels * x).dtype == "float64" and (labels * 0.5).dtype == "float64"
    # arithmetic on integers alone is floating, as on booleans (NumPy would keep int64)
    assert (labels + labels).dtype == "float64"
    fn = sg.compile([mixed, labels * 0.5, labels + labels, sg.sum(labels)],
                    inputs=[labels, x32])
    values = np.array([1, 2, 3])
    results = fn(values, np.ones(3, np.float32))
    for got, expected in zip(results, [values * np.ones(3, np.float32), values * 0.5,
                                       (values + values).astype(float), 6.0]):
        assert np.asarray(got).dtype == np.float64
        np.testing.assert_array_equal(got, expected)


def test_indexes_symgrad_refuses_say_why():
    x = sg.var("x", shape=(3, 4))
    mask, floats = x > 0, sg.var("f", shape=(2,))
    before = x.graph.number_of_nodes()
    # a constant mask is supported (tests/test_sinc_cast_mask.py), of the axes' shape
    with pytest.raises(sg.ShapeError, match="boolean mask"):
        x[np.array([True, False, True, True])]
    with pytest.raises(sg.SymgradError, match="symbolic boolean mask"):
        x[mask]
    with pytest.raises(sg.SymgradError, match="must be integers"):
        x[floats]
    with pytest.raises(sg.SymgradError, match="np.newaxis"):
        x[np.array([0, 1]), None]
    with pytest.raises(sg.ShapeError, match="out of bounds"):
        x[:, np.array([0, 4])]
    with pytest.raises(sg.ShapeError, match="too many indices"):
        x[np.array([0]), 0, 1]
    assert x.graph.number_of_nodes() == before


def test_check_grad_leaves_integer_inputs_out():
    x = sg.var("x", shape=(3,))
    idx = sg.var("idx", shape=(4,), dtype="int64")
    report = sg.check_grad(sg.sum(sg.sin(x[idx]) * x[idx]), {"x": np.array([0.3, -1.0, 2.0]),
                                                              "idx": [0, 2, 2, 1]})
    assert list(report) == ["x"] and report["x"] < 1e-6
