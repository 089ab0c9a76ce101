"""Sparse Jacobians and Hessians at scale (issue 22): the 2-D Bratu problem on an n x n grid.

Measures, for the residual's sparse Jacobian and the energy's sparse Hessian, by each method
(direct emission of the nonzeros, and the compressed pass over a colouring; "chosen" marks the
one sg.jacobian / sg.hessian with sparse=True picks): seconds to build (pattern, colouring or
direct emission) and to compile, colours, and the time per call as a ratio to a hand-written
NumPy assembly of the same CSR matrix (its structure made once, its values per call) and to
CasADi's sparse Jacobian and Hessian (when installed: pip install casadi); and the seconds from
the expression to the first result by the chosen method (build, compile and one call, in a
graph of its own). Then the same two
methods on a tridiagonal Jacobian and the chained Rosenbrock Hessian of as many unknowns. Then a stiff 1-D Brusselator (10,000 unknowns) solved by
solve_ivp(method="BDF") with symgrad's sparse Jacobian against SciPy's differences over the
pattern (jac_sparsity). Every result is checked against the hand-written one (1e-9 relative).

    python tests/benchmarks/sparse_bratu.py            # n = 300: 90,000 unknowns
    python tests/benchmarks/sparse_bratu.py --n 100
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.integrate
import scipy.sparse

import _common  # noqa: F401 (puts the checkout on sys.path)
import symgrad as sg
from symgrad.sparsity import sparse_hessian, sparse_jacobian

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_sparse import bratu, brusselator  # noqa: E402

LAMBDA = 6.0


def best_of(function, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def hand_written(n):
    """The Bratu Jacobian (= the energy's Hessian) assembled as one would by hand: the five-point
    structure and where each diagonal entry sits found once; per call the diagonal's values
    written into a copy of the constant off-diagonal values."""
    one = np.ones(n - 1)
    path = scipy.sparse.diags_array([-one, 2.0 * np.ones(n), -one], offsets=[-1, 0, 1])
    eye = scipy.sparse.identity(n)
    laplacian = ((scipy.sparse.kron(eye, path) + scipy.sparse.kron(path, eye))
                 * (n + 1) ** 2).tocsr()
    laplacian.sort_indices()
    indices, indptr = laplacian.indices, laplacian.indptr
    rows = np.repeat(np.arange(n * n), np.diff(indptr))
    diagonal = np.flatnonzero(rows == indices)
    constant = laplacian.data

    def assemble(u):
        data = constant.copy()
        data[diagonal] -= LAMBDA * np.exp(u)
        return scipy.sparse.csr_array((data, indices.copy(), indptr.copy()), shape=(n * n, n * n))
    return assemble


def casadi_functions(n):
    try:
        import casadi
    except ImportError:
        return None
    start = time.perf_counter()
    u = casadi.MX.sym("u", n * n)
    grid = casadi.reshape(u, n, n)
    padded = casadi.vertcat(casadi.MX(1, n + 2), casadi.horzcat(casadi.MX(n, 1), grid,
                                                                casadi.MX(n, 1)),
                            casadi.MX(1, n + 2))
    h2 = (1.0 / (n + 1)) ** 2
    laplacian = (4 * grid - padded[0:n, 1:n + 1] - padded[2:n + 2, 1:n + 1]
                 - padded[1:n + 1, 0:n] - padded[1:n + 1, 2:n + 2]) / h2
    residual = casadi.reshape(laplacian - LAMBDA * casadi.exp(grid), n * n, 1)
    across = padded[1:n + 2, 1:n + 1] - padded[0:n + 1, 1:n + 1]
    along = padded[1:n + 1, 1:n + 2] - padded[1:n + 1, 0:n + 1]
    energy = 0.5 * (casadi.sumsqr(across) + casadi.sumsqr(along)) / h2 \
        - LAMBDA * casadi.sum1(casadi.sum2(casadi.exp(grid)))
    jacobian = casadi.Function("J", [u], [casadi.jacobian(residual, u)])
    hessian = casadi.Function("H", [u], [casadi.hessian(energy, u)[0]])
    built = time.perf_counter() - start
    return jacobian, hessian, built


def build(make, method, variable):
    """(built seconds, compiled seconds, compiled function) of make(method)."""
    start = time.perf_counter()
    result = make(method)
    built = time.perf_counter() - start
    start = time.perf_counter()
    fn = sg.compile(result, [variable])
    return built, time.perf_counter() - start, fn


def bratu_rows(n, rounds):
    rng = np.random.default_rng(0)
    at = rng.uniform(0.0, 1.0, n * n)
    assemble = hand_written(n)
    reference = assemble(at)
    hand = best_of(lambda: assemble(at), rounds)
    peers = casadi_functions(n)
    rows, first_results = [], []
    for name, hessian in (("Jacobian of the residual", False), ("Hessian of the energy", True)):
        with sg.use_graph():
            u, residual, energy = bratu(n, LAMBDA)
            start = time.perf_counter()
            chosen = sg.hessian(energy, u, sparse=True) if hessian else \
                sg.jacobian(residual, u, sparse=True)
            sg.compile(chosen, [u])(at)
            first_results.append(f"{name} {time.perf_counter() - start:.2f} s")
            chosen = chosen.data["attrs"]["method"]
        for method in ("direct", "compressed"):
            with sg.use_graph():
                u, residual, energy = bratu(n, LAMBDA)
                built, compiled, fn = build(
                    lambda method: sparse_hessian(energy, u, method=method) if hessian
                    else sparse_jacobian(residual, u, method=method), method, u)
            result = fn(at)
            error = abs(result - reference).max() / abs(reference).max()
            if error > 1e-9 or (result.astype(bool) != reference.astype(bool)).nnz:
                print(f"FAILED: {name} differs from the hand-written assembly ({error:.1e})")
                sys.exit(1)
            per_call = best_of(lambda: fn(at), rounds)
            row = [name, method + (" (chosen)" if chosen == method or chosen != "direct"
                                   and method == "compressed" else ""),
                   f"{built:.2f}", f"{compiled:.2f}", fn.colors[0], f"{per_call * 1e3:.2f}",
                   f"{per_call / hand:.2f}"]
            if peers is not None:
                peer = peers[1] if hessian else peers[0]
                peer_value = scipy.sparse.csr_array(peer(at).sparse())
                peer_error = abs(peer_value - reference).max() / abs(reference).max()
                peer_time = best_of(lambda: scipy.sparse.csr_array(peer(at).sparse()), rounds)
                row += [f"{peers[2]:.2f}", f"{peer_time * 1e3:.2f}",
                        f"{per_call / peer_time:.3f}", f"{max(error, peer_error):.0e}"]
            else:
                row += ["n/a", "n/a", "n/a", f"{error:.0e}"]
            rows.append(row)
    header = ["n = %d (%d unknowns)" % (n, n * n), "method", "build s", "compile s", "colours",
              "per call ms", "vs hand", "CasADi build s", "CasADi ms", "vs CasADi", "rel. error"]
    print(_common.table(header, rows))
    print(f"hand-written assembly: {hand * 1e3:.2f} ms per call")
    print(f"from the expression to the first result (the chosen method, build, compile, call): "
          f"{', '.join(first_results)}")


def chains(size, rounds):
    """A tridiagonal residual's Jacobian and the chained Rosenbrock function's Hessian by both
    methods, each checked against the other (1e-12 relative)."""
    at = np.random.default_rng(1).uniform(-1.0, 1.0, size)
    rows = []
    for name in ("tridiagonal Jacobian", "chained Rosenbrock Hessian"):
        results = {}
        for method in ("direct", "compressed"):
            with sg.use_graph():
                x = sg.var("x", shape=(size,))
                if name.startswith("tridiagonal"):
                    padded = sg.pad(x, 1)
                    y = padded[:-2] - 2.0 * sg.sin(x) + padded[2:] ** 3

                    def make(method):
                        return sparse_jacobian(y, x, method=method)
                    chosen = sg.jacobian(y, x, sparse=True)
                else:
                    f = sg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

                    def make(method):
                        return sparse_hessian(f, x, method=method)
                    chosen = sg.hessian(f, x, sparse=True)
                chosen = chosen.data["attrs"]["method"]
                built, compiled, fn = build(make, method, x)
            results[method] = fn(at)
            per_call = best_of(lambda: fn(at), rounds)
            rows.append([name, method + (" (chosen)" if chosen == method or chosen != "direct"
                                         and method == "compressed" else ""),
                         f"{built:.2f}", f"{compiled:.2f}", fn.colors[0],
                         f"{per_call * 1e3:.2f}"])
        direct, compressed = results["direct"], results["compressed"]
        gap = abs(direct - compressed).max() / abs(compressed).max()
        if gap > 1e-12 or (direct.indices != compressed.indices).any():
            print(f"FAILED: the two methods differ on the {name} ({gap:.1e})")
            sys.exit(1)
    print(_common.table([f"{size} unknowns", "method", "build s", "compile s", "colours",
                         "per call ms"], rows))


def brusselator_rows(points):
    with sg.use_graph():
        y, rate, start = brusselator(points)
        rhs = sg.compile(rate, [y])
        jac = sg.compile(sg.jacobian(rate, y, sparse=True), [y])
        pattern = sg.sparsity(rate, y)
    calls = {}
    results = {}
    for run, options in (("symgrad jac", dict(jac=lambda t, state: jac(state))),
                         ("SciPy differences (jac_sparsity)", dict(jac_sparsity=pattern))):
        calls[run] = 0

        def fun(t, state, run=run):
            calls[run] += 1
            return rhs(state)
        began = time.perf_counter()
        results[run] = scipy.integrate.solve_ivp(fun, (0.0, 10.0), start, method="BDF",
                                                 rtol=1e-6, atol=1e-8, **options)
        results[run].seconds = time.perf_counter() - began
    exact, differences = results.values()
    gap = np.max(np.abs(exact.y[:, -1] - differences.y[:, -1]))
    rows = [[run, f"{r.seconds:.2f}", calls[run], r.njev, r.nlu] for run, r in results.items()]
    print(_common.table([f"Brusselator, {2 * points} unknowns, BDF", "seconds", "rhs calls",
                         "Jacobians", "LU"], rows))
    print(f"time ratio {exact.seconds / differences.seconds:.2f}; largest difference of the "
          f"final states {gap:.1e}; colours {jac.colors[0]}")
    if gap > 1e-4:
        print("FAILED: the two solutions differ")
        sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--points", type=int, default=5000)
    options = parser.parse_args()
    bratu_rows(options.n, options.rounds)
    print()
    chains(options.n * options.n, options.rounds)
    print()
    brusselator_rows(options.points)


if __name__ == "__main__":
    main()
