"""sg.compress with a symbolic boolean condition (issue 18, item 3): values against np.compress,
derivatives against central differences with the mask held fixed (first and second order), the
named length checked when an input gives it and free when none does, and the refusals."""

import numpy as np
import pytest

import symgrad as sg
import symgrad.numpy as snp
from finite_differences import central_gradient

BACKENDS = ["numpy", "numba"]
MASK = np.array([True, False, True, True, False, True])       # four of six


def values(seed=0, shape=(6, 3)):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_values_are_numpys_compress(backend, axis):
    shape = {0: (6, 3), 1: (2, 6), -1: (2, 6), None: (2, 3)}[axis]
    with sg.use_graph():
        x = sg.var("x", shape=shape)
        m = sg.var("m", shape=(6,), dtype="bool")
        fn = sg.compile(sg.compress(m, x, axis=axis, length="k"), inputs=[m, x], backend=backend)
    for seed in range(3):
        a = values(seed, shape)
        mask = np.random.default_rng(seed).random(6) > 0.5
        np.testing.assert_array_equal(fn(mask, a), np.compress(mask, a, axis=axis))


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_condition_may_be_an_expression_of_the_values(backend):
    with sg.use_graph():
        x = sg.var("x", shape=(6, 3))
        kept = sg.compress(x[:, 0] > 0, x, axis=0, length="k")
        fn = sg.compile([kept, sg.sum(sg.tanh(kept))], inputs=[x], backend=backend)
    a = values(1)
    want = a[a[:, 0] > 0]
    got = fn(a)
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_allclose(got[1], np.sum(np.tanh(want)), rtol=1e-14)


def _objective(x, m, w):
    """A scalar of the compressed rows that is neither linear nor quadratic in them."""
    kept = sg.compress(m, x, axis=1, length="k")
    return sg.sum(sg.sin(kept) * sg.exp(kept * w))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_and_hessian_against_central_differences_at_a_fixed_mask(backend):
    with sg.use_graph():
        x = sg.var("x", shape=(2, 6))
        m = sg.var("m", shape=(6,), dtype="bool")
        f = _objective(x, m, 0.5)
        (gradient,) = sg.grad(f, [x])
        (hessian,) = sg.jacobian(gradient, [x])
        fn = sg.compile([f, gradient, hessian], inputs=[m, x], backend=backend)
    a = values(2, (2, 6))
    value, got_gradient, got_hessian = fn(MASK, a)
    def scalar(point):
        return float(fn(MASK, point)[0])
    want_gradient = central_gradient(scalar, a)
    np.testing.assert_allclose(got_gradient, want_gradient, rtol=1e-6, atol=1e-7)
    # the dropped columns get exactly zero, not just nearly
    assert np.all(got_gradient[:, ~MASK] == 0.0)
    for index in np.ndindex(a.shape):
        def entry(point, index=index):
            return float(fn(MASK, point)[1][index])
        np.testing.assert_allclose(got_hessian[index], central_gradient(entry, a),
                                   rtol=1e-6, atol=1e-6)
    assert np.any(got_hessian != 0.0)


def test_hessian_vector_products_nest_compress_and_its_adjoint():
    with sg.use_graph():
        x = sg.var("x", shape=(2, 6))
        m = sg.var("m", shape=(6,), dtype="bool")
        v = sg.var("v", shape=(2, 6))
        f = _objective(x, m, 0.5)
        (gradient,) = sg.grad(f, [x])
        (product,) = sg.hvp(f, [x], [v])
        third = sg.grad(sg.sum(product * product), [x])[0]
        ops = {x.graph.nodes[n]["op"] for n in x.graph.ancestors_in_order([third.node])}
        fn = sg.compile([gradient, product, third], inputs=[m, x, v])
    assert {"compress", "compress_grad"} <= ops
    a, direction = values(3, (2, 6)), values(4, (2, 6))
    _, got_product, got_third = fn(MASK, a, direction)
    step = 1e-6
    want = (fn(MASK, a + step * direction, direction)[0]
            - fn(MASK, a - step * direction, direction)[0]) / (2 * step)
    np.testing.assert_allclose(got_product, want, rtol=1e-6, atol=1e-7)
    want_third = central_gradient(lambda p: float(np.sum(fn(MASK, p, direction)[1] ** 2)), a)
    np.testing.assert_allclose(got_third, want_third, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_length_an_input_gives_is_checked(backend):
    with sg.use_graph():
        x = sg.var("x", shape=(6, 3))
        m = sg.var("m", shape=(6,), dtype="bool")
        u = sg.var("u", shape=("k", 3))
        fn = sg.compile(sg.compress(m, x, axis=0, length="k") * u, inputs=[m, x, u],
                        backend=backend)
    a = values(5)
    np.testing.assert_array_equal(fn(MASK, a, np.full((4, 3), 2.0)), 2.0 * a[MASK])
    # a count that broadcasting would accept (one row) is refused too, naming the condition
    for rows in (1, 3, 5):
        with pytest.raises(sg.SymgradError, match=f"condition 'm' selects 4 entries, but "
                                                  f"dimension 'k' is {rows}"):
            fn(MASK, a, np.ones((rows, 3)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unbound_length_is_what_the_condition_selects(backend):
    with sg.use_graph():
        x = sg.var("x", shape=(6, 3))
        m = sg.var("m", shape=(6,), dtype="bool")
        kept = sg.compress(m, x, axis=0, length="k")
        f = sg.sum(sg.mean(kept, axis=0) ** 2)
        outputs = [sg.sum(kept, axis=0), sg.mean(kept, axis=0), sg.mean(kept), f,
                   *sg.grad(f, [x])]
        fn = sg.compile(outputs, inputs=[m, x], backend=backend)
    a = values(6)
    for mask in (MASK, np.array([False, True, False, False, False, False]), np.ones(6, bool)):
        total, mean, mean_all, value, gradient = fn(mask, a)
        np.testing.assert_allclose(total, a[mask].sum(axis=0), rtol=1e-14)
        np.testing.assert_allclose(mean, a[mask].mean(axis=0), rtol=1e-14)
        np.testing.assert_allclose(mean_all, a[mask].mean(), rtol=1e-14)
        want = np.zeros_like(a)
        want[mask] = 2 * a[mask].mean(axis=0) / mask.sum()
        np.testing.assert_allclose(gradient, want, rtol=1e-14)
        np.testing.assert_allclose(
            gradient, central_gradient(lambda p: float(fn(mask, p)[3]), a), rtol=1e-6, atol=1e-8)


def test_code_generation_never_reads_an_unbound_length_from_the_inputs():
    with sg.use_graph():
        x = sg.var("x", shape=(600, 40))        # large enough for the workspace
        m = sg.var("m", shape=(600,), dtype="bool")
        kept = sg.compress(m, x, axis=0, length="k")
        f = sg.sum(sg.tanh(kept) * kept)
        fn = sg.compile([f, *sg.grad(f, [x])], inputs=[m, x])
        # a reshape to the named length needs it before any value has it: refused when compiling
        with pytest.raises(sg.SymgradError, match="dimension 'k' is not the length of any input"):
            sg.compile(sg.reshape(kept, ("k", 40, 1)), inputs=[m, x])
    assert "dim_k" not in fn.source
    a = values(7, (600, 40))
    mask = np.random.default_rng(7).random(600) > 0.3
    value, gradient = fn(mask, a)
    kept_rows = a[mask]
    np.testing.assert_allclose(value, np.sum(np.tanh(kept_rows) * kept_rows), rtol=1e-12)
    want = np.zeros_like(a)
    want[mask] = np.tanh(kept_rows) + kept_rows / np.cosh(kept_rows) ** 2
    np.testing.assert_allclose(gradient, want, rtol=1e-12)


def test_a_constant_condition_without_a_length_is_a_gather():
    with sg.use_graph():
        x = sg.var("x", shape=(2, 6))
        kept = sg.compress(MASK, x, axis=1)
        assert kept.shape == (2, 4) and kept.op == "gather"
        named = sg.compress(MASK, x, axis=1, length="k")
        assert named.shape == (2, "k") and named.op == "compress"
        fn = sg.compile([kept, named], inputs=[x])
    a = values(8, (2, 6))
    for got in fn(a):
        np.testing.assert_array_equal(got, np.compress(MASK, a, axis=1))


def test_symgrad_numpy_compress_takes_the_length():
    with sg.use_graph():
        x = sg.var("x", shape=(6, 3))
        m = sg.var("m", shape=(6,), dtype="bool")
        kept = snp.compress(m, x, axis=0, length="k")
        assert kept.shape == ("k", 3) and kept.op == "compress"


def _refused(build, error, match):
    with sg.use_graph() as graph:
        x = sg.var("x", shape=(6, 3))
        m = sg.var("m", shape=(6,), dtype="bool")
        b = sg.var("b", shape=(2, 3), dtype="bool")
        before = (graph.number_of_nodes(), graph.number_of_edges())
        with pytest.raises(error, match=match):
            build(x, m, b)
        assert (graph.number_of_nodes(), graph.number_of_edges()) == before


def test_refusals_name_what_is_wrong_and_leave_the_graph_as_it_was():
    _refused(lambda x, m, b: np.compress(m, x, axis=0), sg.SymgradError,
             r"compress: the number of entries .* length='k'")
    _refused(lambda x, m, b: sg.compress(m, x, axis=0), sg.SymgradError, "name the result's length")
    _refused(lambda x, m, b: sg.compress(m, x, axis=1, length="k"), sg.ShapeError,
             r"compress: the condition of shape \(6,\) is not one entry per entry of axis")
    _refused(lambda x, m, b: sg.compress(x, x, axis=0, length="k"), sg.ArgumentError,
             "the condition must be boolean")
    _refused(lambda x, m, b: sg.compress(np.ones(6), x, axis=0, length="k"), sg.ArgumentError,
             "the condition must be boolean")
    _refused(lambda x, m, b: sg.compress(b, x, axis=0, length="k"),
             sg.ShapeError, "must be 1-D")
    _refused(lambda x, m, b: sg.compress(m, x, axis=0, length=4), sg.ArgumentError,
             "length must name a dimension")
    _refused(lambda x, m, b: sg.compress(m, x, axis=0, length="not a name"), sg.ShapeError,
             "must be an ASCII identifier")
    _refused(lambda x, m, b: sg.compress(m, x, axis=2, length="k"), sg.ShapeError, "out of range")
    _refused(lambda x, m, b: np.compress(m, x, axis=0, out=np.zeros((6, 3))), sg.SymgradError,
             "out= is not supported")


def test_indexing_with_a_symbolic_mask_points_to_compress():
    with sg.use_graph():
        x = sg.var("x", shape=(6, 3))
        m = sg.var("m", shape=(6,), dtype="bool")
        for mask in (m, x[:, 0] > 0):
            with pytest.raises(sg.ArgumentError, match=r"sg\.compress\(mask, x, axis, "
                                                       r"length='k'\)"):
                x[mask]


def test_the_array_api_backend_refuses_compress_by_name():
    with sg.use_graph():
        x = sg.var("x", shape=(6, 3))
        m = sg.var("m", shape=(6,), dtype="bool")
        kept = sg.compress(m, x, axis=0, length="k")
        with pytest.raises(sg.SymgradError, match="backend 'array_api' has no counterpart for "
                                                  "selections .* op 'compress'"):
            sg.compile(sg.sum(kept), inputs=[m, x], backend="array_api")


def test_a_compiled_function_with_compress_pickles():
    import pickle
    with sg.use_graph():
        x = sg.var("x", shape=(6, 3))
        m = sg.var("m", shape=(6,), dtype="bool")
        u = sg.var("u", shape=("k", 3))
        fn = sg.compile(sg.compress(m, x, axis=0, length="k") * u, inputs=[m, x, u])
    again = pickle.loads(pickle.dumps(fn))
    a = values(9)
    np.testing.assert_array_equal(again(MASK, a, np.ones((4, 3))), a[MASK])
    with pytest.raises(sg.SymgradError, match="selects 4 entries"):
        again(MASK, a, np.ones((2, 3)))
