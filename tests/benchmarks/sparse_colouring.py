"""Distance-2 colourings of the 5-point stencil (issue 22): the columns of the 2-D Laplacian's
pattern on an n x n grid, two conflicting where they share a row. Its optimum is 5 (the five
columns of a row are mutually in conflict; (i + 2 j) mod 5 takes 5).

For each vertex order symgrad's greedy colouring tries (symgrad.sparsity), and for networkx's
greedy_color strategies at the smaller sizes: the colours, the CPU seconds and wall seconds,
and the time as a ratio to one natural-order greedy pass over the same graph. Then
_fewest_colors, which sparse_jacobian calls, with the lower bound 5 (a row's nonzeros) and
without it. Every colouring is checked proper.

    python tests/benchmarks/sparse_colouring.py             # n = 100 and 300 (90,000 columns)
    python tests/benchmarks/sparse_colouring.py --n 30 100 300 --networkx 100
"""

import argparse
import importlib
import sys
import time

import numpy as np
import scipy.sparse

import _common  # noqa: F401 (puts the checkout on sys.path)

# symgrad.sparsity the module, not sg.sparsity the function it exports
coloring = importlib.import_module("symgrad.sparsity")

# networkx's strategies, but independent_set (509 s at n = 100 on the shared machine) and
# saturation_largest_first, whose pure-Python scan of every vertex per step is quadratic
NETWORKX = ("largest_first", "smallest_last", "connected_sequential_bfs",
            "connected_sequential_dfs")


def five_point(n):
    one = np.ones(n - 1)
    path = scipy.sparse.diags_array([one, np.ones(n), one], offsets=[-1, 0, 1], dtype=bool)
    eye = scipy.sparse.identity(n, dtype=bool)
    return (scipy.sparse.kron(eye, path) + scipy.sparse.kron(path, eye)).astype(bool).tocsr()


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def proper(adjacency, colors):
    entries = adjacency.tocoo()
    off = entries.row != entries.col
    return not np.any(colors[entries.row[off]] == colors[entries.col[off]])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--networkx", type=int, default=100,
                        help="networkx's strategies up to this n")
    args = parser.parse_args()
    failed = False
    for n in args.n:
        pattern = five_point(n)
        conflicts = (pattern.T @ pattern).astype(bool).tocsr()
        adjacency = conflicts.copy()
        adjacency.setdiag(False)
        adjacency.eliminate_zeros()
        size = adjacency.shape[0]
        degrees = np.diff(adjacency.indptr)
        orders = {
            "natural": lambda: coloring._greedy(adjacency, range(size)),
            "largest first": lambda: coloring._greedy(
                adjacency, np.argsort(-degrees, kind="stable").tolist()),
            "smallest last (heap)": lambda: coloring._greedy(
                adjacency, coloring._smallest_last(adjacency)),
            "incidence degree (heap)": lambda: coloring._greedy(
                adjacency, coloring._incidence_degree(adjacency)),
            "DSATUR (buckets)": lambda: coloring._saturation_coloring(adjacency),
            "_fewest_colors, bound 5": lambda: coloring._fewest_colors(conflicts, 5),
            "_fewest_colors, no bound": lambda: coloring._fewest_colors(conflicts),
        }
        if n <= args.networkx:
            import networkx as nx
            graph = nx.from_scipy_sparse_array(adjacency)
            for strategy in NETWORKX:
                orders[f"networkx {strategy}"] = (
                    lambda s: lambda: nx.greedy_color(graph, strategy=s))(strategy)
        print(f"n = {n}: {size:,} columns, {adjacency.nnz:,} conflicts; optimum 5")
        print(f"{'order':34s} {'colours':>7s} {'CPU s':>7s} {'wall s':>7s} {'vs natural':>10s}")
        reference = None
        for name, run in orders.items():
            colors, cpu, wall = timed(run)
            if isinstance(colors, dict):
                colors = np.array([colors[v] for v in range(size)])
            if not proper(adjacency, colors):
                print(f"FAILED: {name} at n = {n} gives two conflicting columns one colour")
                failed = True
            reference = reference or cpu
            print(f"{name:34s} {int(colors.max()) + 1:7d} {cpu:7.3f} {wall:7.3f} "
                  f"{cpu / reference:10.1f}")
        print()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
