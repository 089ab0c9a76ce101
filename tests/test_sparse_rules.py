"""The sparsity rules of the ops a user of sparse derivatives meets (symgrad.sparsity): einsum and
inner on random subscripts and shapes, the scatters a gradient of indexing holds, convolutions
and pooling, sort. Each pattern is checked against the dense Jacobian's nonzeros at random
points: it never misses one, and where the rule is exact it holds no more. Then the colourings: the 5-point stencil's optimum
at 90,000 columns, DSATUR proper on random graphs and exact on bipartite ones."""

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings, strategies as st

import symgrad as sg
from symgrad.ops import apply, const
from symgrad.sparsity import _fewest_colors, _saturation_coloring

from test_sparse import dense_and_sparse, five_point, hessians


def seen_nonzeros(y, x, points):
    """The entries of dy/dx nonzero at any of ``points``, by the dense Jacobian."""
    jacobian = sg.compile(sg.jacobian(y, x, disconnected="zero"), [x])
    seen = np.zeros((y.size, x.size), dtype=bool)
    for at in points:
        seen |= np.asarray(jacobian(at)) != 0
    return seen


def check_pattern(y, x, rng, exact=True):
    """sg.sparsity(y, x) holds every nonzero of the dense Jacobian at three random points, and
    (``exact``) nothing else; returns it."""
    points = [rng.normal(size=x.size) for _ in range(3)]
    pattern = sg.sparsity(y, x).toarray()
    seen = seen_nonzeros(y, x, points)
    assert not np.any(seen & ~pattern), "a nonzero outside the pattern"
    if exact:
        np.testing.assert_array_equal(pattern, seen)
    return pattern


# -- einsum ----------------------------------------------------------------------------------------


@st.composite
def contractions(draw):
    """(subscripts, operand shapes, which operands are constants, the lengths' seed): 1 to 3
    operands of up to 3 axes over the letters a-d, a letter repeated on an operand (a diagonal)
    or of length 1 on one operand and longer on another (stretched), an output of some of the
    letters."""
    lengths = {c: draw(st.integers(1, 3), label=f"length of {c}") for c in "abcd"}
    operands = []
    for k in range(draw(st.integers(1, 3), label="operands")):
        letters = draw(st.lists(st.sampled_from("abcd"), max_size=3), label=f"operand {k}")
        shape = tuple(1 if draw(st.integers(0, 5), label="stretched") == 0 else lengths[c]
                      for c in letters)
        operands.append(("".join(letters), shape))
    used = sorted({c for letters, _ in operands for c in letters})
    output = draw(st.lists(st.sampled_from(used), unique=True), label="output") if used else []
    constants = [draw(st.booleans(), label=f"operand {k} constant") for k in range(len(operands))]
    if all(constants):
        constants[0] = False
    subscripts = ",".join(letters for letters, _ in operands) + "->" + "".join(output)
    return subscripts, [shape for _, shape in operands], constants


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(contractions(), st.integers(0, 2**32 - 1))
def test_einsum_patterns_are_the_dense_jacobians_nonzeros(contraction, seed):
    subscripts, shapes, constants = contraction
    rng = np.random.default_rng(seed)
    with sg.use_graph():
        sizes = [int(np.prod(shape)) for shape, constant in zip(shapes, constants)
                 if not constant]
        x = sg.var("x", shape=(sum(sizes),))
        operands, start = [], 0
        for shape, constant in zip(shapes, constants):
            if constant:
                # constants with zeros, which the pattern follows
                value = rng.normal(size=shape) * (rng.uniform(size=shape) < 0.6)
                operands.append(value)
            else:
                size = int(np.prod(shape))
                operands.append(x[start:start + size].reshape(shape))
                start += size
        try:
            y = sg.einsum(subscripts, *operands)
        except sg.ShapeError:
            return          # lengths NumPy's einsum refuses too
        check_pattern(y.reshape(-1), x, rng)


def test_einsum_through_a_constant_takes_direct_emission_with_its_nonzeros():
    # the direct emission of a product with constants asks einsum's rule for its structure
    rng = np.random.default_rng(0)
    W = rng.normal(size=(4, 5)) * (rng.uniform(size=(4, 5)) < 0.5)
    with sg.use_graph():
        x = sg.var("x", shape=(5,))
        for y in (sg.einsum("ij,j->i", W, sg.sin(x)), sg.tensordot(W, x ** 2, axes=1),
                  sg.inner(W[0], x).reshape(1)):
            pattern = check_pattern(y, x, rng)
            dense, J, _ = dense_and_sparse(y, x, rng.normal(size=5))
            assert J.nnz == pattern.sum()
            assert sg.jacobian(y, x, sparse=True).data["attrs"]["method"] == "direct"


def test_batched_products_of_two_unknowns_are_block_diagonal():
    rng = np.random.default_rng(1)
    with sg.use_graph():
        x = sg.var("x", shape=(24 + 6 + 3,))
        a, b = x[:12].reshape(3, 2, 2), x[12:24].reshape(3, 2, 2)
        stretched, vector = x[24:30].reshape(1, 2, 3), x[30:]
        for y in (sg.einsum("bij,bjk->bik", a, b), a @ b, stretched @ vector, a @ stretched,
                  vector @ stretched.reshape(3, 2)[None]):
            y = y.reshape(-1)
            pattern = check_pattern(y, x, rng)
            dense, J, _ = dense_and_sparse(y, x, rng.normal(size=x.size), direct=False)
            assert J.nnz == pattern.sum()
        # each of the 3 x 2 x 2 entries of a @ b reads a row of a and a column of b
        assert sg.sparsity((a @ b).reshape(-1), x).nnz == 3 * 2 * 2 * (2 + 2)


@pytest.mark.parametrize("build", [
    lambda x: sg.outer(x[:3], x[3:]),
    lambda x: sg.kron(x[:4].reshape(2, 2), x[4:8].reshape(2, 2)),
    lambda x: sg.cross(x[:3], x[3:6]),
    lambda x: sg.inner(x[:4].reshape(2, 2), x[4:8].reshape(2, 2)),
    lambda x: sg.einsum("ii->i", x[:9].reshape(3, 3)),
    lambda x: sg.einsum("i,->i", x[:4], x[4]),
], ids=["outer", "kron", "cross", "numpy inner", "diagonal", "scalar operand"])
def test_the_contractions_built_on_einsum_are_exact(build):
    rng = np.random.default_rng(2)
    with sg.use_graph():
        x = sg.var("x", shape=(9,))
        y = build(x).reshape(-1)
        pattern = check_pattern(y, x, rng)
        assert not pattern.all()


# -- scatters: the gradients of indexing -----------------------------------------------------------


def test_the_hessian_of_a_function_of_gathered_entries_is_as_sparse_as_it_is():
    # the gradient scatters back through the gather: before its rule, every Hessian of a
    # function of x[indices] was dense (6 colours here, n in general)
    rng = np.random.default_rng(3)
    first, second = np.arange(7), np.arange(1, 8)
    with sg.use_graph():
        x = sg.var("x", shape=(8,))
        f = sg.sum((x[first] * x[second]) ** 2) + sg.sum(sg.cos(sg.take(x, [0, 5, 5])))
        g = sg.grad(f, x)
        pattern = check_pattern(g, x, rng)
        expected = np.eye(8, dtype=bool) | np.eye(8, k=1, dtype=bool) | np.eye(8, k=-1, dtype=bool)
        np.testing.assert_array_equal(pattern, expected)
        dense, H, fn = hessians(f, x, rng.normal(size=8), direct=False)
        assert fn.colors == (3,)
        np.testing.assert_array_equal(H.toarray() != 0, expected)


@pytest.mark.parametrize("build", [
    lambda x: sg.take(x, np.array([3, 0, 3, 1])) ** 3,
    lambda x: sg.sin(x.reshape(3, 4)[np.array([2, 0]), 1:3]),
    lambda x: sg.take_along_axis(x.reshape(3, 4), np.array([[1, 1], [0, 3], [2, 2]]), axis=1) ** 3,
    lambda x: sg.exp(x.reshape(3, 4)[:, np.array([[0, 2], [2, 3]])]),
], ids=["repeated", "rows and a slice", "along an axis", "a 2-D index"])
def test_scatters_are_exact(build):
    rng = np.random.default_rng(4)
    with sg.use_graph():
        x = sg.var("x", shape=(12,))
        g = sg.grad(sg.sum(build(x) * rng.uniform(1.0, 2.0, size=build(x).shape)), x)
        assert any(d["op"] == "scatter_add" for d in x.graph._node.values())
        check_pattern(g, x, rng)
        hessians(sg.sum(build(x) * rng.uniform(1.0, 2.0, size=build(x).shape)), x,
                 rng.normal(size=12), direct=False)


def test_a_scatter_at_an_unknown_index_is_dense():
    rng = np.random.default_rng(5)
    with sg.use_graph():
        x = sg.var("x", shape=(4,))
        order = sg.argsort(x)
        y = apply("scatter_add", x ** 2, x, order, index=(("array", 0),))
        pattern = check_pattern(y, x, rng, exact=False)
        assert pattern.all()


def test_put_add_adds_each_value_at_its_position():
    rng = np.random.default_rng(6)
    with sg.use_graph():
        x = sg.var("x", shape=(8,))
        y = apply("put_add", x[:4] ** 2, sg.sin(x[4:7]), const(np.array([3, 0, 3]), x.graph,
                                                              dtype="int64"))
        pattern = check_pattern(y, x, rng)
        np.testing.assert_array_equal(pattern.astype(int), [[1, 0, 0, 0, 0, 1, 0, 0],
                                                            [0, 1, 0, 0, 0, 0, 0, 0],
                                                            [0, 0, 1, 0, 0, 0, 0, 0],
                                                            [0, 0, 0, 1, 1, 0, 1, 0]])


# -- convolutions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("x_shape, w_shape, stride, dilation, groups", [
    ((2, 2, 5), (3, 2, 2), 1, 1, 1),
    ((1, 4, 7), (4, 2, 3), 2, 1, 2),
    ((2, 1, 5, 6), (2, 1, 2, 3), (1, 2), (2, 1), 1),
    ((3, 4, 4, 4), (2, 2, 2, 2), 1, 1, 2),
], ids=["1-D", "strided, 2 groups", "2-D strided and dilated", "2-D, 2 groups"])
@pytest.mark.parametrize("constant_filters", [False, True], ids=["filters", "constant filters"])
def test_convolutions_and_their_adjoints_are_exact(x_shape, w_shape, stride, dilation, groups,
                                                   constant_filters):
    # conv's Jacobian, and the Hessian of a function of it, whose gradient holds conv_transpose
    # and conv_weight: each against the dense Jacobian's nonzeros
    rng = np.random.default_rng(8)
    with sg.use_graph():
        inputs, weights = int(np.prod(x_shape)), int(np.prod(w_shape))
        x = sg.var("x", shape=(inputs + weights,))
        w = (rng.normal(size=w_shape) * (rng.uniform(size=w_shape) < 0.5) if constant_filters
             else x[inputs:].reshape(w_shape))
        y = sg.conv(x[:inputs].reshape(x_shape), w, stride=stride, dilation=dilation,
                    groups=groups)
        check_pattern(y.reshape(-1), x, rng)
        g = sg.grad(sg.sum(sg.sin(y)), x)
        assert {"conv_transpose", "conv_weight"} <= {d["op"] for d in x.graph._node.values()}
        check_pattern(g, x, rng)


def test_numpy_convolve_with_a_constant_kernel_is_banded():
    rng = np.random.default_rng(9)
    with sg.use_graph():
        x = sg.var("x", shape=(12,))
        for mode in ("full", "same", "valid"):
            y = sg.convolve(x, np.array([1.0, -2.0, 1.0]), mode=mode)
            pattern = check_pattern(y, x, rng)
            assert pattern.sum(axis=1).max() == 3
            hessians(sg.sum(sg.exp(y)), x, rng.normal(size=12), direct=False)


@pytest.mark.parametrize("pool", [sg.avg_pool, sg.max_pool], ids=["average", "max"])
def test_pooling_and_its_gradient_stay_in_their_windows(pool):
    # windows moves entries, unwindows (its adjoint, in the gradient) adds them back
    rng = np.random.default_rng(10)
    with sg.use_graph():
        x = sg.var("x", shape=(2 * 6 * 6,))
        y = pool(x.reshape(2, 1, 6, 6), 2).reshape(-1)
        windows = (np.arange(72).reshape(2, 6, 6) // 2 % 3 + 3 * (np.arange(6)[:, None] // 2)
                   + 9 * np.arange(2)[:, None, None]).ravel()
        expected = np.arange(18)[:, None] == windows[None, :]
        np.testing.assert_array_equal(sg.sparsity(y, x).toarray(), expected)
        g = sg.grad(sg.sum(sg.sin(y) * np.arange(1.0, 19.0)), x)
        assert "unwindows" in {d["op"] for d in x.graph._node.values()}
        pattern = check_pattern(g, x, rng, exact=pool is sg.avg_pool)
        np.testing.assert_array_equal(pattern, expected.T @ expected)


# -- sort ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1])
def test_a_sort_depends_on_its_lane(axis):
    # which entry lands where depends on the values: every entry of a lane, never the others
    rng = np.random.default_rng(7)
    with sg.use_graph():
        x = sg.var("x", shape=(12,))
        y = sg.sort(x.reshape(3, 4), axis=axis).reshape(-1)
        lanes = np.arange(12).reshape(3, 4) % 4 if axis == 0 else np.arange(12).reshape(3, 4) // 4
        expected = lanes.ravel()[:, None] == lanes.ravel()[None, :]
        pattern = sg.sparsity(y, x).toarray()
        np.testing.assert_array_equal(pattern, expected)
        seen = seen_nonzeros(y, x, [rng.permutation(12).astype(float) for _ in range(40)])
        np.testing.assert_array_equal(seen, expected)


# -- colourings ------------------------------------------------------------------------------------


def proper(adjacency, colors):
    entries = adjacency.tocoo()
    off = entries.row != entries.col
    return not np.any(colors[entries.row[off]] == colors[entries.col[off]])


def test_the_90000_column_stencil_takes_its_optimum_of_5_colours():
    # DSATUR on a heap cost 3 s at these 1.07 million conflicts and was not tried: 7 colours
    pattern = five_point(300).tocsr()
    conflicts = (pattern.T @ pattern).astype(bool)
    colors = _fewest_colors(conflicts, np.diff(pattern.indptr).max())
    assert colors.max() + 1 == 5
    assert proper(conflicts, colors)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(st.integers(2, 40), st.integers(1, 40), st.floats(0.05, 0.6), st.integers(0, 2**32 - 1))
def test_dsatur_colours_properly_and_bipartite_graphs_with_two(left, right, density, seed):
    rng = np.random.default_rng(seed)
    n = left + right
    general = scipy.sparse.random_array((n, n), density=density, rng=rng).astype(bool)
    general = (general + general.T).tocsr()
    general.setdiag(False)
    general.eliminate_zeros()
    colors = _saturation_coloring(general)
    assert proper(general, colors)
    assert colors.max(initial=-1) + 1 <= np.diff(general.indptr).max(initial=0) + 1
    # Brélaz: DSATUR is exact on bipartite graphs
    block = scipy.sparse.random_array((left, right), density=density, rng=rng).astype(bool)
    bipartite = scipy.sparse.block_array([[None, block], [block.T, None]]).tocsr()
    colors = _saturation_coloring(bipartite)
    assert proper(bipartite, colors)
    assert colors.max() + 1 == (2 if block.nnz else 1)



def test_a_weighted_logsumexp_depends_on_its_group_and_the_weights_over_it():
    rng = np.random.default_rng(13)
    with sg.use_graph():
        x = sg.var("x", shape=(12 + 4,))
        values, weights = x[:12].reshape(3, 4), sg.exp(x[12:])
        for axis, expected_row_nonzeros in ((1, 4 + 4), (0, 3 + 1)):
            y = sg.logsumexp(values, axis=axis, b=weights)
            assert y.op == "weighted_logsumexp"
            pattern = check_pattern(y, x, rng)
            assert pattern.sum(axis=1).max() == expected_row_nonzeros

# -- stacks of matrices ------------------------------------------------------------------------------


@pytest.mark.parametrize("build, size", [
    (lambda x: sg.inv(x.reshape(3, 2, 2) + 3.0 * np.eye(2)), 12),
    (lambda x: sg.det(x.reshape(3, 2, 2) + 3.0 * np.eye(2)), 12),
    (lambda x: sg.slogdet(x.reshape(3, 2, 2) + 3.0 * np.eye(2))[1], 12),
    (lambda x: sg.solve(x[:8].reshape(2, 2, 2) + 3.0 * np.eye(2),
                               x[8:].reshape(2, 2, 2)), 16),
    (lambda x: sg.solve(x[:4].reshape(2, 2) + 3.0 * np.eye(2),
                               x[4:].reshape(3, 2, 1)), 10),
    (lambda x: sg.eigvalsh(x.reshape(3, 2, 2) + x.reshape(3, 2, 2).swapaxes(-1, -2)), 12),
    (lambda x: sg.expm(0.3 * x.reshape(3, 2, 2)), 12),
], ids=["inv", "det", "slogdet", "solve", "solve, b stacked", "eigvalsh", "expm"])
def test_a_function_of_each_matrix_of_a_stack_is_block_diagonal(build, size):
    # a finite-element energy sums one term per element matrix (a log det of its deformation
    # gradient): its Hessian is block diagonal, not dense
    rng = np.random.default_rng(11)
    with sg.use_graph():
        x = sg.var("x", shape=(size,))
        y = build(x).reshape(-1)
        check_pattern(y, x, rng)
        assert not sg.sparsity(y, x).toarray().all()


def test_the_hessian_of_a_sum_of_log_determinants_is_block_diagonal():
    rng = np.random.default_rng(12)
    with sg.use_graph():
        x = sg.var("x", shape=(5 * 4,))
        f = sg.sum(sg.slogdet(x.reshape(5, 2, 2) + 3.0 * np.eye(2))[1])
        expected = np.kron(np.eye(5), np.ones((4, 4))).astype(bool)
        np.testing.assert_array_equal(sg.sparsity(sg.grad(f, x), x).toarray(), expected)
        dense, H, fn = hessians(f, x, 0.3 * rng.normal(size=20), direct=False)
        assert fn.colors[0] == 4


# -- showing ---------------------------------------------------------------------------------------


def test_a_table_with_values_shows_a_sparse_result_by_its_shape_and_nonzeros():
    with sg.use_graph():
        x = sg.var("x", shape=(6,))
        J = sg.jacobian(x[1:] * x[:-1], x, sparse=True)
        shown = sg.show_graph(J, [x], at={"x": np.arange(1.0, 7.0)})
        assert "csr 5 x 6, 10 nonzeros" in shown
