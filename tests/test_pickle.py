"""Pickling (issue 20, item 1): expressions and graphs pickle as copies that can be differentiated
and compiled; compiled functions of every backend pickle, and run in the workers of
multiprocessing and concurrent.futures under spawn and fork, fork after a parallel Numba loop
included. The pools run in a fresh interpreter: a test process whose Numba already started GNU
OpenMP's threads (another test's parallel loop) could not fork safely, whatever symgrad does."""

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
import symgrad.scipy.linalg
from symgrad.api import BACKENDS

ROOT = Path(__file__).resolve().parent.parent


def test_an_expression_pickles_with_a_copy_of_its_graph_that_can_be_differentiated():
    with sg.use_graph():
        x, W = sg.var("x", shape=(3,)), sg.var("W", shape=(2, 3))
        loss = sg.sum(sg.tanh(W @ x) ** 2) + sg.const(np.arange(3.0)) @ x
        copy = pickle.loads(pickle.dumps(loss))
    assert copy.graph is not loss.graph and copy.node == loss.node
    assert copy.graph.number_of_nodes() == loss.graph.number_of_nodes()
    assert sorted(copy.variables) == ["W", "x"]
    gradients = sg.grad(copy, [copy.variables["W"], copy.variables["x"]])
    assert all(g.graph is copy.graph for g in gradients)
    assert loss.graph.number_of_nodes() < copy.graph.number_of_nodes()  # the original unchanged
    original = sg.compile([loss, *sg.grad(loss, [W, x])])
    rebuilt = sg.compile([copy, *gradients])
    rng = np.random.default_rng(0)
    args = rng.normal(size=(2, 3)), rng.normal(size=3)
    for got, want in zip(rebuilt(*args), original(*args)):
        np.testing.assert_array_equal(got, want)


def test_a_graph_pickles_with_a_lock_of_its_own_and_keeps_its_variables_and_hash_consing():
    graph = sg.Graph()
    x = sg.var("x", shape=(2,), graph=graph)
    y = sg.exp(x) * 2.0
    copy_of_graph, copy_of_y = pickle.loads(pickle.dumps((graph, y)))
    assert copy_of_y.graph is copy_of_graph
    assert copy_of_graph.lock is not graph.lock
    with copy_of_graph.lock:                    # a working lock, and re-entrant like the original
        with copy_of_graph.lock:
            pass
    # the same variable by name, and the same node for the same expression
    x_again = sg.var("x", shape=(2,), graph=copy_of_graph)
    assert (sg.exp(x_again) * 2.0).node == copy_of_y.node
    with pytest.raises(sg.ShapeError):
        sg.var("x", shape=(3,), graph=copy_of_graph)


def test_a_graph_pickled_inside_an_atomic_block_comes_back_outside_any():
    graph = sg.Graph()
    x = sg.var("x", graph=graph)
    with graph.atomic():
        y = sg.sin(x)
        copy = pickle.loads(pickle.dumps(y))
    assert copy.graph._atomic_depth == 0 and copy.graph._undo == []
    assert float(sg.compile(sg.grad(copy, copy.variables["x"]))(0.5)) == pytest.approx(np.cos(0.5))


CASES = {
    # an all-scalar graph (the Python-float fast path), arrays with a named dimension, SciPy
    "scalar": lambda: ((lambda x, y: [x * sg.sin(y), *sg.grad(x * sg.sin(y), [x, y])]),
                       {"x": (), "y": ()}, (1.5, 0.25)),
    "arrays": lambda: ((lambda X, w: sg.grad(sg.sum(sg.log1p(sg.exp(X @ w))), w)),
                       {"X": ("n", 3), "w": (3,)},
                       (np.linspace(-1, 1, 12).reshape(4, 3), np.array([0.5, -1.0, 2.0]))),
    "scipy": lambda: ((lambda v: [sg.sum(sg.erf(v) * v), sg.grad(sg.sum(sg.erf(v) * v), v)]),
                      {"v": (3,)}, (np.array([0.1, -0.4, 2.0]),)),
    # libraries bound in the namespace: scipy.linalg, and NumPy's stride_tricks (a module)
    "triangular": lambda: ((lambda L, b: sg.grad(sg.sum(sg.scipy.linalg.solve_triangular(
        L, b, lower=True) ** 2), [L, b])), {"L": (3, 3), "b": (3,)},
        (np.tril(np.ones((3, 3))) + 2 * np.eye(3), np.array([1.0, -2.0, 0.5]))),
    "conv": lambda: ((lambda x, w: sg.grad(sg.sum(sg.conv(x, w) ** 2), w)),
                     {"x": (1, 1, 5, 5), "w": (2, 1, 3, 3)},
                     (np.arange(25.0).reshape(1, 1, 5, 5) / 25, np.ones((2, 1, 3, 3)))),
}


def _compiled(case, backend):
    build, shapes, args = CASES[case]()
    with sg.use_graph():
        variables = [sg.var(name, shape=shape) for name, shape in shapes.items()]
        return sg.compile(build(*variables), inputs=variables, backend=backend, name="step"), args


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_compiled_function_pickles_and_computes_the_same(case, backend):
    if backend == "array_api" and case in ("scipy", "triangular", "conv"):
        pytest.skip("the array API backend refuses SciPy's functions and strided windows "
                    "(tested in test_array_api)")
    fn, args = _compiled(case, backend)
    copy = pickle.loads(pickle.dumps(fn))
    assert copy is not fn and copy.__name__ == "step"
    for attribute in ("source", "input_names", "rewrites", "scalar_source", "entry_source",
                      "kernel_source"):
        assert getattr(copy, attribute) == getattr(fn, attribute)
    assert isinstance(copy, sg.CompiledFunction)
    want, got = fn(*args), copy(*args)
    for g, w in zip(got if isinstance(got, tuple) else [got], want if isinstance(want, tuple)
                    else [want]):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    # the copy checks its arguments as the original does, naming the one at fault
    with pytest.raises(sg.SymgradError, match="unexpected argument 'nope'"):
        copy(*args, nope=1.0)


def test_a_function_name_of_symgrad_or_python_is_refused():
    x = sg.var("x")
    for name in ("_sg_parts", "__reduce__"):
        with pytest.raises(sg.SymgradError, match="not starting with _sg_ or __"):
            sg.compile(x * x, name=name)


POOL_SCRIPT = """
import concurrent.futures, multiprocessing, sys
import numpy as np
import symgrad as sg

def build(backend):
    X, w = sg.var("X", shape=("n", 4)), sg.var("w", shape=(4,))
    loss = sg.sum(sg.tanh(X @ w) * sg.sin(X @ w))
    return sg.compile([loss, sg.grad(loss, w)], inputs=[X, w], backend=backend)

if __name__ == "__main__":
    method, backend, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fn = build(backend)
    rng = np.random.default_rng(1)
    tasks = [(rng.normal(size=(rows, 4)), rng.normal(size=4)) for _ in range(4)]
    want = [fn(*task) for task in tasks]        # runs here first: a parallel loop when rows is big
    context = multiprocessing.get_context(method)
    with context.Pool(2) as pool:
        by_pool = pool.starmap(fn, tasks)
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as executor:
        by_executor = list(executor.map(fn, *zip(*tasks)))
    for results in (by_pool, by_executor):
        for (value, gradient), (value0, gradient0) in zip(results, want):
            # a parallel loop sums in another order than a serial one (a forked worker's)
            assert np.allclose(value, value0, rtol=1e-12, atol=0)
            assert np.allclose(gradient, gradient0, rtol=1e-12, atol=1e-300)
    if backend == "numba" and rows >= 1 << 16:
        import numba
        print("threading layer", numba.threading_layer())
    print("ok", method, backend, len(by_pool) + len(by_executor))
"""


def _run_pools(tmp_path, method, backend, rows):
    script = tmp_path / "pools.py"
    script.write_text(textwrap.dedent(POOL_SCRIPT))
    environment = dict(os.environ, PYTHONPATH=str(ROOT), SYMGRAD_CACHE_DIR=str(tmp_path / "cache"))
    environment.pop("NUMBA_THREADING_LAYER", None)
    done = subprocess.run([sys.executable, str(script), method, backend, str(rows)],
                          capture_output=True, text=True, timeout=600, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"ok {method} {backend} 8" in done.stdout
    return done.stdout


@pytest.mark.parametrize("method", ["spawn", "fork"])
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "array_api"])
def test_compiled_functions_run_in_process_pools(tmp_path, method, backend):
    _run_pools(tmp_path, method, backend, rows=50)


@pytest.mark.skipif("numba" not in BACKENDS, reason="Numba is not installed")
def test_fork_after_a_parallel_numba_loop_does_not_hang(tmp_path):
    # 2**17 rows: the fused loops run in parallel in the parent before it forks. Under GNU
    # OpenMP (Numba's layer without TBB) a forked worker dies at its first parallel loop and
    # the pool waits forever (the subprocess's timeout fails the test): the workers run the
    # serial loops instead
    out = _run_pools(tmp_path, "fork", "numba", rows=1 << 17)
    assert "threading layer" in out
