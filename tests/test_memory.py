"""The memory decisions of code generation (symgrad.codegen.memory), each on its own: for every
pass, a program where it decides something; the plan shows the decision with the pass and not
without it, and the function compiled with every pass, with every pass but that one, and with
none computes the same numbers (bit for bit: no pass changes how a value is computed)."""

import math
from functools import partial

import numpy as np
import pytest

import symgrad as sg
from symgrad import codegen
from symgrad.codegen import memory
from symgrad.codegen.numpy import planned
from symgrad.ops import identity


@pytest.fixture(autouse=True)
def own_graph():
    with sg.use_graph():
        yield


def compiled(outputs, inputs, passes):
    graph = outputs[0].graph
    source, namespace = codegen.generate(graph, [y.node for y in outputs],
                                         [x.node for x in inputs], passes=passes)
    return codegen.build_function(source, namespace), source


def plan_of(outputs, inputs, passes=memory.PASSES):
    return planned(outputs[0].graph, [y.node for y in outputs], [x.node for x in inputs], passes)


def without(memory_pass):
    return tuple(p for p in memory.PASSES if p is not memory_pass)


def assert_same_values(outputs, inputs, at, memory_pass):
    """Every pass, every pass but ``memory_pass``, and none: the same values, bit for bit."""
    results = []
    for passes in (memory.PASSES, without(memory_pass), ()):
        function, source = compiled(outputs, inputs, passes)
        results.append((function(*at), source))
    (want, _), *others = results
    for got, source in others:
        for g, w in zip(got, want):
            assert np.array_equal(g, w), source
    return [source for _, source in results]


def relu_program():
    x = sg.var("r", shape=(50,))
    return [sg.grad(sg.sum(sg.relu(x) * x), x)], [x], [np.linspace(-2.0, 2.0, 50)]


def slice_program():
    x = sg.var("x", shape=(40,))
    d = x[1:] - x[:-1] ** 2
    return [sg.grad(sg.sum(100.0 * d ** 2 + (1.0 - x[:-1]) ** 2), x)], [x], \
        [np.linspace(-1.5, 1.5, 40)]


def weight_decay_program():
    # a product plus a term of the inputs alone (a weight decay's c W) past BLOCKED_SUM_MIN
    n = int(np.sqrt(memory.BLOCKED_SUM_MIN)) + 8
    W, X = sg.var("W", shape=(n, n)), sg.var("X", shape=(n, n))
    rng = np.random.default_rng(3)
    return [X @ W + W * 2e-4], [W, X], [rng.standard_normal((n, n)) / n,
                                        rng.standard_normal((n, n))]


def large_program():
    n = memory.WORKSPACE_MIN + 5
    x = sg.var("x", shape=(n,))
    y = sg.sin(x) * x + sg.exp(-x * x) * 2.0
    return [sg.grad(sg.sum(y * y), x)], [x], [np.linspace(-3.0, 3.0, n)]


def test_boolean_masks():
    outputs, inputs, at = relu_program()
    assert any(step.mask for step in plan_of(outputs, inputs).steps)
    assert not any(step.mask for step in plan_of(outputs, inputs, without(memory.boolean_masks)).steps)
    with_masks, without_masks, _ = assert_same_values(outputs, inputs, at, memory.boolean_masks)
    assert "np.count_nonzero" in with_masks and "np.count_nonzero" not in without_masks


def test_writes_into_slices():
    outputs, inputs, at = slice_program()
    assert plan_of(outputs, inputs).into_slice
    assert not plan_of(outputs, inputs, without(memory.writes_into_slices)).into_slice
    assert_same_values(outputs, inputs, at, memory.writes_into_slices)


def test_blocked_sums():
    outputs, inputs, at = weight_decay_program()
    blocked = [s for s in plan_of(outputs, inputs).steps if s.blocked_term is not None]
    assert blocked and blocked[0].block_slot is not None
    assert not any(s.blocked_term is not None
                   for s in plan_of(outputs, inputs, without(memory.blocked_sums)).steps)
    with_blocks, without_blocks, _ = assert_same_values(outputs, inputs, at, memory.blocked_sums)
    assert "in blocks of rows" in with_blocks and "in blocks of rows" not in without_blocks


def diagonal_program():
    """A derivative's sums, of BLOCKED_SUM_MIN entries, with terms that are parts of eye(n) times
    values: an array plus one (the array taken over, or copied where it is the workspace's and
    the sum an output), a difference with a negated one, and a difference of two."""
    n = 20
    u, w = sg.var("u", shape=(n, n)), sg.var("w", shape=(n, n))
    eye = identity((n,), graph=u.graph)
    with u.graph.deriving(1):
        rows, columns = eye[:, None, :, None], eye[None, :, None, :]
        array = sg.sin(u)[:, :, None, None] * sg.cos(w)
        plus = array + rows * sg.exp(u)[None, :, None, :]
        minus = plus - (-columns) * sg.cos(u)[:, None, :, None]
        both = rows * sg.tanh(w)[None, :, None, :] - columns * u[:, None, :, None]
        again = array * 2.0 + rows * w[None, :, None, :]
    rng = np.random.default_rng(5)
    return [minus, both, again], [u, w], [rng.standard_normal((n, n)) for _ in range(2)]


def test_diagonal_sums():
    outputs, inputs, at = diagonal_program()
    assert math.prod(outputs[0].shape) >= memory.BLOCKED_SUM_MIN
    plan = plan_of(outputs, inputs)
    assert len(plan.diagonal_terms) == 5
    assert not plan_of(outputs, inputs, without(memory.diagonal_sums)).diagonal_terms
    on_diagonals, dense, _ = assert_same_values(outputs, inputs, at, memory.diagonal_sums)
    assert on_diagonals.count("np.einsum") == 10 and "np.einsum" not in dense
    # the sums start from zeros, a copy of the array, or the array dying there
    assert "np.zeros((20, 20, 20, 20))" in on_diagonals and ".copy()" in on_diagonals
    assert "-= np.einsum" in on_diagonals and "+= np.einsum" in on_diagonals
    # values of inf or nan: 0 * inf off the diagonal is nan, and the term is added whole
    u, w = at
    u, w = u.copy(), w.copy()
    u[2, 3], w[4, 5] = np.inf, np.nan
    with np.errstate(invalid="ignore", over="ignore"):
        results = [compiled(outputs, inputs, passes)[0](u, w)
                   for passes in (memory.PASSES, without(memory.diagonal_sums))]
    for got, want in zip(*results):
        assert np.isnan(want).any()
        np.testing.assert_array_equal(got, want)
    # the same sums built by the user are not derivatives: the pass leaves them alone
    with sg.use_graph():
        n = 20
        u = sg.var("u", shape=(n, n))
        eye = identity((n,), graph=u.graph)
        forward = sg.sin(u)[:, :, None, None] * u + eye[:, None, :, None] * sg.exp(u)
        assert not plan_of([forward], [u]).diagonal_terms


def test_workspace():
    outputs, inputs, at = large_program()
    plan = plan_of(outputs, inputs)
    assert plan.workspace_eligible and plan.slot_shapes
    # a slot is taken again once the value holding it is released
    assert len(plan.slot_shapes) < len(plan.slots)
    plain = plan_of(outputs, inputs, without(memory.workspace))
    assert not plain.workspace_eligible and not plain.slot_shapes
    kept, _, _ = assert_same_values(outputs, inputs, at, memory.workspace)
    assert "_sg_take()" in kept
    # the threshold is the pass's own parameter: with it at 1, small arrays are kept too
    small = relu_program()
    passes = [partial(memory.workspace, minimum=1) if p is memory.workspace else p
              for p in memory.PASSES]
    assert plan_of(*small[:2], passes).slot_shapes
    assert not plan_of(*small[:2]).slot_shapes


def test_reuse_buffers_and_update_in_place():
    outputs, inputs, at = relu_program()
    plan = plan_of(outputs, inputs)
    assert any(s.reuses is not None or s.updates is not None for s in plan.steps)
    no_reuse = plan_of(outputs, inputs, without(memory.reuse_buffers))
    assert not any(s.reuses is not None or s.updates is not None for s in no_reuse.steps)
    assert_same_values(outputs, inputs, at, memory.reuse_buffers)
    # an update in place is a reuse written as an augmented assignment: without that pass the
    # same reuse is a ufunc's out=
    x = sg.var("z", shape=(30,))
    y = (sg.sin(x) * 2.0 - 1.0) * 3.0
    outputs, inputs, at = [y], [x], [np.linspace(-1.0, 1.0, 30)]
    updated = plan_of(outputs, inputs)
    assert any(s.updates is not None for s in updated.steps)
    reused = plan_of(outputs, inputs, without(memory.update_in_place))
    assert not any(s.updates is not None for s in reused.steps)
    assert any(s.reuses is not None for s in reused.steps)
    augmented, with_out, _ = assert_same_values(outputs, inputs, at, memory.update_in_place)
    assert "*= 2.0" in augmented and "out=" in with_out


def test_release_dead_arrays():
    outputs, inputs, at = large_program()
    assert any(step.released for step in plan_of(outputs, inputs).steps)
    kept = plan_of(outputs, inputs, without(memory.release_dead_arrays))
    assert not any(step.released for step in kept.steps)
    released, unreleased, _ = assert_same_values(outputs, inputs, at, memory.release_dead_arrays)
    assert "del " in released and "del " not in unreleased


@pytest.mark.parametrize("memory_pass", memory.PASSES, ids=lambda p: p.__name__)
def test_every_pass_is_tested_here(memory_pass):
    assert any(memory_pass.__name__ in name for name in globals() if name.startswith("test_"))


def test_a_pass_refuses_to_run_after_one_it_must_precede():
    # reuse_buffers keeps a workspace array from an output only when the workspace pass ran
    # first: run the other way round, the first call's result would be the second's workspace
    from symgrad.errors import InternalError
    x = sg.var("x_ordered", shape=(8,))
    outputs, inputs = [sg.sin(sg.exp(x) * 2.0)], [x]
    with pytest.raises(InternalError, match="workspace runs before reuse_buffers"):
        plan_of(outputs, inputs, (memory.reuse_buffers, partial(memory.workspace, minimum=1)))
    with pytest.raises(InternalError, match="runs before release_dead_arrays"):
        plan_of(outputs, inputs, (memory.release_dead_arrays, memory.release_dead_arrays))
    plan = plan_of(outputs, inputs, (partial(memory.workspace, minimum=1), memory.reuse_buffers))
    assert plan.decided == ["workspace", "reuse_buffers"]


def inlining(maximum):
    """The passes with small values (at most ``maximum`` entries) written into their readers."""
    return tuple(partial(memory.inline_small_values, maximum=maximum)
                 if p is memory.inline_small_values else p for p in memory.PASSES)


def tanh_cell_program(n=8, m=32):
    """An RNN cell's step and its backward step: h = tanh(x @ W + b), the cotangent of its input
    (1 - h * h) * (g @ V.T) summed two ways, on small arrays."""
    x, W = sg.var("x", shape=(n, m)), sg.var("W", shape=(m, m))
    b, g, V = sg.var("b", shape=(m,)), sg.var("g", shape=(n, m)), sg.var("V", shape=(m, m))
    h = sg.tanh(x @ W + b)
    dpre = (1.0 - h * h) * (g @ V.T)
    rng = np.random.default_rng(3)
    at = [rng.standard_normal(shape) for shape in ((n, m), (m, m), (m,), (n, m), (m, m))]
    return [h, sg.sum(dpre, axis=0) + sg.sum(dpre, axis=1).sum()], [x, W, b, g, V], at


def test_inline_small_values():
    outputs, inputs, at = tanh_cell_program()
    assert memory.SMALL_ARRAY_MAX == 0      # off by default: every statement as before
    assert not any(step.inlined for step in plan_of(outputs, inputs).steps)
    plan = plan_of(outputs, inputs, inlining(1024))
    inlined = [step for step in plan.steps if step.inlined]
    assert inlined and all(not step.released and step.reuses is None for step in inlined)
    fused, fused_source = compiled(outputs, inputs, inlining(1024))
    for passes in (memory.PASSES, ()):
        function, source = compiled(outputs, inputs, passes)
        for got, want in zip(fused(*at), function(*at)):
            assert np.array_equal(got, want), source
    # the chains read as one expression each: a call's argument whole, an operator's operands
    # in brackets
    assert "t0 = np.tanh((x @ W) + b)\n" in fused_source
    assert "t1 = (1.0 - (t0 * t0)) * (g @ (V.T))\n" in fused_source
    assert fused_source.count("\n") < source.count("\n")
    # an 8x32 array is too large for a threshold of 255 entries (the pass's own parameter): of
    # the statements reading or making one, none is joined; the sum of the 8-entry sum is
    plan_255 = plan_of(outputs, inputs, inlining(255))
    assert {plan_255.nodes[step.node]["shape"] for step in plan_255.steps if step.inlined} \
        == {()}
    # an output, and a value read twice (h), keep theirs
    assert all(step.node not in plan.output_set for step in inlined)


def test_inlined_values_compute_what_their_statements_computed():
    """Random graphs of the property tests (tests/test_properties.py), and their gradients, with
    every value the pass can write into its reader inlined and without: bit for bit."""
    from hypothesis import event, given, settings, strategies as st
    from test_properties import ALL_KINDS, draw_case

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def check(data):
        with sg.use_graph():
            f, _, inputs, point = draw_case(data, kinds=ALL_KINDS)
            outputs = [f, *sg.grad(f, inputs, disconnected="zero")]
            graph, nodes = f.graph, [y.node for y in outputs]
            variables = [x.node for x in inputs]
            plan = planned(graph, nodes, variables, inlining(1 << 20))
            event(f"inlined: {any(step.inlined for step in plan.steps)}")
            functions = [codegen.build_function(*codegen.generate(graph, nodes, variables,
                                                                  passes=passes))
                         for passes in (inlining(1 << 20), memory.PASSES)]
        args = point.split(point.flat)
        with np.errstate(all="ignore"):
            fused, plain = [function(*args) for function in functions]
        for got, want in zip(fused, plain):
            assert np.array_equal(got, want, equal_nan=True)
    check()
