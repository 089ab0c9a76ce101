"""Many small ops: the char-RNN of issue 21 unrolled (a tanh cell over one-hot characters, batch
8, hidden 32, vocabulary 32, the cross-entropy of its next-character predictions summed over the
batch and averaged over time), its loss and its gradient in the weights and the initial state,
built with symgrad's Python operators and compiled by its NumPy backend, against the same
computed by backpropagation through time written by hand in NumPy (forward and backward loops
as min-char-rnn writes them) in the same process.

Run with ``python tests/benchmarks/small_arrays.py [--steps 50,200] [--repeats 7] [--small
1024]``. For each number of steps T it prints the per-call medians (round robin, the starting
point rotated each round) and their ratio to the hand-written BPTT, and the emitted statement
count, for symgrad's emission with small values written into their readers' expressions
(``small``: codegen.memory.inline_small_values with SMALL_ARRAY_MAX set to ``--small`` while
compiling) and without (``large``: SMALL_ARRAY_MAX 0, every statement as the memory passes plan
it for large arrays), and the large-array emission with its statements ordered for locality
(``locality order``: codegen.plan.LOCALITY on while compiling, the backward pass run step by
step, where the default depth-first order makes one sweep over all the steps per gradient). All
emissions must agree bit for bit, and with the hand-written BPTT to 1e-9 (scale-relative), or the
run fails.

BLAS runs on one thread for all (threadpoolctl), as in peers.py; the script prints the BLAS
library and its thread count.
"""

import argparse
import statistics
import sys
import time
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import _common  # first: puts the checkout on sys.path

import symgrad as sg
from symgrad.codegen import memory, plan

BATCH, HIDDEN, VOCABULARY = 8, 32, 32
SEED = 0
RTOL = 1e-9
MIN_SAMPLE = 0.2      # seconds each timing loop lasts at least


def problem(steps, seed=SEED):
    """One-hot inputs and targets (the next character) of shape (T, B, V), the weights and the
    initial state."""
    rng = np.random.default_rng(seed)
    chars = rng.integers(0, VOCABULARY, size=(steps + 1, BATCH))
    one_hot = np.eye(VOCABULARY)[chars]
    weights = dict(Wx=rng.normal(0, 0.3, (VOCABULARY, HIDDEN)),
                   Wh=rng.normal(0, 0.1, (HIDDEN, HIDDEN)), b=rng.normal(0, 0.1, HIDDEN),
                   Wy=rng.normal(0, 0.3, (HIDDEN, VOCABULARY)),
                   h0=rng.normal(0, 0.1, (BATCH, HIDDEN)))
    return one_hot[:-1], one_hot[1:], weights


def compiled_rnn(steps):
    """symgrad's loss and gradient, built with Python operators and unrolled over ``steps``."""
    with sg.use_graph():
        X = sg.var("X", shape=(steps, BATCH, VOCABULARY))
        Y = sg.var("Y", shape=(steps, BATCH, VOCABULARY))
        Wx = sg.var("Wx", shape=(VOCABULARY, HIDDEN))
        Wh = sg.var("Wh", shape=(HIDDEN, HIDDEN))
        b = sg.var("b", shape=(HIDDEN,))
        Wy = sg.var("Wy", shape=(HIDDEN, VOCABULARY))
        h0 = sg.var("h0", shape=(BATCH, HIDDEN))
        h, total = h0, 0.0
        for t in range(steps):
            h = sg.tanh(X[t] @ Wx + h @ Wh + b)
            total = total - sg.sum(Y[t] * sg.log_softmax(h @ Wy, axis=-1))
        loss = total / steps
        weights = [Wx, Wh, b, Wy, h0]
        return sg.compile([loss, *sg.grad(loss, weights)], inputs=[X, Y, *weights])


def hand_bptt(X, Y, Wx, Wh, b, Wy, h0):
    """Loss and gradients by backpropagation through time, written as a person writes it. The
    targets are one-hot, so the cotangent of the logits is softmax minus target."""
    steps = len(X)
    hs = np.empty((steps + 1, BATCH, HIDDEN))
    hs[-1] = h0                 # the state before the first step, read as hs[t - 1] at t = 0
    ps = np.empty((steps, BATCH, VOCABULARY))
    loss = 0.0
    for t in range(steps):
        hs[t] = np.tanh(X[t] @ Wx + hs[t - 1] @ Wh + b)
        logits = hs[t] @ Wy
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        loss -= np.vdot(Y[t], shifted - np.log(total))
        ps[t] = exp / total
    dWx, dWh, db, dWy = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b), np.zeros_like(Wy)
    dh_next = np.zeros((BATCH, HIDDEN))
    for t in reversed(range(steps)):
        dlogits = (ps[t] - Y[t]) / steps
        dWy += hs[t].T @ dlogits
        dh = dlogits @ Wy.T + dh_next
        draw = (1.0 - hs[t] * hs[t]) * dh
        db += draw.sum(axis=0)
        dWx += X[t].T @ draw
        dWh += hs[t - 1].T @ draw
        dh_next = draw @ Wh.T
    return loss / steps, dWx, dWh, db, dWy, dh_next


@contextmanager
def locality_order():
    """Plan (while compiling) with the statements ordered for locality."""
    saved = plan.LOCALITY
    plan.LOCALITY = True
    try:
        yield
    finally:
        plan.LOCALITY = saved


@contextmanager
def small_array_emission(maximum):
    """Plan (while compiling) with arrays of at most ``maximum`` entries taken as small; 0 gives
    the large-array emission everywhere."""
    saved = memory.SMALL_ARRAY_MAX
    memory.SMALL_ARRAY_MAX = maximum
    try:
        yield
    finally:
        memory.SMALL_ARRAY_MAX = saved


def per_call(function, repeats):
    """Median seconds per call over ``repeats`` loops of at least MIN_SAMPLE seconds."""
    function()
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            function()
        if time.perf_counter() - start >= MIN_SAMPLE:
            break
        number *= 2
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            function()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def disagreement(got, want):
    return max(float(np.max(np.abs(np.asarray(g) - w)) / max(np.max(np.abs(w)), 1e-300))
               for g, w in zip(got, want))


def rnn_rows(steps, repeats, small_max):
    X, Y, weights = problem(steps)
    args = (X, Y, *weights.values())
    want = hand_bptt(*args)
    with small_array_emission(0):
        large = compiled_rnn(steps)
    with small_array_emission(small_max):
        small = compiled_rnn(steps)
    with small_array_emission(0), locality_order():
        local = compiled_rnn(steps)
    got_large, got_small = large(*args), small(*args)
    for other in (got_small, local(*args)):
        if not all(np.array_equal(a, b) for a, b in zip(got_large, other)):
            raise SystemExit(f"FAILED: T = {steps}: the emissions disagree")
    error = disagreement(got_small, want)
    if error > RTOL:
        raise SystemExit(f"FAILED: T = {steps}: symgrad and the hand-written BPTT differ by "
                         f"{error:.1e}")
    functions = {"hand-written BPTT": lambda: hand_bptt(*args),
                 "symgrad, large-array emission": lambda: large(*args),
                 "symgrad, small-array emission": lambda: small(*args),
                 "symgrad, large, locality order": lambda: local(*args)}
    # round robin, the starting point rotated, so that a busy spell of the machine is shared
    times = {name: [] for name in functions}
    names = list(functions)
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            times[name].append(per_call(functions[name], 1))
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    base = medians["hand-written BPTT"]
    counts = {"symgrad, large-array emission": _common.statement_count(large.source),
              "symgrad, small-array emission": _common.statement_count(small.source),
              "symgrad, large, locality order": _common.statement_count(local.source)}
    return [(f"T = {steps}: {name}", f"{seconds * 1e3:.3f}", f"{seconds / base:.2f}",
             counts.get(name, ""), f"{error:.1e}" if name in counts else "")
            for name, seconds in medians.items()]


def blas_lines():
    return [f"{pool['internal_api']} {pool.get('version')} ({pool['user_api']}), "
            f"{pool['num_threads']} thread(s), {pool.get('architecture')}"
            for pool in threadpool_info()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="50,200", help="numbers of time steps (50,200)")
    parser.add_argument("--repeats", type=int, default=7, help="timing rounds (7)")
    parser.add_argument("--small", type=int, default=1024,
                        help="entries of a small array for the small-array emission (1024)")
    opts = parser.parse_args(argv)
    with threadpool_limits(limits=1):
        print("BLAS:", "; ".join(blas_lines()))
        print(f"small arrays: at most {opts.small} entries (codegen.memory.SMALL_ARRAY_MAX is "
              f"{memory.SMALL_ARRAY_MAX} by default)\n")
        rows = []
        for steps in (int(s) for s in opts.steps.split(",")):
            rows += rnn_rows(steps, opts.repeats, opts.small)
        print(_common.table(["char-RNN B=8 H=32 V=32, loss + gradient", "ms/call",
                             "ratio", "statements", "error"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
