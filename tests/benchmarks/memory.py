"""Peak memory of the compiled MLP gradient against a hand-written NumPy backprop.

Run with ``python tests/benchmarks/memory.py`` (see README.md in this folder).

Model: MLP 784-500-400-10, ReLU, mean log-softmax cross-entropy of one-hot labels, L2 penalty
1e-4 on the three weight matrices; batch 128, float64, random data and weights (fixed seed).
One function returns the loss and the six gradients (W1, b1, W2, b2, W3, b3).

Peak memory is measured with ``tracemalloc`` around ONE call, after one warm-up call; the inputs
already exist, so the figure is what the call itself allocates and holds at its worst moment
(temporaries plus the returned gradients).  NumPy reports its array buffers to tracemalloc.
"""

import gc
import time
import tracemalloc

import numpy as np

from _common import statement_count, table

import symgrad as sg

SEED = 0
BATCH = 128
SIZES = (784, 500, 400, 10)
DECAY = 1e-4
RTOL = 1e-9
MIB = 2.0 ** 20
NAMES = ("loss", "dW1", "db1", "dW2", "db2", "dW3", "db3")


def build(optimize):
    """(forward-only, forward+gradient) compiled functions, each built in a fresh graph."""
    with sg.use_graph():
        X = sg.var("X", shape=("n", SIZES[0])); Y = sg.var("Y", shape=("n", SIZES[3]))
        W1 = sg.var("W1", shape=SIZES[0:2]); b1 = sg.var("b1", shape=SIZES[1:2])
        W2 = sg.var("W2", shape=SIZES[1:3]); b2 = sg.var("b2", shape=SIZES[2:3])
        W3 = sg.var("W3", shape=SIZES[2:4]); b3 = sg.var("b3", shape=SIZES[3:4])
        logits = sg.relu(sg.relu(X @ W1 + b1) @ W2 + b2) @ W3 + b3
        loss = (-sg.mean(sg.sum(Y * sg.log_softmax(logits, axis=1), axis=1))
                + DECAY * (sg.sum(W1 ** 2) + sg.sum(W2 ** 2) + sg.sum(W3 ** 2)))
        inputs = [X, Y, W1, b1, W2, b2, W3, b3]
        forward = sg.compile(loss, inputs=inputs, optimize=optimize)
        step = sg.compile([loss, *sg.grad(loss, [W1, b1, W2, b2, W3, b3])], inputs=inputs,
                          optimize=optimize)
    return forward, step


def hand_backprop(X, Y, W1, b1, W2, b2, W3, b3):
    """Loss and gradients written by hand the way a careful person would: in-place bias adds and
    ReLUs, ReLU masks taken from the stored activations, L2 sums without temporaries, (softmax - Y)
    / n for the fused log-softmax cross-entropy (one-hot rows), and activations released after
    their last use."""
    n = X.shape[0]
    # forward
    h1 = X @ W1
    h1 += b1
    np.maximum(h1, 0.0, out=h1)
    h2 = h1 @ W2
    h2 += b2
    np.maximum(h2, 0.0, out=h2)
    logp = h2 @ W3
    logp += b3
    logp -= logp.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    loss = -np.vdot(Y, logp) / n + DECAY * (np.vdot(W1, W1) + np.vdot(W2, W2) + np.vdot(W3, W3))
    # backward
    d3 = np.exp(logp)
    del logp
    d3 -= Y
    d3 /= n
    dW3 = h2.T @ d3
    dW3 += (2.0 * DECAY) * W3
    db3 = d3.sum(axis=0)
    d2 = d3 @ W3.T
    del d3
    d2 *= h2 > 0.0
    del h2
    dW2 = h1.T @ d2
    dW2 += (2.0 * DECAY) * W2
    db2 = d2.sum(axis=0)
    d1 = d2 @ W2.T
    del d2
    d1 *= h1 > 0.0
    del h1
    dW1 = X.T @ d1
    dW1 += (2.0 * DECAY) * W1
    db1 = d1.sum(axis=0)
    return loss, dW1, db1, dW2, db2, dW3, db3


def problem():
    """Fixed-seed batch and weights; biases nonzero and He-scaled weights so ReLUs are mixed."""
    rng = np.random.default_rng(SEED)
    args = {"X": rng.standard_normal((BATCH, SIZES[0])),
            "Y": np.eye(SIZES[3])[rng.integers(0, SIZES[3], BATCH)]}
    for k in range(3):
        fan_in, fan_out = SIZES[k], SIZES[k + 1]
        args[f"W{k + 1}"] = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
        args[f"b{k + 1}"] = rng.standard_normal(fan_out) * 0.1
    return args


def peak_of_one_call(fn, args):
    """(peak MiB traced during one call after a warm-up call, the call's results)."""
    fn(**args)                      # warm-up: first-call costs are not measured
    gc.collect()
    tracemalloc.start()
    try:
        results = fn(**args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / MIB, results


def relative_error(got, want):
    """max |got - want| / max |want| (scale-relative, robust to entries near zero)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def main():
    args = problem()
    compiled = {}
    for optimize in (True, False):
        start = time.perf_counter()
        compiled[optimize] = build(optimize) + (time.perf_counter() - start,)

    runs = {}
    runs["symgrad optimize=True"] = peak_of_one_call(compiled[True][1], args)
    runs["symgrad optimize=False"] = peak_of_one_call(compiled[False][1], args)
    runs["hand-written NumPy"] = peak_of_one_call(hand_backprop, args)
    hand_peak, hand_results = runs["hand-written NumPy"]

    outputs_mib = sum(np.asarray(r).nbytes for r in hand_results) / MIB
    print(f"MLP {'-'.join(map(str, SIZES))}, ReLU, log-softmax cross-entropy, L2 {DECAY:g}; "
          f"batch {BATCH}, float64, seed {SEED}")
    print(f"peak memory of one call (tracemalloc, after a warm-up call); the returned loss and "
          f"gradients alone take {outputs_mib:.2f} MiB\n")
    rows, worst = [], 0.0
    for label, (peak, results) in runs.items():
        errors = [relative_error(g, w) for g, w in zip(results, hand_results)]
        assert len(results) == len(NAMES)
        error = max(errors)
        worst = max(worst, error)
        rows.append([label, f"{peak:.2f}", f"{peak / hand_peak:.2f}x", f"{error:.1e}"])
    print(table(["implementation", "peak MiB", "vs hand-written", "max rel. error vs hand"],
                rows))

    # the two symgrad variants also against each other
    cross = max(relative_error(g, w) for g, w in
                zip(runs["symgrad optimize=True"][1], runs["symgrad optimize=False"][1]))
    worst = max(worst, cross)
    print(f"\nmax relative error, optimize=True vs optimize=False: {cross:.1e}")
    print(f"max relative error over all pairs and outputs ({', '.join(NAMES)}): {worst:.1e} "
          f"(tolerance {RTOL:g})")

    print("\nemitted statements (assignment lines of fn.source, `del` lines excluded)\n")
    rows = []
    for optimize in (True, False):
        forward, step, seconds = compiled[optimize]
        n_forward, n_step = statement_count(forward.source), statement_count(step.source)
        rows.append([f"optimize={optimize}", n_forward, n_step, f"{n_step / n_forward:.2f}x",
                     f"{seconds:.2f}"])
    print(table(["symgrad", "forward", "forward+gradient", "ratio", "build+compile s"], rows))

    if worst > RTOL:
        raise SystemExit(f"FAILED: gradients disagree (max relative error {worst:.1e} > {RTOL:g})")


if __name__ == "__main__":
    main()
