"""Higher orders: how the built graph grows with the order of a derivative (issue 23, item 2).

Run with ``python tests/benchmarks/higher_order.py`` (see README.md in this folder); ``--max-order
20`` goes past the default 14, ``--memory`` adds each order's peak memory (tracemalloc, which
slows the build: the seconds of that run are not the ones to quote), ``--only tanh,sigmoid``
picks functions, ``--budget S`` stops a function once one order took more than S seconds.

For each function, in a fresh graph, d_0 = f and d_n = grad(d_{n-1}, x) (the 2-variable case
differentiates by x and y in turn), one order after the other as ``symgrad grad --order`` does.
After each order the table gives the nodes of the whole built graph and of the n-th derivative's
own ancestors, the seconds that order's grad took, the seconds to compile d_n alone
(optimize=True), the assignment statements of its source, and with ``--memory`` the peak bytes
allocated while building and compiling that order. Every d_n is checked against its exact value
at 50 digits at points where tanh and sigmoid saturate and near 0: the table gives the error
relative to max(|exact|, 1), and in roundings of |exact| plus what the rounding of each leaf
moves the value by ("in leaf u"); the script fails if that passes UNITS_PER_ORDER (n + 2).
tanh(x * y) at x * y = 14 loses its digits to 1 - t**2 of the rounded, saturated t, in the
product rule's tree as here. The exact n-th derivatives are the polynomials in the functions'
leaves of tests/leaf_polynomials.py (SymPy's expanded derivatives of sigmoid take minutes past
order 6).
"""

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from _common import statement_count, table

import symgrad as sg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import leaf_polynomials  # noqa: E402 (tests/, for the exact derivatives)

EPS = np.finfo(np.float64).eps
# the largest error allowed, in roundings of the value and of what the rounding of each leaf
# moves it by (sum |leaf * dP/dleaf|), per order (+ 2): test_compaction allows 16
UNITS_PER_ORDER = 16.0
POINTS = (0.5, -1.3, 1e-3, 3.0, 20.0, -30.0)

# key (as in leaf_polynomials.FAMILIES) -> (title, build with symgrad, variables differentiated
# by in turn)
FUNCTIONS = {
    "tanh": ("tanh(x)", lambda x, y: sg.tanh(x), "x"),
    "sigmoid": ("sigmoid(x)", lambda x, y: sg.sigmoid(x), "x"),
    "expsin": ("exp(sin(x))", lambda x, y: sg.exp(sg.sin(x)), "x"),
    "xtanh": ("x * tanh(x)", lambda x, y: x * sg.tanh(x), "x"),
    "tanhxy": ("tanh(x * y), by x and y in turn", lambda x, y: sg.tanh(x * y), "xy"),
}


def _reference(name, polynomial, points):
    """The exact values at the points and what a rounding of each leaf moves them by."""
    return np.array([[float(v) for v in leaf_polynomials.evaluate(name, polynomial, p, q)]
                     for p, q in points]).T


def run(name, max_order, memory, budget):
    title, build, turns = FUNCTIONS[name]
    points = [(p, 0.7 if p != 0.5 else -0.4) for p in POINTS]
    rows, worst, stopped = [], 0.0, ""
    exact = leaf_polynomials.exact_derivatives(name, max_order, turns)
    with sg.use_graph() as graph:
        x, y = sg.var("x"), sg.var("y")
        inputs = [x, y] if "y" in turns else [x]
        d = build(x, y)
        for order in range(1, max_order + 1):
            by = (x, y)[(order - 1) % len(turns)]
            if memory:
                tracemalloc.start()
            start = time.perf_counter()
            d = sg.grad(d, by, disconnected="zero")
            grad_seconds = time.perf_counter() - start
            start = time.perf_counter()
            fn = sg.compile(d, inputs=inputs)
            compile_seconds = time.perf_counter() - start
            peak = None
            if memory:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            want, sensitivity = _reference(name, exact[order - 1], points)
            got = np.array([float(fn(*(p[:len(inputs)]))) for p in points])
            error = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1.0)))
            # in roundings of what the leaves' own rounding makes of the value: the product
            # rule's tree (1 - t**2 of a saturated t) errs as much
            units = float(np.max(np.abs(got - want) / (EPS * (np.abs(want) + sensitivity))))
            worst = max(worst, units / (order + 2))
            own = len(graph.ancestors_in_order([d.node]))
            rows.append([order, graph.number_of_nodes(), own, f"{grad_seconds:.3f}",
                         f"{compile_seconds:.3f}", statement_count(fn.source),
                         "-" if peak is None else f"{peak / 2**20:.1f}", f"{error:.1e}",
                         f"{units:.1f}"])
            if grad_seconds + compile_seconds > budget:
                stopped = f"(stopped: order {order} took more than {budget:g} s)\n"
                break
    print(f"\n{title}\n")
    print(table(["order", "graph nodes", "d_n's nodes", "grad s", "compile s", "stmts",
                 "peak MiB", "rel. error", "in leaf u"], rows))
    print(stopped, end="")
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-order", type=int, default=14)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--only", default="", help=f"comma-separated, of {', '.join(FUNCTIONS)}")
    parser.add_argument("--budget", type=float, default=60.0)
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(FUNCTIONS)
    unknown = [n for n in names if n not in FUNCTIONS]
    if unknown:
        parser.error(f"--only: no function {', '.join(unknown)}; choose from {', '.join(FUNCTIONS)}")
    failed = []
    for name in names:
        worst = run(name, args.max_order, args.memory, args.budget)
        if worst > UNITS_PER_ORDER:
            failed.append(f"{name}: {worst:.1f} u per order")
    if failed:
        raise SystemExit(f"FAILED: a derivative errs more than the rounding of its leaves "
                         f"allows: {'; '.join(failed)}")
    print(f"\nevery derivative within {UNITS_PER_ORDER:g} (order + 2) roundings of |exact| + "
          f"sum |leaf * dP/dleaf| (column 'in leaf u')")


if __name__ == "__main__":
    main()
