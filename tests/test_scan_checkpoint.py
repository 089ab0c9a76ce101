"""sg.scan(..., checkpoint=k) (symgrad/ops/loops.py, symgrad/codegen/loops.py): the derivative of
a loop keeping every k-th carry and recomputing each segment of k steps is the derivative that
stores every step's residuals, bit for bit, for less memory."""

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from test_loops import central, char_rnn, rnn_data

sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
from scan_checkpoint import peak_bytes  # noqa: E402  (tracemalloc's peak of a call, warmed up)


def checkpointed_rnn(steps, checkpoint, reverse=False):
    """The char-RNN of tests/test_loops.py, its loss and gradient in the weights and the initial
    state, its loop checkpointed every ``checkpoint`` steps."""
    loss, grads, inputs = char_rnn(steps, True, checkpoint, reverse)
    return [loss, *grads], inputs


def compiled(build, *args, backend="numpy"):
    with sg.use_graph():
        outputs, inputs = build(*args)
        return sg.compile(outputs, inputs=inputs, backend=backend)


def assert_identical(got, expected):
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b, strict=True)


@pytest.mark.parametrize("steps, checkpoints", [(10, [1, 3, 10, 25]), (50, [7, 10, 49, 50]),
                                                (200, [14, 20, 45])])
def test_char_rnn_gradient_is_identical_to_the_stored_one(steps, checkpoints):
    data = rnn_data(steps)
    stored = compiled(checkpointed_rnn, steps, None)
    expected = stored(*data)
    assert "checkpoints" not in stored.source
    for k in checkpoints:
        fn = compiled(checkpointed_rnn, steps, k)
        assert_identical(fn(*data), expected)
        assert "recomputed" in fn.source and f"% {k} == 0" in fn.source


def test_reverse_loops_are_identical_too():
    data = rnn_data(23, seed=1)
    expected = compiled(checkpointed_rnn, 23, None, True)(*data)
    for k in (1, 4, 5, 23, 40):
        assert_identical(compiled(checkpointed_rnn, 23, k, True)(*data), expected)


def test_the_numpy_source_is_nested_loops_over_segments():
    fn = compiled(checkpointed_rnn, 20, 6)
    source = fn.source
    # the forward loop keeps 4 carries; the reverse loop runs 4 segments, the last one (2 steps)
    # first, each recomputed into buffers of 6 steps (made once) and run last to first
    assert "checkpoints = np.empty((4, 8, 32), np.float64)" in source
    assert "if step % 6 == 0:" in source and "checkpoints[step // 6] = carry" in source
    assert "for start in range(18, -1, -6):" in source
    assert source.count("= np.empty((6, 8, 32), np.float64)") == 3
    assert "for step_3 in range(start, stop):" in source
    assert "in range(stop - 1, start - 1, -1):  # one step of the loop, last to first" in source
    assert source.count("for ") == 4
    # the residuals are not stacked over the 20 steps any more: only the losses are
    assert source.count("np.empty((20") == 1


def test_a_checkpointed_gradient_takes_a_fraction_of_the_memory():
    data = rnn_data(2000)
    stored = peak_bytes(compiled(checkpointed_rnn, 2000, None), data)
    kept = peak_bytes(compiled(checkpointed_rnn, 2000, 45), data)
    # 2,000 steps of three (8, 32) residuals (12 MB) against 45 carries and 45 steps of them
    assert kept < stored / 4, (kept, stored)


def loop_with_everything(scan, checkpoint, reverse):
    """Tuples of carries (one an integer counter), several xs, ys, closed-over weights; values,
    gradients in every input and a Hessian-vector product."""
    a = sg.var("a", shape=(9, 3))
    b = sg.var("b", shape=(9,))
    w = sg.var("w", shape=(3, 3))
    v = sg.var("v", shape=(3,))

    def step(carry, x):
        (u, s), count = carry
        x1, x2 = x
        u = sg.tanh(w @ u * x2 + x1 * s)
        s = s * 0.9 + sg.sum(sg.sin(u)) * x2
        return ((u, s), count + 1), (u * s, sg.exp(-s))
    (final, count), ys = scan(step, ((v, sg.sum(v)), sg.const(np.int64(0))), (a, b),
                              reverse=reverse, checkpoint=checkpoint)
    loss = sg.sum(final[0] ** 2) + final[1] + sg.sum(ys[0] * ys[0]) + sg.sum(ys[1])
    inputs = [a, b, w, v]
    directions = [sg.var(f"d{k}", shape=x.shape) for k, x in enumerate(inputs)]
    return [loss, count, *sg.grad(loss, inputs), *sg.hvp(loss, inputs, directions)], \
        inputs + directions


@pytest.mark.parametrize("reverse", [False, True])
def test_tuples_integers_weights_and_second_derivatives(reverse):
    rng = np.random.default_rng(7)
    shapes = [(9, 3), (9,), (3, 3), (3,)] * 2
    data = [rng.uniform(-1, 1, s) for s in shapes]
    expected = compiled(lambda k: loop_with_everything(sg.scan, k, reverse), None)(*data)
    for k in (1, 2, 4, 9, 12):
        assert_identical(compiled(lambda k: loop_with_everything(sg.scan, k, reverse), k)(*data),
                         expected)
    # and against central differences: the gradient, and the hvp as the gradient's
    fn = compiled(lambda k: loop_with_everything(sg.scan, k, reverse), 4)
    got = fn(*data)
    for position in range(4):
        def loss_at(x):
            args = list(data)
            args[position] = x.reshape(shapes[position])
            return fn(*args)[0]
        np.testing.assert_allclose(got[2 + position].ravel(),
                                   central(loss_at, data[position].ravel()), rtol=1e-6,
                                   atol=1e-8)
    eps = 1e-5
    plus = fn(*[x + eps * d for x, d in zip(data[:4], data[4:])], *data[4:])
    minus = fn(*[x - eps * d for x, d in zip(data[:4], data[4:])], *data[4:])
    for position in range(4):
        np.testing.assert_allclose(got[6 + position], (plus[2 + position] - minus[2 + position])
                                   / (2 * eps), rtol=1e-5, atol=1e-7)


def test_grad_of_grad_of_a_scalar_loop():
    def build(k):
        x = sg.var("x")
        final, _ = sg.scan(lambda c, _: (sg.sin(c) * x + 0.5, None), x, length=13,
                           checkpoint=k)
        first = sg.grad(final, x)
        second = sg.grad(first, x)
        return [final, first, second, sg.grad(second, x)], [x]
    expected = compiled(build, None)(0.7)
    for k in (1, 3, 5, 13, 20):
        assert_identical(compiled(build, k)(0.7), expected)
    fn = compiled(build, 5)
    for order in range(3):
        derivative = (fn(0.7 + 1e-6)[order] - fn(0.7 - 1e-6)[order]) / 2e-6
        assert fn(0.7)[order + 1] == pytest.approx(derivative, rel=1e-6)


def test_a_named_number_of_steps():
    def build(k):
        xs = sg.var("xs", shape=("T", 3))
        w = sg.var("w", shape=(3,))
        final, ys = sg.scan(lambda c, x: (sg.tanh(c * w + x), sg.sum(c * x)), w, xs,
                            checkpoint=k)
        loss = sg.sum(ys) + sg.sum(final)
        return [loss, *sg.grad(loss, [xs, w])], [xs, w]
    fns = {k: compiled(build, k) for k in (None, 1, 4, 7)}
    assert "(dim_T + 3) // 4" in fns[4].source
    assert "(4 if dim_T > 4 else dim_T, 3)" in fns[4].source
    rng = np.random.default_rng(8)
    for steps in (0, 1, 3, 4, 5, 8, 13):
        data = [rng.uniform(-1, 1, (steps, 3)), rng.uniform(-1, 1, 3)]
        expected = fns[None](*data)
        for k in (1, 4, 7):
            assert_identical(fns[k](*data), expected)


def test_fori_loop_passes_it_on():
    def build(k):
        x = sg.var("x", shape=(2,))
        value = sg.fori_loop(0, 30, lambda i, v: sg.cos(v) * x + sg.sin(v[::-1]), x,
                             checkpoint=k)
        return [value, sg.jacobian(value, x)], [x]
    expected = compiled(build, None)(np.array([0.3, -0.8]))
    got = compiled(build, 7)
    assert "checkpoints" in got.source
    assert_identical(got(np.array([0.3, -0.8])), expected)


def test_ys_the_function_returns_are_stored_and_the_rest_recomputed():
    def build(k):
        xs = sg.var("xs", shape=(11, 2))
        final, (hs, zs) = sg.scan(lambda h, x: (sg.tanh(h + x), (h, sg.sin(h) * x)),
                                  xs[0], xs, checkpoint=k)
        return [hs, sg.grad(sg.sum(zs ** 2) + sg.sum(final), xs)], [xs]
    data = np.random.default_rng(9).uniform(-1, 1, (11, 2))
    fn = compiled(build, 3)
    assert_identical(fn(data), compiled(build, None)(data))
    # hs is returned and zs squared, so both are stored; the reverse loops read hs from there
    # and recompute the rest (sin(h), the new carries)
    source = fn.source
    assert "stacked = np.empty((11, 2)" in source and "stacked_2 = np.empty((11, 2)" in source
    assert "= stacked[step" in source and "recomputed" in source
    assert "np.sin(carry_" in source.split("recomputed", 1)[1]


def test_loops_in_loops_jacobians_and_hessians():
    def nested(inner_k, outer_k):
        x, w = sg.var("x"), sg.var("w", shape=(5,))

        def outer(c, _):
            inner, ys = sg.scan(lambda d, v: (sg.sin(d * v) + c, d), c, w, checkpoint=inner_k)
            return sg.sin(inner) + sg.sum(ys), None
        final, _ = sg.scan(outer, x, length=7, checkpoint=outer_k)
        first = sg.grad(final, [x, w])
        return [final, *first, *sg.grad(first[0], [x, w])], [x, w]

    def batched(k):
        xs, w = sg.var("xs", shape=(6, 3)), sg.var("w", shape=(3,))
        final, ys = sg.scan(lambda h, x: (sg.tanh(h * w + x), sg.sin(h) * x), w * 0.5, xs,
                            checkpoint=k)
        loss = sg.sum(ys ** 2) + sg.sum(final)
        return [sg.jacobian(ys, w), sg.jacobian(final, xs), sg.hessian(loss, w),
                sg.hessian(loss, xs), sg.jvp(ys, w, np.array([0.2, -0.3, 0.5]))], [xs, w]
    rng = np.random.default_rng(10)
    data = [0.4, rng.uniform(-1, 1, 5)]
    expected = compiled(nested, None, None)(*data)
    for ks in [(2, None), (None, 3), (2, 3), (1, 1), (5, 7)]:
        assert_identical(compiled(nested, *ks)(*data), expected)
    data = [rng.uniform(-1, 1, (6, 3)), rng.uniform(-1, 1, 3)]
    expected = compiled(batched, None)(*data)
    for k in (1, 2, 4, 6):
        assert_identical(compiled(batched, k)(*data), expected)
    with sg.use_graph():
        outputs, inputs = batched(4)
        assert_identical(sg.compile(outputs, inputs=inputs, optimize=False)(*data), expected)


@pytest.mark.parametrize("backend", ["numba", "array_api"])
def test_the_other_backends(backend):
    data = rnn_data(17)
    expected = compiled(checkpointed_rnn, 17, None, backend=backend)(*data)
    for k in (4, 17):
        got = compiled(checkpointed_rnn, 17, k, backend=backend)(*data)
        if backend == "array_api":
            # the same statements recomputed as first computed
            assert_identical(got, expected)
        else:
            # Numba runs a stored loop as one kernel (codegen.numba_loop, within 1e-12 of NumPy)
            # and a checkpointed one as a Python loop of NumPy statements and small kernels
            for a, b in zip(got, expected):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_array_api_on_immutable_arrays():
    xp = pytest.importorskip("array_api_strict")

    def build(k):
        xs, w = sg.var("xs", shape=(7, 3)), sg.var("w", shape=(3,))
        final, ys = sg.scan(lambda c, x: (sg.tanh(c * w + x), c * x), w, xs, reverse=True,
                            checkpoint=k)
        return [final, *sg.grad(sg.sum(ys) + sg.sum(final), [xs, w])], [xs, w]
    rng = np.random.default_rng(5)
    data = [rng.standard_normal((7, 3)), rng.standard_normal(3)]
    expected = compiled(build, None)(*data)
    got = compiled(build, 3, backend="array_api")(*[xp.asarray(d) for d in data])
    assert len(got) == 3
    for a, b in zip(got, expected):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-13)


# -- the node ------------------------------------------------------------------------------------


def test_equal_loops_with_other_checkpoints_are_other_nodes_and_pickle():
    x = sg.var("x", shape=(3,))
    nodes = {k: sg.scan(lambda c, _: (sg.sin(c), None), x, length=8, checkpoint=k)[0]
             for k in (None, 2, 3)}
    assert len({e.node for e in nodes.values()}) == 3
    assert nodes[2].node == sg.scan(lambda c, _: (sg.sin(c), None), x, length=8,
                                    checkpoint=2)[0].node
    copy = pickle.loads(pickle.dumps(nodes[3]))
    assert copy.graph.nodes[copy.node]["attrs"]["checkpoint"] == 3
    fn = sg.compile(sg.grad(sg.sum(copy), copy.variables["x"]))
    assert "checkpoints[step // 3]" in fn.source
    assert_identical(fn(np.array([0.1, 0.2, 0.3])),
                     sg.compile(sg.grad(sg.sum(nodes[None]), x), inputs=[x])(
                         np.array([0.1, 0.2, 0.3])))


@pytest.mark.parametrize("checkpoint", [0, -2, 2.0, "4", True, np.float64(3.0)])
def test_a_checkpoint_not_a_positive_int_is_refused_naming_it(checkpoint):
    with sg.use_graph() as graph:
        x = sg.var("x", shape=(3,))
        before = (sorted(graph.nodes), dict(graph.variables))
        with pytest.raises(sg.SymgradError, match=r"checkpoint must be None or a positive int"):
            sg.scan(lambda c, _: (c * 2.0, None), x, length=4, checkpoint=checkpoint)
        with pytest.raises(sg.SymgradError, match=r"checkpoint"):
            sg.fori_loop(0, 4, lambda i, v: v * 2.0, x, checkpoint=checkpoint)
        assert (sorted(graph.nodes), dict(graph.variables)) == before


def test_the_table_and_the_picture_say_so():
    with sg.use_graph():
        outputs, inputs = checkpointed_rnn(5, 2)
        table = sg.show_graph(outputs, inputs)
        dot = sg.to_dot(outputs, inputs)
    assert table.count("# not stored: recomputed from a carry kept every 2 steps, by the loop "
                       "reading it") == 3       # the three residuals of a step
    assert "scan over 5 steps, a carry kept every 2 steps" in dot
    assert "scan over 5 steps, last to first, segments of 2 steps recomputed" in dot


# -- random loops (Hypothesis) -----------------------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from test_loops import RandomLoop  # noqa: E402


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_random_loops_are_identical_with_a_random_checkpoint(data):
    """A body drawn by the property tests' generator from the carry, the slice and weights; 1 to
    12 steps in either direction, a checkpoint every 1 to 13 steps; values, gradients and a
    Hessian-vector product against the loop that stores its residuals."""
    loop = RandomLoop(data, 12)
    checkpoint = data.draw(st.integers(1, 13), label="checkpoint")
    reverse = data.draw(st.booleans(), label="reverse")
    values = [*loop.values, loop.rng.uniform(-1.0, 1.0, loop.shape(loop.names[0]))]

    def build(k):
        f, outputs, inputs = loop.build(sg.scan, reverse=reverse, checkpoint=k)
        direction = sg.var("direction", shape=inputs[0].shape)
        products = sg.hvp(f, inputs[:1], [direction], disconnected="zero")
        return [*outputs, *products], [*inputs, direction]
    with np.errstate(all="ignore"):
        assert_identical(compiled(build, checkpoint)(*values), compiled(build, None)(*values))
