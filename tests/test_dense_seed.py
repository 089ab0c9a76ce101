"""The seed of a dense Jacobian or Hessian (issue 23): the identity op, made when the function runs
instead of an n^2d-entry constant stored in the graph, and its parts, which are products of
small identities."""

import pickle
import tracemalloc

import numpy as np
import pytest

import symgrad as sg
from symgrad import codegen
from symgrad.api import BACKENDS
from symgrad.codegen import memory
from symgrad.ops import identity
from symgrad.optimize import optimize as run_optimizer

from finite_differences import central_gradient

LAMBDA = 1.3


def grid_energy(u):
    """The 2-D Bratu energy: half the squared differences along both axes, minus LAMBDA e^u."""
    dx = u[1:, :] - u[:-1, :]
    dy = u[:, 1:] - u[:, :-1]
    return 0.5 * sg.sum(dx * dx) + 0.5 * sg.sum(dy * dy) - LAMBDA * sg.sum(sg.exp(u))


def grid_hessian_by_hand(x):
    """The closed form: the grid's Laplacian (D^T D along each axis, Kronecker products on the
    row-major flattening) minus LAMBDA diag(e^u)."""
    n = x.shape[0]
    differences = np.diff(np.eye(n), axis=0)
    second = differences.T @ differences
    laplacian = np.kron(second, np.eye(n)) + np.kron(np.eye(n), second)
    return (laplacian - LAMBDA * np.diag(np.exp(x).ravel())).reshape(n, n, n, n)


def _grid_point(n, dtype="float64"):
    return (0.3 * np.random.default_rng(n).standard_normal((n, n))).astype(dtype)


def test_a_grid_hessian_keeps_no_constant_larger_than_its_variable():
    n = 6
    with sg.use_graph():
        u = sg.var("u", shape=(n, n))
        hessian = sg.hessian(grid_energy(u), u)
        nodes = hessian.graph.nodes
        sizes = [nodes[k]["value"].size for k in nodes if nodes[k]["op"] == "const"]
        seeds = [nodes[k]["attrs"]["shape"] for k in nodes if nodes[k]["op"] == "identity"]
        source = sg.compile(hessian, inputs=[u]).source
    assert max(sizes) <= n * n
    # the seed's slices, and its product with e^u, are products of parts of eye(6), made when
    # the function runs
    assert (n,) in seeds and "np.eye(6)" in source and "np.eye(36)" not in source


def test_a_large_grid_hessian_holds_little_more_than_its_result():
    """Past the workspace's bound, each term is made in blocks of rows and added into the
    result: no second array of its size (the seed, a term) is alive at once."""
    n = 50
    with sg.use_graph():
        u = sg.var("u", shape=(n, n))
        fn = sg.compile(sg.hessian(grid_energy(u), u), inputs=[u])
    x = _grid_point(n)
    tracemalloc.start()
    try:
        got = fn(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.25 * got.nbytes
    np.testing.assert_allclose(got[7, 11], grid_hessian_by_hand(x)[7, 11], rtol=1e-14,
                               atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [5, 8])
def test_a_grid_hessian_matches_its_closed_form_and_central_differences(n, backend):
    with sg.use_graph():
        u = sg.var("u", shape=(n, n))
        energy = grid_energy(u)
        hessian = sg.compile(sg.hessian(energy, u), inputs=[u], backend=backend)
        gradient = sg.compile(sg.grad(energy, u), inputs=[u], backend=backend)
    x = _grid_point(n)
    got = np.asarray(hessian(x))
    np.testing.assert_allclose(got, grid_hessian_by_hand(x), rtol=1e-14, atol=1e-14)
    for row in [(0, 0), (2, 3), (n - 1, n - 1)]:
        by_differences = central_gradient(lambda v: np.asarray(gradient(v))[row], x)
        np.testing.assert_allclose(got[row], by_differences, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_large_grid_hessian_adds_its_terms_on_their_diagonals(backend):
    """Past BLOCKED_SUM_MIN entries, each term of the Hessian (a part of eye(n) times values) is
    added on its diagonal of the result, where the term would be an array of the result's
    size: the same numbers as the sums of whole terms, bit for bit (but a zero's sign), nan
    where e^u overflows included."""
    n = 20
    assert n ** 4 >= memory.BLOCKED_SUM_MIN
    with sg.use_graph():
        u = sg.var("u", shape=(n, n))
        energy = grid_energy(u)
        hessian = sg.hessian(energy, u)
        fn = sg.compile(hessian, inputs=[u], backend=backend)
        gradient = sg.compile(sg.grad(energy, u), inputs=[u])
        optimized = run_optimizer(u.graph, [hessian.node], [u.node])
        whole_terms = codegen.build_function(*codegen.generate(
            optimized.graph, optimized.outputs, optimized.inputs,
            passes=tuple(p for p in memory.PASSES if p is not memory.diagonal_sums)))
    x = _grid_point(n)
    got = np.asarray(fn(x))
    np.testing.assert_allclose(got, grid_hessian_by_hand(x), rtol=1e-14, atol=1e-14)
    for row in [(0, 0), (7, 12), (n - 1, 3)]:
        by_differences = central_gradient(lambda v: np.asarray(gradient(v))[row], x)
        np.testing.assert_allclose(got[row], by_differences, rtol=1e-6, atol=1e-6)
    if backend == "array_api":      # which takes no memory decision
        return
    assert "np.einsum" in fn.source and f"np.eye({n * n})" not in fn.source
    np.testing.assert_array_equal(got, whole_terms(x)[0])
    x[3, 4] = 800.0         # e^u = inf: the term of e^u's values is added whole, 0 * inf = nan
    with np.errstate(over="ignore", invalid="ignore"):
        got, (want,) = np.asarray(fn(x)), whole_terms(x)
    assert np.isnan(want).any()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_float32_grid_hessian_and_jacobian_stay_float32(backend):
    n = 4
    with sg.use_graph():
        u = sg.var("u", shape=(n, n), dtype="float32")
        hessian = sg.hessian(grid_energy(u), u)
        jacobian = sg.jacobian(sg.tanh(u) * u.T, u)
        assert hessian.dtype == jacobian.dtype == np.float32
        fn = sg.compile([hessian, jacobian], inputs=[u], backend=backend)
    x = _grid_point(n, "float32")
    got_hessian, got_jacobian = (np.asarray(r) for r in fn(x))
    assert got_hessian.dtype == got_jacobian.dtype == np.float32
    np.testing.assert_allclose(got_hessian, grid_hessian_by_hand(x.astype(np.float64)),
                               rtol=1e-6, atol=1e-6)
    t = np.tanh(x.astype(np.float64))
    by_hand = np.einsum("ik,jl->ijkl", np.eye(n), np.eye(n)) * ((1 - t * t) * x.T)[:, :, None, None] \
        + np.einsum("il,jk->ijkl", np.eye(n), np.eye(n)) * t[:, :, None, None]
    np.testing.assert_allclose(got_jacobian, by_hand, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_compiled_grid_hessian_pickles_and_computes_the_same(backend):
    n = 4
    with sg.use_graph():
        u = sg.var("u", shape=(n, n))
        fn = sg.compile(sg.hessian(grid_energy(u), u), inputs=[u], backend=backend)
    copy = pickle.loads(pickle.dumps(fn))
    assert copy.source == fn.source
    x = _grid_point(n)
    np.testing.assert_array_equal(np.asarray(copy(x)), np.asarray(fn(x)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("half, index", [
    ((3, 4), (slice(1, None), slice(None))),
    ((3, 4), (slice(None), slice(None, -1))),
    ((3, 4), (slice(None, None, -1), slice(0, 4, 2))),
    ((3, 4), (1, slice(1, 3))),
    ((3, 4), (slice(None), -1)),
    ((2, 3, 2), (slice(None), slice(None, None, -2), 0)),
])
def test_a_part_of_the_identity_is_the_product_of_parts_of_small_identities(half, index, backend):
    with sg.use_graph():
        part = identity(half)[(slice(None),) * len(half) + index]
        nodes = part.graph.nodes
        made = [nodes[k]["attrs"]["shape"] for k in part.graph.ancestors_in_order([part.node])
                if nodes[k]["op"] == "identity"]
        fn = sg.compile(part, inputs=[], backend=backend)
    assert made and all(len(shape) == 1 for shape in made)   # no identity of 2-d entries
    size = int(np.prod(half))
    want = np.eye(size).reshape(half + half)[(slice(None),) * len(half) + index]
    np.testing.assert_array_equal(np.asarray(fn()), want)


def test_the_jacobian_of_a_matrix_product_is_the_matrix_with_no_identity_made():
    with sg.use_graph():
        A, v = sg.var("A", shape=(4, 4)), sg.var("v", shape=(4,))
        fn = sg.compile([sg.jacobian(A @ v, v), sg.jacobian(v @ A, v)], inputs=[A, v])
    assert "eye" not in fn.source
    matrix = np.arange(16.0).reshape(4, 4)
    left, right = fn(matrix, np.ones(4))
    np.testing.assert_array_equal(left, matrix)
    np.testing.assert_array_equal(right, matrix.T)


def test_an_identity_of_a_named_shape_is_refused():
    with pytest.raises(sg.ShapeError, match="identity_like"):
        identity(("n", 3))
