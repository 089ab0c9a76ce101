"""The choice between direct emission and the compressed pass (issue 22): both methods' time per
call on five structures at a few sizes, the one sg.jacobian / sg.hessian with sparse=True picks,
and whether it is the faster one.

Structures (tests/test_sparse.py builds them): a tridiagonal residual's Jacobian, the 2-D Bratu
residual's Jacobian and its energy's Hessian, the chained Rosenbrock Hessian, a block-diagonal
Hessian (3 x 3 blocks), an arrowhead Hessian (its compressed pass only where the star colouring
runs). Each result is checked against the other method's (1e-12 relative, the same pattern).

    python tests/benchmarks/sparse_chooser.py                   # sizes 1,000, 10,000, 90,000
    python tests/benchmarks/sparse_chooser.py --sizes 900,10000 --rounds 5 --only tridiagonal,arrowhead
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import _common
import symgrad as sg
from symgrad.sparsity import sparse_hessian, sparse_jacobian

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_sparse import STRUCTURES  # noqa: E402

# past this size the arrowhead's compressed pass (a distance-2 colouring: as many colours as
# unknowns, the star colouring being too costly to find) holds size**2 entries per node
ARROWHEAD_COMPRESSED = 10_000


def per_call(functions, at, rounds):
    """{method: the best of ``rounds`` rounds, each the mean of enough calls to take about
    5 ms}; the methods take turns within each round, so that both meet the same load, and
    short rounds let the best of them miss the other jobs of a shared machine."""
    calls = {}
    for method, fn in functions.items():
        start = time.perf_counter()
        fn(at)
        calls[method] = max(1, int(0.005 / max(time.perf_counter() - start, 1e-6)))
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(rounds):
        for method, fn in functions.items():
            start = time.perf_counter()
            for _ in range(calls[method]):
                fn(at)
            best[method] = min(best[method], (time.perf_counter() - start) / calls[method])
    return best


def measure(name, size, rounds):
    """A table row: the structure, its unknowns, the chosen method, both methods' ms per call,
    compressed / direct, and whether the chosen one is the faster."""
    functions, results, chosen = {}, {}, None
    for method in ("direct", "compressed"):
        with sg.use_graph():
            kind, y, x = STRUCTURES[name](size)
            make = sparse_hessian if kind == "hessian" else sparse_jacobian
            if chosen is None:
                chosen = (sg.hessian if kind == "hessian" else sg.jacobian)(
                    y, x, sparse=True).data["attrs"]["method"]
                chosen = "direct" if chosen == "direct" else "compressed"
            if method == "compressed" and name == "arrowhead" and size > ARROWHEAD_COMPRESSED:
                continue
            functions[method] = sg.compile(make(y, x, method=method), [x])
    at = np.random.default_rng(size).uniform(-1.0, 1.0, x.size)
    results = {method: fn(at) for method, fn in functions.items()}
    times = per_call(functions, at, rounds)
    if len(results) == 2:
        direct, compressed = results["direct"], results["compressed"]
        gap = abs(direct - compressed).max() / max(abs(compressed).max(), 1e-300)
        if gap > 1e-12 or (direct.indices != compressed.indices).any():
            print(f"FAILED: the two methods differ on {name} at {size} ({gap:.1e})")
            sys.exit(1)
    row = [name, x.size, chosen]
    row += [f"{times[m] * 1e3:.3f}" if m in times else "n/a" for m in ("direct", "compressed")]
    if len(times) == 2:
        faster = min(times, key=times.get)
        row += [f"{times['compressed'] / times['direct']:.2f}",
                "yes" if faster == chosen else "NO"]
    else:
        row += ["n/a", "yes" if chosen in times else "NO"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,90000")
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--only", default=",".join(STRUCTURES))
    options = parser.parse_args()
    rows = []
    for size in map(int, options.sizes.split(",")):
        for name in options.only.split(","):
            rows.append(measure(name, size, options.rounds))
            print("  ".join(map(str, rows[-1])), file=sys.stderr)
    print(_common.table(["structure", "unknowns", "chosen", "direct ms", "compressed ms",
                         "compressed / direct", "chosen is faster"], rows))


if __name__ == "__main__":
    main()
