"""Memory a training loop that rebuilds its loss each step keeps, per step (issue 20, item 2).

Run with ``python tests/benchmarks/graph_growth.py [STEPS]`` (see README.md in this folder).

Workload: each step a fresh 128 x 784 minibatch (and its one-hot labels) as constants, the
softmax regression loss of ``X @ W`` and its gradient rebuilt and compiled, the function called
and dropped. Memory is ``tracemalloc``'s, after a full collection, from step 10 to the last,
divided by the steps: in the default graph (which releases what no expression refers to), and in
a ``sg.Graph()`` made by hand, which keeps every node.
"""

import gc
import sys
import tracemalloc

import numpy as np

from _common import table

import symgrad as sg

def softmax_loss_and_gradient(X, Y, W):
    """The NumPy reference each compiled result is checked against."""
    logits = X @ W
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -np.mean(np.sum(Y * log_p, axis=1)), X.T @ (np.exp(log_p) - Y) / X.shape[0]


def kept_per_step(steps, graph):
    """Bytes kept per step from step 10 on, and the worst relative error of a compiled result."""
    rng = np.random.default_rng(0)
    W0 = rng.standard_normal((784, 10)) * 0.01
    worst = 0.0
    with sg.use_graph(graph):
        W = sg.var("W", shape=(784, 10))
        for step in range(steps):
            X = rng.random((128, 784))
            Y = np.eye(10)[rng.integers(0, 10, 128)]
            loss = -sg.mean(sg.sum(Y * sg.log_softmax(X @ W, axis=1), axis=1))
            value, gradient = sg.compile([loss, sg.grad(loss, W)], inputs=[W])(W0)
            want_value, want_gradient = softmax_loss_and_gradient(X, Y, W0)
            worst = max(worst, abs(value - want_value) / abs(want_value),
                        np.max(np.abs(gradient - want_gradient)) / np.max(np.abs(want_gradient)))
            if step == 10:
                gc.collect()
                start = tracemalloc.get_traced_memory()[0]
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - start) / (steps - 11), worst


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    tracemalloc.start()
    released, worst_released = kept_per_step(steps, None)
    kept, worst_kept = kept_per_step(steps, sg.Graph())
    minibatch = 128 * 784 * 8
    print(table(["graph", "KiB kept per step", "minibatches per step"],
                [["default (releases)", f"{released / 1024:.1f}", f"{released / minibatch:.3f}"],
                 ["sg.Graph() (keeps)", f"{kept / 1024:.1f}", f"{kept / minibatch:.3f}"]]))
    worst = max(worst_released, worst_kept)
    print(f"largest relative disagreement with NumPy: {worst:.1e}")
    if not worst < 1e-9:
        print("FAILED: a compiled result disagrees with the NumPy reference")
        sys.exit(1)


if __name__ == "__main__":
    main()
