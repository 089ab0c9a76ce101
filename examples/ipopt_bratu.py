"""IPOPT (through cyipopt) solving a sparse constrained problem with symgrad's sparse Jacobian of
the constraints and sparse Hessian of the Lagrangian.

Run with ``python examples/ipopt_bratu.py``. IPOPT runs when cyipopt is installed (``pip
install -e ".[ipopt]"``, which builds against the IPOPT library: on Debian, ``apt-get install
coinor-libipopt-dev liblapack-dev libblas-dev pkg-config`` first); without it the script builds
and compiles the problem, says so and stops.

The problem is the optimal control of the 2-D Bratu equation on an n x n grid (zero on the
boundary, mesh width h = 1 / (n + 1)): find the state u and the source f, 2 n^2 unknowns, that

    minimise    1/2 |u - target|^2 + alpha/2 |f|^2 + beta/2 |grad_h f|^2
    subject to  -Laplace_h(u) - lam exp(u) - f = 0          (n^2 constraints)

Its solution is made known in advance: a state u* is chosen, f* is the source it needs, the
multipliers p* are what stationarity in f asks (alpha f* + beta A f*, with A = -Laplace_h), and
the target is u* + J_u(u*)^T p*, so that (u*, f*) with multipliers p* satisfies the optimality
conditions, and the Hessian of the Lagrangian is positive definite there. The known solution is
computed here with SciPy's sparse Laplacian, independently of symgrad.

IPOPT asks for each sparse matrix as its values in a (row, column) structure it is given once;
for the Hessian, only the lower triangle. symgrad's sparse results are CSR arrays whose
structure is fixed when the expression is built, so the structure is read off one call's matrix
and each later call hands IPOPT the values (the lower triangle's, picked by a mask made once).
"""

import sys
from pathlib import Path

import numpy as np
import scipy.sparse

try:
    import symgrad as sg
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import symgrad as sg

N = 40
LAM, ALPHA, BETA = 6.0, 1e-3, 1e-6


def laplacian(n):
    """A = -Laplace_h on the n x n grid, zero on the boundary: SciPy's 5-point matrix."""
    one = np.ones(n - 1)
    path = scipy.sparse.diags_array([-one, 2.0 * np.ones(n), -one], offsets=[-1, 0, 1])
    eye = scipy.sparse.identity(n)
    return ((scipy.sparse.kron(eye, path) + scipy.sparse.kron(path, eye)) * (n + 1) ** 2).tocsr()


def known_solution(n=N):
    """(u*, f*, p*, target): the state, source and multipliers that solve the problem for that
    target, from SciPy alone."""
    grid = np.linspace(0.0, 1.0, n + 2)[1:-1]
    u = np.outer(np.sin(np.pi * grid), np.sin(np.pi * grid) * (1.0 + grid)).ravel()
    A = laplacian(n)
    f = A @ u - LAM * np.exp(u)
    p = ALPHA * f + BETA * (A @ f)
    target = u + A @ p - LAM * np.exp(u) * p          # u* + J_u(u*)^T p*, J_u symmetric
    return u, f, p, target


def build(n, target):
    """The compiled objective, its gradient, the constraints, their sparse Jacobian and the
    Lagrangian's sparse Hessian (inputs x, the objective's factor, the multipliers)."""
    x = sg.var("x", shape=(2 * n * n,))
    u, f = x[:n * n], x[n * n:]
    h2 = (1.0 / (n + 1)) ** 2

    def minus_laplace(v):
        padded = sg.pad(v.reshape(n, n), 1)
        return ((4 * padded[1:-1, 1:-1] - padded[:-2, 1:-1] - padded[2:, 1:-1]
                 - padded[1:-1, :-2] - padded[1:-1, 2:]) / h2).reshape(-1)

    padded_f = sg.pad(f.reshape(n, n), 1)
    across = padded_f[1:, 1:-1] - padded_f[:-1, 1:-1]
    along = padded_f[1:-1, 1:] - padded_f[1:-1, :-1]
    objective = (0.5 * sg.sum((u - target) ** 2) + 0.5 * ALPHA * sg.sum(f ** 2)
                 + 0.5 * BETA * (sg.sum(across ** 2) + sg.sum(along ** 2)) / h2)
    constraints = minus_laplace(u) - LAM * sg.exp(u) - f

    factor = sg.var("factor")
    multipliers = sg.var("multipliers", shape=(n * n,))
    lagrangian = factor * objective + sg.sum(multipliers * constraints)
    return (sg.compile([objective, sg.grad(objective, x)], [x]),
            sg.compile(constraints, [x]),
            sg.compile(sg.jacobian(constraints, x, sparse=True), [x]),
            sg.compile(sg.hessian(lagrangian, x, sparse=True), [x, factor, multipliers]))


class BratuControl:
    """The problem as cyipopt.Problem asks for it: values, and sparse matrices as their values in
    a (row, column) structure given once."""

    def __init__(self, n, target):
        self.value_and_gradient, self.constraint_values, self.jacobian_csr, self.hessian_csr = \
            build(n, target)
        size = 2 * n * n
        J = self.jacobian_csr(np.zeros(size))
        self.jacobian_rows = np.repeat(np.arange(J.shape[0]), np.diff(J.indptr))
        self.jacobian_columns = J.indices
        H = self.hessian_csr(np.zeros(size), 1.0, np.ones(n * n))
        rows = np.repeat(np.arange(H.shape[0]), np.diff(H.indptr))
        # IPOPT takes the lower triangle of the symmetric Hessian
        self.lower = rows >= H.indices
        self.hessian_rows, self.hessian_columns = rows[self.lower], H.indices[self.lower]

    def objective(self, x):
        return float(self.value_and_gradient(x)[0])

    def gradient(self, x):
        return self.value_and_gradient(x)[1]

    def constraints(self, x):
        return self.constraint_values(x)

    def jacobianstructure(self):
        return self.jacobian_rows, self.jacobian_columns

    def jacobian(self, x):
        return self.jacobian_csr(x).data

    def hessianstructure(self):
        return self.hessian_rows, self.hessian_columns

    def hessian(self, x, lagrange, obj_factor):
        return self.hessian_csr(x, obj_factor, lagrange).data[self.lower]


def solve(problem, n=N):
    """IPOPT's solution from zero and its info (cyipopt imported here: the rest of the example
    builds and compiles without it)."""
    import cyipopt

    size, count = 2 * n * n, n * n
    nlp = cyipopt.Problem(n=size, m=count, problem_obj=problem,
                          lb=np.full(size, -1e20), ub=np.full(size, 1e20),
                          cl=np.zeros(count), cu=np.zeros(count))
    nlp.add_option("tol", 1e-10)
    nlp.add_option("print_level", 0)
    nlp.add_option("sb", "yes")             # no banner
    return nlp.solve(np.zeros(size))


def main():
    u, f, p, target = known_solution(N)
    problem = BratuControl(N, target)
    print(f"n = {N}: {2 * N * N} unknowns, {N * N} constraints; "
          f"Jacobian {problem.jacobian_rows.size} nonzeros "
          f"({problem.jacobian_csr.colors[0]} colours), Hessian lower triangle "
          f"{problem.hessian_rows.size} nonzeros ({problem.hessian_csr.colors[0]} colours)")
    try:
        import cyipopt  # noqa: F401
    except ImportError:
        print('IPOPT not run: this example needs cyipopt, pip install -e ".[ipopt]" (see its '
              'docstring)')
        return
    solution, info = solve(problem)
    known = np.concatenate([u, f])
    print(f"IPOPT status {info['status']}: {info['status_msg'].decode()}")
    print(f"largest difference from the known solution: "
          f"{np.max(np.abs(solution - known)) / np.max(np.abs(known)):.1e} (relative)")
    print(f"largest difference of the multipliers: "
          f"{np.max(np.abs(info['mult_g'] - p)) / np.max(np.abs(p)):.1e} (relative)")
    assert info["status"] == 0


if __name__ == "__main__":
    main()
