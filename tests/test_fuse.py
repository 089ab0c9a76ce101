"""The fusing backend (symgrad.fuse, ``backend="numba"``): its loops against independent references
(SciPy's Rosenbrock derivatives, closed forms, np.tanh) and against the NumPy backend on random
graphs; how it groups; its disk cache; and what it leaves to NumPy."""

import importlib.metadata
import pathlib
import py_compile
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import rosen_der, rosen_hess_prod

import symgrad as sg
from symgrad import api, fuse
from symgrad.codegen import numba as numba_renderer
from symgrad.codegen.numpy import planned
from symgrad.errors import SymgradError
from symgrad.ops.elementwise import heaviside
from test_properties import drawn_gradients_against_numpy
from test_reliability import run_together

pytestmark = pytest.mark.skipif("numba" not in api.BACKENDS, reason="Numba is not installed")

LONG = numba_renderer.PARALLEL_MIN + 17       # loops this long run in parallel (prange)


@pytest.fixture(autouse=True, scope="module")
def fuse_small_arrays():
    """The tests' small arrays fuse too (by default, static shapes under FUSE_MIN entries, and
    groups too small to pay by the cost model, stay NumPy: see
    test_small_static_arrays_stay_numpy and test_groups_too_small_to_pay_stay_numpy)."""
    saved = numba_renderer.FUSE_MIN, numba_renderer.COST_MODEL
    numba_renderer.FUSE_MIN, numba_renderer.COST_MODEL = 1, False
    yield
    numba_renderer.FUSE_MIN, numba_renderer.COST_MODEL = saved


def kernel_count(fn):
    """The loops the function runs (a loop met twice is one kernel called twice)."""
    return fn.source.count("# fused:")


def ulps(got, want):
    """Distance in units of the last place of ``want``; equal infinities and nans are 0."""
    got, want = np.asarray(got), np.asarray(want)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    distance = np.abs(got - want) / np.spacing(np.abs(want))
    return np.where(same, 0.0, distance)


def rosenbrock(x):
    d = x[1:] - x[:-1] ** 2
    return sg.sum(100.0 * d ** 2 + (1.0 - x[:-1]) ** 2)


# -- against independent references ----------------------------------------------------------------


@pytest.mark.parametrize("n", [1000, LONG])
def test_rosenbrock_gradient_and_hvp_match_scipy(n):
    with sg.use_graph():
        x, v = sg.var("x", shape=(n,)), sg.var("v", shape=(n,))
        f = rosenbrock(x)
        fn = sg.compile([f, sg.grad(f, x), sg.hvp(f, x, v)], inputs=[x, v], backend="numba")
    rng = np.random.default_rng(n)
    at, direction = rng.uniform(-2, 2, n), rng.standard_normal(n)
    value, gradient, product = fn(at, direction)
    want_value = np.sum(100.0 * (at[1:] - at[:-1] ** 2) ** 2 + (1.0 - at[:-1]) ** 2)
    assert value == pytest.approx(want_value, rel=1e-12)
    np.testing.assert_allclose(gradient, rosen_der(at), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(product, rosen_hess_prod(at, direction), rtol=1e-12, atol=1e-9)
    # the element-wise work of all three is loops; only slicing and scattering stay NumPy
    assert kernel_count(fn) >= 1 and "np.multiply" not in fn.source


@pytest.mark.parametrize("n", [1000, LONG])
def test_tanh_in_loops_is_within_a_few_ulps_of_numpy(n):
    with sg.use_graph():
        x = sg.var("x", shape=(n,))
        t = sg.tanh(x)
        both = sg.compile([t, t > 2.0], inputs=[x], backend="numba")     # two ops: one loop
    assert "_sg_tanh(" in both.kernel_source

    def fn(at):
        return both(at)[0]

    rng = np.random.default_rng(1)
    for scale in (1e-12, 1e-3, 0.3466, 1.0, 5.0, 25.0):
        at = rng.uniform(-scale, scale, n)
        assert ulps(fn(at), np.tanh(at)).max() <= 3.2, scale
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300, -5e-324, 0.34657359027997264,
                        -0.34657359027997264, 19.06, 20.0, -40.0, 1e308, -1e308])
    at = np.resize(special, n)
    got = fn(at)
    assert ulps(got, np.tanh(at)).max() <= 3.2
    assert np.array_equal(np.signbit(got), np.signbit(np.tanh(at)))      # -0.0 stays -0.0


@pytest.mark.parametrize("order", range(1, 7))
def test_tanh_derivatives_match_the_closed_form(order):
    # d^n tanh = P_n(t), t = tanh x, with P_0 = t and P_{n+1} = (1 - t^2) P_n'
    polynomial = np.polynomial.Polynomial([0.0, 1.0])
    for _ in range(order):
        polynomial = np.polynomial.Polynomial([1.0, 0.0, -1.0]) * polynomial.deriv()
    with sg.use_graph():
        x = sg.var("x", shape=(LONG,))
        d = sg.tanh(x)
        for _ in range(order):
            d = sg.grad(sg.sum(d), x)
        fn = sg.compile(d, inputs=[x], backend="numba")
    at = np.random.default_rng(order).uniform(-3, 3, LONG)
    want = polynomial(np.tanh(at))
    np.testing.assert_allclose(fn(at), want, rtol=1e-11, atol=1e-11 * np.abs(want).max())
    assert kernel_count(fn) == 1 and "np." not in fn.source.split("_sg_kernel_0(")[1]


def test_sigmoid_derivative_and_a_softmax_jacobian_match_closed_forms():
    with sg.use_graph():
        x = sg.var("x", shape=(50,))
        s = sg.sigmoid(x)
        p = sg.softmax(x)
        fn = sg.compile([sg.grad(sg.sum(s), x), sg.jacobian(p, x)], inputs=[x], backend="numba")
    at = np.random.default_rng(2).standard_normal(50)
    sigma = 1.0 / (1.0 + np.exp(-at))
    probabilities = np.exp(at - at.max()) / np.exp(at - at.max()).sum()
    derivative, jacobian = fn(at)
    np.testing.assert_allclose(derivative, sigma * (1.0 - sigma), rtol=1e-12)
    np.testing.assert_allclose(jacobian, np.diag(probabilities)
                               - np.outer(probabilities, probabilities), atol=1e-15)


# -- the same answers as the NumPy backend ---------------------------------------------------------


def both_backends(outputs, inputs):
    return [sg.compile(outputs, inputs=inputs, backend=b) for b in ("numpy", "numba")]


def assert_same(got, want):
    for g, w in zip(got, want):
        assert np.shape(g) == np.shape(w) and np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-13, equal_nan=True)


def test_edges_give_numpys_answers():
    """Division by zero, nan, ties of maximum and where, comparisons (boolean results), sqrt of
    a negative: the loops answer what NumPy answers, without raising."""
    with sg.use_graph():
        x, y = sg.var("x", shape=(8,)), sg.var("y", shape=(8,))
        outputs = [x / y + sg.sqrt(x) * 2.0, sg.maximum(x, y) * 3.0 - x,
                   sg.grad(sg.sum(sg.maximum(x, y) * sg.relu(x)), x),
                   sg.where(x > y, x * y, x - y) * 2.0, (x * 2.0) > y,
                   heaviside(x * y, 0.25) + sg.sign(x) * 1.0 + sg.abs(y) * 1.0]
        numpy_fn, numba_fn = both_backends(outputs, [x, y])
    at_x = np.array([1.0, -1.0, 0.0, 2.0, np.nan, np.inf, -0.0, 3.0])
    at_y = np.array([0.0, 0.0, 0.0, 2.0, 1.0, 1.0, 0.0, -np.inf])
    with np.errstate(all="ignore"):
        want = numpy_fn(at_x, at_y)
    assert_same(numba_fn(at_x, at_y), want)
    assert kernel_count(numba_fn) >= 1


def test_named_dimensions_matrices_scalars_and_broadcast_constants():
    with sg.use_graph():
        X = sg.var("X", shape=("b", 3))
        w = sg.var("w", shape=(3,))
        c = sg.var("c")
        scale = sg.sum(X * X)                      # a sum the later loop reads: two loops
        y = sg.tanh(X @ w) * c + sg.sin(X[:, 0] * 2.0) - scale * 1e-3
        f = sg.sum(y * y) + sg.sum((X - c) ** 3.0 * 0.5)
        outputs = [f, *sg.grad(f, [X, w, c]), X - sg.mean(X, axis=0) * c]
        numpy_fn, numba_fn = both_backends(outputs, [X, w, c])
    rng = np.random.default_rng(3)
    for batch in (1, 4, 200):
        args = rng.standard_normal((batch, 3)), rng.standard_normal(3), 0.7
        assert_same(numba_fn(*args), numpy_fn(*args))
    # a non-contiguous matrix is read through a copy, not as if it were contiguous
    wide = rng.standard_normal((3, 5)).T[:, :3]
    assert_same(numba_fn(np.asfortranarray(wide[:4]), args[1], 0.3),
                numpy_fn(np.asfortranarray(wide[:4]), args[1], 0.3))


def test_a_sum_is_complete_before_anything_reads_it():
    """x - sum(x*x) must not fold the subtraction into the loop that is still summing."""
    with sg.use_graph():
        x = sg.var("x", shape=(LONG,))
        total = sg.sum(x * x * 0.5)
        out = (x - total) * 2.0
        numpy_fn, numba_fn = both_backends([out, total], [x])
    at = np.random.default_rng(4).standard_normal(LONG)
    assert_same(numba_fn(at), numpy_fn(at))
    assert kernel_count(numba_fn) == 2


@pytest.mark.parametrize("threads", [1, 2])
def test_a_parallel_loop_runs_the_serial_loop_once_a_chunk(threads, monkeypatch, tmp_path):
    """A long loop runs its serial loop's one compiled body on each thread's chunk of the
    entries (it was a prange over its own copy of the body, compiled anew); a sum adds the
    chunks' sums in order, which is the serial loop's result split at the chunks. (An empty
    cache: a parallel loop loaded from disk holds its serial loop's machine code.)"""
    import numba
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fuse, "_modules", {})
    with sg.use_graph():
        x = sg.var("x", shape=("n",))
        product = sg.sin(x) * x
        fn = sg.compile([product * 3.0, sg.sum(product)], inputs=[x], backend="numba")
    at = np.random.default_rng(6).uniform(-2.0, 2.0, LONG)
    saved = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        values, total = fn(at)
        chunks = numba.get_num_threads()
    finally:
        numba.set_num_threads(saved)
    (module,) = (m for m in fuse._modules.values()
                 if m._sg_kernel is fn._function.__globals__["_sg_kernel_0"])
    short = at[:64]
    np.testing.assert_allclose(fn(short)[0], np.sin(short) * short * 3.0, rtol=1e-15)
    assert len(module._sg_kernel_serial.overloads) == 1     # chunks and short calls alike
    bounds = [LONG * c // chunks for c in range(chunks + 1)]
    parts = [module._sg_kernel_serial(at[lo:hi], np.empty(hi - lo))[0]
             for lo, hi in zip(bounds, bounds[1:])]
    assert total == sum(parts)
    np.testing.assert_allclose(values, np.sin(at) * at * 3.0, rtol=1e-15)
    assert total == pytest.approx(np.sum(np.sin(at) * at), rel=1e-12)


def test_float32_and_scalar_graphs_stay_with_numpy():
    with sg.use_graph():
        x = sg.var("x", shape=(10,), dtype="float32")
        fn = sg.compile(sg.grad(sg.sum(sg.sin(x) * x), x), inputs=[x], backend="numba")
        assert fn.kernel_source == "" and fn(np.ones(10, np.float32)).dtype == np.float32
    with sg.use_graph():
        x, y = sg.var("x"), sg.var("y")
        fn = sg.compile(sg.grad((x + y) * sg.maximum(x, y), [x, y]), inputs=[x, y],
                        backend="numba")
        assert fn.kernel_source == "" and fn.scalar_source is not None
        assert fn(2.0, 3.0) == (3.0, 8.0)


def test_threads_share_compiled_loops():
    with sg.use_graph():
        x = sg.var("x", shape=(LONG,))
        fn = sg.compile(sg.grad(rosenbrock(x), x), inputs=[x], backend="numba")
    points = [np.random.default_rng(k).uniform(-2, 2, LONG) for k in range(4)]

    def work(k):
        for _ in range(3):
            result = fn(points[k])
        return result

    for point, result in zip(points, run_together(work, len(points))):
        np.testing.assert_allclose(result, rosen_der(point), rtol=1e-12, atol=1e-9)


def test_two_loops_never_wait_on_each_other():
    """(a * 0.5).T * b joins the loop of b * b, so that loop waits for a * 0.5's; (b * b).T * 0.5
    then waits for it and may not join a * 0.5's loop (Graph contains a cycle). In the second
    graph b * b's loop is read, by (b * b).T, before it takes (a * 0.5).T * b and comes to wait
    for a * 0.5's loop too."""
    a, b = sg.var("a", shape=(80, 2)), sg.var("b", shape=(2, 80))
    half, square = a * 0.5, b * b
    cases = [[half.T * b, square.T * 0.5],
             [half * 1.0, square.T, half.T * b * 2.0, square.T * 0.5]]
    rng = np.random.default_rng(5)
    at_a, at_b = rng.standard_normal((80, 2)), rng.standard_normal((2, 80))
    want = [[(at_a * 0.5).T * at_b, (at_b * at_b).T * 0.5],
            [at_a * 0.5, (at_b * at_b).T, (at_a * 0.5).T * at_b * 2.0, (at_b * at_b).T * 0.5]]
    for outputs, closed_form in zip(cases, want):
        for optimize in (False, True):
            numba_fn = sg.compile(outputs, inputs=[a, b], backend="numba", optimize=optimize)
            assert kernel_count(numba_fn) >= 1
            for got, w in zip(numba_fn(at_a, at_b), closed_form, strict=True):
                np.testing.assert_allclose(got, w, rtol=1e-15)


def random_transposing_program(rng, a, b):
    """A few element-wise ops on a (3, 2) and b (2, 3), mixed through transposes, broadcast rows
    and columns and sums; returns some of the values made."""
    values = [a, b]
    for _ in range(rng.integers(6, 30)):
        x, y = (values[i] for i in rng.integers(len(values), size=2))
        y = y if y.shape == x.shape else y.T
        form = rng.integers(7)
        values.append([x.T, x * 0.5, sg.sin(x), x * y, x + y,
                       x - sg.mean(y, axis=0, keepdims=True) * sg.sum(y, axis=1, keepdims=True),
                       x * sg.sum(x * y)][form])
    return [values[i] for i in rng.integers(2, len(values), size=rng.integers(1, 4))]


def test_random_programs_with_transposes_group_into_loops_that_can_run_in_order():
    """Each loop runs after every step it reads and before every step reading it (no two loops
    wait on each other), and the loops compute the NumPy backend's values and gradients."""
    rng = np.random.default_rng(16)
    at_a, at_b = rng.standard_normal((3, 2)), rng.standard_normal((2, 3))
    compared = 0
    for trial in range(300):
        with sg.use_graph():
            a, b = sg.var("a", shape=(3, 2)), sg.var("b", shape=(2, 3))
            outputs = random_transposing_program(rng, a, b)
            f = sum(sg.sum(sg.sin(y)) for y in outputs)
            outputs += sg.grad(f, [a, b], disconnected="zero")
            plan = planned(a.graph, [y.node for y in outputs], [a.node, b.node],
                           passes=[numba_renderer.fuse_loops])
            made = {a.node, b.node}
            for step in plan.steps:
                nodes = step.group.members if step.kind == "group" else [step.node]
                assert all(operand in made or a.graph.nodes[operand]["op"] == "const"
                           for node in nodes for operand in a.graph.nodes[node]["inputs"]
                           if operand not in nodes)
                made.update(nodes)
            shapes = {step.group.shape for step in plan.steps
                      if step.kind == "group" and len(step.group.members) > 1}
            if len(shapes) < 2 or compared == 12:
                continue        # compiling Numba's loops is slow: only where loops interleave
            compared += 1
            numba_fn = sg.compile(outputs, inputs=[a, b], backend="numba")
            numpy_fn = sg.compile(outputs, inputs=[a, b], optimize=False)
        assert_same(numba_fn(at_a, at_b), numpy_fn(at_a, at_b))
    assert compared == 12


settings.register_profile("fuse", max_examples=15, deadline=None, derandomize=True)


@settings(settings.get_profile("fuse"))
@given(st.data())
def test_random_graphs_give_the_numpy_backends_values_and_gradients(data):
    case = drawn_gradients_against_numpy(data, "numba")
    if case is None:
        return          # compared where the values are ordinary numbers
    numba_fn, args, want = case
    got = numba_fn(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9 * (1.0 + np.abs(w).max()))


# -- the disk cache --------------------------------------------------------------------------------


def test_kernels_are_cached_on_disk_and_a_changed_file_is_rewritten(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fuse, "_modules", {})
    with sg.use_graph():
        x = sg.var("x", shape=(100,))
        fn = sg.compile(sg.grad(sg.sum(sg.cos(x) * x * x), x), inputs=[x], backend="numba")
    (module,) = (tmp_path / "kernels").glob("sg_*.py")
    assert module.read_text() == fn.kernel_source
    at = np.linspace(-1, 1, 100)
    np.testing.assert_allclose(fn(at), -np.sin(at) * at ** 2 + 2 * at * np.cos(at), rtol=1e-12)
    assert list((tmp_path / "kernels" / "__pycache__").glob("*.nbi"))    # Numba's index

    module.write_text("raise SystemExit('not ours')\n")
    monkeypatch.setattr(fuse, "_modules", {})
    with sg.use_graph():
        x = sg.var("x", shape=(100,))
        again = sg.compile(sg.grad(sg.sum(sg.cos(x) * x * x), x), inputs=[x], backend="numba")
    assert module.read_text() == again.kernel_source
    np.testing.assert_allclose(again(at), fn(at))


def test_a_second_process_loads_the_compiled_loops(tmp_path):
    """The second process finds Numba's machine code on disk: it compiles nothing."""
    script = textwrap.dedent("""
        import numpy as np, symgrad as sg
        from numba.core.dispatcher import Dispatcher
        with sg.use_graph():
            x = sg.var("x", shape=(64,))
            fn = sg.compile(sg.grad(sg.sum(sg.sin(x) * x * 3.0), x), inputs=[x], backend="numba")
        fn(np.ones(64))
        from symgrad import fuse
        (module,) = fuse._modules.values()
        loop = module._sg_kernel_serial
        print(sum(loop.stats.cache_hits.values()), sum(loop.stats.cache_misses.values()))
    """)
    env = {"SYMGRAD_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def run():
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, check=True)
        return tuple(int(n) for n in done.stdout.split())

    assert run() == (0, 1)
    assert run() == (1, 0)


def test_an_unusable_cache_directory_falls_back_to_one_temporary_directory_removed_at_exit(
        tmp_path):
    """SYMGRAD_CACHE_DIR names a file: the kernels of every function go to one temporary
    directory of the process, which is gone when it exits."""
    script = textwrap.dedent("""
        import os, numpy as np, symgrad as sg
        with sg.use_graph():
            x = sg.var("x", shape=(64,))
            for k in range(3):
                fn = sg.compile(sg.sin(x) * x + float(k), inputs=[x], backend="numba")
                assert np.allclose(fn(np.ones(64)), np.sin(1.0) + k)
        print(len(os.listdir(os.environ["TMPDIR"])))
    """)
    (tmp_path / "a file").write_text("not a directory")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {"SYMGRAD_CACHE_DIR": str(tmp_path / "a file"), "TMPDIR": str(temporary),
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["1"]
    assert list(temporary.iterdir()) == []


# f' of f = 3 sum(sin(x) x): one kernel, run serial (64 entries) and parallel (LONG); prints
# how many times each of its two loops was compiled rather than loaded from the disk cache
CACHED_FUNCTION = textwrap.dedent(f"""
    import numpy as np, symgrad as sg
    from symgrad import fuse
    with sg.use_graph():
        x = sg.var("x", shape=("n",))
        fn = sg.compile(sg.grad(sg.sum(sg.sin(x) * x * 3.0), x), inputs=[x], backend="numba")
    for n in (64, {LONG}):
        at = np.linspace(-1.0, 1.0, n)
        np.testing.assert_allclose(fn(at), 3.0 * (np.cos(at) * at + np.sin(at)), rtol=1e-12)
    (module,) = fuse._modules.values()
    loops = module._sg_kernel_serial, module._sg_kernel_parallel
    print(*(sum(loop.stats.cache_misses.values()) for loop in loops))
""")


def compiles_of_the_cached_function(cache):
    """The loops compiled by a new process calling CACHED_FUNCTION with this cache directory."""
    env = {"SYMGRAD_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", CACHED_FUNCTION], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return tuple(int(n) for n in done.stdout.split())


@pytest.fixture(scope="module")
def filled_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    assert compiles_of_the_cached_function(cache) == (1, 1)
    return cache


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_cache_file_is_compiled_again_and_replaced(filled_cache, tmp_path, damage):
    """Each kind of file under the cache directory damaged in turn: the kernel module; a .pyc of
    it (the import system wrote one beside it before); Numba's index and data files, the
    serial loop's index with the parallel loop's data (each loop reads only its own files). A
    new process gives the right values, and the one after it loads everything from disk."""
    garbage = np.random.default_rng(3).bytes
    for case in ("module", "pyc", "numba"):
        cache = tmp_path / case
        shutil.copytree(filled_cache, cache)
        (module,) = (cache / "kernels").glob("sg_*.py")
        compiled = cache / "kernels" / "__pycache__"
        kept = module.read_bytes()
        if case == "module":
            damaged = [module]
        elif case == "pyc":
            damaged = [pathlib.Path(py_compile.compile(str(module), doraise=True))]
        else:
            damaged = [*compiled.glob("*_serial-*.nbi"), *compiled.glob("*_parallel-*.nbc")]
            assert len(damaged) == 2
        for path in damaged:
            text = path.read_bytes()
            path.write_bytes({"truncated": text[:len(text) // 2], "garbage": garbage(len(text)),
                              "empty": b""}[damage])
        compiles_of_the_cached_function(cache)      # which checks its values
        assert module.read_bytes() == kept, case
        if case == "numba":
            assert compiles_of_the_cached_function(cache) == (0, 0)


def test_without_numba_the_backend_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(api, "BACKENDS", ("numpy",))
    with sg.use_graph():
        x = sg.var("x", shape=(3,))
        with pytest.raises(SymgradError, match=r"pip install -e '\.\[numba\]' in a clone"):
            sg.compile(x * 2.0, inputs=[x], backend="numba")


def test_small_static_arrays_stay_numpy(monkeypatch):
    monkeypatch.setattr(numba_renderer, "FUSE_MIN", 64)
    with sg.use_graph():
        small, named = sg.var("small", shape=(63,)), sg.var("named", shape=("n",))
        fn = sg.compile([sg.sin(small) * small + 1.0, sg.sin(named) * named + 1.0],
                        inputs=[small, named], backend="numba")
    assert kernel_count(fn) == 1        # the named length may be long: it fuses
    at = np.linspace(-1, 1, 63)
    for got in fn(at, at):
        np.testing.assert_allclose(got, np.sin(at) * at + 1.0, rtol=1e-15)


def test_long_chains_become_several_loops(monkeypatch):
    monkeypatch.setattr(numba_renderer, "GROUP_LIMIT", 10)
    with sg.use_graph():
        x = y = sg.var("x", shape=(100,))
        for _ in range(12):
            y = sg.sin(y) * 0.5 + y
        numpy_fn, numba_fn = both_backends([y, sg.grad(sg.sum(y), x)], [x])
    assert kernel_count(numba_fn) >= 4
    at = np.linspace(-2, 2, 100)
    assert_same(numba_fn(at), numpy_fn(at))


def test_a_boolean_scalar_read_by_a_loop():
    """Found by the random graphs: a comparison of two reductions (a 0-d boolean) read inside a
    loop is passed as np.bool_ (the generated function has no builtins)."""
    with sg.use_graph():
        x = sg.var("x", shape=(2, 3))
        top = sg.max(x, keepdims=True)
        flag = top < sg.sum(top, axis=(-2,), keepdims=True) * 0.5
        y = sg.where(sg.reshape(flag, ()), x * 2.0, x - 1.0) + sg.sin(x)
        numpy_fn, numba_fn = both_backends([y, sg.grad(sg.sum(y), x)], [x])
    for at in (np.linspace(-1, 1, 6).reshape(2, 3), -np.linspace(-1, 1, 6).reshape(2, 3) - 3.0):
        assert_same(numba_fn(at), numpy_fn(at))


def test_groups_too_small_to_pay_stay_numpy(monkeypatch):
    """The cost model: a group's loop replaces one NumPy call per op, costs FUSE_ARGUMENT calls
    per array passed and saves one per FUSE_ENTRIES entries times ops. A tanh layer's backward
    product on 8 x 32 entries (4 ops, 4 arrays) stays NumPy; on 2048 x 32 entries, or at a named
    length, it is a loop, and so is a chain of 8 ops reading one small matrix. Values as
    NumPy's."""
    monkeypatch.setattr(numba_renderer, "COST_MODEL", True)
    rng = np.random.default_rng(7)
    for rows, loops in ((8, 1), (2048, 2)):
        with sg.use_graph():
            x, y, z = (sg.var(name, shape=(rows, 32)) for name in "xyz")
            w = chain = sg.var("w", shape=(8, 16))
            for _ in range(4):
                chain = sg.maximum(chain * 0.5, -1.0)
            numpy_fn, numba_fn = both_backends([(x + y) * (1.0 - z * z), chain], [x, y, z, w])
        assert kernel_count(numba_fn) == loops, rows
        args = [rng.standard_normal((rows, 32)) for _ in range(3)] + [rng.standard_normal((8, 16))]
        assert_same(numba_fn(*args), numpy_fn(*args))
    with sg.use_graph():
        x, y, z = (sg.var(name, shape=("n", 32)) for name in "xyz")
        numba_fn = sg.compile((x + y) * (1.0 - z * z), inputs=[x, y, z], backend="numba")
    assert kernel_count(numba_fn) == 1


def test_a_loop_met_again_is_one_kernel_compiled_once(tmp_path, monkeypatch):
    """Two groups with the same body at other lengths call one kernel, and another function
    with that body too: one module, one compiled loop (the dispatcher's one signature)."""
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fuse, "_modules", {})

    def body(a):
        return sg.sin(a) * 0.5 + a

    with sg.use_graph():
        x, y = sg.var("x", shape=(100,)), sg.var("y", shape=(300,))
        twice = sg.compile([body(x), body(y)], inputs=[x, y], backend="numba")
    with sg.use_graph():
        z = sg.var("z", shape=(1000,))
        other = sg.compile(body(z), inputs=[z], backend="numba")
    assert kernel_count(twice) == 2 and twice.kernel_source.count("def _sg_kernel_serial") == 1
    assert other.kernel_source == twice.kernel_source
    assert len(list((tmp_path / "kernels").glob("sg_*.py"))) == 1
    kernel = twice._function.__globals__["_sg_kernel_0"]
    assert other._function.__globals__["_sg_kernel_0"] is kernel
    rng = np.random.default_rng(8)
    at_x, at_y, at_z = rng.standard_normal(100), rng.standard_normal(300), rng.standard_normal(1000)
    for got, at in zip([*twice(at_x, at_y), other(at_z)], (at_x, at_y, at_z)):
        np.testing.assert_allclose(got, np.sin(at) * 0.5 + at, rtol=1e-15)
    (module,) = (m for m in fuse._modules.values() if m._sg_kernel is kernel)
    assert len(module._sg_kernel_serial.overloads) == 1


# a parallel loop (LONG entries); prints Numba's threading layer and the OpenMP wait policy
LAYER_SCRIPT = textwrap.dedent(f"""
    import importlib.metadata, os, sys
    if sys.argv[1] == "without-tbb":        # as where pip did not install TBB
        found = importlib.metadata.distribution

        def distribution(name):
            if name == "tbb":
                raise importlib.metadata.PackageNotFoundError(name)
            return found(name)
        importlib.metadata.distribution = distribution
    import numba, numpy as np, symgrad as sg
    x = sg.var("x", shape=("n",))
    fn = sg.compile(sg.sin(x) * x * 3.0, inputs=[x], backend="numba")
    at = np.linspace(-1.0, 1.0, {LONG})
    np.testing.assert_allclose(fn(at), np.sin(at) * at * 3.0, rtol=1e-15)
    print(numba.threading_layer(), os.environ.get("OMP_WAIT_POLICY"))
""")


@pytest.mark.parametrize("case", ["as installed", "without-tbb", "policy set"])
def test_the_threading_layer_lets_idle_workers_sleep(tmp_path, case):
    """TBB where pip installed it (found by its path), else GNU OpenMP with a passive wait
    policy, unless the user chose one: workers spinning after a loop stall the next BLAS call
    (tests/benchmarks/fusing.py threads)."""
    env = {"SYMGRAD_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    if case == "policy set":
        env["OMP_WAIT_POLICY"] = "active"
    elif case == "without-tbb":     # Numba may still find TBB by the interpreter's own paths
        env["NUMBA_THREADING_LAYER"] = "omp"
    done = subprocess.run([sys.executable, "-c", LAYER_SCRIPT, case], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    layer, policy = done.stdout.split()
    try:
        tbb = importlib.metadata.distribution("tbb") is not None
    except importlib.metadata.PackageNotFoundError:
        tbb = False
    if case == "as installed" and tbb:
        assert (layer, policy) == ("tbb", "None")
    elif case == "policy set":
        assert policy == "active"
    else:
        assert (layer, policy) == ("omp", "passive")
