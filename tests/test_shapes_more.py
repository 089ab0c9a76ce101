"""NumPy's building and reshaping functions (ops/arrays.py) beyond the table of tests/test_ops.py:
a stencil written with roll, split's list of parts, what the emitted code reads like, the
refusals (each leaves the graph as it was) and the formulas that call them."""

import numpy as np
import pytest

import symgrad as sg
from finite_differences import central_gradient


def laplacian(u, roll):
    return (roll(u, 1, axis=0) + roll(u, -1, axis=0) + roll(u, 1, axis=1) + roll(u, -1, axis=1)
            - 4 * u)


@pytest.mark.parametrize("backend", sg.api.BACKENDS)
def test_a_periodic_laplacian_stencil_with_roll_over_a_named_grid(backend):
    u = sg.var("u", shape=("n", "m"))
    energy = sg.sum(laplacian(u, sg.roll) ** 2)
    fn = sg.compile([energy, sg.grad(energy, u)], inputs=[u], backend=backend)
    grid = np.random.default_rng(0).standard_normal((5, 4))
    value, gradient = (np.asarray(r) for r in fn(grid))

    def reference(a):
        return np.sum(laplacian(a, np.roll) ** 2)
    np.testing.assert_allclose(value, reference(grid), rtol=1e-12)
    np.testing.assert_allclose(gradient, central_gradient(reference, grid), rtol=1e-6, atol=1e-6)


def test_rolls_adjoint_is_the_roll_back_and_flips_is_a_slice():
    x = sg.var("x", shape=("n",))
    u = sg.var("u", shape=("n",))
    source = sg.compile([sg.roll(x, 2), sg.vjp(sg.roll(x, 2), x, u)], inputs=[x, u]).source
    assert "np.roll(x, 2, axis=-1)" in source and "np.roll(u, -2, axis=-1)" in source
    assert "x[::-1]" in sg.compile(sg.flip(x), inputs=[x]).source


def test_roll_merges_the_shifts_of_an_axis_and_drops_whole_turns():
    x = sg.var("x", shape=(4, 3))
    assert sg.roll(x, 4, axis=0) is not None and sg.roll(x, 4, axis=0).node == x.node
    rolled = sg.roll(x, (1, 2, 3), axis=(1, 0, 1))
    assert rolled.attrs == {"shift": (2, 1), "axis": (-2, -1)}
    value = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(sg.compile(rolled, inputs=[x])(value),
                                  np.roll(value, (1, 2, 3), axis=(1, 0, 1)))


def test_split_gives_parts_that_join_back_and_share_the_gradient():
    x = sg.var("x", shape=(2, 7))
    parts = sg.array_split(x, 3, axis=1)
    assert [p.shape for p in parts] == [(2, 3), (2, 2), (2, 2)]
    weights = [1.0, -2.0, 3.0]
    f = sg.sum(sg.concatenate([w * p for w, p in zip(weights, parts)], axis=1))
    fn = sg.compile([sg.concatenate(parts, axis=1), sg.grad(f, x)], inputs=[x])
    value = np.random.default_rng(1).standard_normal((2, 7))
    joined, gradient = fn(value)
    np.testing.assert_array_equal(joined, value)
    np.testing.assert_array_equal(gradient, np.repeat([[1.0, -2.0, 3.0]], [3, 2, 2], axis=1)
                                  .repeat(2, axis=0))
    assert [p.shape for p in sg.split(x, [2, 5], axis=-1)] == [(2, 2), (2, 3), (2, 2)]


def test_broadcast_to_a_dimension_another_input_names():
    v = sg.var("v", shape=(3,))
    X = sg.var("X", shape=("n", 3))
    f = sg.sum(sg.broadcast_to(v, ("n", 3)) * X)
    fn = sg.compile([f, sg.grad(f, v)], inputs=[v, X])
    rows = np.random.default_rng(2).standard_normal((4, 3))
    value, gradient = fn(np.ones(3), rows)
    np.testing.assert_allclose(value, rows.sum())
    np.testing.assert_allclose(gradient, rows.sum(axis=0))


def test_stack_of_expressions_and_numbers_and_an_array_of_scalars():
    a, b = sg.var("a"), sg.var("b")
    m = sg.array([[a, 1.0], [b, a * b]])
    fn = sg.compile([m, *sg.grad(sg.sum(m * m), [a, b])], inputs=[a, b])
    value, da, db = fn(2.0, 3.0)
    np.testing.assert_array_equal(value, [[2.0, 1.0], [3.0, 6.0]])
    assert (da, db) == (2 * 2.0 + 2 * 6.0 * 3.0, 2 * 3.0 + 2 * 6.0 * 2.0)
    assert sg.asarray(a) is a or sg.asarray(a).node == a.node


def test_triu_keeps_an_infinity_below_the_diagonal_out():
    x = sg.var("x", shape=(2, 2))
    value = np.array([[1.0, 2.0], [np.inf, 3.0]])
    np.testing.assert_array_equal(sg.compile(sg.triu(x), inputs=[x])(value), np.triu(value))


REFUSALS = [
    ("split into unequal parts", lambda x, M: sg.split(x, 4), sg.ShapeError, "equal sections"),
    ("pad a named axis", lambda x, M: sg.pad(M, 1), sg.ShapeError, "named dimension 'n'"),
    ("pad a bad mode", lambda x, M: sg.pad(x, 1, mode="mean"), sg.SymgradError, "mode"),
    ("pad a negative width", lambda x, M: sg.pad(x, -1), sg.ShapeError, "negative"),
    ("tile a named axis", lambda x, M: sg.tile(M, (2, 1)), sg.ShapeError, "named dimension"),
    ("repeat with a count per entry", lambda x, M: sg.repeat(x, [1, 2, 1, 2, 1, 2]),
     sg.SymgradError, "repeats"),
    ("stack of two shapes", lambda x, M: sg.stack([x, M]), sg.ShapeError, "same shape"),
    ("broadcast_to a smaller shape", lambda x, M: sg.broadcast_to(x, (3,)), sg.ShapeError,
     "cannot broadcast"),
    ("diag of a 3-D array", lambda x, M: sg.diag(M[None]), sg.ShapeError,
     "vector or a matrix"),
    ("diagonal along a named axis", lambda x, M: sg.diagonal(M), sg.ShapeError, "named"),
    ("fliplr of a vector", lambda x, M: sg.fliplr(x), sg.ShapeError, "two dimensions"),
    ("moveaxis of two axes to one place", lambda x, M: sg.moveaxis(M, (0, 1), (0, 0)),
     sg.ShapeError, "repeated"),
]


@pytest.mark.parametrize("build, error, message", [r[1:] for r in REFUSALS],
                         ids=[r[0] for r in REFUSALS])
def test_refusals_name_the_function_and_leave_the_graph_unchanged(build, error, message, request):
    name = request.node.callspec.id.split()[0]
    x = sg.var("x", shape=(6,))
    M = sg.var("M", shape=("n", 3))
    M[None]                         # the operand of the diag refused below
    nodes = x.graph.number_of_nodes()
    with pytest.raises(error, match=message) as refused:
        build(x, M)
    assert str(refused.value).startswith(name + ": ")
    assert x.graph.number_of_nodes() == nodes


def test_formulas_call_them_and_index_split_which_gives_a_list():
    shapes = {"x": (4,), "y": (4,), "M": (3, 3)}
    assert sg.parse("stack([x, y], axis=1)", shapes=shapes).shape == (4, 2)
    assert sg.parse("vstack([x, y])", shapes=shapes).shape == (2, 4)
    assert sg.parse("trace(M) + sum(roll(x, 1) * flip(y))", shapes=shapes).shape == ()
    assert sg.parse("pad(x, (1, 2))", shapes=shapes).shape == (7,)
    x = sg.var("x", shape=(4,))
    nodes = x.graph.number_of_nodes()
    with pytest.raises(sg.ParseError, match=r"split\(\) gives 2 expressions, not one"):
        sg.parse("sum(split(x, 2))", shapes=shapes)
    assert x.graph.number_of_nodes() == nodes
    assert sg.parse("sum(split(x, 2)[1])", shapes=shapes).node == sg.sum(sg.split(x, 2)[1]).node
    with pytest.raises(sg.ParseError, match="stack takes a list"):
        sg.parse("stack(x)", shapes=shapes)
