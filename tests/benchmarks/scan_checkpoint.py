"""What ``sg.scan(..., checkpoint=k)`` costs and saves: the char-RNN gradient of issue 21.

Run with ``python tests/benchmarks/scan_checkpoint.py [--steps 1000,10000] [--repeats 5]`` (see
README.md in this folder).

Workload: a tanh RNN (batch 8, hidden 32, vocabulary 32, one-hot inputs, mean cross-entropy per
step) over T steps as one ``sg.scan``; one compiled function returns the loss and the gradient in
the four weights and the initial state. For each T: without checkpoints, and with k = sqrt(T)
and k = T / 10.

Peak memory is ``tracemalloc``'s around one call after a warm-up call (the inputs already exist:
it is what the call allocates and holds at its worst moment); time is the median of ``repeats``
calls, without tracemalloc. Both are printed as ratios to the loop without checkpoints. Every
checkpointed result must equal the stored one bit for bit, or the script fails.
"""

import argparse
import math
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from _common import table

import symgrad as sg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_loops import char_rnn, rnn_data  # noqa: E402

MIB = 2.0 ** 20


def build(steps, checkpoint):
    """The char-RNN's loss and gradient (tests/test_loops.py's), as one scan checkpointed every
    ``checkpoint`` steps, compiled."""
    with sg.use_graph():
        loss, gradients, inputs = char_rnn(steps, looped=True, checkpoint=checkpoint)
        return sg.compile([loss, *gradients], inputs=inputs)


def data(steps, seed=0):
    return rnn_data(steps, seed)


def peak_bytes(fn, args):
    fn(*args)
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def seconds_per_call(fn, args, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(steps, repeats):
    """Rows (checkpoint, peak MiB, peak ratio, ms per call, time ratio) for ``steps``, and
    whether every result equals the stored one."""
    args = data(steps)
    rows, identical = [], True
    reference = None
    for label, k in [("None", None), ("sqrt(T)", math.isqrt(steps)), ("T/10", steps // 10)]:
        fn = build(steps, k)
        result = fn(*args)
        if reference is None:
            reference = result
        else:
            identical &= all(np.array_equal(a, b) for a, b in zip(result, reference))
        peak = peak_bytes(fn, args)
        seconds = seconds_per_call(fn, args, repeats)
        rows.append([f"T={steps}, checkpoint={label}" + (f" ({k})" if k else ""), peak, seconds])
    base_peak, base_seconds = rows[0][1], rows[0][2]
    return [[name, f"{peak / MIB:.2f}", f"{peak / base_peak:.3f}", f"{seconds * 1e3:.1f}",
             f"{seconds / base_seconds:.2f}"] for name, peak, seconds in rows], identical


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="1000,10000", help="numbers of steps, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    rows, failed = [], []
    for steps in (int(s) for s in options.steps.split(",")):
        found, identical = measure(steps, options.repeats)
        rows.extend(found)
        if not identical:
            failed.append(steps)
    print(table(["char-RNN gradient", "peak MiB", "peak / None", "ms per call", "time / None"],
                rows))
    if failed:
        print(f"FAILED: checkpointed gradients differ from the stored ones at T = {failed}")
        return 1
    print("every checkpointed result equals the stored one bit for bit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
