"""Whole loops as Numba kernels (symgrad/codegen/numba_loop.py): the numba backend's loops against
the NumPy backend's (the char-RNN at 10 to 1,000 steps, RK4 Lotka-Volterra with an HVP, random
bodies), which loops become one kernel and which stay Python loops, and what a kernel reads like.
The kernels add sums in another order and call the C library's exp where NumPy has its own: 1e-12
relative is the tolerance the module's docstring documents."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symgrad as sg
from symgrad import api
from test_loops import THETA, Z0, RandomLoop, char_rnn, rk4_final_loss, rnn_data

pytestmark = pytest.mark.skipif("numba" not in api.BACKENDS, reason="Numba is not installed")

KERNEL_CALL = "# the whole loop: one Numba kernel"


def kernels(fn):
    return fn.source.count(KERNEL_CALL)


def python_loops(fn):
    return fn.source.count("# one step of the loop")


def both(outputs, inputs):
    return (sg.compile(outputs, inputs=inputs),
            sg.compile(outputs, inputs=inputs, backend="numba"))


def assert_agree(got, expected, rtol=1e-12, atol=1e-14):
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


@pytest.mark.parametrize("steps", [10, 50, 200, 1000])
def test_char_rnn_against_the_numpy_backend(steps):
    with sg.use_graph():
        loss, grads, inputs = char_rnn(steps, looped=True)
        numpy_fn, numba_fn = both([loss, *grads], inputs)
    assert (kernels(numba_fn), python_loops(numba_fn)) == (2, 0)
    data = rnn_data(steps)
    assert_agree(numba_fn(*data), numpy_fn(*data))


def test_a_kernel_does_not_depend_on_the_number_of_steps():
    sources = []
    for steps in (10, 200):
        with sg.use_graph():
            loss, grads, inputs = char_rnn(steps, looped=True)
            sources.append(sg.compile([loss, *grads], inputs=inputs, backend="numba")
                           .kernel_source)
    assert sources[0] == sources[1]


def test_rk4_loss_gradient_and_hvp_against_the_numpy_backend():
    with sg.use_graph():
        loss, theta, z0 = rk4_final_loss(1000)
        g_theta, g_z0 = sg.grad(loss, [theta, z0])
        v_theta, v_z0 = sg.var("v_theta", shape=(4,)), sg.var("v_z0", shape=(2,))
        h_theta, h_z0 = sg.hvp(loss, [theta, z0], [v_theta, v_z0])
        numpy_fn, numba_fn = both([loss, g_theta, g_z0, h_theta, h_z0],
                                  [theta, z0, v_theta, v_z0])
    assert kernels(numba_fn) == python_loops(numpy_fn) and python_loops(numba_fn) == 0
    data = [THETA, Z0, np.array([0.3, -0.2, 0.5, 0.1]), np.array([0.7, -0.4])]
    assert_agree(numba_fn(*data), numpy_fn(*data))


def test_the_kernel_reads_like_the_loop():
    with sg.use_graph():
        loss, grads, inputs = char_rnn(5, looped=True)
        fn = sg.compile([loss, *grads], inputs=inputs, backend="numba")
    source = fn.kernel_source
    assert source.count("# the whole loop of a scan") == 2
    assert "for step in range(steps):" in source                  # the forward loop
    assert "for step in range(steps - 1, -1, -1):" in source      # the reverse loop
    assert "np.dot(x0, w0)" in source                             # x @ Wx, its slice and weight
    assert "x0 = x0_scanned[step]" in source


def test_a_body_numba_cannot_run_stays_a_python_loop():
    with sg.use_graph():
        xs = sg.var("xs", shape=(6, 4))
        h0 = sg.var("h0", shape=(4,))

        def step(h, x):
            return sg.tanh(sg.cumsum(h * x)), sg.sum(h)
        final, ys = sg.scan(step, h0, xs)
        loss = sg.sum(final) + sg.sum(ys)
        numpy_fn, numba_fn = both([loss, *sg.grad(loss, [h0, xs])], [xs, h0])
    assert kernels(numba_fn) == 0 and python_loops(numba_fn) == python_loops(numpy_fn) > 0
    rng = np.random.default_rng(2)
    data = [rng.standard_normal((6, 4)), rng.standard_normal(4)]
    assert_agree(numba_fn(*data), numpy_fn(*data))


def test_a_number_a_kernel_returns_is_numpys():
    """A kernel returns a Python float, which raises where NumPy's float gives inf."""
    with sg.use_graph():
        xs = sg.var("xs", shape=(3,))
        c0 = sg.var("c0")
        final, _ = sg.scan(lambda c, x: (c * x, None), c0, xs)
        fn = sg.compile([1.0 / final], inputs=[xs, c0], backend="numba")
    assert kernels(fn) == 1
    with np.errstate(divide="ignore"):
        (value,) = fn(np.zeros(3), 2.0)
    assert value == np.inf


def test_named_lengths_and_no_steps():
    with sg.use_graph():
        xs = sg.var("xs", shape=("T", "b", 3))
        w = sg.var("w", shape=(3, 3))
        h0 = sg.var("h0", shape=("b", 3))

        def step(h, x):
            h = sg.tanh(x @ w + h * sg.mean(h, axis=0, keepdims=True)
                        + sg.sum(h, axis=1, keepdims=True))
            return h, sg.log_softmax(h, axis=-1)[:, 1:]
        final, ys = sg.scan(step, h0, xs)
        loss = sg.sum(final) + sg.sum(ys)
        outputs = [final, ys, loss, *sg.grad(loss, [xs, w, h0])]
        numpy_fn, numba_fn = both(outputs, [xs, w, h0])
    assert kernels(numba_fn) == python_loops(numpy_fn) and python_loops(numba_fn) == 0
    rng = np.random.default_rng(3)
    for steps, batch in ((4, 2), (0, 3)):
        data = [rng.standard_normal((steps, batch, 3)), rng.standard_normal((3, 3)),
                rng.standard_normal((batch, 3))]
        got, expected = numba_fn(*data), numpy_fn(*data)
        assert [np.shape(a) for a in got] == [np.shape(b) for b in expected]
        assert_agree(got, expected)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_random_bodies_against_the_numpy_backend(data):
    """The random loops of tests/test_loops.py (RandomLoop), compiled by both backends:
    kernels where Numba can run the body."""
    loop = RandomLoop(data, 5)
    with sg.use_graph():
        _, outputs, inputs = loop.build(sg.scan)
        numpy_fn, numba_fn = both(outputs, inputs)
    with np.errstate(all="ignore"):
        expected = numpy_fn(*loop.values)
        got = numba_fn(*loop.values)
    assert_agree(got, expected, rtol=1e-12, atol=1e-13)


def test_a_long_chain_is_cut_into_nests_of_at_most_nest_limit_nodes():
    with sg.use_graph():
        xs = sg.var("xs", shape=(3, 4))
        h0 = sg.var("h0", shape=(4,))

        def step(h, x):
            for _ in range(70):         # 210 element-wise ops of one shape
                h = sg.sin(h) * 0.9 + x
            return h, None
        final, _ = sg.scan(step, h0, xs)
        numpy_fn, numba_fn = both([final], [xs, h0])
    assert kernels(numba_fn) == 1
    assert numba_fn.kernel_source.count("for i0 in range(") == 2
    rng = np.random.default_rng(4)
    data = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    assert_agree(numba_fn(*data), numpy_fn(*data))
