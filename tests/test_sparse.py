"""Sparse Jacobians and Hessians (symgrad.sparsity): patterns read off the graph against known
structures, colour counts against the known optima, values against the dense derivative and
central differences, a property test over random graphs, and SciPy's solvers taking them."""

import pickle

import numpy as np
import pytest
import scipy.sparse
from hypothesis import assume, given, settings, strategies as st

import symgrad as sg
from symgrad.sparsity import _symmetric_recovery, _star_coloring, sparse_hessian, sparse_jacobian

from finite_differences import central_gradient
from test_properties import ALL_KINDS, GraphDrawer, BATCH


def central_jacobian(fn, x, step=1e-6):
    """The Jacobian of the vector function ``fn`` at ``x`` by central differences."""
    columns = []
    for j in range(x.size):
        offset = np.zeros_like(x)
        offset[j] = step
        columns.append((np.asarray(fn(x + offset)) - np.asarray(fn(x - offset))) / (2 * step))
    return np.stack(columns, axis=1)


def dense_and_sparse(y, x, at, direct=True):
    """(dense Jacobian, the CSR array, the compiled sparse function) of y at ``at``, the sparse
    one by the compressed pass; the direct emission's (unless ``direct`` is False) and the one
    sg.jacobian chooses are checked against it: the same pattern, the dense values."""
    dense = sg.compile(sg.jacobian(y, x, disconnected="zero"), [x])(at)
    fn = sg.compile(sparse_jacobian(y, x, "zero", method="compressed"), [x])
    chosen = sg.compile(sg.jacobian(y, x, sparse=True, disconnected="zero"), [x])
    results = [chosen]
    if direct:
        results.append(sg.compile(sparse_jacobian(y, x, "zero", method="direct"), [x]))
        assert results[-1].colors == (0,)
    J = fn(at)
    for other in results:
        K = other(at)
        assert K.format == "csr" and K.has_sorted_indices
        np.testing.assert_array_equal(K.indptr, J.indptr)
        np.testing.assert_array_equal(K.indices, J.indices)
        np.testing.assert_allclose(K.toarray(), dense, rtol=1e-12, atol=1e-12)
    return dense, J, fn


def hessians(f, x, at, direct=True):
    """(the dense Hessian, the compressed pass's CSR array and compiled function) at ``at``;
    the direct emission's (unless ``direct`` is False) and the one sg.hessian chooses are
    checked against them."""
    dense = sg.compile(sg.hessian(f, x), [x])(at)
    fn = sg.compile(sparse_hessian(f, x, method="compressed"), [x])
    H = fn(at)
    results = [sg.compile(sg.hessian(f, x, sparse=True), [x])]
    if direct:
        results.append(sg.compile(sparse_hessian(f, x, method="direct"), [x]))
        assert results[-1].colors == (0,)
    for other in results:
        K = other(at)
        np.testing.assert_array_equal(K.indptr, H.indptr)
        np.testing.assert_array_equal(K.indices, H.indices)
        np.testing.assert_allclose(K.toarray(), dense, rtol=1e-12, atol=1e-12)
    return dense, H, fn


def bratu(n, lam=6.0):
    """The 2-D Bratu problem on an n x n grid, zero on the boundary: the residual of
    -Laplace(u) - lam exp(u) and the energy whose gradient it is."""
    u = sg.var("u", shape=(n * n,))
    grid = u.reshape(n, n)
    padded = sg.pad(grid, 1)
    h2 = (1.0 / (n + 1)) ** 2
    laplacian = (4 * grid - padded[:-2, 1:-1] - padded[2:, 1:-1] - padded[1:-1, :-2]
                 - padded[1:-1, 2:]) / h2
    residual = (laplacian - lam * sg.exp(grid)).reshape(-1)
    across = padded[1:, 1:-1] - padded[:-1, 1:-1]
    along = padded[1:-1, 1:] - padded[1:-1, :-1]
    energy = 0.5 * (sg.sum(across * across) + sg.sum(along * along)) / h2 \
        - lam * sg.sum(sg.exp(grid))
    return u, residual, energy


def tridiagonal(size):
    x = sg.var("x", shape=(size,))
    padded = sg.pad(x, 1)
    return "jacobian", padded[:-2] - 2.0 * sg.sin(x) + padded[2:] ** 3, x


def chained_rosenbrock(size):
    x = sg.var("x", shape=(size,))
    return "hessian", sg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2), x


def block_diagonal(size):
    """Independent terms of three unknowns each: a Hessian of 3 x 3 blocks."""
    x = sg.var("x", shape=(size - size % 3,))
    blocks = x.reshape(-1, 3)
    return "hessian", sg.sum(sg.log(1.0 + sg.sum(blocks * blocks, axis=1))) \
        + sg.sum(sg.sin(x) ** 2), x


def arrowhead(size):
    """One unknown coupled to every other: a Hessian with one dense row and column."""
    x = sg.var("x", shape=(size,))
    return "hessian", x[0] * sg.sum(sg.sin(x[1:])) + sg.sum(x ** 4), x


def composed_band(hessian):
    """A band through two layers of a three-point stencil (five colours), and the Hessian of
    its sum of squares (nine): a deep pattern, where the compressed pass wins."""
    def build(size):
        x = sg.var("x", shape=(size,))
        y = x
        for _ in range(2):
            padded = sg.pad(y, 1)
            y = sg.sin(padded[:-2] + padded[2:] * y)
        return ("hessian", sg.sum(y * y), x) if hessian else ("jacobian", y, x)
    return build


def bratu_structure(hessian):
    def build(size):
        u, residual, energy = bratu(round(size ** 0.5))
        return ("hessian", energy, u) if hessian else ("jacobian", residual, u)
    return build


# name -> size -> ("jacobian" or "hessian", the output, the variable) of about size unknowns:
# the structures the choice between the two methods is measured on
# (tests/benchmarks/sparse_chooser.py)
STRUCTURES = {"tridiagonal": tridiagonal, "Bratu residual": bratu_structure(False),
              "Bratu energy": bratu_structure(True), "chained Rosenbrock": chained_rosenbrock,
              "block diagonal": block_diagonal, "arrowhead": arrowhead,
              "composed band": composed_band(False), "composed band Hessian": composed_band(True)}


def five_point(n):
    one = np.ones(n - 1)
    path = scipy.sparse.diags_array([one, np.ones(n), one], offsets=[-1, 0, 1], dtype=bool)
    eye = scipy.sparse.identity(n, dtype=bool)
    return (scipy.sparse.kron(eye, path) + scipy.sparse.kron(path, eye)).astype(bool)


# -- patterns on known structures ----------------------------------------------------------------


def test_a_tridiagonal_jacobian_has_its_pattern_and_three_colours():
    with sg.use_graph():
        x = sg.var("x", shape=(10,))
        padded = sg.pad(x, 1)
        y = padded[:-2] - 2.0 * sg.sin(x) + padded[2:] ** 3
        expected = scipy.sparse.diags_array([np.ones(9), np.ones(10), np.ones(9)],
                                            offsets=[-1, 0, 1], dtype=bool)
        assert (sg.sparsity(y, x) != expected).nnz == 0
        at = np.linspace(-1.0, 1.0, 10)
        dense, J, fn = dense_and_sparse(y, x, at)
        assert fn.colors == (3,)
        assert J.format == "csr" and J.shape == (10, 10) and J.nnz == 28
        np.testing.assert_array_equal(J.toarray(), dense)
        np.testing.assert_allclose(J.toarray(), central_jacobian(sg.compile(y, [x]), at),
                                   rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("n", [3, 8])
def test_bratu_residual_and_energy_have_the_five_point_pattern(n):
    with sg.use_graph():
        u, residual, energy = bratu(n)
        expected = five_point(n)
        assert (sg.sparsity(residual, u) != expected).nnz == 0
        at = np.random.default_rng(n).uniform(0.0, 1.0, n * n)
        dense, J, fn = dense_and_sparse(residual, u, at)
        np.testing.assert_array_equal(J.toarray(), dense)
        _, H, hessian = hessians(energy, u, at)
        assert (H.astype(bool) != expected).nnz == 0
        np.testing.assert_array_equal(H.toarray(), dense)
        # the distance-2 graph of the grid holds 5 mutually adjacent columns; (i + 2 j) mod 5
        # colours it with 5, which the saturation order finds
        assert fn.colors == (5,)
        assert hessian.colors[0] <= 5
        # the residual's Jacobian is its constant Laplacian plus the exponential's diagonal:
        # direct emission computes n entries where the compressed pass computes 5 n at each node
        assert sg.jacobian(residual, u, sparse=True).data["attrs"]["method"] == "direct"
        assert sg.hessian(energy, u, sparse=True).data["attrs"]["method"] == "direct"


def test_the_chained_rosenbrock_hessian_is_tridiagonal():
    with sg.use_graph():
        x = sg.var("x", shape=(12,))
        f = sg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
        residuals = sg.concatenate([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])
        at = np.random.default_rng(3).uniform(-1.2, 1.2, 12)
        dense, sparse, fn = hessians(f, x, at)
        assert fn.colors == (3,)
        assert sparse.nnz == 12 + 2 * 11
        np.testing.assert_allclose(sparse.toarray(), dense, rtol=1e-13, atol=1e-12)
        gradient = sg.compile(sg.grad(f, x), [x])
        np.testing.assert_allclose(sparse.toarray(), central_jacobian(gradient, at),
                                   rtol=1e-6, atol=1e-5)
        # the residuals' Jacobian: two bands stacked, 2 colours
        dense_r, J, fr = dense_and_sparse(residuals, x, at)
        np.testing.assert_array_equal(J.toarray(), dense_r)
        assert fr.colors == (2,) and J.nnz == 3 * 11


def test_a_block_diagonal_sum_of_independent_terms():
    with sg.use_graph():
        x = sg.var("x", shape=(12,))
        blocks = x.reshape(4, 3)
        f = sg.sum(sg.logsumexp(blocks, axis=1)) + sg.sum(sg.sin(x) ** 2)
        dense, sparse, fn = hessians(f, x, np.linspace(-2.0, 2.0, 12), direct=False)
        expected = scipy.sparse.block_diag([np.ones((3, 3), dtype=bool)] * 4)
        assert (sparse.astype(bool) != expected).nnz == 0
        assert fn.colors == (3,)
        # logsumexp is no element-wise, moving or linear op: sg.hessian compresses
        with pytest.raises(sg.SymgradError, match="no rule for op 'logsumexp'"):
            sparse_hessian(f, x, method="direct")
        np.testing.assert_allclose(sparse.toarray(), dense, rtol=1e-13, atol=1e-14)


def test_an_arrowhead_hessian_takes_two_star_colours_where_columns_take_n():
    with sg.use_graph():
        x = sg.var("x", shape=(9,))
        f = x[0] * sg.sum(sg.sin(x[1:])) + sg.sum(x ** 4)
        H = sparse_hessian(f, x, method="compressed")
        assert H.data["attrs"]["method"] == "star"
        dense, sparse, fn = hessians(f, x, np.linspace(-1.0, 1.5, 9))
        assert fn.colors[0] == 2
        np.testing.assert_allclose(sparse.toarray(), dense, rtol=1e-13, atol=1e-14)
        # the Jacobian of its gradient, not symmetric in its method, needs 2 colours by rows
        J = sg.compile(sparse_jacobian(sg.grad(f, x), x, method="compressed"), [x])
        np.testing.assert_allclose(J(np.linspace(-1.0, 1.5, 9)).toarray(), dense, rtol=1e-13)


def test_a_dense_row_makes_columns_worse_than_rows_and_the_other_way_round():
    with sg.use_graph():
        x = sg.var("x", shape=(8,))
        # one output reads every entry: columns all conflict, rows need 2 colours
        y = sg.concatenate([sg.sum(x * x)[None], sg.exp(x)])
        dense, J, fn = dense_and_sparse(y, x, np.linspace(0.0, 1.0, 8))
        assert J.shape == (9, 8) and fn.colors == (2,)
        np.testing.assert_array_equal(J.toarray(), dense)
        # one input read by every output: forward mode over 2 column colours
        z = x[0] * sg.cos(x[1:])
        dense, J, fn = dense_and_sparse(z, x, np.linspace(0.0, 1.0, 8))
        assert fn.colors == (2,)
        np.testing.assert_array_equal(J.toarray(), dense)
        assert sparse_jacobian(z, x, method="compressed").data["attrs"]["method"] == "columns"


def test_where_and_maximum_keep_both_branches():
    with sg.use_graph():
        x = sg.var("x", shape=(4,))
        y = sg.where(x[:2] > 0.0, x[2:], 3.0 * x[:2]) + sg.maximum(x[::-1][:2], 0.0)
        pattern = sg.sparsity(y, x).toarray()
        np.testing.assert_array_equal(pattern, [[1, 0, 1, 1], [0, 1, 1, 1]])
        for at in ([1.0, -1.0, 2.0, 3.0], [-1.0, 1.0, -2.0, -3.0]):
            dense, J, _ = dense_and_sparse(y, x, np.array(at))
            np.testing.assert_array_equal(J.toarray(), dense)


def test_reductions_scans_products_and_gathers_are_exact():
    with sg.use_graph():
        x = sg.var("x", shape=(6,))
        m = x.reshape(2, 3)
        A = np.array([[1.0, 0.0, 2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 3.0, 1.0]])
        cases = {
            "row sums": (sg.sum(m, axis=1), [[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]]),
            "column max": (sg.max(m, axis=0), [[1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 1, 0],
                                               [0, 0, 1, 0, 0, 1]]),
            "running sum": (sg.cumsum(x[:3]), [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0],
                                               [1, 1, 1, 0, 0, 0]]),
            "constant product": (A @ x, A != 0),
            "gather": (x[np.array([5, 0, 5])], [[0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0],
                                                [0, 0, 0, 0, 0, 1]]),
            "softmax": (sg.softmax(m, axis=1).reshape(-1), np.kron(np.eye(2), np.ones((3, 3)))),
        }
        at = np.linspace(-1.0, 1.0, 6)
        for name, (y, expected) in cases.items():
            np.testing.assert_array_equal(sg.sparsity(y, x).toarray(), np.asarray(expected, bool),
                                          err_msg=name)
            # direct emission takes sums, scans and products with constants; max and softmax
            # are no linear ops
            linear = name not in ("column max", "softmax")
            dense, J, _ = dense_and_sparse(y, x, at, direct=linear)
            np.testing.assert_allclose(J.toarray(), dense, rtol=1e-14, atol=1e-15, err_msg=name)
            assert (sg.jacobian(y, x, sparse=True).data["attrs"]["method"] == "direct") == linear


def test_an_op_without_a_rule_is_dense_and_never_misses_a_nonzero():
    with sg.use_graph():
        x = sg.var("x", shape=(4,))
        y = sg.sort(x[:3]) * x[3]
        pattern = sg.sparsity(y, x).toarray()
        assert pattern.all()
        dense, J, _ = dense_and_sparse(y, x, np.array([0.3, -1.0, 2.0, 0.5]), direct=False)
        np.testing.assert_array_equal(J.toarray(), dense)
        # direct emission has no rule for sort: sg.jacobian takes the compressed pass
        assert sg.jacobian(y, x, sparse=True).data["attrs"]["method"] != "direct"
        with pytest.raises(sg.SymgradError, match="no rule for op 'sort'"):
            sparse_jacobian(y, x, method="direct")


def test_a_direct_hessian_is_its_lower_triangle_mirrored():
    """Direct emission computes the nonzeros on and below the diagonal and writes each one below
    to its mirror image too: the result is symmetric to the last bit, where the Jacobian of the
    gradient, upper triangle included, is not (sin(x_i x_{i+1}) e^{0.3 x_{i+1}} rounds
    differently across the diagonal), equals the dense Hessian to rounding, with its pattern,
    and central differences of the gradient."""
    with sg.use_graph():
        x = sg.var("x", shape=(9,))
        f = sg.sum(sg.sin(x[:-1] * x[1:]) * sg.exp(x[1:] * 0.3)) + sg.sum(sg.tanh(x) ** 3)
        at = np.random.default_rng(1).uniform(-1.0, 1.0, 9)
        H = sg.compile(sparse_hessian(f, x, method="direct"), [x])(at)
        assert (H != H.T).nnz == 0
        J = sg.compile(sparse_jacobian(sg.grad(f, x), x, method="direct"), [x])(at)
        assert (J != J.T).nnz > 0
        dense, _, _ = hessians(f, x, at)
        np.testing.assert_allclose(H.toarray(), dense, rtol=1e-15, atol=1e-15)
        assert H.nnz == 9 + 2 * 8
        np.testing.assert_allclose(H.toarray(), central_jacobian(
            sg.compile(sg.grad(f, x), [x]), at), rtol=1e-7, atol=1e-8)
    # where both compute the same products, in the same order, they agree to the last bit
    with sg.use_graph():
        x = sg.var("x", shape=(9,))
        f = x[0] * sg.sum(sg.sin(x[1:])) + sg.sum(x ** 4)
        at = np.linspace(-1.0, 1.5, 9)
        H = sg.compile(sparse_hessian(f, x, method="direct"), [x])(at)
        np.testing.assert_array_equal(H.toarray(), sg.compile(sg.hessian(f, x), [x])(at))


@pytest.mark.parametrize("name", ["tridiagonal", "Bratu residual", "Bratu energy",
                                  "chained Rosenbrock", "block diagonal", "arrowhead",
                                  "composed band", "composed band Hessian"])
def test_the_choice_is_the_method_measured_faster(name):
    """The method sg.jacobian / sg.hessian pick on the structures both were timed on
    (tests/benchmarks/sparse_chooser.py: 1,000 to 90,000 unknowns): direct emission, but where
    composed stencils widen the band (5 and 9 colours), the compressed pass."""
    expected = "compressed" if name.startswith("composed") else "direct"
    with sg.use_graph():
        kind, y, x = STRUCTURES[name](1000)
        result = (sg.hessian if kind == "hessian" else sg.jacobian)(y, x, sparse=True)
        method = result.data["attrs"]["method"]
        assert (method if method == "direct" else "compressed") == expected
        at = np.random.default_rng(0).uniform(-1.0, 1.0, x.size)
        other = (sparse_hessian if kind == "hessian" else sparse_jacobian)(
            y, x, method="compressed" if expected == "direct" else "direct")
        values = sg.compile([result, other], [x])(at)
        np.testing.assert_array_equal(values[0].indices, values[1].indices)
        np.testing.assert_allclose(values[0].data, values[1].data, rtol=1e-12, atol=1e-12)


def test_a_sum_over_a_whole_long_vector_is_one_probe():
    """The arrowhead's sum over 20,000 entries: its weights come from one probe of ones, where a
    colouring of its columns (all in conflict) made a 20,000-squared matrix and 20,000 probes."""
    with sg.use_graph():
        _, f, x = STRUCTURES["arrowhead"](20_000)
        at = np.random.default_rng(4).uniform(-1.0, 1.0, 20_000)
        H = sg.compile(sg.hessian(f, x, sparse=True), [x])(at)
        assert H.nnz == 20_000 + 2 * 19_999
        np.testing.assert_allclose(H[[0], :].toarray().ravel(),
                                   np.concatenate([[12.0 * at[0] ** 2], np.cos(at[1:])]),
                                   rtol=1e-15)
        np.testing.assert_allclose(H.diagonal()[1:], -at[0] * np.sin(at[1:]) + 12.0 * at[1:] ** 2,
                                   rtol=1e-13)


@pytest.mark.parametrize("method", [None, "direct", "compressed"])
@pytest.mark.parametrize("name", ["Bratu residual", "Bratu energy", "chained Rosenbrock",
                                  "arrowhead", "composed band Hessian"])
def test_a_sparse_call_adds_only_the_nodes_its_result_reads(name, method):
    with sg.use_graph() as graph:
        kind, y, x = STRUCTURES[name](16)
        mark = graph.next_key
        result = (sparse_hessian if kind == "hessian" else sparse_jacobian)(y, x, method=method)
        added = {node for node in graph.nodes if node >= mark}
        assert added and added <= set(graph.ancestors_in_order([result.node]))
        for node in added:
            assert graph.nodes[node]["grad_of"] is None or isinstance(
                graph.nodes[node]["grad_of"], str) or graph.nodes[node]["grad_of"] in graph
        at = np.random.default_rng(2).uniform(-1.0, 1.0, x.size)
        dense = sg.compile(sg.hessian(y, x) if kind == "hessian" else sg.jacobian(y, x),
                           [x])(at)
        np.testing.assert_allclose(sg.compile(result, [x])(at).toarray(), dense, rtol=1e-12,
                                   atol=1e-12)
        # the graph releases as before: dropped expressions take their nodes with them
        del result, y
        sg.exp(sg.const(np.ones(200), graph) * x[0]).node


def test_a_failed_sparse_call_leaves_the_graph_as_it_was():
    """Direct emission fails at logsumexp after building the gradient and the partial
    derivatives on the way: every node it built goes, and the hash-consing table with them."""
    with sg.use_graph() as graph:
        kind, f, x = STRUCTURES["block diagonal"](12)
        f = f + sg.sum(sg.logsumexp(x.reshape(4, 3), axis=1))
        nodes = {node: dict(data) for node, data in graph.nodes(data=True)}
        cons, mark = dict(graph._cons), graph.next_key
        with pytest.raises(sg.SymgradError, match="no rule for op 'logsumexp'"):
            sparse_hessian(f, x, method="direct")
        with pytest.raises(sg.SymgradError, match="no rule for op 'logsumexp'"):
            sparse_jacobian(sg.logsumexp(x.reshape(4, 3), axis=1), x, method="direct")
        assert {node: dict(data) for node, data in graph.nodes(data=True)} == nodes
        assert graph._cons == cons and graph.next_key > mark


def test_the_star_colouring_recovers_every_nonzero_or_says_it_cannot():
    pattern = five_point(6).tocsr()
    adjacency = pattern.copy()
    adjacency.setdiag(False)
    adjacency.eliminate_zeros()
    colors = _star_coloring(adjacency)
    assert _symmetric_recovery(pattern, colors) is not None
    # a proper colouring of a path with two colours is no star colouring: P4 is bicoloured
    assert _symmetric_recovery(pattern, np.arange(36) % 2) is None


# -- the results ---------------------------------------------------------------------------------


def test_a_sparse_result_is_an_output_of_its_own():
    with sg.use_graph():
        x = sg.var("x", shape=(3,))
        J = sg.jacobian(sg.sin(x), x, sparse=True)
        with pytest.raises(sg.SymgradError, match="result of its own"):
            sg.compile(J * 2.0, [x])
        with pytest.raises(sg.UndefinedGradientError):
            sg.grad(sg.sum(J), x)


def test_bad_arguments_leave_the_graph_as_it_was():
    with sg.use_graph() as graph:
        x = sg.var("x", shape=(3,))
        W = sg.var("W", shape=(2, 3))
        y, doubled, flat = sg.sin(x), W * 2.0, sg.sin(W).reshape(-1)
        before = graph.number_of_nodes()
        with pytest.raises(sg.ShapeError, match="1-D"):
            sg.jacobian(doubled, W, sparse=True)
        with pytest.raises(sg.ShapeError, match="scalar"):
            sg.hessian(y, x, sparse=True)
        with pytest.raises(sg.SymgradError):
            sg.jacobian(y, y, sparse=True)
        with pytest.raises(sg.UndefinedGradientError):
            sg.jacobian(flat, x, sparse=True)
        assert graph.number_of_nodes() == before


def test_a_disconnected_output_follows_the_policy():
    with sg.use_graph():
        x, z = sg.var("x", shape=(3,)), sg.var("z", shape=(2,))
        with pytest.raises(sg.UndefinedGradientError):
            sg.jacobian(sg.sin(z), x, sparse=True)
        fn = sg.compile(sg.jacobian(sg.sin(z), x, sparse=True, disconnected="zero"), [x, z])
        J = fn(np.ones(3), np.ones(2))
        assert J.shape == (2, 3) and J.nnz == 0


@pytest.mark.parametrize("method", ["direct", "compressed"])
def test_each_call_returns_a_matrix_of_its_own_and_it_pickles(method):
    with sg.use_graph():
        x = sg.var("x", shape=(5,))
        fn = sg.compile(sparse_jacobian(x[1:] * x[:-1], x, method=method), [x])
        first, second = fn(np.ones(5)), fn(np.full(5, 2.0))
        first.data[:] = 7.0
        first.indices[:] = 0
        np.testing.assert_array_equal(second.toarray(), fn(np.full(5, 2.0)).toarray())
        assert np.shares_memory(first.data, second.data) is False
        again = pickle.loads(pickle.dumps(fn))
        np.testing.assert_array_equal(again(np.full(5, 2.0)).toarray(), second.toarray())
        assert again.colors == fn.colors == ((0,) if method == "direct" else (2,))
        if "numba" in sg.api.BACKENDS:
            fused = sg.compile(sparse_jacobian(x[1:] * x[:-1], x, method=method), [x],
                               backend="numba")
            np.testing.assert_array_equal(fused(np.full(5, 2.0)).toarray(), second.toarray())


def test_a_spy_plot_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    with sg.use_graph():
        u, residual, _ = bratu(5)
        J = sg.jacobian(residual, u, sparse=True)
        sg.draw_sparsity(J, tmp_path / "spy.png")
        sg.draw_sparsity(sg.sparsity(residual, u), tmp_path / "spy.svg")
        assert (tmp_path / "spy.png").stat().st_size > 1000
        assert "<svg" in (tmp_path / "spy.svg").read_text()


# -- random graphs ---------------------------------------------------------------------------------


class SlicedDrawer(GraphDrawer):
    """GraphDrawer whose variables are reshaped slices of one 1-D variable (the batch dimension
    made 2), so that the whole graph is a function of one vector."""

    LENGTH = 48

    def __init__(self, draw):
        super().__init__(draw, kinds=ALL_KINDS)
        self.vector = sg.var("z", shape=(self.LENGTH,))
        self.used_length = 0

    def variable(self, shape):
        shape = tuple(2 if d == BATCH else d for d in shape)
        size = int(np.prod(shape, dtype=np.int64))
        start = self.used_length
        self.used_length += size
        assume(self.used_length <= self.LENGTH)
        self.variables[f"x{len(self.variables)}"] = part = \
            self.vector[start:start + size].reshape(shape)
        return part


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_sparse_jacobians_of_random_graphs_equal_the_dense_ones(data):
    with sg.use_graph():
        drawer = SlicedDrawer(data.draw)
        try:
            drawer.build(data.draw(st.integers(1, 6), label="steps"))
        except sg.SymgradError:
            assume(False)
        y = drawer.pool[-1]
        assume(all(isinstance(d, int) for d in y.shape))
        y = y.reshape(-1) if y.ndim != 1 else y
        z = drawer.vector
        at = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).uniform(
            -1.0, 1.0, z.shape)
        dense = np.asarray(sg.compile(sg.jacobian(y, z, disconnected="zero"), [z])(at))
        assume(np.all(np.isfinite(dense)))
        pattern = sg.sparsity(y, z).toarray()
        assert not np.any((dense != 0) & ~pattern), "a nonzero outside the pattern"
        for method in ("compressed", "direct"):
            try:
                fn = sg.compile(sparse_jacobian(y, z, "zero", method=method), [z])
            except sg.SymgradError as error:
                assert method == "direct" and "no rule for op" in str(error)
                continue
            J = fn(at)
            np.testing.assert_array_equal(J.astype(bool).toarray() | pattern, pattern)
            assert J.nnz == pattern.sum()
            np.testing.assert_allclose(J.toarray(), dense, rtol=1e-12, atol=1e-12)


# -- SciPy's solvers -----------------------------------------------------------------------------


def brusselator(points, alpha=0.02, a=1.0, b=3.0):
    """The 1-D Brusselator of Hairer and Wanner (II, IV.1), a stiff reaction-diffusion system:
    u and v on ``points`` interior points of [0, 1], interleaved in one vector of 2 * points
    unknowns, u = 1 and v = 3 on the boundary. Returns (the state, its time derivative, the
    initial state)."""
    y = sg.var("y", shape=(2 * points,))
    u, v = y[0::2], y[1::2]
    scale = alpha * (points + 1) ** 2

    def diffusion(w, boundary):
        padded = sg.pad(w, 1, constant_values=boundary)
        return scale * (padded[:-2] - 2.0 * w + padded[2:])
    reaction = u * u * v
    du = a + reaction - (b + 1.0) * u + diffusion(u, 1.0)
    dv = b * u - reaction + diffusion(v, 3.0)
    x = np.arange(1, points + 1) / (points + 1)
    start = np.stack([1.0 + np.sin(2 * np.pi * x), np.full(points, 3.0)], axis=1).ravel()
    return y, sg.stack([du, dv], axis=1).reshape(-1), start


def test_least_squares_takes_the_sparse_jacobian():
    optimize = pytest.importorskip("scipy.optimize")
    with sg.use_graph():
        x = sg.var("x", shape=(30,))
        residuals = sg.concatenate([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])
        fun = sg.compile(residuals, [x])
        jac = sg.compile(sg.jacobian(residuals, x, sparse=True), [x])
        start = np.full(30, -0.5)
        result = optimize.least_squares(fun, start, jac=jac, method="trf")
        np.testing.assert_allclose(result.x, np.ones(30), rtol=1e-6)
        by_differences = optimize.least_squares(fun, start, method="trf",
                                                jac_sparsity=sg.sparsity(residuals, x))
        np.testing.assert_allclose(result.x, by_differences.x, rtol=1e-6)
        assert result.nfev <= by_differences.nfev


def test_minimize_trust_constr_takes_the_sparse_hessian():
    optimize = pytest.importorskip("scipy.optimize")
    with sg.use_graph():
        x = sg.var("x", shape=(40,))
        f = sg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
        value_and_gradient = sg.compile([f, sg.grad(f, x)], [x])
        hessian = sg.compile(sparse_hessian(f, x, method="compressed"), [x])
        start = np.linspace(0.0, 0.6, 40)
        result = optimize.minimize(value_and_gradient, start, jac=True, hess=hessian,
                                   method="trust-constr", options={"gtol": 1e-10})
        np.testing.assert_allclose(result.x, np.ones(40), rtol=1e-6)
        assert scipy.sparse.issparse(hessian(start)) and hessian.colors == (3,)


def test_solve_ivp_bdf_takes_the_sparse_jacobian_of_a_stiff_system():
    """10,000 unknowns: the same solution as SciPy's own differences over the pattern
    (jac_sparsity), with fewer evaluations of the right-hand side, since SciPy's differences
    cost one per colour of each Jacobian (tests/benchmarks/sparse_bratu.py times both)."""
    integrate = pytest.importorskip("scipy.integrate")
    with sg.use_graph():
        y, rate, start = brusselator(5000)
        rhs = sg.compile(rate, [y])
        jac = sg.compile(sparse_jacobian(rate, y, method="compressed"), [y])
        calls = {"exact": 0, "differences": 0}

        def counted(run):
            def fun(t, state):
                calls[run] += 1         # solve_ivp's nfev leaves out those of its differences
                return rhs(state)
            return fun
        exact = integrate.solve_ivp(counted("exact"), (0.0, 10.0), start, method="BDF",
                                    jac=lambda t, state: jac(state), rtol=1e-6, atol=1e-8)
        differences = integrate.solve_ivp(counted("differences"), (0.0, 10.0), start,
                                          method="BDF", jac_sparsity=sg.sparsity(rate, y),
                                          rtol=1e-6, atol=1e-8)
        assert exact.success and differences.success
        np.testing.assert_allclose(exact.y[:, -1], differences.y[:, -1], rtol=1e-4, atol=1e-6)
        assert calls["exact"] == exact.nfev
        assert calls["exact"] < calls["differences"]
        assert exact.njev <= differences.njev
        assert jac.colors[0] <= 5        # a band of half-width 2


def test_put_add_adds_at_repeated_positions_and_its_gradient_is_the_gather():
    with sg.use_graph() as graph:
        x = sg.var("x", shape=(3,))
        positions = np.array([0, 2, 2])
        y = sg.ops.apply("put_add", sg.ops.const(np.arange(5.0), graph), sg.sin(x),
                         sg.ops.const(positions, graph, dtype="int64"))
        f = sg.sum(y * y)
        fn = sg.compile([y, sg.grad(f, x)], [x])
        at = np.array([0.3, -0.7, 1.1])
        expected = np.arange(5.0)
        np.add.at(expected, positions, np.sin(at))
        value, gradient = fn(at)
        np.testing.assert_array_equal(value, expected)
        np.testing.assert_allclose(gradient, central_gradient(sg.compile(f, [x]), at),
                                   rtol=1e-7, atol=1e-9)
