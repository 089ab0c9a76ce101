"""Memory of the graph itself, per node: what symgrad keeps for each node it builds.

Run with ``python tests/benchmarks/graph_memory.py`` (see README.md in this folder).

Workload: the recurrence ``e <- e + sin(e) * c`` from a scalar variable (three nodes a step), sized
to about 10,000 and 100,000 forward nodes; then its gradient with respect to the start, which
appends about 1.7 nodes per forward node to the same graph.

Two measurements of the same graph:

- ``tracemalloc``: bytes allocated while building and still alive afterwards (after a full
  garbage collection), divided by the nodes added. Everything the graph holds is in it: node
  dicts, attribute and key tuples, networkx's adjacency dicts and edge dicts, the hash-cons table.
- a walk of the Graph's containers with ``sys.getsizeof``, each object counted once, split by
  where it hangs: the per-node data (``_node``), the adjacency (``_succ`` and ``_pred`` with the
  edge dicts), the hash-cons table (``_cons``) and the rest.
"""

import gc
import sys
import time
import tracemalloc

import numpy as np

from _common import table

import symgrad as sg

SIZES = (10_000, 100_000)
NODES_PER_STEP = 3
STEP = 1e-4


def deep_size(root, seen):
    """Bytes of ``root`` and everything it contains that ``seen`` has not counted yet (iterative,
    so that nothing here recurses as deep as the graph)."""
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        # an ndarray's getsizeof already includes the buffer it owns
    return total


def breakdown(graph):
    """Bytes by part of the Graph, each object counted once (in the first part that holds it)."""
    seen = set()
    # objects shared by every graph (op names, dtype strings, small ints, None) are not the
    # graph's cost: mark them as seen first
    for shared in ("float64", "bool", None, True, False, *range(-5, 257), *sg.OPS):
        seen.add(id(shared))
    parts = {"nodes (_node)": graph._node, "adjacency (_succ, _pred)": (graph._succ, graph._pred),
             "hash-cons table (_cons)": graph._cons}
    sizes = {name: deep_size(value, seen) for name, value in parts.items()}
    rest = {k: v for k, v in vars(graph).items()
            if k not in ("_node", "_succ", "_pred", "_adj", "_cons", "lock")
            and not type(v).__module__.startswith("networkx.classes")}
    sizes["other attributes"] = deep_size(rest, seen)
    return sizes


def build(steps):
    x = sg.var("x")
    c = sg.const(STEP)
    e = x
    for _ in range(steps):
        e = e + sg.sin(e) * c
    return x, e


def reference(x0, steps):
    value, derivative = x0, 1.0
    for _ in range(steps):
        derivative *= 1.0 + STEP * np.cos(value)
        value = value + np.sin(value) * STEP
    return value, derivative


def measure(nodes):
    steps = nodes // NODES_PER_STEP
    gc.collect()
    tracemalloc.start()
    try:
        with sg.use_graph() as graph:
            start = time.perf_counter()
            x, e = build(steps)
            build_seconds = time.perf_counter() - start
            gc.collect()
            forward_nodes = graph.number_of_nodes()
            forward_bytes, _ = tracemalloc.get_traced_memory()
            forward_parts = breakdown(graph)
            start = time.perf_counter()
            derivative = sg.grad(e, x)
            grad_seconds = time.perf_counter() - start
            gc.collect()
            total_nodes = graph.number_of_nodes()
            total_bytes, _ = tracemalloc.get_traced_memory()
            total_parts = breakdown(graph)
    finally:
        tracemalloc.stop()
    # a correctness check, so that the figures are for a graph that computes the right thing
    with sg.use_graph(graph):
        value, slope = sg.compile([e, derivative], inputs=[x], optimize=False)(0.3)
    want_value, want_slope = reference(0.3, steps)
    error = max(abs(value - want_value) / abs(want_value), abs(slope - want_slope) / abs(want_slope))
    return {"forward": (forward_nodes, forward_bytes, forward_parts, build_seconds),
            "forward+gradient": (total_nodes, total_bytes, total_parts, grad_seconds),
            "error": error}


def main():
    rows, parts_rows, worst = [], [], 0.0
    for size in SIZES:
        result = measure(size)
        worst = max(worst, result["error"])
        for label in ("forward", "forward+gradient"):
            nodes, traced, parts, seconds = result[label]
            walked = sum(parts.values())
            rows.append([f"{size:,} {label}", f"{nodes:,}", f"{traced / 2**20:.1f}",
                         f"{traced / nodes:,.0f}", f"{walked / nodes:,.0f}", f"{seconds:.1f}"])
            parts_rows.append([f"{size:,} {label}"] + [f"{b / nodes:,.0f}" for b in parts.values()])
            part_names = list(parts)
    print("graph memory per node: recurrence e <- e + sin(e) * c, then grad wrt its start\n")
    print(table(["graph", "nodes", "traced MiB", "traced B/node", "walked B/node",
                 "build/grad s"], rows))
    print("\nwalked bytes per node, by part of the Graph\n")
    print(table(["graph"] + part_names, parts_rows))
    print(f"\nlargest relative error of the compiled value and derivative: {worst:.1e}")
    if worst > 1e-9:
        raise SystemExit("FAILED: the compiled chain disagrees with its NumPy reference")


if __name__ == "__main__":
    main()
