"""Compile time: where the seconds of build, grad, optimise and emit go as graphs grow.

Run with ``python tests/benchmarks/compile_time.py`` (see README.md in this folder); ``--large``
adds the 100k-op chain, ``--no-memory`` skips the tracemalloc runs, ``--only chain,tanh``
picks workloads. ``--profile emit --size 100000`` profiles one phase (build, grad, optimise or
emit) of the first workload of ``--only`` at that size (chain ops or tanh order) in this process,
and prints cProfile's top functions by their own time.

1. A chain of N forward ops (N = 1k, 10k; 100k with ``--large``) on a vector ``x`` of 16 and a
   matrix ``W`` (16, 16), repeating the nine-op link

       y = sin(y) * 0.5 + x;  y = tanh(W @ y);  y = y - mean(y);  y = exp(y) * y

   (elementwise unary and binary ops, a reduction, a matrix-vector product), then f = sum(y) and
   grad(f, [x, W]). Timed separately: building the chain, sg.grad, the optimiser
   (symgrad.optimize.optimize, the collector paused as sg.compile pauses it) and emission
   (sg.compile of the optimised graph with optimize=False). The compiled function is checked
   against a NumPy forward pass (value) and central differences of it along one direction
   (gradient).
2. The n-th derivative of tanh, n = 8..12 (d_k = grad(sum(d_{k-1}), x) on a vector): the same
   phases, checked against the polynomial P_n(tanh x).

Each row runs in a fresh interpreter (no cache or graph carried over). Seconds are the process's
CPU time (time.process_time: all of it is one Python thread, so on an idle machine it is the wall
time, and on a shared one it does not count the waits for a core). The peak memory of each phase
comes from a second run under tracemalloc (which slows Python code, so it is not timed).
"""

import argparse
import cProfile
import gc
import json
import pstats
import subprocess
import sys
import time
import tracemalloc

import numpy as np
from numpy.polynomial import Polynomial

from _common import ROOT, statement_count, table

import symgrad as sg
from symgrad.optimize import optimize

VECTOR = 16
OPS_PER_LINK = 9
CHAIN_SIZES = (1_000, 10_000)
LARGE_CHAIN_SIZES = (100_000,)
TANH_ORDERS = range(8, 13)
RTOL = 1e-7
PHASES = ("build", "grad", "optimise", "emit")


class Phases:
    """Seconds and (under tracemalloc) peak bytes of each phase, in the order they ran."""

    def __init__(self, trace, profile=None):
        self.trace, self.seconds, self.peaks = trace, {}, {}
        self.profile = profile      # (phase, cProfile.Profile) of the phase profiled, if any

    def run(self, phase, work, paused=False):
        if self.trace:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
        enabled = gc.isenabled()
        if paused:
            gc.disable()
        profiler = self.profile[1] if self.profile and self.profile[0] == phase else None
        start = time.process_time()
        try:
            if profiler is not None:
                profiler.enable()
            result = work()
        finally:
            if profiler is not None:
                profiler.disable()
            self.seconds[phase] = time.process_time() - start
            if paused and enabled:
                gc.enable()
        if self.trace:
            self.peaks[phase] = tracemalloc.get_traced_memory()[1] - before
        return result


def optimised_and_emitted(phases, graph, outputs, inputs):
    """The optimiser and the emitter of sg.compile, timed apart."""
    done = phases.run("optimise", lambda: optimize(graph, [o.node for o in outputs],
                                                   [i.node for i in inputs]), paused=True)
    new_outputs = [sg.Expr(done.graph, n) for n in done.outputs]
    new_inputs = [sg.Expr(done.graph, n) for n in done.inputs]
    fn = phases.run("emit", lambda: sg.compile(new_outputs, new_inputs, optimize=False))
    return done, fn


# -- 1. the chain -------------------------------------------------------------------------------

def chain_forward(x, W, links):
    y = x
    for _ in range(links):
        y = np.sin(y) * 0.5 + x
        y = np.tanh(W @ y)
        y = y - np.mean(y)
        y = np.exp(y) * y
    return np.sum(y)


def chain(size, trace, profile=None):
    links = size // OPS_PER_LINK
    phases = Phases(trace, profile)
    with sg.use_graph() as graph:
        def build():
            x, W = sg.var("x", shape=(VECTOR,)), sg.var("W", shape=(VECTOR, VECTOR))
            y = x
            for _ in range(links):
                y = sg.sin(y) * 0.5 + x
                y = sg.tanh(W @ y)
                y = y - sg.mean(y)
                y = sg.exp(y) * y
            return x, W, sg.sum(y)

        x, W, f = phases.run("build", build)
        forward_nodes = graph.number_of_nodes()
        gx, gW = phases.run("grad", lambda: sg.grad(f, [x, W]))
        nodes = graph.number_of_nodes()
        done, fn = optimised_and_emitted(phases, graph, [f, gx, gW], [x, W])
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1.0, 1.0, VECTOR)
    W0 = rng.normal(0.0, 1.0 / np.sqrt(VECTOR), (VECTOR, VECTOR))
    value, got_x, got_W = fn(x0, W0)
    want = chain_forward(x0, W0, links)
    tx, tW = rng.normal(size=VECTOR), rng.normal(size=(VECTOR, VECTOR))
    step = 1e-6
    slope = (chain_forward(x0 + step * tx, W0 + step * tW, links)
             - chain_forward(x0 - step * tx, W0 - step * tW, links)) / (2 * step)
    directional = float(np.vdot(got_x, tx) + np.vdot(got_W, tW))
    error = max(abs(value - want) / max(abs(want), 1e-300),
                abs(directional - slope) / max(abs(slope), 1e-12))
    return dict(label=f"{links * OPS_PER_LINK:,} ops", forward=forward_nodes, nodes=nodes,
                optimised=done.graph.number_of_nodes(), statements=statement_count(fn.source),
                seconds=phases.seconds, peaks=phases.peaks, error=error)


# -- 2. tanh's n-th derivative ------------------------------------------------------------------

def tanh_reference(x, n):
    """d^n/dx^n tanh(x) = P_n(tanh x) with P_0(t) = t, P_{k+1}(t) = (1 - t^2) P_k'(t)."""
    p = Polynomial([0.0, 1.0])
    for _ in range(n):
        p = Polynomial([1.0, 0.0, -1.0]) * p.deriv()
    return p(np.tanh(x))


def tanh_order(order, trace, profile=None):
    phases = Phases(trace, profile)
    with sg.use_graph() as graph:
        x = phases.run("build", lambda: sg.var("x", shape=("n",)))

        def differentiate():
            d = sg.tanh(x)
            for _ in range(order):
                d = sg.grad(sg.sum(d), x)
            return d

        d = phases.run("grad", differentiate)
        nodes = graph.number_of_nodes()
        done, fn = optimised_and_emitted(phases, graph, [d], [x])
    values = np.random.default_rng(0).uniform(-2.0, 2.0, 1000)
    want = tanh_reference(values, order)
    error = float(np.max(np.abs(fn(values) - want)) / np.max(np.abs(want)))
    return dict(label=f"tanh order {order}", forward=1, nodes=nodes,
                optimised=done.graph.number_of_nodes(), statements=statement_count(fn.source),
                seconds=phases.seconds, peaks=phases.peaks, error=error)


WORKLOADS = {"chain": chain, "tanh": tanh_order}


# -- driver -------------------------------------------------------------------------------------

def measure(workload, size, trace):
    """One row, in a fresh interpreter."""
    command = [sys.executable, __file__, "--row", workload, str(size)] + (["--trace"] if trace
                                                                          else [])
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"FAILED: {workload} {size}:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def row(workload, size, trace):
    if trace:
        tracemalloc.start()
    print(json.dumps(WORKLOADS[workload](size, trace)))


def profiled(workload, size, phase):
    """Run one row here with ``phase`` under cProfile; print its seconds and top functions."""
    profiler = cProfile.Profile()
    result = WORKLOADS[workload](size, False, (phase, profiler))
    print(f"{result['label']}: {phase} {result['seconds'][phase]:.2f} s under cProfile "
          f"(error {result['error']:.0e})")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="add the 100k-op chain")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument("--only", default="chain,tanh", help="workloads: chain,tanh")
    parser.add_argument("--profile", choices=PHASES, help="profile this phase of one row")
    parser.add_argument("--size", type=int, default=10_000,
                        help="the row --profile runs: chain ops or tanh order (10000)")
    parser.add_argument("--row", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        return row(args.row[0], int(args.row[1]), args.trace)
    if args.profile:
        return profiled(args.only.split(",")[0], args.size, args.profile)
    sizes = {"chain": CHAIN_SIZES + (LARGE_CHAIN_SIZES if args.large else ()),
             "tanh": tuple(TANH_ORDERS)}
    failed = False
    for workload in args.only.split(","):
        rows = []
        for size in sizes[workload]:
            timed = measure(workload, size, trace=False)
            peaks = {} if args.no_memory else measure(workload, size, trace=True)["peaks"]
            seconds = timed["seconds"]
            total = sum(seconds.values())
            cells = [timed["label"], f"{timed['nodes']:,}", f"{timed['optimised']:,}",
                     f"{timed['statements']:,}"]
            cells += [f"{seconds[p]:.2f}" for p in PHASES] + [f"{total:.2f}"]
            cells += [f"{seconds['optimise'] / timed['nodes'] * 1e6:.1f}"]
            cells += [f"{peaks[p] / 2**20:.0f}" if p in peaks else "-" for p in PHASES]
            cells += [f"{timed['error']:.0e}"]
            failed |= not timed["error"] <= RTOL
            rows.append(cells)
        print(f"\n{workload}\n")
        print(table(["workload", "nodes", "optimised", "stmts"]
                    + [f"{p} s" for p in PHASES] + ["total s", "optimise µs/node"]
                    + [f"{p} MiB" for p in PHASES] + ["error"], rows))
    print("\nnodes: the graph after sg.grad; optimised: the optimiser's graph; MiB: tracemalloc "
          "peak above the phase's start")
    if failed:
        raise SystemExit(f"FAILED: a compiled result disagrees with its reference (> {RTOL})")


if __name__ == "__main__":
    main()
