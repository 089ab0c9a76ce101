"""Graph economy: how much code symgrad emits for derivatives, and how long compiling takes.

Run with ``python tests/benchmarks/graph_economy.py`` (see README.md in this folder).

Three workloads, each compiled with optimize=True and optimize=False, each in a fresh graph:

1. the n-th derivative of tanh, n = 1..8: elementwise on a vector x, d_0 = tanh(x),
   d_k = grad(sum(d_{k-1}), x); the compiled function returns d_n only;
2. the iterated map x_{k+1} = sin(x_k) * x_k + x_k**2 on a vector, f = sum(x_K), for
   K = 10, 20, 40, 80: forward code (f) against forward+gradient code ([f, grad(f, x_0)]);
3. compile cost of a ~100,000-node graph: the chain y <- sin(y) * 0.5 + y repeated until the
   graph holds ~100k nodes once differentiated.

Statements are the assignment lines of ``fn.source`` (``del`` lines excluded). Every compiled
function is also run once and checked against a NumPy reference (1e-9 relative).
"""

import time

import numpy as np
from numpy.polynomial import Polynomial

from _common import statement_count, table

import symgrad as sg

SEED = 0
RTOL = 1e-9
TANH_ORDERS = range(1, 9)
MAP_STEPS = (10, 20, 40, 80)
CHAIN_NODES = 100_000
NODES_PER_CHAIN_STEP = 9        # measured: 3 forward nodes and 6 derivative nodes per link
OPTIMIZE = (True, False)


def relative_error(got, want):
    """max |got - want| / max |want| (with both all zero: 0)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = max(float(np.max(np.abs(want))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(got - want))) / scale


class Checks:
    """Worst relative error seen per workload; the script fails if one exceeds RTOL."""

    def __init__(self):
        self.errors = {}

    def add(self, workload, error):
        self.errors[workload] = max(self.errors.get(workload, 0.0), error)

    def report(self):
        print("\nchecks against NumPy references (max relative error):")
        for workload, error in self.errors.items():
            print(f"  {workload:<24} {error:.1e}  {'ok' if error <= RTOL else 'FAILED'}")
        return all(e <= RTOL for e in self.errors.values())


# -- 1. tanh n-th derivative -------------------------------------------------------------------

def tanh_derivative_reference(x, n):
    """d^n/dx^n tanh(x) = P_n(tanh x) with P_0(t) = t, P_{k+1}(t) = (1 - t^2) P_k'(t)."""
    p = Polynomial([0.0, 1.0])
    for _ in range(n):
        p = Polynomial([1.0, 0.0, -1.0]) * p.deriv()
    return p(np.tanh(x))


def tanh_orders(checks, x_values):
    counts = {}
    for optimize in OPTIMIZE:
        for n in TANH_ORDERS:
            with sg.use_graph() as graph:
                start = time.perf_counter()
                x = sg.var("x", shape=("n",))
                d = sg.tanh(x)
                for _ in range(n):
                    d = sg.grad(sg.sum(d), x)
                fn = sg.compile(d, inputs=[x], optimize=optimize)
                seconds = time.perf_counter() - start
                counts[optimize, n] = (statement_count(fn.source), graph.number_of_nodes(),
                                       seconds)
            checks.add("tanh n-th derivative",
                       relative_error(fn(x_values), tanh_derivative_reference(x_values, n)))
    rows = []
    for n in TANH_ORDERS:
        on, off = counts[True, n], counts[False, n]
        rows.append([n, on[0], off[0], on[1], f"{on[2]:.3f}", f"{off[2]:.3f}"])
    print("1. n-th derivative of tanh (elementwise on a vector; d_n = grad(sum(d_{n-1}), x))\n")
    print(table(["n", "stmts opt=True", "stmts opt=False", "graph nodes built",
                 "build+compile s, opt=True", "opt=False"], rows))
    for optimize in OPTIMIZE:
        s4, s8 = counts[optimize, 4][0], counts[optimize, 8][0]
        print(f"optimize={optimize}: statements at n=8 / n=4 = {s8}/{s4} = {s8 / s4:.2f}x")


# -- 2. iterated map ---------------------------------------------------------------------------

def iterated_map_reference(x0, steps):
    """(sum(x_K), d sum(x_K) / d x_0) by a hand-written forward pass and reverse sweep."""
    xs = [x0]
    for _ in range(steps):
        x = xs[-1]
        xs.append(np.sin(x) * x + x ** 2)
    g = np.ones_like(x0)
    for x in reversed(xs[:-1]):
        g = g * (np.cos(x) * x + np.sin(x) + 2.0 * x)
    return xs[-1].sum(), g


def iterated_map(checks, x_values):
    rows = []
    for steps in MAP_STEPS:
        for optimize in OPTIMIZE:
            with sg.use_graph():
                start = time.perf_counter()
                x0 = sg.var("x", shape=("n",))
                x = x0
                for _ in range(steps):
                    x = sg.sin(x) * x + x ** 2
                f = sg.sum(x)
                both = sg.compile([f, sg.grad(f, x0)], inputs=[x0], optimize=optimize)
                seconds = time.perf_counter() - start
                forward = sg.compile(f, inputs=[x0], optimize=optimize)
            n_forward, n_both = statement_count(forward.source), statement_count(both.source)
            rows.append([steps, str(optimize), n_forward, n_both, f"{n_both / n_forward:.2f}x",
                         f"{seconds:.3f}"])
            want_value, want_grad = iterated_map_reference(x_values, steps)
            value, gradient = both(x_values)
            checks.add("iterated map", max(relative_error(value, want_value),
                                           relative_error(forward(x_values), want_value),
                                           relative_error(gradient, want_grad)))
    print("\n2. iterated map x_{k+1} = sin(x_k)*x_k + x_k**2, f = sum(x_K), gradient wrt x_0\n")
    print(table(["K", "optimize", "forward stmts", "fwd+grad stmts", "ratio",
                 "build+grad+compile s"], rows))


# -- 3. compile cost of a ~100k-node graph -----------------------------------------------------

def chain_reference(y0, steps):
    """(sum(y_N), d sum(y_N) / d y_0) of the chain, forward mode by hand."""
    y, dy = y0.copy(), np.ones_like(y0)
    for _ in range(steps):
        dy = dy * (0.5 * np.cos(y) + 1.0)
        y = np.sin(y) * 0.5 + y
    return y.sum(), dy


def big_graph(checks, y_values):
    steps = CHAIN_NODES // NODES_PER_CHAIN_STEP
    rows = []
    for optimize in OPTIMIZE:
        with sg.use_graph() as graph:
            start = time.perf_counter()
            y0 = sg.var("y", shape=("n",))
            y = y0
            for _ in range(steps):
                y = sg.sin(y) * 0.5 + y
            f = sg.sum(y)
            build_seconds = time.perf_counter() - start
            forward_nodes = graph.number_of_nodes()
            start = time.perf_counter()
            gradient = sg.grad(f, y0)
            grad_seconds = time.perf_counter() - start
            nodes = graph.number_of_nodes()
            start = time.perf_counter()
            fn = sg.compile([f, gradient], inputs=[y0], optimize=optimize)
            compile_seconds = time.perf_counter() - start
        rows.append([str(optimize), steps, forward_nodes, nodes, f"{build_seconds:.2f}",
                     f"{grad_seconds:.2f}", f"{compile_seconds:.2f}",
                     f"{build_seconds + grad_seconds + compile_seconds:.2f}",
                     statement_count(fn.source)])
        value, got = fn(y_values)
        want_value, want = chain_reference(y_values, steps)
        checks.add("100k-node chain", max(relative_error(value, want_value),
                                          relative_error(got, want)))
    print("\n3. compile cost of a ~100k-node graph: y <- sin(y)*0.5 + y, f = sum(y), grad wrt y_0\n")
    print(table(["optimize", "links", "nodes fwd", "nodes fwd+grad", "build s", "grad s",
                 "compile s", "total s", "stmts"], rows))


def main():
    rng = np.random.default_rng(SEED)
    checks = Checks()
    tanh_orders(checks, rng.uniform(-2.0, 2.0, 1000))
    iterated_map(checks, rng.uniform(-0.5, 0.5, 1000))
    # the chain settles on +-pi, so its gradient (a product of 1 + cos(y)/2 factors, 1/2 near
    # +-pi) underflows to 0 after ~1,100 links: there the check is on the value only, in effect
    big_graph(checks, rng.uniform(-0.5, 0.5, 4))
    if not checks.report():
        raise SystemExit("FAILED: a compiled result disagrees with its NumPy reference")


if __name__ == "__main__":
    main()
