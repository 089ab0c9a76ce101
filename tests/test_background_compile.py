"""The Numba backend's whole-loop kernels compiled in the background (fuse.BackgroundCompile): the
first calls run the NumPy backend's program, later ones the kernels; wait_compiled, a failed
compile, pickling and fork. The compile is held back by a gate in front of load_kernels, so that
"before the kernels are ready" does not depend on how fast the machine is."""

import os
import pickle
import threading

import numpy as np
import pytest

import symgrad as sg
from symgrad import SymgradError, api, fuse
from test_loops import char_rnn, rnn_data

pytestmark = pytest.mark.skipif("numba" not in api.BACKENDS, reason="Numba is not installed")

STEPS = 10


@pytest.fixture
def gate(monkeypatch):
    """An event the background compile waits for before it loads the kernels."""
    opened = threading.Event()
    load = fuse.load_kernels

    def gated(kernel_source):
        opened.wait()
        return load(kernel_source)
    monkeypatch.setattr(fuse, "BACKGROUND", True)
    monkeypatch.setattr(fuse, "load_kernels", gated)
    yield opened
    opened.set()        # a thread a failed test left waiting finishes


def rnn_functions():
    loss, grads, inputs = char_rnn(STEPS, looped=True)
    return (sg.compile([loss, *grads], inputs=inputs),
            sg.compile([loss, *grads], inputs=inputs, backend="numba"))


def assert_agree(got, expected, rtol=1e-12, atol=1e-14):
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def test_first_calls_run_numpy_and_later_calls_the_kernels(gate):
    numpy_fn, fn = rnn_functions()
    background = fn._sg_background
    data = rnn_data(STEPS)
    expected = numpy_fn(*data)
    assert fn.wait_compiled(timeout=0) is False          # no call has started the compile
    for calls in (1, 2):
        got = fn(*data)
        for a, b in zip(got, expected, strict=True):     # the NumPy backend's program
            np.testing.assert_array_equal(a, b)
        assert background.plain_calls == calls and not background.ready
        assert fn.wait_compiled(timeout=0) is False
    assert fn._function.__globals__["_sg_kernel_0"] is None   # Numba untouched so far
    gate.set()
    assert fn.wait_compiled() is True
    assert_agree(fn(*data), expected)
    assert background.plain_calls == 2                   # the kernels ran that call
    assert fn._function.__globals__["_sg_kernel_0"] is not None     # bound by the thread


def test_the_kernels_compile_for_the_first_calls_arguments_whatever_they_become(gate):
    numpy_fn, fn = rnn_functions()
    data = rnn_data(STEPS)
    fn(*data)
    for array in data:
        array *= 2.0    # after the first call: the thread runs on copies
    gate.set()
    assert fn.wait_compiled()
    assert_agree(fn(*data), numpy_fn(*data))


def test_a_failed_compile_keeps_numpy_and_is_raised_by_wait(monkeypatch):
    def broken(kernel_source):
        raise RuntimeError("no compiler today")
    monkeypatch.setattr(fuse, "BACKGROUND", True)
    monkeypatch.setattr(fuse, "load_kernels", broken)
    numpy_fn, fn = rnn_functions()
    data = rnn_data(STEPS)
    expected = numpy_fn(*data)
    assert_agree(fn(*data), expected)
    with pytest.raises(SymgradError, match="no compiler today") as raised:
        fn.wait_compiled()
    assert isinstance(raised.value.__cause__, RuntimeError)
    with pytest.warns(RuntimeWarning, match="keeps running NumPy"):
        assert_agree(fn(*data), expected)
    assert fn._sg_background.plain_calls == 2


def test_a_function_without_a_whole_loop_is_ready_at_once(monkeypatch):
    monkeypatch.setattr(fuse, "BACKGROUND", True)
    x = sg.var("x", shape=(100,))
    fn = sg.compile(sg.sum(sg.sin(x) * x), [x], backend="numba")
    assert fn._sg_background is None and fn.wait_compiled(timeout=0) is True


def test_a_long_fused_loop_compiles_in_the_background(gate):
    """The gradient of 40 steps of x <- sin(x) x + x^2: one fused loop of some 360 ops,
    seconds of compiling, which the first calls do not wait for."""
    with sg.use_graph():
        x = value = sg.var("x", shape=("n",))
        for _ in range(40):
            value = sg.sin(value) * value + value ** 2
        outputs = [sg.sum(value), sg.grad(sg.sum(value), x)]
        numpy_fn = sg.compile(outputs, [x])
        fn = sg.compile(outputs, [x], backend="numba")
    assert fn.source.count("# fused:") == 1 and fn._sg_background is not None
    at = np.random.default_rng(2).uniform(-0.5, 0.5, 1000)
    expected = numpy_fn(at)
    for a, b in zip(fn(at), expected, strict=True):      # the NumPy backend's program
        np.testing.assert_array_equal(a, b)
    assert fn._function.__globals__["_sg_kernel_0"] is None
    gate.set()
    assert fn.wait_compiled() is True
    assert_agree(fn(at), expected)
    assert fn._sg_background.plain_calls == 1


def test_pickled_before_and_after_the_kernels_are_ready(gate):
    numpy_fn, fn = rnn_functions()
    data = rnn_data(STEPS)
    expected = numpy_fn(*data)
    before = pickle.loads(pickle.dumps(fn))
    fn(*data)
    gate.set()
    assert fn.wait_compiled()
    after = pickle.loads(pickle.dumps(fn))
    for copy in (before, after):      # each compiles for itself, from the cache
        assert_agree(copy(*data), expected)
        assert copy.wait_compiled() and copy._sg_background.plain_calls == 1
        assert_agree(copy(*data), expected)
        assert copy._sg_background.plain_calls == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
# JAX warns of any fork where another test imported it
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_a_process_forked_while_the_kernels_compile_compiles_them_again(gate):
    numpy_fn, fn = rnn_functions()
    data = rnn_data(STEPS)
    expected = numpy_fn(*data)
    fn(*data)                       # the thread waits at the gate
    pid = os.fork()
    if pid == 0:                    # the child: the thread is gone
        status = 1
        try:
            gate.set()
            fn(*data)               # NumPy's, starting the child's own compile
            if fn.wait_compiled():
                assert_agree(fn(*data), expected)
                status = 0
        finally:
            os._exit(status)
    gate.set()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert fn.wait_compiled()
    assert_agree(fn(*data), expected)
