"""A dense Hessian of a 2-D grid energy (issue 23): cold time and peak memory against JAX.

The energy is the 2-D Bratu one, sum over an n x n grid of half the squared differences along
both axes minus LAMBDA e^u; its Hessian has (n^2)^2 entries (4,900^2, 192 MB at n = 70). Each
row runs in a fresh interpreter, after its imports: "cold" is the seconds from building the
expression (symgrad: build, sg.hessian, sg.compile, first call; JAX: jax.jit(jax.hessian(f))
traced, compiled and called once) to the result as a NumPy array; "peak" is the growth of the
process's peak resident memory (ru_maxrss) over what it held after its imports, as a multiple of
the dense result's bytes; symgrad's "traced" is tracemalloc's peak over the same span, in a second
run (NumPy's arrays are traced, JAX's buffers are not). Each result is checked against the
closed form (the grid's Laplacian minus LAMBDA diag(e^u)) through its products with three random
vectors, 1e-9 relative. Each row is the least seconds and the largest peak of --rounds runs.

What varies from run to run is the first touch of the result's 192 MB (n = 70). NumPy advises
huge pages for it; on a virtual machine whose balloon reports free memory to the host (virtio's
free page reporting, in 2 MiB blocks a few seconds after they are freed), a huge page is such a
block, and its first touch faults on the host too: 0.3 to 0.9 s for the 192 MB, where 4 KiB pages,
taken first from memory not yet reported, cost 0.12 to 0.19 s. Run back to back, the children
reuse the blocks the previous one freed and huge pages cost 0.03 s. --pause waits before each
child, so the blocks are reported and every child meets the cold case.

    python tests/benchmarks/dense_hessian.py                  # n = 50, 70, 100; ~1 min
    python tests/benchmarks/dense_hessian.py --sizes 70 --peers ""
    python tests/benchmarks/dense_hessian.py --sizes 70 --touch   # and the page faults alone
"""

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import scipy.sparse

import _common

LAMBDA = 1.0


def energy(ns, u):
    dx = u[1:, :] - u[:-1, :]
    dy = u[:, 1:] - u[:, :-1]
    return 0.5 * ns.sum(dx * dx) + 0.5 * ns.sum(dy * dy) - LAMBDA * ns.sum(ns.exp(u))


def point(n):
    return 0.1 * np.random.default_rng(n).standard_normal((n, n))


def largest_disagreement(hessian, x):
    """Relative difference of the Hessian's products with three vectors from the closed form's."""
    n = x.shape[0]
    path = scipy.sparse.diags_array([-np.ones(n - 1), np.r_[1.0, 2.0 * np.ones(n - 2), 1.0],
                                     -np.ones(n - 1)], offsets=[-1, 0, 1])
    eye = scipy.sparse.identity(n)
    laplacian = (scipy.sparse.kron(path, eye) + scipy.sparse.kron(eye, path)).tocsr()
    vectors = np.random.default_rng(1).standard_normal((n * n, 3))
    want = laplacian @ vectors - LAMBDA * np.exp(x).reshape(-1, 1) * vectors
    got = hessian.reshape(n * n, n * n) @ vectors
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def run_symgrad(n):
    import symgrad as sg
    u = sg.var("u", shape=(n, n))
    fn = sg.compile(sg.hessian(energy(sg, u), u), inputs=[u])
    return fn(point(n))


def run_jax(n):
    import jax
    import jax.numpy as jnp
    return np.asarray(jax.jit(jax.hessian(lambda u: energy(jnp, u)))(point(n)))


def run_touch(n, hugepages):
    """A fresh array of the result's size, made as zeros and every page of it written: the least
    a cold call returning it can cost here, with NumPy's advice that its memory be huge pages
    (its default for large arrays) or without it, in 4 KiB pages as JAX's buffers are."""
    np._core.multiarray._set_madvise_hugepage(hugepages)
    result = np.zeros((n, n, n, n))
    result.reshape(-1)[::512] = 0.0
    return result


def child(tool, n, traced):
    """One measurement in this fresh interpreter: a JSON line on standard output."""
    if tool.startswith("touch"):
        start = time.perf_counter()
        run_touch(n, tool == "touch-huge")
        print(json.dumps({"seconds": time.perf_counter() - start}))
        return
    if tool == "jax":
        import jax
        jax.config.update("jax_enable_x64", True)
        jax.numpy.zeros(1).block_until_ready()      # the backend started: part of the import
    else:
        import symgrad  # noqa: F401
    run = run_jax if tool == "jax" else run_symgrad
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if traced:
        tracemalloc.start()
    start = time.perf_counter()
    hessian = run(n)
    seconds = time.perf_counter() - start
    traced_peak = tracemalloc.get_traced_memory()[1] if traced else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.stop()
    print(json.dumps({"seconds": seconds, "peak": peak - before, "traced": traced_peak,
                      "error": largest_disagreement(hessian, point(n))}))


def measure(tool, n, rounds, traced=False, pause=0.0, pick=min):
    """The least seconds (``pick``: max, the largest) and the largest peaks of ``rounds`` fresh
    interpreters, each started ``pause`` seconds after the previous one ended."""
    results = []
    for _ in range(rounds):
        time.sleep(pause)
        done = subprocess.run([sys.executable, __file__, "--child", tool, str(n)]
                              + (["--traced"] if traced else []),
                              capture_output=True, text=True, cwd=_common.ROOT)
        if done.returncode != 0:
            return {"failed": (done.stderr.strip().splitlines() or ["?"])[-1]}
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if tool.startswith("touch"):
        return {"seconds": pick(r["seconds"] for r in results)}
    return {"seconds": pick(r["seconds"] for r in results),
            "peak": max(r["peak"] for r in results),
            "traced": None if traced is False else max(r["traced"] for r in results),
            "error": max(r["error"] for r in results)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,70,100", help="grid sides, comma-separated")
    parser.add_argument("--peers", default="jax", help="'jax' or '' (none)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="fresh interpreters per row: the least seconds, the largest peak")
    parser.add_argument("--touch", action="store_true",
                        help="also time writing a fresh array of the result's size, its memory "
                             "advised to be huge pages (NumPy's default) and not: the page "
                             "faults every cold call pays, which vary from run to run here")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds to wait before each fresh interpreter: memory freed by the "
                             "previous one is then reported to a virtual machine's host (3 is "
                             "enough), the cold case of a first call after a while")
    parser.add_argument("--worst", action="store_true",
                        help="rows of the largest seconds of --rounds runs, not the least")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.traced)
        return 0
    failed = False
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        dense = (n * n) ** 2 * 8
        timing = {"pause": args.pause, "pick": max if args.worst else min}
        ours = measure("symgrad", n, args.rounds, **timing)
        traced = measure("symgrad", n, 1, traced=True)
        theirs = (measure("jax", n, args.rounds, **timing) if "jax" in args.peers.split(",")
                  else None)
        for label, result in [("symgrad", ours), ("jax", theirs)]:
            if result is None:
                continue
            if "failed" in result:
                rows.append((f"{n}x{n} {label}", "failed: " + result["failed"][:60], "", "", "", ""))
                failed = failed or label == "symgrad"
                continue
            failed = failed or result["error"] > 1e-9
            ratio = (f"{ours['seconds'] / theirs['seconds']:.2f}"
                     if label == "symgrad" and theirs and "failed" not in theirs else "")
            memory = f"{traced['traced'] / dense:.2f}" \
                if label == "symgrad" and "failed" not in traced else ""
            rows.append((f"{n}x{n} {label}", f"{result['seconds']:.2f}", ratio,
                         f"{result['peak'] / dense:.2f}", memory, f"{result['error']:.1e}"))
        touches = [("touch, huge pages", "touch-huge"), ("touch, 4 KiB pages", "touch")]
        for label, tool in touches if args.touch else []:
            touched = measure(tool, n, args.rounds, **timing)
            rows.append((f"{n}x{n} {label}", f"{touched['seconds']:.2f}", "", "", "", ""))
    print(_common.table(("grid", "cold s", "/ jax", "peak rss / result", "traced / result",
                         "error"), rows))
    print(f"\ncold: build + differentiate + compile + first call (JAX: trace, compile, call), "
          f"{'largest' if args.worst else 'least'} of {args.rounds} fresh interpreters"
          + (f", each {args.pause:g} s after the previous" if args.pause else "") + "; peak: growth of ru_maxrss after the imports, "
          f"in multiples of the dense result (8 n^4 bytes), largest of them; traced: "
          f"tracemalloc's peak, symgrad only"
          + ("; touch: np.zeros of the result's size with every page written, NumPy's memory "
             "advised to be huge pages or not" if args.touch else ""))
    if failed:
        print("FAILED: a symgrad run failed or a Hessian disagrees with the closed form")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
