"""The fusing backend (``backend="numba"``) against the NumPy backend: cold starts, calls, threads.

Run with ``python tests/benchmarks/fusing.py [cold|threads|threshold] [--threads N]`` (see
README.md in this folder):

- ``cold``: per workload, a new process with an empty cache directory builds, differentiates,
  compiles and calls each backend once (the cold first call, seconds), then times calls of both
  in turn (7 rounds of at least 0.1 s each, medians): the warm ratio numba / numpy, and the
  kernels the fusing backend made (call sites, distinct bodies).
- ``threads``: a parallel Numba loop, then a two-thread OpenBLAS product, per Numba threading
  layer (and GNU OpenMP's passive wait policy): the product's time against the same product
  with no parallel loop before it.
- ``threshold``: the cost model's break-even: a chain of ``ops`` element-wise ops on ``entries``
  float64 as the NumPy backend emits it against the same chain as one fused loop, each compiled
  by symgrad, and a sum of ``arrays`` matrices; the ratio fused / numpy over a grid. The cost
  model of symgrad/codegen/numba.py (FUSE_ARGUMENT, FUSE_ENTRIES) is fitted to it.

Every table starts with the BLAS library, its threads and Numba's (threadpoolctl), which must be
what ``--threads`` asked for (1 by default: this is a shared 2-core machine; see peers.py).
Every result is checked against the NumPy backend's (1e-9 relative).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

THREADS = "1"
if __name__ == "__main__" and "--threads" in sys.argv:
    THREADS = sys.argv[sys.argv.index("--threads") + 1]
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(variable, THREADS)

import gc
import statistics
import time
from functools import partial

import numpy as np

import _common  # noqa: F401 (puts the checkout on sys.path)
import peers
from memory import problem as mlp_problem

import symgrad as sg
from symgrad import fuse

RTOL = 1e-9
ROUNDS = 7
MIN_SAMPLE = 0.1


def thread_settings():
    """One line per thread pool of this process (threadpoolctl), and Numba's threads."""
    from threadpoolctl import threadpool_info
    import numba
    lines = [f"{p['internal_api']} {p.get('version')} ({p.get('architecture')}, "
             f"{p['num_threads']} threads, {os.path.basename(p['filepath'])})"
             for p in threadpool_info()]
    lines.append(f"Numba {numba.__version__}: {numba.get_num_threads()} threads, layer "
                 f"{numba.config.THREADING_LAYER} "
                 f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')})")
    return lines


def check_threads(expected):
    """Each BLAS and OpenMP pool, and Numba, runs ``expected`` threads."""
    from threadpoolctl import threadpool_info
    import numba
    wrong = [p["filepath"] for p in threadpool_info() if p["num_threads"] != expected]
    if numba.get_num_threads() != expected:
        wrong.append("numba")
    if wrong:
        raise SystemExit(f"FAILED: not {expected} threads: {', '.join(wrong)}")


# -- workloads: (name, build(ns-function, args, wrt, value), args) -----------------------------

def workloads():
    rng = np.random.default_rng(0)
    one_hot = np.eye(peers.RNN_VOCABULARY)
    shape = (peers.RNN_STEPS, peers.RNN_BATCH)
    rnn_args = (one_hot[rng.integers(0, peers.RNN_VOCABULARY, shape)],
                one_hot[rng.integers(0, peers.RNN_VOCABULARY, shape)],
                rng.normal(0.0, 0.3, (peers.RNN_VOCABULARY, peers.RNN_HIDDEN)),
                rng.normal(0.0, 0.1, (peers.RNN_HIDDEN, peers.RNN_HIDDEN)),
                rng.normal(0.0, 0.1, peers.RNN_HIDDEN),
                rng.normal(0.0, 0.3, (peers.RNN_HIDDEN, peers.RNN_VOCABULARY)),
                rng.normal(0.0, 0.1, (peers.RNN_BATCH, peers.RNN_HIDDEN)))
    mlp = mlp_problem()
    mlp_args = tuple(mlp[n] for n in ("X", "Y", "W1", "b1", "W2", "b2", "W3", "b3"))
    tanh_x = rng.uniform(-2.0, 2.0, peers.TANH_POINTS)
    return {
        "rnn_unrolled T=50": ("grad", (partial(peers.rnn_unrolled, peers.RNN_STEPS), rnn_args,
                                       range(2, 7), True)),
        "MLP": ("grad", (peers.mlp_loss, mlp_args, range(2, 8), True)),
        "iterated map K=10": ("grad", (partial(peers.iterated_map, 10),
                                       (rng.uniform(-0.5, 0.5, peers.MAP_POINTS),), (0,))),
        "iterated map K=80": ("grad", (partial(peers.iterated_map, 80),
                                       (rng.uniform(-0.5, 0.5, peers.MAP_POINTS),), (0,))),
        "Rosenbrock gradient n=1e3": ("grad", (peers.rosenbrock, (rng.uniform(-2, 2, 1000),),
                                               (0,))),
        "Rosenbrock HVP n=1e5": ("hvp", (peers.rosenbrock, rng.uniform(-2, 2, 100_000),
                                         rng.standard_normal(100_000))),
        "tanh order 3, 1e6": ("derivative", (peers.tanh, tanh_x, 3)),
        "rnn_scan T=50": ("grad", (peers.rnn_loss, peers.rnn_problem(rng, 50), range(2, 7), True)),
        "rnn_scan T=200": ("grad", (peers.rnn_loss, peers.rnn_problem(rng, 200), range(2, 7),
                                    True)),
    }


def flat(result):
    return [np.asarray(r) for r in (result if isinstance(result, (tuple, list)) else [result])]


def timed_per_call(runs):
    """Median seconds per call of each run, timed in turn, ROUNDS rounds."""
    numbers = {}
    for label, run in runs.items():
        start = time.perf_counter()
        run()
        numbers[label] = max(1, round(MIN_SAMPLE / max(time.perf_counter() - start, 1e-9)))
    samples = {label: [] for label in runs}
    for r in range(ROUNDS):
        gc.collect()
        labels = list(runs)
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            gc.disable()
            start = time.perf_counter()
            for _ in range(numbers[label]):
                runs[label]()
            samples[label].append((time.perf_counter() - start) / numbers[label])
            gc.enable()
    return {label: statistics.median(s) for label, s in samples.items()}


def cold_child(name):
    method, args = workloads()[name]
    runs, firsts = {}, {}
    for backend in ("numpy", "numba"):
        start = time.perf_counter()
        run = getattr(peers.Symgrad(backend), method)(*args)
        result = run()
        firsts[backend] = time.perf_counter() - start
        runs[backend] = run
        if backend == "numba":
            fn = run.func
            fn.wait_compiled()      # a whole loop's kernels compile in the background
            sites = fn.source.count("# fused:") + fn.source.count("# the whole loop")
            bodies = fn.kernel_source.count(fuse._MODULE_START)
    want = flat(runs["numpy"]())
    for g, w in zip(flat(runs["numba"]()), want, strict=True):
        scale = max(float(np.max(np.abs(w), initial=0.0)), 1e-300)
        if float(np.max(np.abs(g - w), initial=0.0)) / scale > RTOL:
            raise SystemExit(f"FAILED: {name}: numba disagrees with numpy")
    seconds = timed_per_call(runs)
    print(json.dumps({"first": firsts, "seconds": seconds, "sites": sites, "bodies": bodies}))


def cold(names):
    print("\n".join(thread_settings()))
    check_threads(int(THREADS))
    header = ["workload", "numpy first s", "numba first s", "numpy ms", "numba ms",
              "numba / numpy", "kernel calls", "distinct kernels"]
    rows = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix="symgrad-cold-") as cache:
            environment = dict(os.environ, SYMGRAD_CACHE_DIR=cache)
            done = subprocess.run([sys.executable, __file__, "cold-child", name],
                                  capture_output=True, text=True, env=environment)
        if done.returncode != 0:
            raise SystemExit(f"FAILED: {name}: {done.stderr[-2000:]}{done.stdout[-500:]}")
        out = json.loads(done.stdout.strip().splitlines()[-1])
        first, seconds = out["first"], out["seconds"]
        rows.append([name, f"{first['numpy']:.2f}", f"{first['numba']:.2f}",
                     f"{seconds['numpy'] * 1e3:.3g}", f"{seconds['numba'] * 1e3:.3g}",
                     f"{seconds['numba'] / seconds['numpy']:.2f}", out["sites"], out["bodies"]])
        print(f"  {name} done", file=sys.stderr, flush=True)
    print()
    print(_common.table(header, rows))


# -- threads: a parallel loop, then BLAS -------------------------------------------------------

THREADS_CHILD = """
import ctypes, os, sys, time, statistics
if os.environ["NUMBA_THREADING_LAYER"] == "tbb":    # pip's TBB, beside Python's own libraries
    ctypes.CDLL(os.path.join(sys.prefix, "lib", "libtbb.so.12"), mode=ctypes.RTLD_GLOBAL)
import numpy as np
import numba
from threadpoolctl import threadpool_info

@numba.njit(parallel=True)
def scale(x, out):
    for i in numba.prange(x.shape[0]):
        out[i] = x[i] * 1.5 + 1.0

rng = np.random.default_rng(0)
A, B = rng.standard_normal((128, 784)), rng.standard_normal((784, 500))
x = rng.standard_normal(1 << 20)
out = np.empty_like(x)
scale(x, out)
def product_alone():
    start = time.perf_counter(); A @ B; return time.perf_counter() - start
def product_after_loop():
    scale(x, out)
    time.sleep(0)
    start = time.perf_counter(); A @ B; return time.perf_counter() - start
for _ in range(5):
    product_alone(); product_after_loop()
def spun_after_loop():
    # CPU time the process burns while its main thread sleeps 20 ms after the loop: workers
    # waiting actively for the next loop (a measure the machine's load does not distort)
    scale(x, out)
    start = time.process_time(); time.sleep(0.02); return time.process_time() - start
alone = statistics.median(product_alone() for _ in range(101))
after = statistics.median(product_after_loop() for _ in range(101))
spun = statistics.median(spun_after_loop() for _ in range(21))
blas = [p for p in threadpool_info() if p["user_api"] == "blas"][0]
print(numba.threading_layer(), blas["num_threads"], numba.get_num_threads(), alone, after, spun)
"""


def threads():
    print("\n".join(thread_settings()))
    print("\na parallel Numba loop (2^20 entries), then a 128x784 @ 784x500 OpenBLAS product; "
          "2 threads each, medians of 101\n")
    header = ["layer", "settings", "BLAS threads", "Numba threads", "product alone ms",
              "product after the loop ms", "ratio", "CPU ms spun in 20 ms idle"]
    rows = []
    for layer, extra in (("omp", {}), ("omp", {"OMP_WAIT_POLICY": "passive"}),
                         ("workqueue", {}), ("tbb", {})):
        environment = dict(os.environ, NUMBA_THREADING_LAYER=layer, OPENBLAS_NUM_THREADS="2",
                           OMP_NUM_THREADS="2", NUMBA_NUM_THREADS="2", **extra)
        environment.pop("OMP_WAIT_POLICY", None) if not extra else None
        done = subprocess.run([sys.executable, "-c", THREADS_CHILD], capture_output=True,
                              text=True, env=environment)
        if done.returncode != 0:
            rows.append([layer, str(extra or ""), "-", "-", "-", "-", "-",
                         done.stderr.strip().splitlines()[-1][:60]])
            continue
        used, blas, numba_threads, alone, after, spun = done.stdout.split()
        rows.append([used, " ".join(f"{k}={v}" for k, v in extra.items()) or "default", blas,
                     numba_threads, f"{float(alone) * 1e3:.3g}", f"{float(after) * 1e3:.3g}",
                     f"{float(after) / float(alone):.2f}", f"{float(spun) * 1e3:.3g}"])
    print(_common.table(header, rows))


# -- threshold: when a fused loop pays --------------------------------------------------------

def chain_of(ops, x, y, z):
    """``ops`` element-wise ops reading three matrices, as a tanh layer's backward pass does
    (``(x + y) * (1 - z * z)``, then products and sums): none of them a ufunc that a loop calls
    more slowly than NumPy."""
    out = (x + y) * (1.0 - z * z)
    for k in range(ops - 4):
        out = out * 1.0001 + 0.5 if k % 2 else sg.maximum(out, -1.0) * 0.999
    return out


def numba_over_numpy(out, inputs, shape, rng):
    """The fused program's time per call over the NumPy backend's, for ``out`` of ``inputs``
    (each of ``shape``), after checking the two agree."""
    fns = {b: sg.compile(out, inputs=inputs, backend=b) for b in ("numpy", "numba")}
    at = [rng.standard_normal(shape) for _ in inputs]
    np.testing.assert_allclose(fns["numba"](*at), fns["numpy"](*at), rtol=RTOL)
    seconds = timed_per_call({b: partial(fn, *at) for b, fn in fns.items()})
    return seconds["numba"] / seconds["numpy"]


def threshold():
    print("\n".join(thread_settings()))
    check_threads(int(THREADS))
    from symgrad.codegen import numba as renderer
    renderer.COST_MODEL = False     # fuse everything here: the thing measured
    entries_grid = (256, 1024, 4096, 16384, 65536)
    ops_grid = (4, 8, 16)
    print("\nfused / numpy per call (below 1: the loop pays); ops element-wise ops on three "
          "(entries / 32, 32) float64 matrices\n")
    rows = []
    rng = np.random.default_rng(0)
    for ops in ops_grid:
        row = [ops]
        for entries in entries_grid:
            shape = (entries // 32, 32)
            with sg.use_graph():
                inputs = [sg.var(name, shape=shape) for name in "xyz"]
                out = chain_of(ops, *inputs)
                row.append(f"{numba_over_numpy(out, inputs, shape, rng):.2f}")
        rows.append(row)
    print(_common.table(["ops \\ entries", *entries_grid], rows))
    print("\nfused / numpy per call; a sum of `arrays` (entries / 32, 32) matrices\n")
    rows = []
    for arrays in (16, 64):
        row = [arrays]
        for entries in entries_grid[1:]:
            shape = (entries // 32, 32)
            with sg.use_graph():
                inputs = [sg.var(f"x{k}", shape=shape) for k in range(arrays)]
                out = inputs[0] * 0.5
                for x in inputs[1:]:
                    out = out + x
                row.append(f"{numba_over_numpy(out, inputs, shape, rng):.2f}")
        rows.append(row)
    print(_common.table(["arrays \\ entries", *entries_grid[1:]], rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", default="cold",
                        choices=("cold", "threads", "threshold", "cold-child"))
    parser.add_argument("name", nargs="?", default=None)
    parser.add_argument("--only", default=None, help="workloads of cold, comma-separated")
    parser.add_argument("--threads", default=THREADS, help="BLAS, OpenMP and Numba threads (1)")
    opts = parser.parse_args()
    if opts.what == "cold-child":
        cold_child(opts.name)
    elif opts.what == "cold":
        cold(list(workloads()) if opts.only is None else opts.only.split(","))
    elif opts.what == "threads":
        threads()
    else:
        threshold()


if __name__ == "__main__":
    main()
